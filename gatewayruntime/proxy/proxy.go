// Package proxy forwards a route's requests to its endpoint's URLs.
//
// Two paths share one policy (load balancing, circuit breaking, retries,
// timeouts, forwarding fields, errors):
//
//   - HTTP/1.1 to http:// upstreams uses this package's own client: pooled
//     keep-alive connections used by the request's goroutine (no background
//     read loop), the request written straight from the header map into the
//     connection's buffer, and — when the client is on the gateway's HTTP/1.1
//     server — the upstream's response head copied into the client's buffer
//     without building a Header map. This is what lets the gateway proxy at
//     nginx's cost per request.
//   - https:// upstreams (HTTP/2 when offered by ALPN, TLS verified with the
//     Binding's CA) and protocol upgrades (WebSocket) use
//     httputil.ReverseProxy with Rewrite and a Transport per upstream URL.
//
// Policy:
//   - Timeout: from sending the request to receiving the response head. The
//     Binding's endpoint timeout wins over the route's, which wins over the
//     definition's endpoint timeout, then Options.Timeout. A body then streams
//     for as long as it makes progress (Options.BodyIdleTimeout).
//   - Retries (same precedence): only GET, HEAD, OPTIONS, PUT, DELETE and TRACE
//     requests without a body are retried — never POST or PATCH — on a
//     different URL when there is one, within the route timeout and the
//     cluster's retry budget. A request that fails on a pooled connection the
//     upstream had closed is retried once on a new connection when retrying
//     would be allowed at all.
//   - Circuit breaking per URL: connect failures, resets, timeouts and 502,
//     503, 504 responses count as failures; see breaker. The gateway's own
//     limits (out of descriptors, ports, buffers) do not: they are answered
//     503 at once, neither counted nor retried.
//   - Errors are problem+json: 502 (upstream failed), 503 (no endpoint, no
//     healthy URL, the gateway at a resource limit; with Retry-After), 504
//     (timeout). Details never name the upstream or its error.
package proxy

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// Handler returns the proxy for one route of the Bundle Build was given.
func (us *Upstreams) Handler(api *bundle.Bundle, route *bundle.Route) (http.Handler, error) {
	base := clientBase(route)
	p := &routeProxy{opts: us.opts, fwd: us.fwd, base: base, strip: strings.Count(base, "/")}
	if route.Endpoint == "" {
		return p, nil
	}
	c := us.clusters[route.Endpoint]
	if c == nil {
		return nil, errors.New("endpoint " + route.Endpoint + " not built")
	}
	p.cluster = c
	p.timeout = us.opts.Timeout
	for _, t := range []time.Duration{c.bindTimeout, route.Timeout.D(), c.defTimeout} {
		if t > 0 {
			p.timeout = t
			break
		}
	}
	retries := c.bindRetries
	if retries == nil {
		retries = route.Retries
	}
	if retries == nil {
		retries = c.defRetries
	}
	rp, err := newRetryPolicy(retries)
	if err != nil {
		return nil, err
	}
	p.retry = rp
	return p, nil
}

type routeProxy struct {
	opts    *Options
	fwd     forwarding
	cluster *Cluster
	// base is the API's base path (clientBase); strip counts its segments.
	base    string
	strip   int
	timeout time.Duration
	retry   retryPolicy

	rpOnce sync.Once
	rp     http.Handler
}

func (p *routeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := p.cluster
	if c == nil {
		problem.Write(w, r, http.StatusServiceUnavailable, "", "This operation has no endpoint configured.")
		return
	}
	if len(c.ups) == 0 {
		problem.Write(w, r, http.StatusServiceUnavailable, "", "This operation's endpoint has no URL configured.")
		return
	}
	upgrade := r.Header.Get("Upgrade")
	if upgrade != "" && !strings.EqualFold(strings.TrimSpace(upgrade), "websocket") {
		// Only WebSocket is switched to. Another protocol (h2c above all)
		// would make the upstream connection a tunnel whose requests no
		// route, security scheme or limit sees: the request goes as a plain
		// one (RFC 9110 §7.8 lets a server ignore Upgrade).
		delete(r.Header, "Upgrade")
		upgrade = ""
	}
	if c.ups[0].https || upgrade != "" {
		// net/http's client waits on Go's netpoller: off the event loop.
		rawconn.Detach(r.Context())
		p.reverseProxy().ServeHTTP(w, r)
		return
	}
	p.serveFast(w, r)
}

