package gateway

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/metrics"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
	"github.com/gatekiln/gatekiln/gatewayruntime/router"
)

// statusWriter is implemented by the HTTP/1.1 server's ResponseWriter; other
// writers (HTTP/2) are wrapped in a recorder.
type statusWriter interface {
	Status() int
	Written() int64
}

// ServeHTTP is the data plane: request id, metrics and access log, routing,
// body limit, then the route's precompiled chain.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := rawconn.Now(r.Context())
	gen := g.gen.Load()
	st := filter.StateFrom(r.Context())
	if st == nil {
		st = filter.NewState(nil)
		r = r.WithContext(filter.WithState(r.Context(), st))
	}
	var trusted *filter.TrustedProxies
	if gen != nil {
		trusted = gen.trusted
		gen.active.Add(1)
	}
	st.Reset(trusted)

	// Request id: a sane incoming one is kept, else one is made. It lives in
	// the State: the proxy sends it upstream, and the response carries it
	// (pinned where the writer can, which spares every request map work).
	id := r.Header["X-Request-Id"]
	if len(id) == 1 && validRequestID(id[0]) {
		st.RequestID = id[0]
	} else {
		if id != nil {
			delete(r.Header, "X-Request-Id") // no filter sees the client's
		}
		id = st.SetRequestID(g.ids.next())
	}
	if pw, ok := w.(fieldPinner); ok {
		pw.PinField(filter.RequestIDHeader, id[0])
	} else {
		w.Header()["X-Request-Id"] = id
	}

	sw, ok := w.(statusWriter)
	if !ok {
		rec := &recorder{ResponseWriter: w}
		w, sw = rec, rec
	}
	g.metrics.InFlight.Inc()
	var (
		cr  *compiledRoute
		end func(int)
	)
	defer func() {
		g.metrics.InFlight.Dec()
		if gen != nil {
			gen.active.Add(-1)
		}
		if end != nil {
			end(sw.Status())
		}
		if p := recover(); p != nil {
			// An aborted response (the upstream broke off mid-body) is recorded
			// with the status already sent; the panic goes on to the server,
			// which closes the connection.
			g.observe(r, cr, max(sw.Status(), 1), sw.Written(), start)
			panic(p)
		}
		g.observe(r, cr, sw.Status(), sw.Written(), start)
	}()

	if gen == nil {
		problem.Write(w, r, http.StatusServiceUnavailable, "", "The gateway has no valid binding yet.")
		return
	}
	var pbuf [8]router.Param
	res, params := g.router.Match(r.Method, escapedPath(r), pbuf[:0])
	switch res.Status {
	case router.Found:
	case router.BadPath:
		problem.Write(w, r, http.StatusBadRequest, "", "The request path is malformed.")
		return
	case router.NotFound:
		problem.Write(w, r, http.StatusNotFound, "", "No operation matches this path.")
		return
	case router.MethodNotAllowed:
		w.Header().Set("Allow", res.Allow)
		problem.Write(w, r, http.StatusMethodNotAllowed, "", "This path does not support "+r.Method+".")
		return
	case router.Options:
		// A CORS preflight goes to the chain of the operation it asks about,
		// whose CORS filter answers it; any other OPTIONS is answered here.
		if acrm := r.Header.Get("Access-Control-Request-Method"); acrm != "" && g.preflightAPI && r.Header.Get("Origin") != "" {
			if v, ok := res.Lookup(acrm); ok {
				res.Value = v
				break
			}
		}
		w.Header().Set("Allow", res.Allow)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	cr = &gen.routes[res.Value]
	if !cr.loopSafe {
		rawconn.Detach(r.Context())
	}
	st.Route = filter.Route{API: g.api, Bundle: cr.bundle, Name: cr.name}
	if len(params) > 0 {
		ps := st.ParamBuf()
		for _, p := range params {
			ps = append(ps, filter.Param(p))
		}
		st.Route.Params = ps
	}
	if r.ContentLength > cr.maxBody {
		problem.Write(w, r, http.StatusRequestEntityTooLarge, "", "The request body exceeds "+strconv.FormatInt(cr.maxBody, 10)+" bytes.")
		return
	}
	if r.ContentLength < 0 {
		r.Body = http.MaxBytesReader(w, r.Body, cr.maxBody)
	}
	if g.cfg.Tracer != nil {
		r, end = g.cfg.Tracer.Start(r, cr.name)
	}
	cr.chain.ServeHTTP(w, r)
}

// unmatched returns the metrics of requests that matched no route.
func (g *Gateway) unmatched(method string) *metrics.Route {
	if m, ok := g.unmatchedRoutes[method]; ok {
		return m
	}
	return g.unmatchedRoutes[""]
}

func (g *Gateway) observe(r *http.Request, cr *compiledRoute, status int, written int64, start time.Time) {
	d := rawconn.Now(r.Context()).Sub(start)
	if status == 0 && written == 0 {
		// Nothing written yet: the server answers 200 with an empty body.
		status = http.StatusOK
	}
	if cr != nil {
		cr.metrics.Observe(status, d.Seconds())
	} else {
		g.unmatched(r.Method).Observe(status, d.Seconds())
	}
	if g.access != nil {
		route := ""
		if cr != nil {
			route = cr.name
		}
		g.access.log(r, route, status, written, d)
	}
}

// escapedPath is the request path as sent, for routing: the request-target
// up to its query (both servers keep it in RequestURI), or the URL's escaped
// path for an absolute-form or hand-made request.
func escapedPath(r *http.Request) string {
	if u := r.RequestURI; u != "" && u[0] == '/' {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			return u[:i]
		}
		return u
	}
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.EscapedPath()
}

// validRequestID accepts ids a client or an upstream proxy may have set:
// short, and only characters that are safe in logs and headers.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// requestIDs makes unique ids: a random per-process prefix and a counter,
// cheaper than 16 random bytes per request and unique across replicas.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// fieldPinner is the gateway's HTTP/1.1 ResponseWriter (server.response).
type fieldPinner interface{ PinField(name, value string) }

func (ids *requestIDs) next() string {
	var buf [40]byte
	out := append(buf[:0], ids.prefix...)
	out = strconv.AppendUint(out, ids.n.Add(1), 36)
	return string(out)
}

// recorder captures the status for writers that do not report it (HTTP/2).
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.written += int64(n)
	return n, err
}

func (r *recorder) Status() int                 { return r.status }
func (r *recorder) Written() int64              { return r.written }
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
func (r *recorder) Flush()                      { http.NewResponseController(r.ResponseWriter).Flush() } //nolint:errcheck // Flusher has no error
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}
