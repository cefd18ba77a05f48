package policy

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const (
	// defaultIntrospectionTTL caps reuse of an active result when the Binding
	// gives no cacheTtl.
	defaultIntrospectionTTL = time.Minute
	// negativeTTL caps reuse of an inactive result: long enough that a flood of
	// one bad token costs the authorization server one call, short enough that a
	// token activated a moment later is not refused for long.
	negativeTTL = 10 * time.Second
	// introspectionCacheSize bounds the cache; past it, expired entries go first.
	introspectionCacheSize = 65536
	introspectionTimeout   = 3 * time.Second
	// introspectionCooldown: after a failed call, tokens not in the cache are
	// answered 503 at once for this long instead of each waiting on a server
	// that just failed.
	introspectionCooldown = time.Second
)

// introspectionScheme verifies opaque bearer tokens with RFC 7662 token
// introspection, authenticating to the authorization server with the client
// credentials from the Binding. Results are cached by the token's sha256 for
// no longer than the token lives.
type introspectionScheme struct {
	name, realm  string
	endpoint     string
	clientID     string
	clientSecret string
	client       *http.Client
	ttl          time.Duration
	claims       []claimHeader

	flight    singleflight.Group
	mu        sync.Mutex
	cache     map[[sha256.Size]byte]introspected
	downUntil atomic.Int64 // unix ns

	ok, inactive, failed prometheus.Counter
}

type introspected struct {
	p       *principal // nil: inactive
	expires time.Time
}

func newIntrospectionScheme(g *generation, name, realm string, ob *bundle.OAuth2Binding) (*introspectionScheme, error) {
	u, err := url.Parse(ob.IntrospectionURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("introspection url %q: want an http(s) URL", bundle.RedactURL(ob.IntrospectionURL))
	}
	s := &introspectionScheme{
		name:     name,
		realm:    realm,
		endpoint: ob.IntrospectionURL,
		ttl:      ob.CacheTTL.D(),
		cache:    map[[sha256.Size]byte]introspected{},
		ok:       g.m.introspection.WithLabelValues(name, "active"),
		inactive: g.m.introspection.WithLabelValues(name, "inactive"),
		failed:   g.m.introspection.WithLabelValues(name, "error"),
	}
	if s.ttl <= 0 {
		s.ttl = defaultIntrospectionTTL
	}
	if ob.ClientIDFile != "" {
		if s.clientID, err = readSecretString(g.env, ob.ClientIDFile); err != nil {
			return nil, err
		}
	}
	if ob.ClientSecretFile != "" {
		if s.clientSecret, err = readSecretString(g.env, ob.ClientSecretFile); err != nil {
			return nil, err
		}
	}
	tr, err := outboundTransport(g.env, ob.CAFile)
	if err != nil {
		return nil, err
	}
	s.client = &http.Client{Transport: tr, Timeout: introspectionTimeout}
	claims, err := parseClaimHeaders(ob.ClaimHeaders)
	if err != nil {
		return nil, err
	}
	s.claims = claims
	return s, nil
}

func (s *introspectionScheme) checksScopes() bool { return true }

func (s *introspectionScheme) challenge(err *authError) string { return bearerChallenge(s.realm, err) }

func (s *introspectionScheme) authenticate(r *http.Request) (*principal, *authError) {
	tok, ok := bearerToken(r)
	if !ok {
		return nil, missing("send a bearer token in the Authorization header")
	}
	if len(tok) > maxTokenBytes {
		return nil, invalid("too_large", "the token is too large")
	}
	sum := sha256.Sum256([]byte(tok))
	now := time.Now()
	if e, ok := s.lookup(sum, now); ok {
		return e.verdict()
	}
	if now.UnixNano() < s.downUntil.Load() {
		return nil, unavailable("introspection", "the token cannot be checked with the authorization server")
	}
	v, err, _ := s.flight.Do(string(sum[:]), func() (any, error) {
		e, err := s.introspect(r.Context(), tok, now)
		if err != nil {
			s.failed.Inc()
			s.downUntil.Store(time.Now().Add(introspectionCooldown).UnixNano())
			return nil, err
		}
		s.store(sum, e, now)
		return e, nil
	})
	if err != nil {
		return nil, unavailable("introspection", "the token cannot be checked with the authorization server")
	}
	return v.(introspected).verdict()
}

