// Package filter is the contract between the gateway and the policies that run
// inside it (security, rate limits, validation, CORS).
//
// A policy is a Factory. At start-up, and again on every Binding reload, the
// gateway asks each Factory for the middleware of each route and composes the
// chains once; a request then runs a precompiled chain with no lookups by name.
//
// # Order
//
// Every route's chain runs in this order, outermost first:
//
//  1. request id           (gateway: accept a sane X-Request-Id or make one; echo it)
//  2. metrics, access log  (gateway: sees every response, including policy refusals)
//  3. routing              (gateway: 404, 405 + Allow; fills Route in the request State)
//  4. body limit           (gateway: 413 when Content-Length or the body exceeds the route's limit)
//  5. the Factories, in the order they are given to the gateway, which must be:
//     CORS → mTLS → authentication (security) → rate limit → validation
//  6. proxy                (gateway: the route's upstream; 502/503/504 as problems)
//
// CORS is first so that a preflight is answered without credentials; rate limits
// come after authentication so that a consumer key is known; validation is last
// so that unauthenticated or throttled requests cost no schema work.
//
// Dependency direction: the gateway packages import filter, never a policy
// package; cmd/gatekiln-gateway passes the policy Factories to the gateway.
// Policy packages import filter and problem (to answer), never the gateway.
package filter

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// RequestIDHeader carries the request id to the upstream and back to the client.
const RequestIDHeader = "X-Request-Id"

// Middleware wraps the rest of a route's chain.
type Middleware = func(http.Handler) http.Handler

// A Factory builds the middleware one policy contributes to one route.
//
// Build is called once per route for each Binding generation: at start-up and
// after each successful Binding reload. It returns nil when the policy has nothing
// to do on that route (no per-request cost then). An error rejects the whole
// Binding: the gateway keeps the previous generation in force and reports it.
//
// Calls for one generation come from one goroutine, never concurrently with
// another generation's, so a Factory may keep per-generation shared state (a
// JWKS cache, a Redis client, one limiter per policy) keyed by Env.Generation.
// Chains of the previous generation keep serving requests in flight until they
// finish, so shared state must not be torn down before Env.Context is done.
type Factory interface {
	// Name identifies the policy in logs and errors ("jwt", "ratelimit").
	Name() string
	Build(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding, env Env) (Middleware, error)
}

// DocumentReader is a Factory that reads the Bundle's OpenAPI document. The
// gateway calls ReadDocument once, before the first generation is built, and
// then drops api.OpenAPI (a large definition's is megabytes that would stay
// resident for nothing): Build must use what ReadDocument kept, not the
// document. A document that cannot be read is Build's error to report.
type DocumentReader interface {
	ReadDocument(api *bundle.Bundle)
}

// LoopSafe is implemented by a Factory whose middleware only computes on the
// routes it names: it never waits on anything (a network call, a file, a lock
// another request may hold while waiting) and never runs for long. The
// gateway serves the requests of a route whose every middleware is loop-safe
// on its event loop (coroutines of the rawconn poller, in the order their
// sockets became ready); any other route's requests leave the loop before
// their chain runs. A Factory that does not implement LoopSafe is taken to
// wait on the routes it builds middleware for.
type LoopSafe interface {
	LoopSafe(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding) bool
}

// Env is what the gateway hands every Factory.
type Env struct {
	// BindingDir is the directory holding binding.json; the Binding's *File
	// fields are relative to it.
	BindingDir string
	// Generation counts Binding loads, from 1; it changes exactly when a new set
	// of chains is being built.
	Generation uint64
	// Context is cancelled when this generation is replaced (after the previous
	// chains have been swapped out) or when the gateway stops: stop background
	// work (JWKS refresh, Redis pools) of this generation then.
	Context context.Context
	// Metrics is the gateway's registry, the same for every generation: register
	// collectors once (in the Factory's constructor or under a sync.Once), not per Build.
	Metrics prometheus.Registerer
	// Logger writes JSON through slog; use constant messages and lower-case keys.
	Logger *slog.Logger
}

// Route is what a filter sees of the matched route.
type Route struct {
	API    *bundle.Bundle
	Bundle *bundle.Route
	// Name is "METHOD /path/{template}", the route's label in metrics and logs.
	Name string
	// Params holds the path parameters in template order, percent-decoded;
	// empty when the template has none. A slice, not a map: most requests
	// have one or two, and a map would cost each of them an insert and a clear.
	Params []Param
}

// Param is one path parameter.
type Param struct{ Name, Value string }

