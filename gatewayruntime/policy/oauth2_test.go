package policy

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// introspectionServer is an RFC 7662 endpoint on loopback that knows a few
// tokens, insists on the gateway's client credentials, and counts calls.
type introspectionServer struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	tokens map[string]map[string]any
	down   bool
}

func newIntrospectionServer(t *testing.T) *introspectionServer {
	t.Helper()
	return startIntrospectionServer(t, nil)
}

// startIntrospectionServer serves over HTTPS with cert when cert is not nil.
func startIntrospectionServer(t *testing.T, cert *tls.Certificate) *introspectionServer {
	t.Helper()
	s := &introspectionServer{tokens: map[string]map[string]any{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok || id != "gateway%2Fqa" || secret != "s3cret%21" {
			// RFC 6749 §2.3.1: the credentials arrive form-encoded inside Basic.
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		if r.PostFormValue("token") == "poison" {
			// Some servers refuse a token they cannot parse as a bad request.
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		claims, ok := s.tokens[r.PostFormValue("token")]
		s.mu.Unlock()
		if !ok {
			claims = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(claims)
	}))
	startServer(t, s.srv, cert)
	return s
}

func (s *introspectionServer) set(tok string, claims map[string]any) {
	s.mu.Lock()
	s.tokens[tok] = claims
	s.mu.Unlock()
}

func TestOAuth2Introspection(t *testing.T) {
	is := newIntrospectionServer(t)
	exp := time.Now().Add(time.Hour).Unix()
	is.set("reader", map[string]any{"active": true, "scope": "pets:read", "sub": "bob", "client_id": "app", "exp": exp, "tenant": "acme"})
	is.set("writer", map[string]any{"active": true, "scope": "pets:read pets:write", "client_id": "robot", "exp": exp})
	is.set("expired", map[string]any{"active": true, "scope": "pets:write", "sub": "eve", "exp": time.Now().Add(-time.Minute).Unix()})
	is.set("revoked", map[string]any{"active": false, "sub": "mallory"})

	api := petstore(t, func(r *bundle.Route) {
		ref := bundle.SchemeRef{Name: "oauth"}
		if r.Method == "POST" {
			ref.Scopes = []string{"pets:write"}
		}
		r.Security = []bundle.SecurityRequirement{{ref}}
	})
	api.SecuritySchemes["oauth"] = bundle.SecurityScheme{Type: bundle.SchemeOAuth2, Flows: map[string]bundle.OAuthFlow{
		"clientCredentials": {TokenURL: "https://auth.test/token", Scopes: map[string]string{"pets:read": "", "pets:write": ""}}}}
	b := binding()
	b.Security["oauth"] = bundle.SecurityBinding{OAuth2: &bundle.OAuth2Binding{
		IntrospectionURL: is.srv.URL, ClientIDFile: "id", ClientSecretFile: "secret",
		ClaimHeaders: map[string]string{"tenant": "X-Tenant", "client_id": "X-Client"},
	}}
	up := newUpstream(t)
	gw := startGateway(t, api, b, writeFiles(t, map[string]string{"id": "gateway/qa\n", "secret": "s3cret!"}), up)

	tests := []struct {
		name, method, token string
		status              int
		tenant, client      string
	}{
		{"active reader lists", "GET", "reader", 200, "acme", "app"},
		{"reader cannot create", "POST", "reader", 403, "", ""},
		{"writer creates", "POST", "writer", 200, "", "robot"},
		{"expired per exp", "GET", "expired", 401, "", ""},
		{"revoked", "GET", "revoked", 401, "", ""},
		{"unknown", "GET", "nobody-knows", 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := bearer(tt.token)
			hdr["X-Tenant"] = "spoofed"
			res := gw.do(t, tt.method, "/v1/pets", hdr, `{"id":1,"name":"rex"}`)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 200 && (res.echo.Headers["X-Tenant"] != tt.tenant || res.echo.Headers["X-Client"] != tt.client) {
				t.Fatalf("claim headers upstream: %v", res.echo.Headers)
			}
		})
	}
	if got := up.hits.Load(); got != 2 {
		t.Fatalf("upstream hits %d, want 2", got)
	}

	// Cached: the same tokens again cost the authorization server nothing,
	// whether they were active or not.
	before := is.calls.Load()
	for range 20 {
		gw.do(t, "GET", "/v1/pets", bearer("reader"), "")
		gw.do(t, "GET", "/v1/pets", bearer("revoked"), "")
	}
	if got := is.calls.Load() - before; got != 0 {
		t.Fatalf("cached tokens caused %d introspection calls", got)
	}

	// Concurrent first uses of one token share one call.
	is.set("fresh", map[string]any{"active": true, "sub": "carol", "exp": exp})
	before = is.calls.Load()
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if res := gw.do(t, "GET", "/v1/pets", bearer("fresh"), ""); res.status != 200 {
				t.Errorf("fresh token: status %d", res.status)
			}
		})
	}
	wg.Wait()
	if got := is.calls.Load() - before; got < 1 || got > 2 {
		t.Fatalf("30 concurrent requests caused %d introspection calls", got)
	}

	// A token the server refuses as a bad request is that token's problem
	// (401), not the server's: other new tokens are still checked.
	if res := gw.do(t, "GET", "/v1/pets", bearer("poison"), ""); res.status != http.StatusUnauthorized {
		t.Fatalf("token refused by the server: status %d, want 401", res.status)
	}
	is.set("after-poison", map[string]any{"active": true, "sub": "dan", "exp": exp})
	if res := gw.do(t, "GET", "/v1/pets", bearer("after-poison"), ""); res.status != 200 {
		t.Fatalf("a good token right after a refused one: status %d, want 200", res.status)
	}

	// The authorization server down: a new token cannot be checked (503), a
	// cached one still passes, and nothing unchecked reaches the upstream.
	is.mu.Lock()
	is.down = true
	is.mu.Unlock()
	hits := up.hits.Load()
	if res := gw.do(t, "GET", "/v1/pets", bearer("brand-new"), ""); res.status != http.StatusServiceUnavailable {
		t.Fatalf("introspection down: status %d, want 503", res.status)
	}
	if up.hits.Load() != hits {
		t.Fatal("an unchecked token reached the upstream")
	}
	if res := gw.do(t, "GET", "/v1/pets", bearer("reader"), ""); res.status != 200 {
		t.Fatalf("cached token while introspection is down: status %d", res.status)
	}
	// Right after a failure, other new tokens do not wait on the server again.
	calls := is.calls.Load()
	for i := range 10 {
		if res := gw.do(t, "GET", "/v1/pets", bearer(fmt.Sprintf("new-%d", i)), ""); res.status != http.StatusServiceUnavailable {
			t.Fatalf("introspection down: status %d, want 503", res.status)
		}
	}
	if got := is.calls.Load() - calls; got > 1 {
		t.Fatalf("%d introspection calls within the cooldown", got)
	}
	if got := gw.counter(t, "gatekiln_oauth2_introspections_total", map[string]string{"result": "error"}); got < 1 || got > 2 {
		t.Fatalf("introspection error metric = %v, want 1 or 2", got)
	}
	// Once it answers again, so do new tokens.
	is.set("later", map[string]any{"active": true, "sub": "erin", "exp": exp})
	is.mu.Lock()
	is.down = false
	is.mu.Unlock()
	waitFor(t, 5*time.Second, "introspection to be used again", func() bool {
		return gw.do(t, "GET", "/v1/pets", bearer("later"), "").status == 200
	})
}

