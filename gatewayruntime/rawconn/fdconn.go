//go:build linux

package rawconn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FDConn is a TCP connection on a descriptor the poller owns (never Go's
// netpoller): reads and writes are raw system calls, and a goroutine that must
// wait for the socket waits on the poller's channel for it. It has the methods
// of Conn (RawRead, ReadFD, WriteThenRead) and of net.TCPConn that the server
// and the proxy use (CloseWrite, SyscallConn).
type FDConn struct {
	fd    int
	p     *poller
	slot  int32
	w     *waiters
	laddr *net.TCPAddr
	raddr *net.TCPAddr

	// state counts the calls in flight plus one for the open connection, with
	// stateClosed set by Close: the descriptor is closed (and its slot freed)
	// when the last call returns, never under a call, so a reused descriptor
	// number is never read by a stale one.
	state    atomic.Int64
	rdl, wdl deadline
	// co is the coroutine whose waits on c yield (nil: waits block the
	// goroutine); set by Go and Attach.
	co *Coro
	// full: the last read filled its buffer, so more may be waiting (Drained).
	full bool
}

const stateClosed = 1 << 40

func newFDConn(p *poller, fd int, laddr, raddr *net.TCPAddr) (*FDConn, error) {
	slot, w, err := p.register(fd)
	if err != nil {
		return nil, err
	}
	c := &FDConn{fd: fd, p: p, slot: slot, w: w, laddr: laddr, raddr: raddr}
	c.state.Store(1)
	c.rdl.ch, c.wdl.ch = w.r, w.w
	c.rdl.co, c.wdl.co = &w.rco, &w.wco
	return c, nil
}

func (c *FDConn) acquire() bool {
	for {
		s := c.state.Load()
		if s&stateClosed != 0 {
			return false
		}
		if c.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

func (c *FDConn) release() {
	if c.state.Add(-1) == stateClosed {
		c.p.unregister(c.fd, c.slot)
		_ = syscall.Close(c.fd)
	}
}

// Close closes the connection; calls waiting on it return net.ErrClosed.
func (c *FDConn) Close() error {
	for {
		s := c.state.Load()
		if s&stateClosed != 0 {
			return c.opError("close", net.ErrClosed)
		}
		if c.state.CompareAndSwap(s, s|stateClosed) {
			break
		}
	}
	c.rdl.stop()
	c.wdl.stop()
	wake(c.w.r, &c.w.rco, nil)
	wake(c.w.w, &c.w.wco, nil)
	c.release()
	return nil
}

// wait waits for a token on ch: the socket became ready, the connection was
// closed or the deadline passed.
func (c *FDConn) wait(ch chan struct{}, d *deadline) error {
	if err := c.check(d); err != nil {
		return err
	}
	if co := c.co; co.active() {
		co.park(ch, d.co)
	} else {
		<-ch
	}
	return c.check(d)
}

func (c *FDConn) check(d *deadline) error {
	switch {
	case c.state.Load()&stateClosed != 0:
		return net.ErrClosed
	case d.expired.Load():
		return os.ErrDeadlineExceeded
	}
	return nil
}

func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// Read reads like net.Conn.Read: io.EOF at the end, *net.OpError otherwise.
func (c *FDConn) Read(p []byte) (int, error) {
	if !c.acquire() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.release()
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if err := c.check(&c.rdl); err != nil {
			return 0, c.opError("read", err)
		}
		n, ok, err := c.ReadFD(uintptr(c.fd), p)
		switch {
		case err != nil:
			return 0, err
		case ok && n == 0:
			return 0, io.EOF
		case ok:
			return n, nil
		}
		if err := c.wait(c.w.r, &c.rdl); err != nil {
			return 0, c.opError("read", err)
		}
	}
}

// RawRead calls f at once, then each time the socket reports readable, until
// f returns true (see Conn.RawRead).
func (c *FDConn) RawRead(f func(fd uintptr) bool) error {
	if !c.acquire() {
		return c.opError("read", net.ErrClosed)
	}
	defer c.release()
	drain(c.w.r) // f reads at once: earlier readiness is not needed
	for {
		if err := c.check(&c.rdl); err != nil {
			return c.opError("read", err)
		}
		if f(uintptr(c.fd)) {
			return nil
		}
		if err := c.wait(c.w.r, &c.rdl); err != nil {
			return c.opError("read", err)
		}
	}
}

// ReadFD reads once from fd (see Conn.ReadFD).
func (c *FDConn) ReadFD(fd uintptr, p []byte) (n int, ok bool, err error) {
	n, ok, e := readFD(fd, p)
	c.full = n == len(p)
	if e != 0 {
		return 0, true, c.opError("read", os.NewSyscallError("read", e))
	}
	return n, ok, nil
}

// Drained reports whether nothing has arrived on c since its last read took
// all there was: no byte and no EOF. A keep-alive connection that is not
// drained must not carry another request, which would take the stale bytes
// (a late body, a second response) for its answer. The kernel is asked (a
// peek) only when the last read filled its buffer or the socket has become
// readable since; for a connection whose answer one short read took whole,
// the usual case, the check costs no system call. The caller must be the
// connection's only reader.
func (c *FDConn) Drained() bool {
	if !c.acquire() {
		return false
	}
	defer c.release()
	if !c.full && len(c.w.r) == 0 {
		return true
	}
	if !peekEmpty(uintptr(c.fd)) {
		return false
	}
	// Anything that arrives after the peek signals readiness afresh.
	c.full = false
	drain(c.w.r)
	return true
}

// write writes what it can of p: n, and whether the socket buffer is full.
func (c *FDConn) write(p []byte) (n int, full bool, err error) {
	for n < len(p) {
		r, e := send(uintptr(c.fd), p[n:])
		switch e {
		case 0:
			n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return n, true, nil
		default:
			return n, false, c.opError("write", os.NewSyscallError("write", e))
		}
	}
	return n, false, nil
}

// Write writes all of p unless an error (or the write deadline) stops it.
func (c *FDConn) Write(p []byte) (int, error) {
	if !c.acquire() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.release()
	written := 0
	for {
		if err := c.check(&c.wdl); err != nil {
			return written, c.opError("write", err)
		}
		n, full, err := c.write(p[written:])
		written += n
		if err != nil || !full {
			return written, err
		}
		if err := c.wait(c.w.w, &c.wdl); err != nil {
			return written, c.opError("write", err)
		}
	}
}

// WriteThenRead writes w, then waits until the socket is readable and reads
// once into r (see Conn.WriteThenRead).
func (c *FDConn) WriteThenRead(w, r []byte) (written, n int, err error) {
	if len(w) == 0 || len(r) == 0 {
		return 0, 0, nil
	}
	if !c.acquire() {
		return 0, 0, c.opError("write", net.ErrClosed)
	}
	defer c.release()
	if err := c.check(&c.wdl); err != nil {
		return 0, 0, c.opError("write", err)
	}
	// Readiness from before the request cannot be its answer.
	drain(c.w.r)
	written, full, err := c.write(w)
	if err != nil || full {
		return written, 0, err
	}
	for {
		if err := c.wait(c.w.r, &c.rdl); err != nil {
			return written, 0, c.opError("read", err)
		}
		n, ok, err := c.ReadFD(uintptr(c.fd), r)
		if err != nil || ok {
			return written, n, err
		}
	}
}

// WriteThenWait writes w, then waits until the socket is readable, for a
// Read to follow: WriteThenRead for a caller that takes its read buffer only
// once the answer is there. A short count with no error means the socket
// buffer was full; the caller writes the rest.
func (c *FDConn) WriteThenWait(w []byte) (written int, err error) {
	if !c.acquire() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.release()
	if err := c.check(&c.wdl); err != nil {
		return 0, c.opError("write", err)
	}
	// Readiness from before the request cannot be its answer.
	drain(c.w.r)
	written, full, err := c.write(w)
	if err != nil || full {
		return written, err
	}
	if err := c.wait(c.w.r, &c.rdl); err != nil {
		return written, c.opError("read", err)
	}
	return written, nil
}

// BufSize is the size of the buffers FDConn.Buffer lends.
const BufSize = 4 << 10

// maxPooledBufs bounds each poller's spare buffers (1 MiB).
const maxPooledBufs = 256

// Buffer lends an I/O buffer of BufSize bytes (http1.BufferPool). In c's
// coroutine it comes from the poller's spares, most recently returned first:
// the coroutines of one loop run one at a time and each holds a buffer only
// briefly, so a few warm buffers serve all of the loop's connections. Only
// c's own code may call it.
func (c *FDConn) Buffer() []byte {
	if co := c.co; co.active() {
		p := co.p
		if n := len(p.bufs); n > 0 {
			b := p.bufs[n-1]
			p.bufs[n-1] = nil
			p.bufs = p.bufs[:n-1]
			return b
		}
	}
	return make([]byte, BufSize)
}

// Recycle takes back a buffer from Buffer (http1.BufferPool); other sizes
// (a reader grew its buffer) and buffers returned outside a coroutine are
// left to the garbage collector.
func (c *FDConn) Recycle(b []byte) {
	if co := c.co; co.active() && cap(b) == BufSize && len(co.p.bufs) < maxPooledBufs {
		co.p.bufs = append(co.p.bufs, b[:BufSize])
	}
}

// CloseWrite shuts the sending side down.
func (c *FDConn) CloseWrite() error {
	if !c.acquire() {
		return c.opError("shutdown", net.ErrClosed)
	}
	defer c.release()
	if err := syscall.Shutdown(c.fd, syscall.SHUT_WR); err != nil {
		return c.opError("shutdown", os.NewSyscallError("shutdown", err))
	}
	return nil
}

// SyscallConn gives raw access to the descriptor (the proxy peeks at idle
// upstream connections through it).
func (c *FDConn) SyscallConn() (syscall.RawConn, error) { return rawConn{c}, nil }

func (c *FDConn) LocalAddr() net.Addr  { return c.laddr }
func (c *FDConn) RemoteAddr() net.Addr { return c.raddr }

func (c *FDConn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

func (c *FDConn) SetReadDeadline(t time.Time) error  { c.rdl.set(t); return nil }
func (c *FDConn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

func (c *FDConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

// rawConn is FDConn's syscall.RawConn.
type rawConn struct{ c *FDConn }

func (r rawConn) Control(f func(fd uintptr)) error {
	if !r.c.acquire() {
		return net.ErrClosed
	}
	defer r.c.release()
	f(uintptr(r.c.fd))
	return nil
}

func (r rawConn) Read(f func(fd uintptr) bool) error { return r.c.RawRead(f) }

func (r rawConn) Write(f func(fd uintptr) bool) error {
	if !r.c.acquire() {
		return net.ErrClosed
	}
	defer r.c.release()
	for !f(uintptr(r.c.fd)) {
		if err := r.c.wait(r.c.w.w, &r.c.wdl); err != nil {
			return err
		}
	}
	return nil
}

// deadline is one direction's deadline: a timer that, when the time comes,
// marks the direction expired and wakes its waiter.
type deadline struct {
	ch      chan struct{}
	co      *atomic.Pointer[Coro]
	expired atomic.Bool

	mu    sync.Mutex
	at    time.Time
	timer *time.Timer
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = t
	if t.IsZero() {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.expired.Store(false)
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.expired.Store(true)
		wake(d.ch, d.co, nil)
		return
	}
	d.expired.Store(false)
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.fire)
	} else {
		d.timer.Reset(wait)
	}
}

// fire runs when a timer set by set goes off; a deadline moved meanwhile is
// checked again.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at.IsZero() {
		return
	}
	if wait := time.Until(d.at); wait > 0 {
		d.timer.Reset(wait)
		return
	}
	d.expired.Store(true)
	wake(d.ch, d.co, nil)
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}

// Listener accepts a TCP listener's connections onto the poller. It accepts
// from its own duplicate of the listening socket (registered with the poller;
// a net.TCPListener's own descriptor cannot be waited on from outside
// package net). Close closes both.
type Listener struct {
	tl *net.TCPListener
	fc *FDConn
}

// Listen takes over tl's accepting.
func Listen(tl *net.TCPListener) (*Listener, error) {
	p, err := defaultPoller()
	if err != nil {
		return nil, err
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil, err
	}
	dfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		dfd, derr = fcntlDup(int(fd))
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	laddr, _ := tl.Addr().(*net.TCPAddr)
	fc, err := newFDConn(p, dfd, laddr, nil)
	if err != nil {
		_ = syscall.Close(dfd)
		return nil, err
	}
	return &Listener{tl: tl, fc: fc}, nil
}

// fcntlDup duplicates fd, close-on-exec.
func fcntlDup(fd int) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// Accept waits for and returns the next connection, an *FDConn.
func (l *Listener) Accept() (net.Conn, error) {
	c := l.fc
	if !c.acquire() {
		return nil, c.opError("accept", net.ErrClosed)
	}
	defer c.release()
	for {
		fd, sa, err := syscall.Accept4(c.fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch {
		case err == nil:
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			p, err := nextPoller()
			if err != nil {
				_ = syscall.Close(fd)
				return nil, c.opError("accept", err)
			}
			nc, err := newFDConn(p, fd, localAddr(fd, c.laddr), sockaddrTCP(sa))
			if err != nil {
				_ = syscall.Close(fd)
				return nil, c.opError("accept", err)
			}
			nc.w.accepted.Store(true)
			return nc, nil
		case errors.Is(err, syscall.EAGAIN):
			// Whoever owns tl may close it rather than l: the wait is bounded so
			// that Accept notices, and stops accepting on the duplicate too.
			c.rdl.set(time.Now().Add(closeCheck))
			err := c.wait(c.w.r, &c.rdl)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if l.tlClosed() {
					_ = c.Close()
					return nil, c.opError("accept", net.ErrClosed)
				}
				continue
			}
			if err != nil {
				return nil, c.opError("accept", err)
			}
		case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ECONNABORTED):
		case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
			// Out of descriptors or memory: the caller backs off and retries.
			return nil, c.opError("accept", temporary{os.NewSyscallError("accept4", err)})
		default:
			return nil, c.opError("accept", os.NewSyscallError("accept4", err))
		}
	}
}

