package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
	"github.com/gatekiln/gatekiln/gatewayruntime/metrics"
	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// Upstream is one URL of an endpoint: its connection pool, its circuit breaker
// and, for HTTPS and protocol upgrades, a net/http Transport.
type Upstream struct {
	key      string
	endpoint string
	url      *url.URL
	// addr is host:port to dial; host is the Host field sent upstream.
	addr, host string
	// basePath is the URL's path without a trailing slash, prefixed to every request path.
	basePath string
	https    bool
	// polled: dial onto the rawconn poller (rawconn.Polled when built).
	polled bool
	tlsCfg *tls.Config
	opts   *Options

	br       *breaker
	m        *metrics.Upstream
	inflight atomic.Int64

	mu sync.Mutex
	// idle holds the pooled connections by the rawconn poller they wait in
	// (one queue when there is none), so that a coroutine of a poller gets
	// one whose events come to that poller.
	idle   []connQueue
	nidle  int
	closed bool

	trOnce sync.Once
	tr     *http.Transport
}

func newUpstream(key, endpoint string, u *url.URL, tlsCfg *tls.Config, cb breakerConfig, opts *Options) *Upstream {
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	up := &Upstream{
		key:      key,
		endpoint: endpoint,
		url:      u,
		addr:     addr,
		host:     u.Host,
		basePath: strings.TrimSuffix(u.EscapedPath(), "/"),
		https:    u.Scheme == "https",
		polled:   rawconn.Polled,
		tlsCfg:   tlsCfg,
		opts:     opts,
	}
	up.m = opts.Metrics.Upstream(endpoint, u.Redacted())
	up.br = newBreaker(cb, up.m)
	return up
}

// upConn is one pooled HTTP/1.1 connection to an upstream.
type upConn struct {
	u  *Upstream
	nc net.Conn
	// unwatch stops the watch of an HTTP/2 client's stream (watchClient);
	// false means the stream ended first and the connection is spoiled.
	unwatch  func() bool
	io       *exchangeIO
	br       *http1.Reader
	bw       *http1.Writer
	resp     http1.Response
	cr       http1.ChunkedReader
	lastUsed time.Time
	reused   bool
	// deadline is the connection's deadline in force (zero: unknown).
	deadline time.Time
}

// get returns an idle connection or dials a new one by deadline. Its waits
// are attached to ctx's rawconn coroutine, if any.
func (u *Upstream) get(ctx context.Context, now, deadline time.Time) (*upConn, error) {
	home := rawconn.Home(ctx)
	for {
		u.mu.Lock()
		// Oldest first: spreading requests over the upstream's connections
		// keeps its own batches in arrival order; measured on the gateway
		// benchmark, p99 was lower than reusing the most recent connection.
		c := u.popIdle(home)
		u.mu.Unlock()
		if c == nil {
			break
		}
		if now.Sub(c.lastUsed) > u.opts.IdleConnTimeout || !drained(c.nc) {
			c.nc.Close()
			continue
		}
		c.reused = true
		rawconn.Attach(c.nc, ctx)
		return c, nil
	}
	nc, err := u.dial(ctx, now, deadline)
	if err != nil {
		return nil, err
	}
	x := &exchangeIO{c: nc}
	x.wtr, _ = nc.(writeThenReader)
	x.wtw, _ = nc.(writeThenWaiter)
	pool, _ := nc.(http1.BufferPool)
	return &upConn{
		u:  u,
		nc: nc,
		io: x,
		br: http1.NewReader(x, 4<<10, 64<<10, pool),
		bw: http1.NewWriter(x, 4<<10, pool),
	}, nil
}

