package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// reverseProxy is the net/http path: HTTPS upstreams (HTTP/2 by ALPN) and
// protocol upgrades. Its Transport applies the same policy as the fast path.
func (p *routeProxy) reverseProxy() http.Handler {
	p.rpOnce.Do(func() {
		p.rp = &httputil.ReverseProxy{
			Rewrite:   p.rewrite,
			Transport: (*clusterTransport)(p),
			// Flush every write: this path carries streams (upgrades, h2).
			FlushInterval: -1,
			BufferPool:    rpBufferPool{},
			ErrorHandler:  p.reverseError,
			ErrorLog:      slog.NewLogLogger(p.opts.Logger.Handler(), slog.LevelDebug),
			ModifyResponse: func(resp *http.Response) error {
				// The gateway's own request id is the one the client sees.
				resp.Header.Del("X-Request-Id")
				return nil
			},
		}
	})
	return p.rp
}

// rewrite sets the outbound path (relative to the upstream's base path, which
// the Transport prefixes once it has chosen the URL) and the forwarding fields.
// ReverseProxy has already removed hop-by-hop and X-Forwarded-* fields.
func (p *routeProxy) rewrite(pr *httputil.ProxyRequest) {
	// ReverseProxy gives ErrorHandler the outbound request, whose URL will
	// be the upstream's: the client's goes along for the problem's instance.
	pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), clientURLKey{}, pr.In.URL))
	rest := p.restPath(pr.In)
	out := pr.Out
	out.URL = &url.URL{Scheme: "http", Host: "upstream.invalid", RawQuery: pr.In.URL.RawQuery}
	if path, err := url.PathUnescape(rest); err == nil {
		out.URL.Path, out.URL.RawPath = path, rest
	} else {
		out.URL.Path = rest
	}
	out.Host = ""
	for k := range out.Header {
		if overrideField(k) || filter.IsAliasOf(k, overrideField) {
			delete(out.Header, k)
		}
	}
	fwd := newForwarded(pr.In, p.fwd)
	fwd.set(out.Header)
	if id := filter.RequestIDFrom(pr.In.Context()); id != "" {
		out.Header[filter.RequestIDHeader] = []string{id}
	}
}

type clusterTransport routeProxy

var errClientGone = errors.New("the client went away")

// clientURLKey keys the client's request URL in an outbound request's context.
type clientURLKey struct{}

// upstreamError carries an attempt's failure kind to the ErrorHandler.
type upstreamError struct {
	kind failure
	err  error
}

func (e *upstreamError) Error() string { return e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

func (t *clusterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := (*routeProxy)(t)
	c := p.cluster
	c.active.Add(1)
	defer c.active.Add(-1)
	deadline := time.Now().Add(p.timeout)
	upgrade := req.Header.Get("Upgrade") != ""
	canRetry := retryableMethod(req.Method) && !hasBody(req) && !upgrade
	path, rawPath := req.URL.Path, req.URL.EscapedPath()
	var (
		exclude     *Upstream
		retries     int
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
			return nil, &upstreamError{kind: failConnect, err: errNoHealthy}
		}
		req.URL.Scheme, req.URL.Host = u.url.Scheme, u.url.Host
		req.URL.Path = u.url.Path + path
		if u.url.Path != "" && u.url.Path[len(u.url.Path)-1] == '/' {
			req.URL.Path = u.url.Path[:len(u.url.Path)-1] + path
		}
		req.URL.RawPath = u.basePath + rawPath
		req.Host = u.host

		start := time.Now()
		try := deadline.Sub(start)
		if p.retry.perTry > 0 && p.retry.perTry < try {
			try = p.retry.perTry
		}
		ctx, cancel := context.WithCancel(req.Context())
		var timedOut atomic.Bool
		timer := time.AfterFunc(try, func() { timedOut.Store(true); cancel() })
		u.inflight.Add(1)
		resp, err := u.transport().RoundTrip(req.WithContext(ctx))
		u.inflight.Add(-1)
		timer.Stop()
		if err != nil {
			cancel()
			if clientGone(req) && !timedOut.Load() {
				// The client reset its stream or closed its connection: not
				// the upstream's failure (a client must not be able to open
				// the circuit for everyone).
				u.br.abandon(probe)
				return nil, errClientGone
			}
			f := classify(err)
			if timedOut.Load() {
				f = failTimeout
			}
			if f == failLocal {
				u.br.abandon(probe)
				p.logLocal(err)
				return nil, &upstreamError{kind: f, err: err}
			}
			u.m.Error(int(f))
			u.br.failure(probe)
			p.opts.Logger.Debug("upstream attempt failed", "endpoint", c.name, "upstream", u.url.Redacted(), "err", err)
			if canRetry && retries < p.retry.attempts && p.retry.wants(f) && time.Now().Before(deadline) &&
				c.retry(&holdsBudget) {
				retries++
				exclude = u
				continue
			}
			return nil, &upstreamError{kind: f, err: err}
		}
		u.m.Latency.Observe(time.Since(start).Seconds())
		s := resp.StatusCode
		if s >= 500 && p.retry.on5xx && canRetry && retries < p.retry.attempts && time.Now().Before(deadline) &&
			c.retry(&holdsBudget) {
			u.m.Error(int(fail5xx))
			u.br.failure(probe)
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			cancel()
			retries++
			exclude = u
			continue
		}
		if s == http.StatusBadGateway || s == http.StatusServiceUnavailable || s == http.StatusGatewayTimeout {
			u.m.Error(int(fail5xx))
			u.br.failure(probe)
		} else {
			u.br.success(probe)
		}
		if v := resp.Header["Location"]; len(v) == 1 {
			if m, ok := p.location(v[0], u); ok {
				resp.Header["Location"] = []string{m}
			}
		}
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && s == http.StatusSwitchingProtocols {
			resp.Body = &cancelRWC{ReadWriteCloser: rwc, cancel: cancel}
		} else {
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		}
		return resp, nil
	}
}

// reverseError answers a failed ReverseProxy round trip as a problem.
func (p *routeProxy) reverseError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errClientGone) {
		w.WriteHeader(statusClientGone)
		return
	}
	if u, ok := r.Context().Value(clientURLKey{}).(*url.URL); ok {
		// Never the upstream's path (problem.Details.Instance).
		in := *r
		in.URL = u
		r = &in
	}
	var ue *upstreamError
	if errors.As(err, &ue) {
		p.writeError(w, r, ue.kind, ue.err)
		return
	}
	var ce *clientError
	if errors.As(err, &ce) {
		writeClientError(w, r, ce.err)
		return
	}
	p.writeError(w, r, classify(err), err)
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

type cancelRWC struct {
	io.ReadWriteCloser
	cancel context.CancelFunc
}

func (b *cancelRWC) Close() error {
	err := b.ReadWriteCloser.Close()
	b.cancel()
	return err
}

type rpBufferPool struct{}

func (rpBufferPool) Get() []byte  { return *getBuf() }
func (rpBufferPool) Put(b []byte) { putBuf(&b) }
