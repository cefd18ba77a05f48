package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// headWriter is implemented by the gateway's HTTP/1.1 server ResponseWriter:
// it writes an upstream head (minus hop-by-hop fields) without a Header map.
type headWriter interface {
	WriteUpstreamHead(status int, fields []http1.FieldBytes, contentLength int64)
}

// errClient marks a failure on the client's side (its body or its connection),
// which is not the upstream's fault.
type clientError struct{ err error }

func (e *clientError) Error() string { return "client: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// strictStaleAfter applies to requests that cannot be retried: a pooled
// connection idle longer than this is also peeked at before it carries them,
// which finds a close that arrived after the poller last looked.
const strictStaleAfter = 10 * time.Millisecond

func (p *routeProxy) serveFast(w http.ResponseWriter, r *http.Request) {
	c := p.cluster
	c.active.Add(1)
	defer c.active.Add(-1)
	now := rawconn.Now(r.Context())
	deadline := now.Add(p.timeout)
	canRetry := retryableMethod(r.Method) && !hasBody(r)
	fwd := newForwarded(r, p.fwd)
	rest := p.restPath(r)

	var (
		exclude     *Upstream
		retries     int
		staleRetry  bool
		lastFail    = ok
		lastErr     error
		holdsBudget bool
	)
	defer func() {
		if holdsBudget {
			c.doneRetry()
		}
	}()
	for {
		u, probe := c.pick(exclude)
		if u == nil {
			if lastErr == nil {
				lastErr = errNoHealthy
			}
			p.writeError(w, r, lastFail, lastErr)
			return
		}
		u.inflight.Add(1)
		if retries > 0 || staleRetry {
			now = rawconn.Now(r.Context())
		}
		uc, f, stale, err := p.attempt(r, u, &fwd, rest, now, deadline, canRetry)
		if f == ok {
			status := uc.resp.Status
			if status >= 500 && p.retry.on5xx && canRetry && retries < p.retry.attempts &&
				time.Now().Before(deadline) && c.retry(&holdsBudget) {
				u.m.Error(int(fail5xx))
				u.br.failure(probe)
				u.inflight.Add(-1)
				p.discard(uc, r)
				retries++
				exclude = u
				lastFail, lastErr = fail5xx, nil
				continue
			}
			if status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
				u.m.Error(int(fail5xx))
				u.br.failure(probe)
			} else {
				u.br.success(probe)
			}
			p.respond(w, r, uc)
			u.inflight.Add(-1)
			return
		}
		u.inflight.Add(-1)
		if clientGone(r) {
			u.br.abandon(probe)
			w.WriteHeader(statusClientGone)
			return
		}
		var ce *clientError
		if errors.As(err, &ce) {
			if probe {
				u.br.success(true)
			}
			writeClientError(w, r, ce.err)
			return
		}
		if f == failLocal {
			// Another upstream would fail the same way, and this one's
			// circuit must not open for the gateway's own limit.
			u.br.abandon(probe)
			p.logLocal(err)
			p.writeError(w, r, f, err)
			return
		}
		if stale && !staleRetry && canRetry {
			// The upstream closed a pooled connection; its other idle ones are
			// likely closed too. Not the upstream's failure.
			if probe {
				u.br.success(true)
			}
			u.dropIdle()
			staleRetry = true
			exclude = nil
			continue
		}
		u.m.Error(int(f))
		u.br.failure(probe)
		p.opts.Logger.Debug("upstream attempt failed", "endpoint", c.name, "upstream", u.url.Redacted(), "err", err)
		lastFail, lastErr = f, err
		if canRetry && retries < p.retry.attempts && p.retry.wants(f) && time.Now().Before(deadline) &&
			c.retry(&holdsBudget) {
			retries++
			exclude = u
			continue
		}
		p.writeError(w, r, f, err)
		return
	}
}

func (rp retryPolicy) wants(f failure) bool {
	switch f {
	case failConnect:
		return rp.onConnect
	case failReset, failProtocol:
		return rp.onReset
	case failTimeout:
		// A per-try timeout leaves time for another try; the route timeout does not.
		return rp.perTry > 0
	}
	return false
}

