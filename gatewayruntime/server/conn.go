package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
	// maxDrain is how much of an unread request body the server reads past so
	// that the connection can be reused; more than that closes the connection.
	maxDrain = 256 << 10
	// lingerTime bounds lingeringClose (net/http's rstAvoidanceDelay).
	lingerTime = 500 * time.Millisecond
)

const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

type conn struct {
	srv *Server
	nc  net.Conn
	// raw is the accepted connection (nc becomes its TLS layer): Close and
	// Shutdown close it from other goroutines.
	raw    net.Conn
	tlsCfg *tls.Config
	tls    *tls.ConnectionState
	remote string
	state  atomic.Int32
	co     *rawconn.Coro // nil when the connection runs as a goroutine

	br *http1.Reader
	bw *http1.Writer

	// Reused for every request on the connection.
	head    http1.Request
	req     *http.Request
	url     url.URL
	hdr     http.Header
	vals    []string
	st      *filter.State
	resp    response
	bodyCL  bodyLength
	bodyChk bodyChunked
	// bodyDeadline is when the body read deadline is next pushed back.
	bodyDeadline time.Time
	// readDeadline is the idle deadline in force, or zero when another
	// (header, body) replaced it. Setting a deadline costs a runtime timer
	// update, so the idle deadline is renewed only when half of it is gone.
	readDeadline time.Time
	headerWait   bool
	// first is set until the first request head has arrived.
	first bool
	// inline is set while serveInline runs handlers inside the socket's raw
	// read; fdr is its reader.
	inline   bool
	fdr      fdReader
	hijacked bool
	// linger: a refused request's client may still be sending; the
	// connection ends with lingeringClose (refuse runs inside the raw read,
	// where it cannot wait).
	linger bool
}

func newConn(s *Server, nc net.Conn, tlsCfg *tls.Config) *conn {
	c := &conn{srv: s, nc: nc, raw: nc, tlsCfg: tlsCfg, remote: nc.RemoteAddr().String(), first: true}
	c.state.Store(stateActive)
	return c
}

// closeIfIdle closes a connection that waits for its next request. Called by
// Shutdown under s.mu.
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.raw.Close()
	}
}

// serve serves the connection; co is its coroutine of the rawconn poller
// (nil when it runs as a goroutine).
func (c *conn) serve(co *rawconn.Coro) {
	c.co = co
	defer c.srv.trackConn(c, false)
	defer func() {
		if c.hijacked {
			return
		}
		if c.linger {
			c.lingeringClose()
		}
		c.nc.Close()
	}()
	if c.tlsCfg != nil {
		tc := tls.Server(c.nc, c.tlsCfg)
		_ = c.nc.SetDeadline(time.Now().Add(c.srv.cfg.ReadHeaderTimeout))
		if err := tc.HandshakeContext(c.srv.baseCtx); err != nil {
			c.srv.cfg.Logger.Debug("tls handshake failed", "remote", c.remote, "err", err)
			return
		}
		_ = c.nc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		c.nc = tc
		if cs.NegotiatedProtocol == "h2" {
			c.srv.trackConn(c, false)
			c.hijacked = true // the HTTP/2 server owns it now
			c.srv.h2ln.push(tc)
			return
		}
		c.tls = &cs
	}
	// Plain TCP connections on the poller borrow their buffers while they
	// hold bytes (http1.BufferPool).
	pool, _ := c.nc.(http1.BufferPool)
	c.br = http1.NewReader(c.nc, readBufSize, c.srv.cfg.MaxHeaderBytes, pool)
	c.br.OnWait = c.awaitHead
	c.bw = http1.NewWriter(c.nc, writeBufSize, pool)
	c.hdr = make(http.Header, 8)
	c.st = filter.NewState(nil)
	ctx := filter.WithState(rawconn.WithCoro(c.srv.baseCtx, co), c.st)
	c.req = new(http.Request).WithContext(ctx)
	c.resp.c = c
	c.bodyCL.c = c
	c.bodyChk.c = c

	if rc, ok := c.nc.(rawReader); ok {
		for c.serveInline(rc) {
			// A request with a body or an upgrade: served outside the raw read.
			if !c.serveRequest() {
				return
			}
		}
		return
	}
	for {
		if c.br.Buffered() == 0 {
			if !c.idle() {
				return
			}
			err := c.br.Fill()
			if !c.state.CompareAndSwap(stateIdle, stateActive) || err != nil {
				return
			}
		}
		if c.readRequest() != nil || !c.serveRequest() {
			return
		}
	}
}

// rawReader is implemented by rawconn.Conn (Linux, plain TCP).
type rawReader interface {
	RawRead(f func(fd uintptr) bool) error
	ReadFD(fd uintptr, p []byte) (n int, ok bool, err error)
}