// A token's cached result never outlives the token.
func TestIntrospectionCacheBoundedByExpiry(t *testing.T) {
	is := newIntrospectionServer(t)
	is.set("short", map[string]any{"active": true, "sub": "dave", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
	api := petstore(t, func(r *bundle.Route) { r.Security = []bundle.SecurityRequirement{{{Name: "oauth"}}} })
	api.SecuritySchemes["oauth"] = bundle.SecurityScheme{Type: bundle.SchemeOAuth2}
	b := binding()
	b.Security["oauth"] = bundle.SecurityBinding{OAuth2: &bundle.OAuth2Binding{
		IntrospectionURL: is.srv.URL, ClientIDFile: "id", ClientSecretFile: "secret", CacheTTL: bundle.Duration(time.Hour)}}
	gw := startGateway(t, api, b, writeFiles(t, map[string]string{"id": "gateway/qa", "secret": "s3cret!"}), newUpstream(t))
	if res := gw.do(t, "GET", "/v1/pets", bearer("short"), ""); res.status != 200 {
		t.Fatalf("status %d", res.status)
	}
	// Past exp the cache entry is gone; the server (which still says active)
	// is asked again and its exp is honoured.
	waitFor(t, 5*time.Second, "the token to expire", func() bool {
		return gw.do(t, "GET", "/v1/pets", bearer("short"), "").status == http.StatusUnauthorized
	})
	if is.calls.Load() < 2 {
		t.Fatalf("introspection calls %d: the cache outlived the token", is.calls.Load())
	}
}