// attempt sends r to u and reads the response head. On success the returned
// connection holds the parsed head (uc.resp) and the body unread.
func (p *routeProxy) attempt(r *http.Request, u *Upstream, fwd *forwarded, rest string, start, deadline time.Time, canRetry bool) (*upConn, failure, bool, error) {
	tryDeadline := deadline
	if p.retry.perTry > 0 && start.Add(p.retry.perTry).Before(deadline) {
		tryDeadline = start.Add(p.retry.perTry)
	}
	uc, err := u.getConn(r.Context(), start, tryDeadline, !canRetry)
	if err != nil {
		return nil, classify(err), false, err
	}
	// A deadline costs a runtime timer update: keep the one in force when it
	// ends at most 1/64 of the timeout early (busy connections are reused
	// within microseconds).
	if d := tryDeadline.Sub(uc.deadline); d < 0 || d > tryDeadline.Sub(start)/64 {
		_ = uc.nc.SetDeadline(tryDeadline)
		uc.deadline = tryDeadline
	}
	body := hasBody(r)
	if body {
		uc.io.progress = min(p.opts.BodyIdleTimeout, tryDeadline.Sub(start))
	}
	err = p.writeRequest(uc, r, fwd, rest)
	if body {
		// The timeout runs from the request sent to the response head: the
		// time a client took to upload is not the upstream's delay.
		uc.io.progress = 0
		tryDeadline = time.Now().Add(tryDeadline.Sub(start))
		_ = uc.nc.SetDeadline(tryDeadline)
		uc.deadline = tryDeadline
	}
	var early error
	if err != nil {
		var ce *clientError
		if errors.As(err, &ce) {
			uc.nc.Close()
			return nil, failReset, false, err
		}
		if !body || alive(uc.nc) {
			uc.nc.Close()
			return nil, classify(err), uc.reused && isStale(err), err
		}
		// The upstream answered before it took the whole body (a 413, a
		// 401, a redirect) and stopped reading: that answer, when one is
		// there, is the response (RFC 9112 §9.5), on a connection that is
		// done.
		early = err
	}
	if r.ProtoMajor >= 2 {
		// After the deadlines above, which would undo a reset seen earlier.
		watchClient(r, uc)
	}
	for {
		head, err := uc.br.ReadHead()
		if err != nil {
			uc.nc.Close()
			if early != nil {
				err = early
			}
			return nil, classify(err), uc.reused && isStale(err), err
		}
		if err := http1.ParseResponse(head, &uc.resp); err != nil {
			uc.nc.Close()
			return nil, failProtocol, false, err
		}
		if s := uc.resp.Status; s >= 100 && s < 200 {
			if s == http.StatusSwitchingProtocols {
				uc.nc.Close()
				return nil, failProtocol, false, errors.New("unexpected 101 response")
			}
			continue // 100 Continue, 103 Early Hints: not forwarded on this path
		}
		break
	}
	if early != nil {
		uc.resp.KeepAlive = false
	}
	// The request is all written (the held write went out with the first
	// read): its buffer goes back for other requests.
	uc.bw.Release()
	uc.lastUsed = rawconn.Now(r.Context())
	u.m.Latency.Observe(uc.lastUsed.Sub(start).Seconds())
	return uc, ok, false, nil
}

func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// getConn is get with a stricter idle check for requests that cannot be retried.
func (u *Upstream) getConn(ctx context.Context, now, deadline time.Time, strict bool) (*upConn, error) {
	if !strict {
		return u.get(ctx, now, deadline)
	}
	for {
		uc, err := u.get(ctx, now, deadline)
		if err != nil || !uc.reused || now.Sub(uc.lastUsed) < strictStaleAfter || alive(uc.nc) {
			return uc, err
		}
		uc.nc.Close()
	}
}

// dropIdle closes the pool's idle connections.
func (u *Upstream) dropIdle() {
	u.mu.Lock()
	idle := u.takeIdle()
	u.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// skipRequestField reports fields the gateway does not forward as sent:
// hop-by-hop and framing fields, Host (the upstream's own is sent), Expect
// (the gateway answered it) and the forwarding fields (see forwarded), under
// their names and under the names that read as theirs with '_' for '-'.
func skipRequestField(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Host", "Expect",
		"Forwarded", "X-Real-Ip":
		return true
	}
	if overrideField(k) {
		return true
	}
	if k != "" && k[0] >= 'a' && k[0] <= 'z' {
		return skipRequestField(http.CanonicalHeaderKey(k))
	}
	return isForwardingField(k) || filter.IsAliasOf(k, func(c string) bool { return managedField(c) || overrideField(c) })
}

// overrideField reports the fields with which frameworks let a request claim
// to be another one: another method (Rails, Express's method-override,
// Spring, ASP.NET), another path (Symfony's and IIS's X-Original-URL and
// X-Rewrite-URL), another client address (Akamai's and others'
// True-Client-IP and the like) or a client certificate (the fields TLS
// terminators set for a verified one). The gateway routes, authorizes,
// validates and limits by the request's own method, path and peer, so an
// upstream that obeyed one would run an operation the gateway never checked
// (a POST allowed to a user acting as an admin's DELETE, a public path
// standing in for /admin) or trust a client nobody vouched for. The client's
// own copies are never forwarded.
func overrideField(k string) bool {
	switch k {
	case "X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
		"X-Original-Url", "X-Rewrite-Url",
		"True-Client-Ip", "Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
		"X-Client-Cert", "X-Ssl-Client-Cert", "X-Ssl-Client-S-Dn", "X-Ssl-Client-Verify", "Ssl-Client-Cert":
		return true
	}
	return false
}

