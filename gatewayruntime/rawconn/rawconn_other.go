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
