// Package policy holds the gateway's request policies: CORS, mutual TLS,
// authentication (JWT, OAuth2 introspection, API keys, Basic), rate limits and
// request validation. Each is a filter.Factory in its own file; Factories returns
// them in the order the gateway must run them.
//
// Everything a policy needs from the Bundle and the Binding is resolved in Build,
// once per route and Binding generation: files are read, keys parsed, limiters
// and clients created. A request then runs precompiled closures. One exception:
// an operation's validation schemas are parsed on its first validated request,
// from an index of the OpenAPI document made before the first generation (see
// specIndex), so that a large definition costs neither start time nor memory
// for operations that see no traffic.
//
// What a client sees:
//
//   - Security follows OpenAPI: a route passes when every scheme of one
//     alternative passes, with its scopes; an empty alternative makes
//     credentials optional. Missing or bad credentials are 401 with one
//     WWW-Authenticate challenge per scheme (RFC 6750 error="invalid_token" for
//     a bad bearer token); valid credentials lacking a scope are 403 with
//     error="insufficient_scope"; a scheme that cannot be checked (JWKS never
//     fetched, introspection down) is 503. All are RFC 9457 problems, and none
//     reaches the upstream. Configured claim headers are set from verified
//     claims and removed from every request otherwise, on every route of the
//     API (public ones too), so a client cannot supply them.
//   - What goes upstream of the credentials: an API key (header, query
//     parameter or cookie, as its securityScheme says) is removed from every
//     request on a route that names the scheme, other parameters and cookies
//     left as sent — unless the route's operation declares that very
//     parameter itself, in which case the definition says the upstream takes
//     it. An API key is a long-lived secret shared with the gateway only, with
//     no audience or expiry, so the upstream (and its logs) should never hold
//     it; the upstream learns the caller from the consumer identity. A limit
//     keyed by the API-key header counts per key id for that reason.
//     Authorization is forwarded unchanged for JWT, OAuth2 and Basic when
//     the alternative that passed verified it: it is where upstreams
//     conventionally read the caller's credential (token relay, a resource
//     server checking scopes itself), and a JWT is signed, audience-bound and
//     short-lived. On a route one of whose schemes reads Authorization, the
//     field is the gateway's: it is removed when another alternative passed
//     (an API key) or the request went on anonymously, so the upstream never
//     holds a token nobody verified, and a request with two is 400.
//   - Rate limits answer 429 with Retry-After, RateLimit-Policy and RateLimit
//     (draft-ietf-httpapi-ratelimit-headers); admitted requests carry the two
//     RateLimit fields too. The Redis store is one token bucket per key on the
//     Redis clock, shared by all replicas; busy keys of large buckets are
//     served from per-replica leases of tokens, fetched in the background
//     before they run out, so their requests rarely wait for Redis. The bound:
//     over any interval T the cluster admits at most capacity + rate·T +
//     replicas × min(1% of capacity, 16384) requests per key (a replica never
//     holds more unspent tokens); the long-run rate is exact, and unspent
//     tokens are dropped after a second (see ratelimit_lease.go).
//     When Redis cannot decide, a policy fails open (admit, counted in
//     gatekiln_ratelimit_store_failures_total) or closed (503), as the Binding
//     says, and a circuit keeps requests from waiting on a dead connection.
//   - Validation answers 400 naming each failing field by JSON pointer
//     ("#/query/limit", "#/body/owner/email"), 413 over the body limit, 415 for a
//     content type the operation does not take; response validation (opt-in)
//     turns a response that breaks the definition into 502.
//   - CORS preflights are answered by the gateway (204, or 403 naming what is
//     not allowed); the API's CORS headers replace any the upstream sends.
package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// Factories returns the policies in the order filter documents:
// CORS → mTLS → security → rate limit → validation. The factories share one
// per-generation state (JWKS caches, the Redis client, limiters), so build them
// with one call and hand the whole list to the gateway.
func Factories() []filter.Factory {
	s := &shared{}
	return []filter.Factory{
		corsFactory{},
		&mtlsFactory{s},
		&securityFactory{s},
		&rateLimitFactory{s},
		&validationFactory{s},
	}
}

// shared is the state one Binding generation's chains have in common. A new
// generation starts empty; the previous one's background work stops with its
// Env.Context.
type shared struct {
	metricsOnce sync.Once
	m           *metrics

	mu    sync.Mutex
	gen   *generation
	specs map[*bundle.Bundle]specEntry
}

type specEntry struct {
	x   *specIndex
	err error
}

type generation struct {
	env filter.Env
	m   *metrics

	schemes map[string]schemeEntry
	limits  map[string]limitEntry
	redis   *redisStore
	// claimStrip: every field a scheme of the Binding sets from claims,
	// computed once by claimFields.
	claimStrip     []string
	claimStripDone bool
}

type schemeEntry struct {
	auth authenticator
	err  error
}

type limitEntry struct {
	policy *limitPolicy
	err    error
}

// generation returns the state for env.Generation, creating it on first use.
// Build calls for one generation come from one goroutine, but the mutex keeps
// this safe should two generations ever overlap.
func (s *shared) generation(env filter.Env) *generation {
	s.metricsOnce.Do(func() { s.m = newMetrics(env.Metrics) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == nil || s.gen.env.Generation != env.Generation {
		s.gen = &generation{
			env:     env,
			m:       s.m,
			schemes: map[string]schemeEntry{},
			limits:  map[string]limitEntry{},
		}
	}
	return s.gen
}

// readBindingFile reads a file named by the Binding, relative to its directory.
func readBindingFile(env filter.Env, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("no file named")
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(env.BindingDir, name)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// readSecretString reads a one-value secret file; a trailing newline (as
// editors and `kubectl create secret --from-file` often leave) is not part of it.
func readSecretString(env filter.Env, name string) (string, error) {
	data, err := readBindingFile(env, name)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// realm names the API in WWW-Authenticate challenges.
func realm(api *bundle.Bundle) string {
	if api.API.Title != "" {
		return api.API.Title
	}
	return "gatekiln"
}
