package policy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http/httpguts"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

// An authenticator verifies one security scheme's credentials. It is built once
// per generation and shared by every route naming the scheme.
type authenticator interface {
	// authenticate returns who sent the request, or why not.
	authenticate(r *http.Request) (*principal, *authError)
	// challenge is the WWW-Authenticate value for a 401; err is the scheme's own
	// failure (nil when it was never tried).
	challenge(err *authError) string
	// checksScopes says whether OpenAPI scopes apply to the scheme (OAuth2 and
	// JWT); for the others the OpenAPI scope list is informative only.
	checksScopes() bool
}

// A credentialConsumer is a scheme whose credential is meant for the gateway
// alone (API keys): the gateway removes it before the request goes upstream.
type credentialConsumer interface {
	// location says where the credential travels (header, query or cookie, and its name).
	location() (in, name string)
	// strip removes the credential from r.
	strip(r *http.Request)
}

// principal is a verified credential. Authenticators may return the same
// principal for many requests (from a cache): it is read-only once built.
type principal struct {
	identity filter.Identity
	scopes   []string
	headers  []headerValue
}

type headerValue struct{ name, value string }

type failure int

const (
	// failMissing: the request carries no credential for the scheme.
	failMissing failure = iota
	// failInvalid: a credential is there but does not verify.
	failInvalid
	// failUnavailable: the gateway could not verify it (introspection or JWKS down).
	failUnavailable
)

// authError is a scheme's verdict. detail is written for the client (no
// internals); reason is a fixed token for logs.
type authError struct {
	kind   failure
	reason string
	detail string
}

func (e *authError) Error() string { return e.reason + ": " + e.detail }

func missing(detail string) *authError {
	return &authError{kind: failMissing, reason: "missing", detail: detail}
}

func invalid(reason, detail string) *authError {
	return &authError{kind: failInvalid, reason: reason, detail: detail}
}

func unavailable(reason, detail string) *authError {
	return &authError{kind: failUnavailable, reason: reason, detail: detail}
}

// securityFactory evaluates a route's security requirements with OpenAPI
// semantics: the route passes when every scheme of at least one alternative
// passes (with its scopes). An empty alternative makes credentials optional.
type securityFactory struct{ s *shared }

func (f *securityFactory) Name() string { return "security" }

