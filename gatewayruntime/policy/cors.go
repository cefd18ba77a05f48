package policy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

// corsFactory answers CORS preflights itself and sets the CORS response
// headers on the route's responses, from the route's policy or else the
// document's (x-gatekiln-cors / x-wso2-cors, resolved into the Bundle). It runs
// first, so a preflight never needs credentials and a refusal by a later
// filter still carries the headers a browser needs to read it.
//
// The gateway hands a preflight (OPTIONS with Origin and
// Access-Control-Request-Method) to the chain of the route that the requested
// method names, so a policy here judges exactly that operation.
type corsFactory struct{}

func (corsFactory) Name() string { return "cors" }

// LoopSafe (filter.LoopSafe): CORS only computes.
func (corsFactory) LoopSafe(*bundle.Bundle, *bundle.Route, *bundle.Binding) bool { return true }

func (corsFactory) Build(api *bundle.Bundle, route *bundle.Route, _ *bundle.Binding, _ filter.Env) (filter.Middleware, error) {
	c := route.CORS
	if c == nil {
		c = api.CORS
	}
	if c == nil {
		return nil, nil
	}
	p := compileCORS(c)
	return p.middleware, nil
}

type corsPolicy struct {
	anyOrigin   bool
	origins     []string // lower-case, exact
	subdomains  []originPattern
	methods     []string // upper-case; empty: the route's own method only
	anyHeader   bool
	headers     []string // lower-case
	expose      string
	credentials bool
	maxAge      string
}

// originPattern matches "https://*.example.com": the scheme, then any
// non-empty subdomain of the suffix.
type originPattern struct{ scheme, suffix string }

func compileCORS(c *bundle.CORS) *corsPolicy {
	p := &corsPolicy{credentials: c.AllowCredentials, expose: strings.Join(c.ExposeHeaders, ", ")}
	for _, o := range c.AllowOrigins {
		o = strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/"))
		switch {
		case o == "*":
			p.anyOrigin = true
		case strings.Contains(o, "://*."):
			scheme, host, _ := strings.Cut(o, "://*")
			p.subdomains = append(p.subdomains, originPattern{scheme + "://", host})
		case o != "":
			p.origins = append(p.origins, o)
		}
	}
	for _, m := range c.AllowMethods {
		p.methods = append(p.methods, strings.ToUpper(strings.TrimSpace(m)))
	}
	for _, h := range c.AllowHeaders {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "*" {
			p.anyHeader = true
			continue
		}
		p.headers = append(p.headers, h)
	}
	if c.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(int64(c.MaxAge.D().Seconds()), 10)
	}
	return p
}

func (p *corsPolicy) allowsOrigin(origin string) bool {
	if p.anyOrigin {
		return true
	}
	o := strings.ToLower(origin)
	if slices.Contains(p.origins, o) {
		return true
	}
	for _, sp := range p.subdomains {
		if rest, ok := strings.CutPrefix(o, sp.scheme); ok && len(rest) > len(sp.suffix) && strings.HasSuffix(rest, sp.suffix) {
			return true
		}
	}
	return false
}

// allowOrigin is the Access-Control-Allow-Origin value: "*" only for a public
// policy without credentials (browsers refuse "*" with credentials).
func (p *corsPolicy) allowOrigin(origin string) string {
	if p.anyOrigin && !p.credentials {
		return "*"
	}
	return origin
}

func (p *corsPolicy) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			p.preflight(w, r, origin)
			return
		}
		next.ServeHTTP(&corsWriter{ResponseWriter: w, p: p, origin: origin, allowed: p.allowsOrigin(origin)}, r)
	})
}

// preflight answers 204 with what the browser asked for, or 403 naming what is
// not allowed.
func (p *corsPolicy) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	if !p.allowsOrigin(origin) {
		problem.Write(w, r, http.StatusForbidden, "Forbidden", "CORS preflight refused: origin not allowed")
		return
	}
	method := strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
	if len(p.methods) > 0 && !slices.Contains(p.methods, method) {
		problem.Write(w, r, http.StatusForbidden, "Forbidden", "CORS preflight refused: method "+method+" not allowed")
		return
	}
	var requested []string
	for _, v := range r.Header.Values("Access-Control-Request-Headers") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
				requested = append(requested, f)
			}
		}
	}
	if !p.anyHeader {
		for _, rh := range requested {
			if !slices.Contains(p.headers, rh) {
				problem.Write(w, r, http.StatusForbidden, "Forbidden", "CORS preflight refused: header "+rh+" not allowed")
				return
			}
		}
	}
	h.Set("Access-Control-Allow-Origin", p.allowOrigin(origin))
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if len(p.methods) > 0 {
		h.Set("Access-Control-Allow-Methods", strings.Join(p.methods, ", "))
	} else {
		h.Set("Access-Control-Allow-Methods", method)
	}
	if len(requested) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(requested, ", "))
	}
	if p.maxAge != "" {
		h.Set("Access-Control-Max-Age", p.maxAge)
	}
	w.WriteHeader(http.StatusNoContent)
}

// corsWriter puts the gateway's CORS headers on the response as it is
// written, replacing any the upstream sent: the API's policy is the gateway's.
type corsWriter struct {
	http.ResponseWriter
	p       *corsPolicy
	origin  string
	allowed bool
	applied bool
}

func (w *corsWriter) apply() {
	if w.applied {
		return
	}
	w.applied = true
	h := w.Header()
	for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
		"Access-Control-Expose-Headers", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
		"Access-Control-Max-Age"} {
		h.Del(k)
	}
	h.Add("Vary", "Origin")
	if !w.allowed {
		return
	}
	h.Set("Access-Control-Allow-Origin", w.p.allowOrigin(w.origin))
	if w.p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if w.p.expose != "" {
		h.Set("Access-Control-Expose-Headers", w.p.expose)
	}
}

func (w *corsWriter) WriteHeader(code int) {
	if code >= 200 {
		w.apply()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *corsWriter) Write(b []byte) (int, error) {
	w.apply()
	return w.ResponseWriter.Write(b)
}

// Flush sends the headers (with CORS) and flushes, for streamed responses.
func (w *corsWriter) Flush() {
	w.apply()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (Hijack for
// WebSocket upgrades, deadlines).
func (w *corsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