// restPath returns the escaped request path after the base path. The path is
// the request-target as sent (RequestURI up to its query) when there is one,
// so that the upstream sees exactly the client's encoding.
func (p *routeProxy) restPath(r *http.Request) string {
	var path string
	if u := r.RequestURI; u != "" && u[0] == '/' {
		path = u
		if i := strings.IndexByte(u, '?'); i >= 0 {
			path = u[:i]
		}
	} else if path = r.URL.RawPath; path == "" {
		path = r.URL.EscapedPath()
	}
	for i := 0; i < p.strip && path != ""; i++ {
		j := strings.IndexByte(path[1:], '/')
		if j < 0 {
			path = ""
			break
		}
		path = path[j+1:]
	}
	return path
}

func retryableMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// failure kinds of an attempt, in metrics.Err* order.
type failure int

const (
	ok failure = iota - 1
	failConnect
	failReset
	failTimeout
	failProtocol
	fail5xx
	// failLocal is the gateway's own limit (out of descriptors, ports or
	// memory): not the upstream's failure, and never counted as one.
	failLocal
)

var errNoHealthy = errors.New("no healthy upstream")

// writeError answers a request whose attempts all failed.
func (p *routeProxy) writeError(w http.ResponseWriter, r *http.Request, f failure, err error) {
	switch {
	case errors.Is(err, errNoHealthy):
		if ra := p.cluster.retryAfter(); ra > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((ra+time.Second-1)/time.Second)))
		}
		problem.Write(w, r, http.StatusServiceUnavailable, "", "No healthy upstream is available for this operation.")
	case f == failTimeout:
		problem.Write(w, r, http.StatusGatewayTimeout, "", "The upstream service did not answer in time.")
	case f == failLocal:
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, http.StatusServiceUnavailable, "", "The gateway cannot open more connections right now.")
	default:
		problem.Write(w, r, http.StatusBadGateway, "", "The upstream service failed to answer.")
	}
}

// statusClientGone is what the access log records for a request whose client
// went away before its response (nginx's 499): nothing reaches the client.
const statusClientGone = 499

// clientGone says whether r's client has gone: its HTTP/2 stream was reset or
// its connection closed. The upstream's error that followed is not the
// upstream's failure.
func clientGone(r *http.Request) bool { return r.Context().Err() != nil }

// writeClientError answers when the client's own request body failed.
func writeClientError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		mbe *http.MaxBytesError
		he  *http1.Error
		ne  net.Error
	)
	switch {
	case errors.As(err, &mbe):
		// The rest of the body is not read, so the connection cannot carry
		// another request: say so (net/http's MaxBytesReader does too).
		w.Header().Set("Connection", "close")
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "", "The request body exceeds "+strconv.FormatInt(mbe.Limit, 10)+" bytes.")
	case errors.As(err, &he):
		problem.Write(w, r, http.StatusBadRequest, "", "Malformed request body: "+he.Reason+".")
	case errors.As(err, &ne) && ne.Timeout():
		problem.Write(w, r, http.StatusRequestTimeout, "", "The request body was not received in time.")
	default:
		problem.Write(w, r, http.StatusBadRequest, "", "The request body could not be read.")
	}
}

func classify(err error) failure {
	if localLimit(err) {
		return failLocal
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return failTimeout
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return failConnect
	}
	return failReset
}

// localLimit reports errors of the gateway's own resources: descriptors
// (EMFILE, ENFILE), ephemeral ports (EADDRNOTAVAIL) and kernel memory.
func localLimit(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.EADDRNOTAVAIL, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// logLocal reports a local-limit failure, at most once a second per
// endpoint (they come in floods).
func (p *routeProxy) logLocal(err error) {
	now := time.Now().UnixNano()
	last := p.cluster.lastLocalLog.Load()
	if now-last < int64(time.Second) || !p.cluster.lastLocalLog.CompareAndSwap(last, now) {
		return
	}
	p.opts.Logger.Warn("cannot connect upstream: the gateway is at a resource limit", "endpoint", p.cluster.name, "err", err)
}
