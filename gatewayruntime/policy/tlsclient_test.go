package policy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// logBuffer collects a logger's output; the JWKS cache logs from its own goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// privateIssuer is an authorization server's certificate on 127.0.0.1, issued
// by a CA no system trusts.
func privateIssuer(t *testing.T) (ca *testCA, cert tls.Certificate) {
	t.Helper()
	ca = newCA(t, "private issuer CA")
	return ca, ca.issue(t, certOpts{cn: "issuer", usage: x509.ExtKeyUsageServerAuth, ip: net.ParseIP("127.0.0.1")})
}

// TestJWKSPrivateCA: over real HTTPS on loopback, a JWKS served with a
// certificate from a private CA is trusted when the Binding's jwt.caFile
// names that CA, and not otherwise: the gateway then has no keys (503, the
// upstream never reached) and its log says the certificate is not trusted.
func TestJWKSPrivateCA(t *testing.T) {
	ks := testKeys(t)
	ca, cert := privateIssuer(t)
	other := newCA(t, "another CA")
	js := startJWKSServer(t, &cert, ks["rsa-1"])
	tok := sign(t, ks["rsa-1"], claims(nil))
	tests := []struct {
		name   string
		caFile string
		files  map[string]string
		status int
	}{
		{"the issuer's CA in caFile", "jwks-ca.crt", map[string]string{"jwks-ca.crt": string(ca.pem)}, http.StatusOK},
		{"no caFile: the system roots", "", nil, http.StatusServiceUnavailable},
		{"another CA in caFile", "jwks-ca.crt", map[string]string{"jwks-ca.crt": string(other.pem)}, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			gw, up := jwtGateway(t, &bundle.JWTBinding{Issuer: testIssuer, JWKSURL: js.srv.URL, CAFile: tt.caFile}, tt.files,
				gatewayOptions{log: slog.New(slog.NewTextHandler(logs, nil))})
			res := gw.do(t, "GET", "/v1/pets", bearer(tok), "")
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			fetches := map[string]string{"scheme": "jwt", "result": "ok"}
			if tt.status == http.StatusOK {
				if up.hits.Load() != 1 || res.echo.Headers["X-Test-Identity"] != "jwt/alice" {
					t.Fatalf("upstream hits %d, identity %q", up.hits.Load(), res.echo.Headers["X-Test-Identity"])
				}
				if n := gw.counter(t, "gatekiln_jwks_fetches_total", fetches); n < 1 {
					t.Fatalf("%v successful JWKS fetches", n)
				}
				if strings.Contains(logs.String(), "jwks fetch failed") {
					t.Fatalf("log: %s", logs)
				}
				return
			}
			if up.hits.Load() != 0 {
				t.Fatal("upstream reached without verified keys")
			}
			if res.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			// The log names the TLS failure and what to set.
			waitFor(t, 10*time.Second, "the failed fetch's log line", func() bool {
				return strings.Contains(logs.String(), "jwks fetch failed")
			})
			for _, want := range []string{"certificate is not trusted", "jwt.caFile", "jwt.caSecretRef", "x509: certificate signed by unknown authority"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log does not say %q:\n%s", want, logs)
				}
			}
			fetches["result"] = "error"
			if n := gw.counter(t, "gatekiln_jwks_fetches_total", fetches); n < 1 {
				t.Errorf("%v failed JWKS fetches counted", n)
			}
		})
	}
}

// TestJWKSCAFileReload: the CA file is read with its Binding generation, like
// every Binding file: fixing it takes effect at the next reload, and the
// previous generation keeps what it read.
func TestJWKSCAFileReload(t *testing.T) {
	ks := testKeys(t)
	ca, cert := privateIssuer(t)
	js := startJWKSServer(t, &cert, ks["rsa-1"])
	api := jwtAPI(t)
	b := binding()
	b.Security["jwt"] = bundle.SecurityBinding{JWT: &bundle.JWTBinding{Issuer: testIssuer, JWKSURL: js.srv.URL, CAFile: "jwks-ca.crt"}}
	dir := writeFiles(t, map[string]string{"jwks-ca.crt": string(newCA(t, "a stale CA").pem)})
	sec := Factories()[2]
	build := func(gen uint64) http.Handler {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		env := envFor(ctx, dir)
		env.Generation = gen
		mw, err := sec.Build(api, &api.Routes[0], b, env)
		if err != nil {
			t.Fatal(err)
		}
		return mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	}
	tok := sign(t, ks["rsa-1"], claims(nil))
	call := func(h http.Handler) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(api.Routes[0].Method, "/v1/pets", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		h.ServeHTTP(w, r)
		return w.Code
	}
	gen1 := build(1)
	if got := call(gen1); got != http.StatusServiceUnavailable {
		t.Fatalf("generation 1 with a stale CA: status %d, want 503", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks-ca.crt"), ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	gen2 := build(2)
	if got := call(gen2); got != http.StatusNoContent {
		t.Fatalf("generation 2 with the issuer's CA: status %d, want 204", got)
	}
	if got := call(gen1); got != http.StatusServiceUnavailable {
		t.Fatalf("generation 1 changed under its chain: status %d", got)
	}
}

// TestIntrospectionPrivateCA: the introspection client shares the JWKS
// fetcher's transport; over real HTTPS, oauth2.caFile makes a private CA's
// server trusted, and without it the token cannot be checked (503).
func TestIntrospectionPrivateCA(t *testing.T) {
	ca, cert := privateIssuer(t)
	is := startIntrospectionServer(t, &cert)
	is.set("reader", map[string]any{"active": true, "scope": "pets:read", "sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	api := petstore(t, func(r *bundle.Route) { r.Security = []bundle.SecurityRequirement{{{Name: "oauth"}}} })
	api.SecuritySchemes["oauth"] = bundle.SecurityScheme{Type: bundle.SchemeOAuth2, Flows: map[string]bundle.OAuthFlow{
		"clientCredentials": {TokenURL: "https://auth.test/token", Scopes: map[string]string{"pets:read": ""}}}}
	files := map[string]string{"id": "gateway/qa\n", "secret": "s3cret!", "ca.crt": string(ca.pem)}
	for _, tt := range []struct {
		caFile string
		status int
		hits   int64
	}{{"ca.crt", http.StatusOK, 1}, {"", http.StatusServiceUnavailable, 0}} {
		t.Run("caFile="+tt.caFile, func(t *testing.T) {
			b := binding()
			b.Security["oauth"] = bundle.SecurityBinding{OAuth2: &bundle.OAuth2Binding{
				IntrospectionURL: is.srv.URL, ClientIDFile: "id", ClientSecretFile: "secret", CAFile: tt.caFile}}
			up := newUpstream(t)
			gw := startGateway(t, api, b, writeFiles(t, files), up)
			if res := gw.do(t, "GET", "/v1/pets", bearer("reader"), ""); res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if up.hits.Load() != tt.hits {
				t.Fatalf("upstream hits %d, want %d", up.hits.Load(), tt.hits)
			}
		})
	}
}