// managedField reports the fields whose values the gateway sets for the
// upstream (canonical names).
func managedField(k string) bool { return isForwardingField(k) || k == filter.RequestIDHeader }

func (p *routeProxy) writeRequest(uc *upConn, r *http.Request, fwd *forwarded, rest string) error {
	bw := uc.bw
	u := uc.u
	// The head is appended in the buffer's free space and written at once
	// (a large head spills into a new slice, which Write copies).
	b := bw.AvailableBuffer()
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = append(b, u.basePath...)
	if rest != "" {
		b = append(b, rest...)
	} else if u.basePath == "" {
		b = append(b, '/')
	}
	if r.URL.RawQuery != "" {
		b = append(b, '?')
		b = append(b, r.URL.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, u.host...)
	b = append(b, "\r\n"...)
	// The request id is the State's (the gateway's own or the client's sane
	// one); without a State, whatever the map holds goes.
	id := filter.RequestIDFrom(r.Context())
	if id != "" {
		b = append(b, "X-Request-Id: "...)
		b = append(b, id...)
		b = append(b, "\r\n"...)
	}
	if len(r.Header) > 0 {
		b = appendRequestFields(b, r.Header, id)
	}
	b = fwd.appendTo(b)
	_, _ = bw.Write(b)
	n := r.ContentLength
	body := hasBody(r)
	switch {
	case body && n > 0:
		bw.Put("Content-Length: ")
		bw.PutInt(n, 10)
		bw.Put("\r\n\r\n")
		if _, err := io.CopyN(bw, clientBody{r.Body}, n); err != nil {
			if errors.Is(err, io.EOF) {
				return &clientError{io.ErrUnexpectedEOF}
			}
			return err
		}
	case body:
		bw.Put("Transfer-Encoding: chunked\r\n\r\n")
		if err := writeChunked(bw, r.Body); err != nil {
			return err
		}
	default:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			bw.Put("Content-Length: 0\r\n")
		}
		bw.Put("\r\n")
	}
	// The last bytes of the request go out with the read of the response.
	uc.io.hold = true
	err := bw.Flush()
	uc.io.hold = false
	return err
}

