package policy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(c int)           { w.code = c }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkPolicies measures each policy's cost per request, in process (no
// HTTP), with the State reused as the gateway reuses it per connection.
func BenchmarkPolicies(b *testing.B) {
	t := &testing.T{}
	ks := testKeys(t)
	cert := selfSigned(t, ks["rsa-1"].priv)
	dir := b.TempDir()
	writeFile := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	writeFile("issuer.pem", cert)
	writeFile("keys", []byte("alice:"+sha("alice-secret-key")+"\n"))
	tok := sign(t, testKey{"", "RS256", ks["rsa-1"].priv}, claims(nil))

	cases := []struct {
		name string
		edit func(r *bundle.Route)
		hdr  map[string]string
	}{
		{"none", func(r *bundle.Route) {}, nil},
		{"jwt", func(r *bundle.Route) {
			r.Security = []bundle.SecurityRequirement{{{Name: "jwt", Scopes: []string{"pets:read"}}}}
		},
			map[string]string{"Authorization": "Bearer " + tok}},
		{"apikey", func(r *bundle.Route) { r.Security = []bundle.SecurityRequirement{{{Name: "key"}}} },
			map[string]string{"X-Api-Key": "alice-secret-key"}},
		{"ratelimit-local", func(r *bundle.Route) { r.RateLimits = []string{"local"} }, nil},
		{"validation", func(r *bundle.Route) { r.Validation.Request = true }, nil},
		{"jwt+ratelimit+validation", func(r *bundle.Route) {
			r.Security = []bundle.SecurityRequirement{{{Name: "jwt", Scopes: []string{"pets:read"}}}}
			r.RateLimits = []string{"local"}
			r.Validation.Request = true
		}, map[string]string{"Authorization": "Bearer " + tok}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			api := petstore(t, c.edit)
			api.SecuritySchemes["jwt"] = bundle.SecurityScheme{Type: bundle.SchemeJWT}
			api.SecuritySchemes["key"] = bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "header", Name: "X-Api-Key"}
			api.RateLimits["local"] = bundle.RateLimit{}
			bd := binding()
			bd.Security["jwt"] = bundle.SecurityBinding{JWT: &bundle.JWTBinding{Issuer: testIssuer, Audiences: []string{testAudience}, CertificateFile: "issuer.pem"}}
			bd.Security["key"] = bundle.SecurityBinding{APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}
			bd.RateLimits["local"] = bundle.RateLimitBinding{Requests: 1 << 40, Period: bundle.Duration(time.Second), Key: bundle.KeyConsumer}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			env := envFor(ctx, dir)
			var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
			fs := Factories()
			for i := len(fs) - 1; i >= 0; i-- {
				mw, err := fs[i].Build(api, &api.Routes[0], bd, env)
				if err != nil {
					b.Fatal(err)
				}
				if mw != nil {
					h = mw(h)
				}
			}
			r, _ := http.NewRequest("GET", "http://gw/v1/pets?limit=10", nil)
			r.RemoteAddr = "10.1.2.3:4567"
			// The API-key policy removes its header before proxying: every
			// iteration starts from the client's headers.
			sent := http.Header{}
			for k, v := range c.hdr {
				sent.Set(k, v)
			}
			st := filter.NewState(nil)
			r = r.WithContext(filter.WithState(r.Context(), st))
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				*st = filter.State{}
				st.Route = filter.Route{API: api, Bundle: &api.Routes[0], Name: "GET /v1/pets"}
				clear(w.h)
				for k, v := range sent {
					r.Header[k] = v
				}
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != 0 {
					b.Fatalf("refused: %d", w.code)
				}
			}
		})
	}
}