// serveInline serves requests from inside one raw read of the socket, so that
// the wait for the next request needs no read attempt: a keep-alive client
// sends it only after reading the response, so trying a read at once after
// writing the response (what a plain Read does) almost always finds nothing,
// costing a system call per request. Inside one RawRead the poller keeps the
// readiness the socket reported meanwhile, so once a read has returned less
// than it asked for, waiting for readiness misses nothing.
//
// Requests with a body or an Upgrade field are served outside (their handler
// reads the connection): serveInline returns true with the request in c.req.
// It returns false when the connection is done.
func (c *conn) serveInline(rc rawReader) bool {
	c.fdr.rc = rc
	c.br.SetSource(&c.fdr)
	c.inline = true
	defer func() {
		c.br.SetSource(c.nc)
		c.inline = false
	}()
	var (
		idle, outside bool
	)
	err := rc.RawRead(func(fd uintptr) bool {
		c.fdr.fd = fd
		// Called first, or because the socket became readable: read.
		c.fdr.mustRead = true
		if idle {
			idle = false
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return true
			}
		}
		for {
			if c.br.Buffered() == 0 {
				if c.fdr.mustRead {
					if err := c.br.Fill(); err != nil && err != http1.ErrWouldBlock { //nolint:errorlint // sentinel
						return true
					}
				}
				if c.br.Buffered() == 0 {
					if !c.idle() {
						return true
					}
					idle = true
					return false
				}
			}
			switch err := c.readRequest(); {
			case err == http1.ErrWouldBlock: //nolint:errorlint // sentinel
				return false // the rest of the head; readRequest started the header timeout
			case err != nil:
				return true
			}
			if c.req.Body != http.NoBody || c.hdr["Upgrade"] != nil {
				outside = true
				return true
			}
			if !c.serveRequest() {
				return true
			}
		}
	})
	if err != nil && !idle && c.br.Buffered() > 0 {
		c.refuse(err) // a head cut off by the header timeout: 408
	}
	return outside
}

// fdReader reads the socket from inside serveInline's raw read.
type fdReader struct {
	rc rawReader
	fd uintptr
	// mustRead is false once a read returned less than it asked for (or
	// nothing): the socket had nothing more, and readiness will say when it has.
	mustRead bool
}

func (r *fdReader) Read(p []byte) (int, error) {
	n, ok, err := r.rc.ReadFD(r.fd, p)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		r.mustRead = false
		return 0, http1.ErrWouldBlock
	case n == 0:
		return 0, io.EOF
	}
	r.mustRead = n == len(p)
	return n, nil
}

// idle prepares the wait for the next request: the response flushed, the
// connection marked idle (Shutdown closes idle connections) and the read
// deadline set. False means the connection ends.
func (c *conn) idle() bool {
	if err := c.bw.Flush(); err != nil {
		return false
	}
	// An idle connection holds no buffers (http1.BufferPool).
	c.bw.Release()
	c.br.Release()
	if !c.first && c.srv.draining.Load() {
		return false
	}
	if !c.state.CompareAndSwap(stateActive, stateIdle) {
		return false
	}
	now := c.co.Now()
	switch {
	case c.first:
		_ = c.nc.SetReadDeadline(now.Add(c.srv.cfg.ReadHeaderTimeout))
	case c.readDeadline.Sub(now) < c.srv.cfg.IdleTimeout/2:
		c.readDeadline = now.Add(c.srv.cfg.IdleTimeout)
		_ = c.nc.SetReadDeadline(c.readDeadline)
	}
	return true
}

// readRequest reads and parses the next request head into c.req. A malformed
// head is answered (refuse) and ends the connection; http1.ErrWouldBlock (in
// serveInline) means the head is not all there yet.
func (c *conn) readRequest() error {
	head, err := c.br.ReadHead()
	if err == nil {
		err = http1.ParseRequest(string(head), &c.head)
	}
	if err == nil {
		err = c.buildRequest()
	}
	switch {
	case err == http1.ErrWouldBlock: //nolint:errorlint // sentinel
		return err
	case err != nil:
		c.refuse(err)
		return err
	}
	c.first = false
	c.headerWait = false
	// The head was copied (ParseRequest takes a string): unless a pipelined
	// request or the body is already in, the buffer goes back for others.
	c.br.Release()
	return nil
}

// serveRequest runs the handler for c.req and completes the exchange,
// reporting whether the connection can carry another request.
func (c *conn) serveRequest() bool {
	if c.req.Body != http.NoBody {
		c.bodyDeadline = time.Time{}
		c.extendBodyDeadline()
	}
	c.resp.reset(c.req, &c.head)
	if !c.runHandler() {
		return false
	}
	if c.resp.hijacked {
		c.hijacked = true
		return false
	}
	if err := c.resp.finish(); err != nil {
		return false
	}
	if !c.finishBody() {
		if c.bw.Flush() == nil {
			c.lingeringClose()
		}
		return false
	}
	if c.resp.closeAfter {
		_ = c.bw.Flush()
		return false
	}
	return true
}