// Param returns the value of the path parameter name, or "".
func (r *Route) Param(name string) string {
	for _, p := range r.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// ParamMap returns the path parameters as a new map (nil when there are
// none), for APIs that take one (openapi3filter).
func (r *Route) ParamMap() map[string]string {
	if len(r.Params) == 0 {
		return nil
	}
	m := make(map[string]string, len(r.Params))
	for _, p := range r.Params {
		m[p.Name] = p.Value
	}
	return m
}

// Identity is set by an authentication filter and read by rate limiting (the
// consumer key) and by forwarding.
type Identity struct {
	// Scheme is the security scheme name from the Bundle that authenticated the request.
	Scheme string
	// Subject is the consumer: JWT sub, introspected sub or client_id, API key id,
	// Basic user name, client certificate subject.
	Subject string
	Claims  map[string]any
}

// State is the gateway's per-request record. The gateway allocates one per
// request and puts it in the context once; the accessors below read it, so
// filters never need to build a new context for these values.
type State struct {
	Route     Route
	Identity  *Identity
	RequestID string
	// peer is the TCP peer address; clientIP is computed from it (and from
	// X-Forwarded-For when the peer is a trusted proxy) on first use.
	trusted  *TrustedProxies
	clientIP net.IP
	resolved bool
	// Storage reused by the next request on the same connection.
	params [8]Param
	idBuf  [1]string
}

type stateKey struct{}
type identityKey struct{}

// NewState returns the per-request record; trusted may be nil (no proxy is trusted).
func NewState(trusted *TrustedProxies) *State { return &State{trusted: trusted} }

// Reset clears s for the next request on the same connection. The gateway's
// HTTP/1.1 server reuses one State (and one *http.Request) per connection:
// filters must not keep either after their handler returns.
func (s *State) Reset(trusted *TrustedProxies) {
	*s = State{trusted: trusted}
}

// ParamBuf returns empty storage for Route.Params that the State reuses for
// the connection's next request.
func (s *State) ParamBuf() []Param { return s.params[:0] }

// SetRequestID records the request id and returns it as a one-element header
// value that the State reuses for the connection's next request.
func (s *State) SetRequestID(id string) []string {
	s.RequestID = id
	s.idBuf[0] = id
	return s.idBuf[:]
}

// WithState returns ctx carrying s. Only the gateway calls it.
func WithState(ctx context.Context, s *State) context.Context {
	return context.WithValue(ctx, stateKey{}, s)
}

// StateFrom returns the request's State, or nil outside the gateway.
func StateFrom(ctx context.Context) *State {
	s, _ := ctx.Value(stateKey{}).(*State)
	return s
}

// RouteFrom returns the matched route, or nil when none matched (or outside the gateway).
func RouteFrom(ctx context.Context) *Route {
	if s := StateFrom(ctx); s != nil && s.Route.Bundle != nil {
		return &s.Route
	}
	return nil
}

// RequestIDFrom returns the request id, or "".
func RequestIDFrom(ctx context.Context) string {
	if s := StateFrom(ctx); s != nil {
		return s.RequestID
	}
	return ""
}

// WithIdentity records who the request is from. Inside the gateway it updates
// the request State in place and returns ctx unchanged (no allocation, no need
// for r.WithContext); elsewhere it wraps ctx.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	if s := StateFrom(ctx); s != nil {
		s.Identity = id
		return ctx
	}
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the authenticated identity, or nil.
func IdentityFrom(ctx context.Context) *Identity {
	if s := StateFrom(ctx); s != nil {
		return s.Identity
	}
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// ClientIP returns the client's address. X-Forwarded-For is believed only as far
// as it was written by trusted proxies (Binding server.trustedProxies): walking
// from the TCP peer leftwards, the first hop that is not a trusted proxy is the
// client. A client cannot spoof its address by sending the header itself, because
// its own (untrusted) peer address stops the walk. Returns nil only when
// RemoteAddr is not an IP (a test with a hand-made request).
func ClientIP(r *http.Request) net.IP {
	s := StateFrom(r.Context())
	if s == nil {
		return peerIP(r.RemoteAddr)
	}
	if !s.resolved {
		s.clientIP = s.trusted.ClientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
		s.resolved = true
	}
	return s.clientIP
}

// IsAliasOf reports whether the field name k has a '_' and, read with '-'
// for each '_', is a name it reports. CGI, WSGI and PHP upstreams see
// X_User and X-User as one field (HTTP_X_USER), so a field the gateway sets
// or removes must also be removed under such a name, or a client could
// supply it that way.
func IsAliasOf(k string, is func(canonical string) bool) bool {
	if strings.IndexByte(k, '_') < 0 {
		return false
	}
	return is(http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")))
}