// dial connects to the upstream by deadline (and within the dial timeout),
// on the rawconn poller where there is one.
func (u *Upstream) dial(ctx context.Context, now, deadline time.Time) (net.Conn, error) {
	if d := now.Add(u.opts.DialTimeout); deadline.IsZero() || d.Before(deadline) {
		deadline = d
	}
	if u.polled {
		// A client that goes away does not cancel the dial: the
		// connection is pooled for others.
		return rawconn.Dial(context.WithoutCancel(ctx), u.addr, deadline, 30*time.Second)
	}
	d := net.Dialer{Deadline: deadline, KeepAlive: 30 * time.Second}
	nc, err := d.Dial("tcp", u.addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return rawconn.Wrap(nc), nil
}

type writeThenReader interface {
	WriteThenRead(w, r []byte) (written, n int, err error)
}

type writeThenWaiter interface {
	WriteThenWait(w []byte) (written int, err error)
}

// exchangeIO sits between an upstream connection and its buffers. While hold
// is set (around the flush that ends a request) the write is kept and made by
// the next read, as one WriteThenRead: the response is waited for, never
// tried for before the upstream can have answered.
type exchangeIO struct {
	c       net.Conn
	wtr     writeThenReader
	wtw     writeThenWaiter
	hold    bool
	pending []byte
	// progress, while a request body is sent, is how long each write may
	// take (the body idle or the route timeout, the shorter): the upstream
	// must keep taking the body, and the time spent waiting for the client's
	// next part counts against neither.
	progress time.Duration
}

// WaitReadable makes the held write and waits for the answer before the
// response reader borrows a buffer (http1.ReadyWaiter), so that requests
// waiting on their upstream hold no read buffer.
func (x *exchangeIO) WaitReadable() error {
	if x.pending == nil || x.wtw == nil {
		return nil
	}
	w := x.pending
	x.pending = nil
	written, err := x.wtw.WriteThenWait(w)
	if err == nil && written < len(w) {
		_, err = x.c.Write(w[written:])
	}
	return err
}

func (x *exchangeIO) Write(p []byte) (int, error) {
	if x.hold && x.wtr != nil && x.pending == nil {
		// p is the write buffer's content; nothing is written to that buffer
		// before the next read takes it.
		x.pending = p
		return len(p), nil
	}
	if x.progress > 0 {
		_ = x.c.SetWriteDeadline(time.Now().Add(x.progress))
	}
	return x.c.Write(p)
}

func (x *exchangeIO) Read(p []byte) (int, error) {
	if x.pending == nil {
		return x.c.Read(p)
	}
	w := x.pending
	x.pending = nil
	written, n, err := x.wtr.WriteThenRead(w, p)
	switch {
	case err != nil:
		return 0, err
	case written < len(w):
		if _, err := x.c.Write(w[written:]); err != nil {
			return 0, err
		}
		return x.c.Read(p)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// put returns a connection whose last exchange completed cleanly; its
// lastUsed was set when the response head arrived.
func (u *Upstream) put(c *upConn) {
	u.mu.Lock()
	if u.closed || u.nidle >= u.opts.MaxIdlePerUpstream {
		u.mu.Unlock()
		c.nc.Close()
		return
	}
	i := max(rawconn.PollerOf(c.nc), 0)
	if i >= len(u.idle) {
		u.idle = append(u.idle, make([]connQueue, i+1-len(u.idle))...)
	}
	u.idle[i].push(c)
	u.nidle++
	u.mu.Unlock()
}

// popIdle takes the oldest idle connection of poller home, or of any poller
// when home is -1 (not on a coroutine). Under u.mu.
func (u *Upstream) popIdle(home int) *upConn {
	if u.nidle == 0 {
		return nil
	}
	if home >= 0 {
		if home >= len(u.idle) {
			return nil
		}
		if c := u.idle[home].pop(); c != nil {
			u.nidle--
			return c
		}
		return nil
	}
	for i := range u.idle {
		if c := u.idle[i].pop(); c != nil {
			u.nidle--
			return c
		}
	}
	return nil
}

// takeIdle empties the pool. Under u.mu.
func (u *Upstream) takeIdle() []*upConn {
	var all []*upConn
	for i := range u.idle {
		for c := u.idle[i].pop(); c != nil; c = u.idle[i].pop() {
			all = append(all, c)
		}
	}
	u.nidle = 0
	return all
}

// connQueue is a FIFO of idle connections: a ring, grown when full.
type connQueue struct {
	buf     []*upConn
	head, n int
}

func (q *connQueue) push(c *upConn) {
	if q.n == len(q.buf) {
		nb := make([]*upConn, max(8, 2*len(q.buf)))
		for i := range q.n {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = c
	q.n++
}

func (q *connQueue) pop() *upConn {
	if q.n == 0 {
		return nil
	}
	c := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return c
}

// close drops the pool; connections in use are closed when they come back.
func (u *Upstream) close() {
	u.mu.Lock()
	u.closed = true
	idle := u.takeIdle()
	u.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	if u.tr != nil {
		u.tr.CloseIdleConnections()
	}
}

// transport is the net/http Transport used for HTTPS upstreams (HTTP/2 when
// the upstream offers it by ALPN) and for protocol upgrades.
func (u *Upstream) transport() *http.Transport {
	u.trOnce.Do(func() {
		d := &net.Dialer{Timeout: u.opts.DialTimeout, KeepAlive: 30 * time.Second}
		u.tr = &http.Transport{
			DialContext:           d.DialContext,
			TLSClientConfig:       u.tlsCfg,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   u.opts.MaxIdlePerUpstream,
			IdleConnTimeout:       u.opts.IdleConnTimeout,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		}
	})
	return u.tr
}

// drained says whether nothing has arrived on an idle connection since its
// last response. Bytes there (a body longer than its Content-Length, a body
// after a HEAD, 204 or 304 head, an answer the upstream sent unasked) would be
// read as the next request's response, which may be another client's, and EOF
// means the upstream has closed it. On the gateway's poller the check costs a
// system call only when the socket has reported readable since the response.
func drained(nc net.Conn) bool {
	if d, ok := nc.(interface{ Drained() bool }); ok {
		return d.Drained()
	}
	return alive(nc)
}

// alive peeks at an idle connection without blocking: data or EOF on an idle
// HTTP/1.1 connection both mean it cannot be reused.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscallConner)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	err = rc.Read(func(fd uintptr) bool {
		ok = peekAlive(fd)
		return true
	})
	return ok && err == nil
}

type syscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}