// LoopSafe (filter.LoopSafe): API keys and JWTs verified with the Binding's
// own keys are computed; a JWKS fetch and token introspection are network
// calls, and a Basic password check (bcrypt) takes milliseconds of CPU.
func (f *securityFactory) LoopSafe(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding) bool {
	for _, alt := range route.Security {
		for _, ref := range alt {
			var sb bundle.SecurityBinding
			if b != nil {
				sb = b.Security[ref.Name]
			}
			switch api.SecuritySchemes[ref.Name].Type {
			case bundle.SchemeAPIKey:
			case bundle.SchemeJWT, bundle.SchemeOAuth2:
				if sb.OAuth2 != nil || sb.JWT == nil || sb.JWT.JWKSURL != "" {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

func (f *securityFactory) Build(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding, env filter.Env) (filter.Middleware, error) {
	g := f.s.generation(env)
	if len(route.Security) == 0 {
		// A public operation may share its upstream with protected ones,
		// which trusts the claim fields: a client must not set them here
		// either.
		if strip := g.claimFields(b); len(strip) > 0 {
			ev := &evaluator{strip: strip}
			return func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ev.stripForwarded(r)
					next.ServeHTTP(w, r)
				})
			}, nil
		}
		return nil, nil
	}
	ev, err := g.requirements(api, route, b)
	if err != nil {
		return nil, err
	}
	for _, a := range ev.schemes {
		if c, ok := a.(credentialConsumer); ok && !f.declaredParameter(api, route, c) {
			ev.consumed = append(ev.consumed, c)
		}
	}
	return ev.middleware, nil
}

// ReadDocument indexes the document (filter.DocumentReader): the security
// filter asks it which parameters an operation declares.
func (f *securityFactory) ReadDocument(api *bundle.Bundle) { _, _ = f.s.spec(api) }

// declaredParameter reports whether the route's operation declares c's
// credential as one of its own parameters: then the definition says the
// upstream takes it, and it is forwarded. (Stripping it would also make a
// required parameter fail validation.) A document that cannot be read
// declares nothing.
func (f *securityFactory) declaredParameter(api *bundle.Bundle, route *bundle.Route, c credentialConsumer) bool {
	in, name := c.location()
	x, err := f.s.spec(api)
	if err != nil {
		return false
	}
	key, err := x.find(api, route)
	if err != nil {
		return false
	}
	return x.declares(key, route.Method, in, name)
}

// requirement is one scheme of an alternative with the scopes it must grant.
type requirement struct {
	idx    int // into evaluator.schemes
	scopes []string
}

type evaluator struct {
	schemes   []authenticator
	names     []string
	alts      [][]requirement
	anonymous bool // an empty alternative: no credentials needed
	// strip: the claim fields of every scheme of the Binding, which no
	// client may send (claimFields).
	strip []string
	// authz: a scheme of the route reads the Authorization field (bearer
	// tokens, basic): then the gateway owns that field and forwards it only
	// when the alternative that passed verified it.
	authz bool
	// consumed are the route's API-key schemes whose keys never go upstream.
	consumed []credentialConsumer
	realm    string
	// wanted describes the requirement for a 401 without credentials.
	wanted string

	unauthorized, forbidden, down prometheus.Counter
}

// requirements compiles route.Security against this generation's schemes.
func (g *generation) requirements(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding) (*evaluator, error) {
	ev := &evaluator{
		strip:        g.claimFields(b),
		realm:        realm(api),
		unauthorized: g.m.denied.WithLabelValues("security", "unauthenticated"),
		forbidden:    g.m.denied.WithLabelValues("security", "forbidden"),
		down:         g.m.denied.WithLabelValues("security", "unavailable"),
	}
	index := map[string]int{}
	for _, alt := range route.Security {
		if len(alt) == 0 {
			ev.anonymous = true
			continue
		}
		var reqs []requirement
		for _, ref := range alt {
			i, ok := index[ref.Name]
			if !ok {
				a, err := g.scheme(api, ref.Name, b)
				if err != nil {
					return nil, err
				}
				i = len(ev.schemes)
				index[ref.Name] = i
				ev.schemes = append(ev.schemes, a)
				ev.names = append(ev.names, ref.Name)
				ev.authz = ev.authz || readsAuthorization(a)
			}
			var scopes []string
			if ev.schemes[i].checksScopes() {
				scopes = ref.Scopes
			}
			reqs = append(reqs, requirement{idx: i, scopes: scopes})
		}
		ev.alts = append(ev.alts, reqs)
	}
	var alts []string
	for _, alt := range ev.alts {
		var set []string
		for _, req := range alt {
			set = append(set, ev.names[req.idx])
		}
		alts = append(alts, strings.Join(set, " and "))
	}
	ev.wanted = "this operation requires credentials: " + strings.Join(alts, ", or ")
	return ev, nil
}

// claimFields lists every request field a scheme of the Binding sets from
// claims (canonical names), for all routes of the API to strip: a field one
// route's scheme sets is trusted by the upstream whatever route a request
// takes.
func (g *generation) claimFields(b *bundle.Binding) []string {
	if g.claimStripDone {
		return g.claimStrip
	}
	g.claimStripDone = true
	if b == nil {
		return nil
	}
	var fields []string
	add := func(m map[string]string) {
		for _, h := range m {
			if k := http.CanonicalHeaderKey(h); httpguts.ValidHeaderFieldName(h) && !slices.Contains(fields, k) {
				fields = append(fields, k)
			}
		}
	}
	for _, sb := range b.Security {
		if sb.JWT != nil {
			add(sb.JWT.ClaimHeaders)
		}
		if sb.OAuth2 != nil {
			add(sb.OAuth2.ClaimHeaders)
		}
	}
	slices.Sort(fields)
	g.claimStrip = fields
	return fields
}

// readsAuthorization says whether a scheme takes its credential from the
// Authorization field.
func readsAuthorization(a authenticator) bool {
	switch a.(type) {
	case *jwtScheme, *introspectionScheme, *basicScheme:
		return true
	}
	return false
}

// scheme returns the authenticator for a scheme name, building it once per generation.
func (g *generation) scheme(api *bundle.Bundle, name string, b *bundle.Binding) (authenticator, error) {
	if e, ok := g.schemes[name]; ok {
		return e.auth, e.err
	}
	a, err := g.buildScheme(api, name, b)
	if err != nil {
		err = fmt.Errorf("security scheme %s: %w", name, err)
	}
	g.schemes[name] = schemeEntry{a, err}
	return a, err
}

func (g *generation) buildScheme(api *bundle.Bundle, name string, b *bundle.Binding) (authenticator, error) {
	def, ok := api.SecuritySchemes[name]
	if !ok {
		return nil, errors.New("not declared in the bundle")
	}
	var sb bundle.SecurityBinding
	if b != nil {
		sb = b.Security[name]
	}
	rlm := realm(api)
	switch def.Type {
	case bundle.SchemeJWT:
		if sb.JWT == nil {
			return nil, errors.New("binding has no jwt values")
		}
		return newJWTScheme(g, name, rlm, sb.JWT)
	case bundle.SchemeOAuth2:
		// OAuth2 tokens are either opaque (introspected) or JWTs verified locally.
		switch {
		case sb.OAuth2 != nil:
			return newIntrospectionScheme(g, name, rlm, sb.OAuth2)
		case sb.JWT != nil:
			return newJWTScheme(g, name, rlm, sb.JWT)
		}
		return nil, errors.New("binding has neither oauth2 introspection nor jwt values")
	case bundle.SchemeAPIKey:
		if sb.APIKey == nil {
			return nil, errors.New("binding has no apiKey values")
		}
		return newAPIKeyScheme(g.env, name, rlm, def, sb.APIKey)
	case bundle.SchemeBasic:
		if sb.Basic == nil {
			return nil, errors.New("binding has no basic values")
		}
		return newBasicScheme(g.env, name, rlm, sb.Basic)
	case bundle.SchemeMTLS:
		if sb.MTLS == nil {
			return nil, errors.New("binding has no mtls values")
		}
		return newMTLSScheme(g.env, name, sb.MTLS)
	}
	return nil, fmt.Errorf("unknown type %q", def.Type)
}

// verdict is one scheme's result for one request, computed at most once.
type verdict struct {
	done bool
	p    *principal
	err  *authError
}

func (ev *evaluator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ev.authz && len(r.Header["Authorization"]) > 1 {
			// A singleton field (RFC 9110 §11.6.2): the gateway would check
			// one value and the upstream might act on the other.
			ev.unauthorized.Inc()
			problem.Write(w, r, http.StatusBadRequest, "", "the request has more than one Authorization field")
			return
		}
		// Few routes name more than four schemes; those allocate.
		var buf [4]verdict
		var verdicts []verdict
		if len(ev.schemes) <= len(buf) {
			verdicts = buf[:len(ev.schemes)]
		} else {
			verdicts = make([]verdict, len(ev.schemes))
		}
		eval := func(i int) *verdict {
			v := &verdicts[i]
			if !v.done {
				v.p, v.err = ev.schemes[i].authenticate(r)
				v.done = true
			}
			return v
		}
		var missingScopes []string
		for _, alt := range ev.alts {
			passed := true
			for _, req := range alt {
				v := eval(req.idx)
				if v.err != nil {
					passed = false
					break
				}
				if lack := lacking(v.p.scopes, req.scopes); len(lack) > 0 {
					if missingScopes == nil {
						missingScopes = lack
					}
					passed = false
					break
				}
			}
			if passed {
				ev.admit(w, r, next, alt, verdicts)
				return
			}
		}
		if ev.anonymous {
			// Credentials are optional: the request goes on anonymously,
			// without any credential sent for the route's schemes, none of
			// which verified.
			ev.stripForwarded(r)
			for _, c := range ev.consumed {
				c.strip(r)
			}
			if ev.authz {
				r.Header.Del("Authorization")
			}
			next.ServeHTTP(w, r)
			return
		}
		ev.refuse(w, r, verdicts, missingScopes)
	})
}