// runHandler calls the handler and reports whether the connection can go on.
// A panic closes the connection (http.ErrAbortHandler silently, as net/http
// does: ReverseProxy uses it to abort a response whose upstream failed).
func (c *conn) runHandler() (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler { //nolint:errorlint // a panic value, compared as net/http does
				c.srv.cfg.Logger.Error("handler panic", "remote", c.remote, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.srv.cfg.Handler.ServeHTTP(&c.resp, c.req)
	return true
}

// awaitHead runs when a request head did not arrive whole: the responses
// written so far go out first (the client may wait for them before it sends
// the rest, and the connection may end before it does), then the header
// timeout starts.
func (c *conn) awaitHead() {
	_ = c.bw.Flush()
	c.headerDeadline()
}

// headerDeadline starts the header timeout when a head did not arrive whole.
func (c *conn) headerDeadline() {
	if c.headerWait {
		return
	}
	c.headerWait = true
	c.readDeadline = time.Time{}
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ReadHeaderTimeout))
}

// extendBodyDeadline pushes the read deadline while a body makes progress, at
// most every half timeout, so a slow but moving upload is not cut off and a
// stalled one is.
func (c *conn) extendBodyDeadline() {
	now := time.Now()
	if now.Before(c.bodyDeadline) {
		return
	}
	t := c.srv.cfg.BodyIdleTimeout
	c.bodyDeadline = now.Add(t / 2)
	c.readDeadline = time.Time{}
	_ = c.nc.SetReadDeadline(now.Add(t))
}

// finishBody reads what the handler left of the request body, within reason,
// so that the connection can carry the next request. It goes by the request's
// framing, not by r.Body, which a handler may have wrapped or replaced.
func (c *conn) finishBody() bool {
	if c.bodyAbandoned() {
		return false
	}
	var body io.Reader
	switch {
	case c.bodyRead():
		return true
	case c.head.Chunked:
		body = &c.bodyChk
	case c.head.ContentLength > 0:
		body = &c.bodyCL
	default:
		return true
	}
	n, err := io.CopyN(io.Discard, body, maxDrain+1)
	return n <= maxDrain && errors.Is(err, io.EOF)
}

// bodyRead says whether the request body, if any, has been read to its end.
func (c *conn) bodyRead() bool {
	switch {
	case c.head.Chunked:
		return c.bodyChk.cr.Done()
	case c.head.ContentLength > 0:
		return c.bodyCL.left == 0
	}
	return true
}

// bodyAbandoned says, as things stand, finishBody will not read the rest of
// the request body, so the connection ends after the response: the client
// has not sent it (it waits for 100 Continue, which was not sent), or more
// than maxDrain of it is left, or reading it failed.
func (c *conn) bodyAbandoned() bool {
	switch {
	case c.head.Chunked:
		return !c.bodyChk.cr.Done() && (c.bodyChk.expect100 || c.bodyChk.err != nil)
	case c.head.ContentLength > 0:
		return c.bodyCL.err != nil || c.bodyCL.left > 0 && (c.bodyCL.expect100 || c.bodyCL.left > maxDrain)
	}
	return false
}

// lingeringClose ends a connection whose client may still be sending a body
// the server did not read: closing at once would make the kernel answer with
// a reset, which can destroy the response before the client reads it (a Go
// client still writing a large upload reports the failed write instead). So
// the write side is shut first and what comes is read and dropped until the
// client closes, for at most lingerTime. It is bounded by time, not bytes: a
// byte cap ends the wait early for exactly the clients that need it, those
// still uploading, as net/http's and nginx's time bounds do not.
func (c *conn) lingeringClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, c.nc)
}

