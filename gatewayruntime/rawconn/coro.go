//go:build linux

package rawconn

import (
	"context"
	"iter"
	"net"
	"sync/atomic"
	"time"
)

// A Coro runs one connection's code as a coroutine of the poller: the
// connection's straight-line code (read the request, call the handler, write
// the upstream, read its answer) runs on the poller's own goroutine, switched
// to when its socket is ready and switched away from when it would wait. The
// poller runs the coroutines of one batch of ready sockets one after the
// other, in the order the kernel reported them, like an event loop (nginx's
// design) but without rewriting the code as state machines; a coroutine switch
// costs about a fifth of a goroutine wake-up through a channel.
//
// While it is a coroutine, the code may only wait on FDConns (it yields then)
// or briefly (a mutex never held across a wait): anything else holds up every
// connection of the poller. Code that may wait on anything else calls Detach
// first (the rest of it runs as an ordinary goroutine) or Offload. Detach,
// Offload and the waits that yield must run in the coroutine itself: a
// goroutine the code starts must not take the coroutine's context into Dial
// or Attach.
type Coro struct {
	p     *poller
	next  func() (struct{}, bool)
	yield func(struct{}) bool
	// detached is set (by the coroutine itself) when it leaves the poller.
	detached bool
}

// Loop says whether connections accepted by a Listener are served as
// coroutines of the poller (see Go). Set it before serving.
var Loop = true

// Go runs f for the connection nc: as a coroutine of the poller when nc is an
// FDConn and Loop is set, else as a goroutine. f gets the Coro (nil for a
// goroutine), to hand on with WithCoro.
func Go(nc net.Conn, f func(co *Coro)) {
	fc, ok := nc.(*FDConn)
	if !ok || !Loop {
		go f(nil)
		return
	}
	co := &Coro{p: fc.p}
	co.next, _ = iter.Pull(func(yield func(struct{}) bool) {
		co.yield = yield
		f(co)
	})
	fc.co = co
	co.p.readyRemote(co)
}

type coroKey struct{}

// WithCoro returns ctx carrying co, for the code of co's connection that
// dials or reuses upstream connections (Dial, Attach).
func WithCoro(ctx context.Context, co *Coro) context.Context {
	if co == nil {
		return ctx
	}
	return context.WithValue(ctx, coroKey{}, co)
}

// CoroFrom returns the coroutine ctx's code runs in, or nil.
func CoroFrom(ctx context.Context) *Coro {
	co, _ := ctx.Value(coroKey{}).(*Coro)
	return co
}

// Home is the index of the poller whose coroutine ctx's
// code runs in, or -1 outside one: connection pools keep connections per
// poller so that a coroutine's upstream events come to its own poller.
func Home(ctx context.Context) int {
	if co := CoroFrom(ctx); co.active() {
		return co.p.id
	}
	return -1
}

// PollerOf is the index of the poller nc waits in, or -1 when it is not an
// FDConn.
func PollerOf(nc net.Conn) int {
	if fc, ok := nc.(*FDConn); ok {
		return fc.p.id
	}
	return -1
}

// Now is the time for co's code. On the poller it is when the batch of events
// that resumed co began: the loop reads the clock once per batch, as nginx
// caches its clock once per loop turn, instead of each request reading it
// several times (a clock read is ~30 ns here, about 1% of a proxied
// request). It is behind the clock by at most the time the batch's
// coroutines have run so far, microseconds under load. Off the poller (nil,
// detached) it is Mono. Nil-safe.
func (co *Coro) Now() time.Time {
	if co.active() {
		return co.p.now
	}
	return Mono()
}

// Now is Coro.Now for the coroutine of ctx (Mono outside one).
func Now(ctx context.Context) time.Time { return CoroFrom(ctx).Now() }

// active reports whether co is a coroutine still on the poller.
func (co *Coro) active() bool { return co != nil && !co.detached }

// Detach moves the calling coroutine off the poller: from here on its code
// runs as an ordinary goroutine and may wait on anything. Nil-safe; a no-op
// when already detached.
func (co *Coro) Detach() {
	if !co.active() {
		return
	}
	co.detached = true
	co.yield(struct{}{}) // the poller starts the goroutine that resumes it
}

// Detach detaches the coroutine of ctx, if any (see Coro.Detach).
func Detach(ctx context.Context) { CoroFrom(ctx).Detach() }

// Offload runs f, which may wait on anything, on another goroutine while the
// calling coroutine yields; outside a coroutine it just calls f.
func (co *Coro) Offload(f func()) {
	if !co.active() {
		f()
		return
	}
	go func() {
		f()
		co.p.readyRemote(co)
	}()
	co.yield(struct{}{})
}

// Attach makes c's waits yield the coroutine of ctx (none when ctx has none):
// pooled upstream connections are attached by each request that takes one.
func Attach(nc net.Conn, ctx context.Context) { //nolint:revive // context second: it describes the caller, not the connection
	if fc, ok := nc.(*FDConn); ok {
		fc.co = CoroFrom(ctx)
	}
}

// park yields until the socket direction whose token channel is ch is ready
// (or closed, or its deadline passed). slot names co as the one to resume: a
// waker either takes slot (and resumes co), or finds it empty, leaves a token
// and looks at slot again; so co either sees the token before yielding (and
// takes slot back) or is resumed.
func (co *Coro) park(ch chan struct{}, slot *atomic.Pointer[Coro]) {
	slot.Store(co)
	if len(ch) > 0 && slot.CompareAndSwap(co, nil) {
		drain(ch)
		return
	}
	co.yield(struct{}{})
	if len(ch) > 0 {
		drain(ch)
	}
}

// wake makes a direction ready: the coroutine parked on it is resumed, or
// else a token is left for the next waiter. The slot is taken again after
// the token is sent: a coroutine that parked in between saw no token and is
// resumed. local is the poller calling, nil elsewhere.
func wake(ch chan struct{}, slot *atomic.Pointer[Coro], local *poller) {
	co := slot.Swap(nil)
	if co == nil {
		signal(ch)
		if co = slot.Swap(nil); co == nil {
			return
		}
	}
	if co.p == local {
		local.run = append(local.run, co)
	} else {
		co.p.readyRemote(co)
	}
}

// resume runs co until it yields or ends; a coroutine that detached goes on
// on a goroutine of its own.
func (p *poller) resume(co *Coro) {
	if _, ok := co.next(); ok && co.detached {
		go func() {
			for {
				if _, ok := co.next(); !ok {
					return
				}
			}
		}()
	}
}