// stripForwarded removes what a client sent in the claim fields, also under
// the names that read as theirs with '_' for '-'.
func (ev *evaluator) stripForwarded(r *http.Request) {
	if len(ev.strip) == 0 {
		return
	}
	for _, h := range ev.strip {
		r.Header.Del(h)
	}
	for k := range r.Header {
		if filter.IsAliasOf(k, ev.strips) {
			delete(r.Header, k)
		}
	}
}

func (ev *evaluator) strips(canonical string) bool { return slices.Contains(ev.strip, canonical) }

// admit records the identity of the first scheme of the passing alternative and
// forwards the verified claims.
func (ev *evaluator) admit(w http.ResponseWriter, r *http.Request, next http.Handler, alt []requirement, verdicts []verdict) {
	ev.stripForwarded(r)
	for _, c := range ev.consumed {
		c.strip(r)
	}
	if ev.authz && !slices.ContainsFunc(alt, func(req requirement) bool { return readsAuthorization(ev.schemes[req.idx]) }) {
		// The alternative that passed did not verify the Authorization
		// field (an API key did): what it holds goes no further.
		r.Header.Del("Authorization")
	}
	for _, req := range alt {
		for _, h := range verdicts[req.idx].p.headers {
			r.Header.Set(h.name, h.value)
		}
	}
	ctx := filter.WithIdentity(r.Context(), &verdicts[alt[0].idx].p.identity)
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	next.ServeHTTP(w, r)
}