// appendRequestFields appends the client's fields that go upstream as sent;
// id is the request id the caller wrote (a field of that name is skipped).
func appendRequestFields(b []byte, h http.Header, id string) []byte {
	var listed []string
	if conn := h["Connection"]; len(conn) > 0 {
		for _, v := range conn {
			for _, t := range strings.Split(v, ",") {
				if t = strings.TrimSpace(t); t != "" {
					listed = append(listed, http.CanonicalHeaderKey(t))
				}
			}
		}
	}
	for k, vs := range h {
		if skipRequestField(k) || (listed != nil && contains(listed, k)) || (id != "" && k == filter.RequestIDHeader) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, sanitize(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// clientBody marks the request body's read errors as the client's, so that
// they are told apart from upstream write errors in one copy.
type clientBody struct{ r io.Reader }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &clientError{err}
	}
	return n, err
}

func contains(list []string, k string) bool {
	for _, s := range list {
		if s == k {
			return true
		}
	}
	return false
}

func writeChunked(bw *http1.Writer, body io.Reader) error {
	buf := getBuf()
	defer putBuf(buf)
	for {
		n, err := body.Read(*buf)
		if n > 0 {
			bw.PutInt(int64(n), 16)
			bw.Put("\r\n")
			bw.PutBytes((*buf)[:n])
			if _, werr := bw.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			_, werr := bw.WriteString("0\r\n\r\n")
			return werr
		}
		if err != nil {
			return &clientError{err}
		}
	}
}

// respond forwards the response whose head uc holds, then pools or closes uc.
func (p *routeProxy) respond(w http.ResponseWriter, r *http.Request, uc *upConn) {
	resp := &uc.resp
	bodyAllowed := http1.BodyAllowed(r.Method, resp.Status)
	cl := resp.ContentLength
	if bodyAllowed && resp.Chunked {
		cl = -1
	}
	for i := range resp.Fields {
		if f := &resp.Fields[i]; len(f.Name) == 8 && !f.Hop && strings.EqualFold(string(f.Name), "Location") {
			if v, ok := p.location(string(f.Value), uc.u); ok {
				f.Value = []byte(v)
			}
		}
	}
	if hw, ok := w.(headWriter); ok {
		hw.WriteUpstreamHead(resp.Status, resp.Fields, cl)
	} else {
		h := w.Header()
		var preset []string
		for k := range h {
			preset = append(preset, k)
		}
		for _, f := range resp.Fields {
			if f.Hop {
				continue
			}
			k := http.CanonicalHeaderKey(string(f.Name))
			if contains(preset, k) {
				continue
			}
			h[k] = append(h[k], string(f.Value))
		}
		if cl >= 0 && resp.Status != http.StatusNoContent {
			h["Content-Length"] = []string{strconv.FormatInt(cl, 10)}
		}
		w.WriteHeader(resp.Status)
	}
	if !bodyAllowed {
		p.release(uc, resp.KeepAlive)
		return
	}
	var (
		err      error
		complete bool
	)
	switch {
	case resp.Chunked:
		uc.cr.Reset(uc.br)
		err = p.copyBody(w, &uc.cr, uc, uc.cr.Ready)
		complete = err == nil && uc.cr.Done()
	case cl >= 0:
		if int64(uc.br.Buffered()) >= cl {
			// The whole body came with the head: one copy, no read.
			_, err = w.Write(uc.br.BufferedBytes()[:cl])
			uc.br.Discard(int(cl))
			if err != nil {
				err = &clientError{err}
			}
		} else {
			err = p.copyBody(w, &exactReader{r: uc.br, n: cl}, uc, uc.buffered)
		}
		complete = err == nil
	default:
		err = p.copyBody(w, uc.br, uc, uc.buffered)
	}
	if err != nil {
		uc.nc.Close()
		var ce *clientError
		if errors.As(err, &ce) || clientGone(r) {
			return
		}
		f := classify(err)
		uc.u.m.Error(int(f))
		// The upstream failed before its body's first byte (a malformed
		// chunk, a close): when nothing has reached the client yet, it gets
		// a 502 rather than a dropped connection.
		if us, ok := w.(unsender); ok && us.Unsend() {
			p.writeError(w, r, failProtocol, err)
			return
		}
		// The upstream broke off mid-body: the client must not take the
		// truncated response for a whole one.
		panic(http.ErrAbortHandler)
	}
	p.release(uc, resp.KeepAlive && complete)
}

// watchClient ends the exchange on uc when an HTTP/2 client resets its stream
// (as a rapid-reset client does by the thousand): the upstream's wait is cut
// short and its connection closed, so the upstream stops working for nobody.
// (An HTTP/1.1 request's context is its connection's, which the server does
// not watch while a handler runs; its client's going away shows at the
// response's write.)
func watchClient(r *http.Request, uc *upConn) {
	nc := uc.nc
	uc.unwatch = context.AfterFunc(r.Context(), func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
}

// unsender is implemented by the gateway's HTTP/1.1 server ResponseWriter:
// it takes back a head nothing of which has reached the client.
type unsender interface{ Unsend() bool }

func (p *routeProxy) release(uc *upConn, reusable bool) {
	if uc.unwatch != nil && !uc.unwatch() {
		reusable = false
	}
	uc.unwatch = nil
	if reusable && uc.br.Buffered() == 0 {
		uc.br.Release()
		uc.u.put(uc)
		return
	}
	uc.nc.Close()
}

// discard drops a response that will be retried: a small body is read so the
// connection can be reused, anything else closes it.
func (p *routeProxy) discard(uc *upConn, r *http.Request) {
	resp := &uc.resp
	if !http1.BodyAllowed(r.Method, resp.Status) {
		p.release(uc, resp.KeepAlive)
		return
	}
	if !resp.Chunked && resp.ContentLength >= 0 && int64(uc.br.Buffered()) >= resp.ContentLength {
		uc.br.Discard(int(resp.ContentLength))
		p.release(uc, resp.KeepAlive)
		return
	}
	uc.nc.Close()
}

// copyBody streams an upstream body to the client, flushing whenever it would
// wait for the upstream, so streamed responses (SSE, long polls) are not held
// back. A body read error is the upstream's; a write error is the client's.
func (p *routeProxy) copyBody(w http.ResponseWriter, src io.Reader, uc *upConn, ready func() bool) error {
	buf := getBuf()
	defer putBuf(buf)
	rc := http.NewResponseController(w)
	for {
		if !ready() {
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return &clientError{err}
			}
			_ = uc.nc.SetReadDeadline(time.Now().Add(p.opts.BodyIdleTimeout))
			uc.deadline = time.Time{}
		}
		n, err := src.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return &clientError{werr}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *upConn) buffered() bool { return c.br.Buffered() > 0 }

// exactReader reads exactly n bytes; an earlier EOF is io.ErrUnexpectedEOF.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	m, err := e.r.Read(p)
	e.n -= int64(m)
	if errors.Is(err, io.EOF) && e.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return m, err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }
