//go:build linux

package rawconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// coroPair returns the two ends of a stream socket pair: one an FDConn on the
// first poller (so that every coroutine of a test shares one loop), the other
// an ordinary net.Conn for the test to drive.
func coroPair(t *testing.T) (*FDConn, net.Conn) {
	t.Helper()
	p, err := defaultPoller()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := newFDConn(p, fds[0], nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "peer")
	peer, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fc.Close(); peer.Close() })
	return fc, peer
}

// serveCoro runs f for c as a coroutine and reports f's end on the channel.
func serveCoro(t *testing.T, c *FDConn, f func(co *Coro, c *FDConn)) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	Go(c, func(co *Coro) {
		defer close(done)
		if co == nil {
			t.Error("Go ran f as a goroutine")
			return
		}
		f(co, c)
	})
	return done
}

// echo answers every read with the same bytes until the connection ends.
func echo(_ *Coro, c *FDConn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// roundTrip writes msg to peer and reads the same back, within a second.
func roundTrip(t *testing.T, peer net.Conn, msg string) {
	t.Helper()
	_ = peer.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(peer, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

func TestCoroEcho(t *testing.T) {
	const conns = 20
	peers := make([]net.Conn, conns)
	for i := range peers {
		c, peer := coroPair(t)
		peers[i] = peer
		serveCoro(t, c, echo)
	}
	// Every coroutine is parked on its read; interleave the exchanges.
	for round := range 3 {
		for i, peer := range peers {
			roundTrip(t, peer, string(rune('a'+i))+string(rune('0'+round)))
		}
	}
}

func TestCoroDeadlineAndClose(t *testing.T) {
	c, _ := coroPair(t)
	errs := make(chan error, 2)
	done := serveCoro(t, c, func(_ *Coro, c *FDConn) {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		errs <- err
		_ = c.SetReadDeadline(time.Time{})
		_, err = c.Read(make([]byte, 1)) // until Close
		errs <- err
	})
	if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // let the coroutine park again
	c.Close()
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read of a closed connection: %v", err)
	}
	<-done
}

// TestCoroLeaving checks that a coroutine that waits on something else
// after Detach, or inside Offload, does not hold up the loop: another
// connection of the same poller is served meanwhile.
func TestCoroLeaving(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(co *Coro, wait func())
	}{
		{"detach", func(co *Coro, wait func()) { co.Detach(); wait() }},
		{"offload", func(co *Coro, wait func()) { co.Offload(wait) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other, otherPeer := coroPair(t)
			serveCoro(t, other, echo)
			c, peer := coroPair(t)
			release := make(chan struct{})
			done := serveCoro(t, c, func(co *Coro, c *FDConn) {
				if _, err := c.Read(make([]byte, 1)); err != nil {
					t.Error(err)
					return
				}
				tc.leave(co, func() { <-release })
				_, _ = io.WriteString(c, "done")
			})
			_, _ = io.WriteString(peer, "x")
			time.Sleep(20 * time.Millisecond) // c's coroutine now waits on release
			roundTrip(t, otherPeer, "still served")
			close(release)
			got := make([]byte, 4)
			_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadFull(peer, got); err != nil || string(got) != "done" {
				t.Fatalf("after leaving: %q, %v", got, err)
			}
			<-done
		})
	}
}

func TestCoroDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		up, err := ln.Accept()
		if err != nil {
			return
		}
		defer up.Close()
		_, _ = io.Copy(up, up)
	}()
	c, peer := coroPair(t)
	result := make(chan string, 1)
	serveCoro(t, c, func(co *Coro, _ *FDConn) {
		ctx := WithCoro(context.Background(), co)
		if Home(ctx) != co.p.id {
			result <- "Home is not the coroutine's poller"
			return
		}
		up, err := Dial(ctx, ln.Addr().String(), time.Now().Add(2*time.Second), 0)
		if err != nil {
			result <- err.Error()
			return
		}
		defer up.Close()
		if PollerOf(up) != co.p.id {
			result <- "dialled connection on another poller"
			return
		}
		buf := make([]byte, 4)
		_, _, err = up.WriteThenRead([]byte("ping"), buf)
		if err != nil {
			result <- err.Error()
			return
		}
		result <- string(buf)
	})
	_ = peer
	if got := <-result; got != "ping" {
		t.Fatal(got)
	}
}