// refuse answers 403 when some alternative authenticated but lacked scopes, 503
// when a scheme could not be checked at all, and 401 otherwise.
func (ev *evaluator) refuse(w http.ResponseWriter, r *http.Request, verdicts []verdict, missingScopes []string) {
	if missingScopes != nil {
		ev.forbidden.Inc()
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`,
			ev.realm, strings.Join(missingScopes, " ")))
		problem.Write(w, r, http.StatusForbidden, "Forbidden",
			"the credentials do not grant the scope this operation requires: "+strings.Join(missingScopes, " "))
		return
	}
	var firstInvalid *authError
	for i := range verdicts {
		v := &verdicts[i]
		if v.err != nil && v.err.kind == failUnavailable {
			ev.down.Inc()
			w.Header().Set("Retry-After", "1")
			problem.Write(w, r, http.StatusServiceUnavailable, "Service Unavailable",
				"credentials cannot be verified right now: "+v.err.detail)
			return
		}
		if v.err != nil && v.err.kind == failInvalid && firstInvalid == nil {
			firstInvalid = v.err
		}
	}
	ev.unauthorized.Inc()
	h := w.Header()
	for i, a := range ev.schemes {
		if c := a.challenge(verdicts[i].err); c != "" {
			h.Add("WWW-Authenticate", c)
		}
	}
	detail := ev.wanted
	if firstInvalid != nil {
		detail = firstInvalid.detail
	}
	problem.Write(w, r, http.StatusUnauthorized, "Unauthorized", detail)
}

// lacking returns the required scopes that granted does not contain.
func lacking(granted, required []string) []string {
	var lack []string
	for _, s := range required {
		if !slices.Contains(granted, s) {
			lack = append(lack, s)
		}
	}
	return lack
}

// bearerToken extracts an RFC 6750 bearer token from the Authorization header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(prefix):])
	return tok, tok != ""
}

// bearerChallenge writes an RFC 6750 §3 challenge; an invalid token adds
// error="invalid_token" with a description.
func bearerChallenge(realm string, err *authError) string {
	if err != nil && err.kind == failInvalid {
		return fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`, realm, err.detail)
	}
	return fmt.Sprintf(`Bearer realm=%q`, realm)
}
