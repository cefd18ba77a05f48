//go:build linux

// Package rawconn wraps a TCP connection so that its reads and writes are raw
// system calls made through syscall.RawConn: the runtime's poller still parks
// the goroutine when the socket is not ready (and honours deadlines), but the
// call itself does not go through entersyscall/exitsyscall.
//
// Why: the sockets are non-blocking, so read and write never block in the
// kernel. But a normal syscall marks the goroutine's P as "in syscall", and
// when the proxy shares a CPU with its upstream the kernel often preempts the
// thread mid-call; the runtime's monitor then hands the P to another thread,
// which wakes, contends for the same CPU and is switched out again. Measured
// on the gateway benchmark that hand-off churn was a third of its context
// switches. A raw call keeps the P where it is.
//
// The package also has the gateway's own readiness loops (poller.go): one
// epoll instance and goroutine per P for the plain HTTP/1.1 client and
// upstream sockets (FDConn, Listener, Dial). A loop wakes the goroutines
// waiting on its sockets in the order the kernel reported them, and runs
// connections served as coroutines (coro.go: Go, Detach, Offload) itself, one
// after the other, like an event loop.
package rawconn

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write use raw system calls. Every
// other method (deadlines, Close, addresses) is the TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// Per-direction call state, so that a reader and a writer goroutine (a
	// hijacked WebSocket) never share it. The callbacks are bound once.
	rbuf   []byte
	rn     int
	rerr   syscall.Errno
	readF  func(uintptr) bool
	wbuf   []byte
	wn     int
	werr   syscall.Errno
	writeF func(uintptr) bool
	// WriteThenRead's state.
	wrote, partial bool
	wtrF           func(uintptr) bool
}

// Wrap returns c with raw reads and writes, or c itself when it is not a
// *net.TCPConn.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{TCPConn: tc, rc: rc}
	w.readF = w.read
	w.writeF = w.write
	w.wtrF = w.writeThenRead
	return w
}

func (c *Conn) read(fd uintptr) bool {
	for {
		n, e := recv(fd, c.rbuf)
		switch e {
		case 0:
			c.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rerr = e
		return true
	}
}

// Read reads like net.Conn.Read: io.EOF at the end, *net.OpError otherwise.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readF)
	c.rbuf = nil
	if err != nil {
		return 0, c.opError("read", err)
	}
	if c.rerr != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	if c.rn == 0 {
		return 0, io.EOF
	}
	return c.rn, nil
}

// RawRead calls f as syscall.RawConn.Read does: at once, then each time the
// socket reports readable, until f returns true. Readiness the socket reports
// while f runs is kept for the next wait, so a caller that knows it has read
// everything there was (a read returned less than it asked for) can return
// false without another read and still miss nothing. Across separate RawRead
// calls that is not so: each starts by forgetting earlier readiness.
//
// f must not call c.Read (it would wait for the read lock f's caller holds);
// it reads with ReadFD.
func (c *Conn) RawRead(f func(fd uintptr) bool) error {
	err := c.rc.Read(f)
	if err != nil {
		return c.opError("read", err)
	}
	return nil
}

// ReadFD reads once from fd, the descriptor RawRead passed to its callback.
// ok is false when nothing is available yet; n == 0 with ok and a nil error
// is the end of the stream.
func (c *Conn) ReadFD(fd uintptr, p []byte) (n int, ok bool, err error) {
	n, ok, e := readFD(fd, p)
	if e != 0 {
		return 0, true, c.opError("read", os.NewSyscallError("read", e))
	}
	return n, ok, nil
}

// readFD reads once from fd: ok is false when nothing is available yet.
func readFD(fd uintptr, p []byte) (n int, ok bool, errno syscall.Errno) {
	if len(p) == 0 {
		return 0, true, 0
	}
	for {
		r, e := recv(fd, p)
		switch e {
		case 0:
			return int(r), true, 0
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, false, 0
		}
		return 0, true, e
	}
}

func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		n, e := send(fd, p)
		switch e {
		case 0:
			c.wn += int(n)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.werr = e
		return true
	}
	return true
}

// Write writes all of p unless an error (or the write deadline) stops it.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeF)
	n := c.wn
	c.wbuf = nil
	if err != nil {
		return n, c.opError("write", err)
	}
	if c.werr != 0 {
		return n, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return n, nil
}

// writeThenRead is the RawConn.Read callback of WriteThenRead: the first call
// writes (the wait for readability is already prepared), the next reads.
func (c *Conn) writeThenRead(fd uintptr) bool {
	if !c.wrote {
		c.wrote = true
		if !c.write(fd) {
			c.partial = true // the socket buffer is full: stop, the caller goes on with Write
			return true
		}
		return c.werr != 0
	}
	return c.read(fd)
}

// WriteThenRead writes w, then waits until the socket is readable and reads
// once into r. It is for a request/response exchange: a plain Write and Read
// would try the read at once and fail (the peer cannot have answered yet),
// costing a system call. The wait is prepared before the write that provokes
// the answer, so no readiness notice can be missed.
//
// When w does not fit the socket buffer, written < len(w) and nothing is
// read: the caller finishes with Write and Read. n == 0 with a nil error is
// the end of the stream.
func (c *Conn) WriteThenRead(w, r []byte) (written, n int, err error) {
	if len(w) == 0 || len(r) == 0 {
		return 0, 0, nil
	}
	c.wbuf, c.wn, c.werr = w, 0, 0
	c.rbuf, c.rn, c.rerr = r, 0, 0
	c.wrote, c.partial = false, false
	err = c.rc.Read(c.wtrF)
	written, n = c.wn, c.rn
	c.wbuf, c.rbuf = nil, nil
	switch {
	case err != nil:
		return written, 0, c.opError("read", err)
	case c.werr != 0:
		return written, 0, c.opError("write", os.NewSyscallError("write", c.werr))
	case c.partial:
		return written, 0, nil
	case c.rerr != 0:
		return written, 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	}
	return written, n, nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// recv and send are read and write for sockets: recvfrom and sendto reach
// the socket without the file layer's checks (position lock, permission hooks),
// as nginx's recv and send do; MSG_NOSIGNAL makes a closed peer an EPIPE
// error without a SIGPIPE. p must not be empty.
// peekEmpty reports whether fd, a non-blocking socket, has neither data nor
// EOF to read.
func peekEmpty(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			return e == syscall.EAGAIN
		}
	}
}

// Drained reports whether nothing is waiting to be read on c: no byte and no
// EOF (see FDConn.Drained). Without the poller's readiness to go by, it
// always peeks.
func (c *Conn) Drained() bool {
	ok := false
	if err := c.rc.Control(func(fd uintptr) { ok = peekEmpty(fd) }); err != nil {
		return false
	}
	return ok
}

func recv(fd uintptr, p []byte) (uintptr, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	return n, e
}

func send(fd uintptr, p []byte) (uintptr, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	return n, e
}