// TestNow: a coroutine reads the time its batch began, not the clock: two
// reads in one run agree, and a run after a wait reads a later time; off the
// poller (detached, or no coroutine) Now is the clock.
func TestNow(t *testing.T) {
	c, peer := coroPair(t)
	type reading struct{ first, second, after, detached time.Time }
	got := make(chan reading, 1)
	done := serveCoro(t, c, func(co *Coro, c *FDConn) {
		var r reading
		r.first = co.Now()
		time.Sleep(2 * time.Millisecond) // the clock moves; the batch's time does not
		r.second = Now(WithCoro(context.Background(), co))
		buf := make([]byte, 8)
		if _, err := c.Read(buf); err != nil { // yields until the test writes
			t.Error(err)
		}
		r.after = co.Now()
		co.Detach()
		r.detached = co.Now()
		got <- r
	})
	time.Sleep(5 * time.Millisecond)
	if _, err := peer.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	<-done
	r := <-got
	if !r.second.Equal(r.first) {
		t.Errorf("two reads in one run differ: %v then %v", r.first, r.second)
	}
	if d := r.after.Sub(r.first); d < 4*time.Millisecond {
		t.Errorf("the run after the read is only %v later than the first; want about 5ms (a new batch, a new reading)", d)
	}
	if d := time.Until(r.detached); d > 0 || d < -time.Second {
		t.Errorf("detached Now is %v from the clock", d)
	}
	var none *Coro
	if d := time.Since(none.Now()); d < 0 || d > time.Second {
		t.Errorf("nil Coro's Now is %v from the clock", d)
	}
	if d := time.Since(Now(context.Background())); d < 0 || d > time.Second {
		t.Errorf("Now without a coroutine is %v from the clock", d)
	}
}

// TestCoroManyReady makes more sockets ready at once than one epoll_wait
// returns, then nothing else happens: every coroutine must still run. (The
// loop's descriptor reports readiness to the netpoller only when new events
// arrive, so events left after a full batch must be taken without waiting.)
func TestCoroManyReady(t *testing.T) {
	const conns = 3 * 256
	peers := make([]net.Conn, conns)
	read := make(chan int, conns)
	for i := range peers {
		c, peer := coroPair(t)
		peers[i] = peer
		serveCoro(t, c, func(_ *Coro, c *FDConn) {
			n, _ := c.Read(make([]byte, 1))
			read <- n
		})
	}
	// On one P the writes below finish before the loop runs again, so all
	// their events are waiting in the epoll instance together.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, peer := range peers {
		if _, err := peer.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	timeout := time.After(5 * time.Second)
	for got := 0; got < conns; got++ {
		select {
		case <-read:
		case <-timeout:
			t.Fatalf("%d of %d coroutines ran after their sockets became ready", got, conns)
		}
	}
}

// TestBufferLoan checks the loop's buffer loans: in a coroutine the buffer
// returned last is lent next (it is the one still in the CPU cache); outside
// one, and for buffers of another size, nothing is kept.
func TestBufferLoan(t *testing.T) {
	c, _ := coroPair(t)
	type result struct {
		same, foreignKept bool
		size              int
	}
	res := make(chan result, 1)
	<-serveCoro(t, c, func(_ *Coro, c *FDConn) {
		a, b := c.Buffer(), c.Buffer()
		c.Recycle(b)
		c.Recycle(a)
		again := c.Buffer()
		c.Recycle(again)
		c.Recycle(make([]byte, 2*BufSize)) // a grown buffer: not kept
		next := c.Buffer()
		res <- result{same: &again[0] == &a[0], foreignKept: cap(next) != BufSize, size: len(a)}
		c.Recycle(next)
		c.Recycle(b)
	})
	r := <-res
	if r.size != BufSize || !r.same || r.foreignKept {
		t.Fatalf("size %d, last returned lent again %v, other size kept %v", r.size, r.same, r.foreignKept)
	}
	// Not in a coroutine: nothing is pooled (another loop's list is not ours).
	_, g := polledPair(t)
	a := g.Buffer()
	g.Recycle(a)
	if b := g.Buffer(); &b[0] == &a[0] {
		t.Fatal("a buffer returned outside a coroutine was lent again")
	}
}

// TestDispatchOrder: in a batch, coroutines woken by upstream (dialed)
// connections run before those woken by client (accepted) ones, each group
// in event order; a reused slot forgets that it was a client's.
func TestDispatchOrder(t *testing.T) {
	p := &poller{}
	var slots []*waiters
	type conn struct {
		name     string
		accepted bool
	}
	conns := []conn{{"client-a", true}, {"upstream-a", false}, {"client-b", true}, {"upstream-b", false}}
	coros := map[*Coro]string{}
	var events []syscall.EpollEvent
	for i, c := range conns {
		w := &waiters{r: make(chan struct{}, 1), w: make(chan struct{}, 1)}
		w.gen.Store(1)
		w.accepted.Store(c.accepted)
		co := &Coro{p: p}
		coros[co] = c.name
		w.rco.Store(co)
		slots = append(slots, w)
		events = append(events, syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i), Pad: 1})
	}
	p.slots.Store(&slots)
	p.dispatch(events)
	var got []string
	for _, co := range p.run {
		got = append(got, coros[co])
	}
	if want := "upstream-a upstream-b client-a client-b"; strings.Join(got, " ") != want {
		t.Errorf("run order %v, want %s", got, want)
	}
	if len(p.later) != 0 {
		t.Errorf("later keeps %d coroutines after dispatch", len(p.later))
	}

	// A slot a client's connection left is not a client's for the next one.
	p2, err := defaultPoller()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[1])
	id, w, err := p2.register(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	w.accepted.Store(true)
	p2.unregister(fds[0], id)
	if _, w2, err := p2.register(fds[0]); err != nil || w2 != w || w2.accepted.Load() {
		t.Errorf("reused slot: same waiters %v, still accepted %v (err %v)", w2 == w, w2.accepted.Load(), err)
	}
	syscall.Close(fds[0])
}