func (e introspected) verdict() (*principal, *authError) {
	if e.p == nil {
		return nil, invalid("inactive", "the token is not active")
	}
	return e.p, nil
}

func (s *introspectionScheme) lookup(sum [sha256.Size]byte, now time.Time) (introspected, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache[sum]
	if !ok || !now.Before(e.expires) {
		return introspected{}, false
	}
	return e, true
}

func (s *introspectionScheme) store(sum [sha256.Size]byte, e introspected, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= introspectionCacheSize {
		for k, old := range s.cache {
			if !now.Before(old.expires) {
				delete(s.cache, k)
			}
		}
		// Still full of live entries: drop an arbitrary tenth rather than grow.
		for k := range s.cache {
			if len(s.cache) < introspectionCacheSize*9/10 {
				break
			}
			delete(s.cache, k)
		}
	}
	s.cache[sum] = e
}

// introspectionResponse is RFC 7662 §2.2.
type introspectionResponse struct {
	Active   bool   `json:"active"`
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Username string `json:"username"`
	Sub      string `json:"sub"`
	Exp      int64  `json:"exp"`
	Nbf      int64  `json:"nbf"`
}

// introspect asks the authorization server about tok. An error means the
// server could not answer (network, a 5xx, 401, 403, 408 or 429 status,
// garbage), never that the token is bad; another 4xx is about the token.
func (s *introspectionScheme) introspect(ctx context.Context, tok string, now time.Time) (introspected, error) {
	// The call is shared by concurrent requests for the same token, so one
	// client going away must not cancel it for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), introspectionTimeout)
	defer cancel()
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return introspected{}, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if s.clientID != "" {
		// RFC 6749 §2.3.1: form-encode the credentials before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(s.clientSecret))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return introspected{}, fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	switch c := resp.StatusCode; {
	case c == http.StatusOK:
	case c >= 400 && c < 500 && c != http.StatusUnauthorized && c != http.StatusForbidden &&
		c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		// The server refused the request for this token (a token it cannot
		// parse, say): the token is not active. Taking it for an outage would
		// let one client's token make every new token wait out the cooldown.
		s.inactive.Inc()
		return introspected{expires: now.Add(min(s.ttl, negativeTTL))}, nil
	default:
		// The gateway's own credentials refused, the server busy or failing.
		return introspected{}, fmt.Errorf("introspect: status %d", c)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return introspected{}, fmt.Errorf("read introspection: %w", err)
	}
	var ir introspectionResponse
	if err := json.Unmarshal(body, &ir); err != nil {
		return introspected{}, fmt.Errorf("decode introspection: %w", err)
	}
	ttl := s.ttl
	if !ir.Active || (ir.Exp != 0 && !now.Before(time.Unix(ir.Exp, 0))) || (ir.Nbf != 0 && now.Before(time.Unix(ir.Nbf, 0))) {
		s.inactive.Inc()
		return introspected{expires: now.Add(min(ttl, negativeTTL))}, nil
	}
	s.ok.Inc()
	if ir.Exp != 0 {
		ttl = min(ttl, time.Unix(ir.Exp, 0).Sub(now))
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil {
		return introspected{}, fmt.Errorf("decode introspection: %w", err)
	}
	p := &principal{scopes: strings.Fields(ir.Scope), headers: claimHeaders(s.claims, claims)}
	p.identity.Scheme = s.name
	p.identity.Claims = claims
	switch {
	case ir.Sub != "":
		p.identity.Subject = ir.Sub
	case ir.Username != "":
		p.identity.Subject = ir.Username
	default:
		p.identity.Subject = ir.ClientID
	}
	return introspected{p: p, expires: now.Add(ttl)}, nil
}
