//go:build !linux

package rawconn

import (
	"context"
	"errors"
	"net"
	"time"
)

// Wrap returns c unchanged: raw calls are only used on Linux.
func Wrap(c net.Conn) net.Conn { return c }

// Polled is false: the poller is Linux's.
var Polled = false

// FDConn is not available outside Linux.
type FDConn struct{ net.Conn }

var errUnsupported = errors.New("rawconn: the poller needs Linux")

// Listener is not available outside Linux.
type Listener struct{ net.Listener }

// Listen is not available outside Linux.
func Listen(*net.TCPListener) (*Listener, error) { return nil, errUnsupported }

// Dial is not available outside Linux.
func Dial(context.Context, string, time.Time, time.Duration) (*FDConn, error) {
	return nil, errUnsupported
}

// Coro is not available outside Linux: connections run as goroutines.
type Coro struct{}

// Loop has no effect outside Linux.
var Loop = false

// Go runs f as a goroutine.
func Go(_ net.Conn, f func(co *Coro)) { go f(nil) }

// WithCoro returns ctx.
func WithCoro(ctx context.Context, _ *Coro) context.Context { return ctx }

// CoroFrom returns nil.
func CoroFrom(context.Context) *Coro { return nil }

// Now is Mono.
func (*Coro) Now() time.Time { return Mono() }

// Now is Mono.
func Now(context.Context) time.Time { return Mono() }

// Detach does nothing.
func (*Coro) Detach() {}

// Detach does nothing.
func Detach(context.Context) {}

// Offload calls f.
func (*Coro) Offload(f func()) { f() }

// Attach does nothing.
func Attach(net.Conn, context.Context) {} //nolint:revive // matches the Linux signature

// Home is -1: there are no pollers.
func Home(context.Context) int { return -1 }

// PollerOf is -1: there are no pollers.
func PollerOf(net.Conn) int { return -1 }