// closeCheck is how often a waiting Accept checks that tl is still open.
const closeCheck = time.Second

func (l *Listener) tlClosed() bool {
	rc, err := l.tl.SyscallConn()
	return err != nil || rc.Control(func(uintptr) {}) != nil
}

// Close stops accepting and closes the listener.
func (l *Listener) Close() error {
	_ = l.fc.Close()
	return l.tl.Close()
}

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return l.tl.Addr() }

// temporary marks an accept error the caller should retry after a pause.
type temporary struct{ error }

func (temporary) Timeout() bool   { return true }
func (temporary) Temporary() bool { return true }
func (t temporary) Unwrap() error { return t.error }

// Dial connects to addr (host:port) by deadline, on the poller. The host is
// resolved first; each of its addresses is tried in turn. Called by a
// coroutine (ctx from WithCoro), the connection's waits yield it, and the
// name lookup runs off the poller.
func Dial(ctx context.Context, addr string, deadline time.Time, keepAlive time.Duration) (*FDConn, error) {
	co := CoroFrom(ctx)
	var p *poller
	if co.active() {
		p = co.p // its events resume co without a hop
	} else {
		var err error
		if p, err = nextPoller(); err != nil {
			return nil, err
		}
	}
	opErr := func(a net.Addr, err error) error { return &net.OpError{Op: "dial", Net: "tcp", Addr: a, Err: err} }
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, opErr(nil, err)
	}
	portNum, err := net.LookupPort("tcp", port)
	if err != nil {
		return nil, opErr(nil, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			rctx, cancel = context.WithDeadline(ctx, deadline)
		}
		co.Offload(func() { ips, err = net.DefaultResolver.LookupNetIP(rctx, "ip", host) })
		cancel()
		if err != nil {
			return nil, opErr(nil, err)
		}
	}
	var first error
	for _, ip := range ips {
		ra := net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), uint16(portNum)))
		c, err := connect(p, co, ra, deadline, keepAlive)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = opErr(ra, err)
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
	}
	return nil, first
}