// refuse answers a request that never reached the handler and closes.
func (c *conn) refuse(err error) {
	status := 0
	var he *http1.Error
	switch {
	case errors.As(err, &he):
		status = he.Status
	case isTimeout(err):
		status = http.StatusRequestTimeout
	default:
		// The client went away, or only stopped sending: what it was sent
		// still goes.
		_ = c.bw.Flush()
		return
	}
	id := ""
	if c.srv.cfg.Rejected != nil {
		id = c.srv.cfg.Rejected(status)
	}
	// The same problem document, and the same headers, as the gateway's
	// other errors (problem.WriteDetails), without a request to go by.
	d := problem.Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: http.StatusText(status), RequestID: id}
	if he != nil {
		d.Detail = he.Reason
	}
	body, _ := json.Marshal(&d)
	body = append(body, '\n')
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	bw := c.bw
	bw.Put(statusLine(status))
	bw.Put("Date: " + httpDate() + "\r\nContent-Type: " + problem.ContentType +
		"\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n")
	if id != "" {
		bw.Put(filter.RequestIDHeader + ": " + id + "\r\n")
	}
	bw.Put("Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	bw.PutBytes(body)
	if c.bw.Flush() == nil {
		c.linger = true
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var (
	errBadPath = &http1.Error{Status: http.StatusBadRequest, Reason: "malformed request path"}
	errBadHost = &http1.Error{Status: http.StatusBadRequest, Reason: "malformed host in the request target"}
)

// buildRequest fills the connection's reusable *http.Request from c.head.
func (c *conn) buildRequest() error {
	h := &c.head
	r := c.req
	u := &c.url
	*u = url.URL{}
	target := h.Target
	host := h.Host
	switch {
	case target[0] == '/':
		path, query, _ := strings.Cut(target, "?")
		u.RawQuery = query
		if strings.IndexByte(path, '%') >= 0 {
			p, err := url.PathUnescape(path)
			if err != nil {
				return errBadPath
			}
			u.Path, u.RawPath = p, path
		} else {
			u.Path = path
		}
	case target == "*":
		if h.Method != http.MethodOptions {
			return errBadPath
		}
		u.Path = "*"
	default:
		// absolute-form: its authority replaces Host (RFC 9112 §3.2.2).
		pu, err := url.ParseRequestURI(target)
		if err != nil || pu.Host == "" {
			return errBadPath
		}
		if !http1.ValidHost(pu.Host) {
			return errBadHost
		}
		*u = url.URL{Path: pu.Path, RawPath: pu.RawPath, RawQuery: pu.RawQuery}
		if u.Path == "" {
			u.Path = "/"
		}
		host = pu.Host
	}

	if len(c.hdr) > 0 {
		clear(c.hdr)
	}
	c.vals = c.vals[:0]
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, "Host") {
			continue
		}
		if len(h.Hop) > 0 {
			// The fields the client's Connection field names are its own
			// hop's (RFC 9110 §7.6.1): dropped here, on receipt, and the
			// names taken out of Connection, so that nothing later (the
			// proxy, ReverseProxy) removes a field the gateway itself set,
			// such as X-Request-Id or a security scheme's claim fields.
			if nominated(f.Name, h.Hop) {
				continue
			}
			if strings.EqualFold(f.Name, "Connection") {
				if f.Value = withoutNominations(f.Value, h.Hop); f.Value == "" {
					continue
				}
			}
		}
		key := canonicalKey(f.Name)
		if old, ok := c.hdr[key]; ok {
			c.hdr[key] = append(old, f.Value)
			continue
		}
		i := len(c.vals)
		c.vals = append(c.vals, f.Value)
		c.hdr[key] = c.vals[i : i+1 : i+1]
	}

	r.Method = h.Method
	r.URL = u
	r.Proto = "HTTP/1.1"
	r.ProtoMajor, r.ProtoMinor = 1, h.Minor
	if h.Minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.Header = c.hdr
	r.Host = host
	r.RemoteAddr = c.remote
	r.RequestURI = target
	r.TLS = c.tls
	r.Close = !h.KeepAlive
	r.Form, r.PostForm, r.MultipartForm, r.Trailer = nil, nil, nil, nil
	r.GetBody, r.Response, r.Pattern = nil, nil, ""
	r.TransferEncoding = nil
	switch {
	case h.Chunked:
		c.bodyChk.reset(h.Expect100)
		r.Body = &c.bodyChk
		r.ContentLength = -1
		r.TransferEncoding = chunkedTE
	case h.ContentLength > 0:
		c.bodyCL.reset(h.ContentLength, h.Expect100)
		r.Body = &c.bodyCL
		r.ContentLength = h.ContentLength
	default:
		r.Body = http.NoBody
		r.ContentLength = 0
	}
	return nil
}

var chunkedTE = []string{"chunked"}

// canonicalKey returns name in canonical form, without allocating when it
// already is (the common case for HTTP/1.1 clients).
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && c >= 'a' && c <= 'z' || !upper && c >= 'A' && c <= 'Z' {
			return http.CanonicalHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// Context returns the server's base context, cancelled by Close.
func (s *Server) Context() context.Context { return s.baseCtx }

func nominated(name string, hop []string) bool {
	for _, h := range hop {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// withoutNominations is a Connection field value with only its connection
// options (close, keep-alive, upgrade), not the field names it lists.
func withoutNominations(v string, hop []string) string {
	var kept []string
	for t := range strings.SplitSeq(v, ",") {
		if t = http1.TrimOWS(t); t != "" && !nominated(t, hop) {
			kept = append(kept, t)
		}
	}
	return strings.Join(kept, ", ")
}