func connect(p *poller, co *Coro, ra *net.TCPAddr, deadline time.Time, keepAlive time.Duration) (*FDConn, error) {
	family, sa := syscall.AF_INET, syscall.Sockaddr(nil)
	if ip4 := ra.IP.To4(); ip4 != nil {
		s := &syscall.SockaddrInet4{Port: ra.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = syscall.AF_INET6
		s := &syscall.SockaddrInet6{Port: ra.Port}
		copy(s.Addr[:], ra.IP.To16())
		sa = s
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if keepAlive > 0 {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
		secs := int(max(keepAlive/time.Second, 1))
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, secs)
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, secs)
	}
	// Registered before connecting, so that the connection's edge is not missed.
	c, err := newFDConn(p, fd, nil, ra)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, err
	}
	c.co = co
	c.wdl.set(deadline)
	for err = syscall.Connect(fd, sa); err != nil; {
		if !errors.Is(err, syscall.EINPROGRESS) && !errors.Is(err, syscall.EALREADY) && !errors.Is(err, syscall.EINTR) {
			_ = c.Close()
			return nil, os.NewSyscallError("connect", err)
		}
		if werr := c.wait(c.w.w, &c.wdl); werr != nil {
			_ = c.Close()
			return nil, werr
		}
		switch soerr, gerr := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ERROR); {
		case gerr != nil:
			err = os.NewSyscallError("getsockopt", gerr)
		case soerr != 0:
			_ = c.Close()
			return nil, os.NewSyscallError("connect", syscall.Errno(soerr))
		default:
			if _, perr := syscall.Getpeername(fd); perr == nil {
				err = nil // connected
			} else {
				err = syscall.EINPROGRESS // woken early: not yet
			}
		}
	}
	c.wdl.set(time.Time{})
	c.laddr = localAddr(fd, nil)
	return c, nil
}

func localAddr(fd int, fallback *net.TCPAddr) *net.TCPAddr {
	if sa, err := syscall.Getsockname(fd); err == nil {
		if a := sockaddrTCP(sa); a != nil {
			return a
		}
	}
	return fallback
}

func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}
