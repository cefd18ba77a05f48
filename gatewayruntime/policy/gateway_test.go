package policy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/gateway"
	"github.com/gatekiln/gatekiln/test/redistest"
)

// realGateway serves api with the real gateway (package gateway: its own
// HTTP/1.1 server, router, proxy, per-generation chains) and these policies,
// as cmd/gatekiln-gateway does. The policy package itself never imports the
// gateway; this test does, to prove the two fit.
type realGateway struct {
	g         *gateway.Gateway
	url, tlsU string
	dir       string
}

func startRealGateway(t *testing.T, api *bundle.Bundle, b *bundle.Binding, files map[string]string) *realGateway {
	t.Helper()
	dir := writeFiles(t, files)
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.BindingFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{Bundle: api, BindingDir: dir, Factories: Factories(), ShutdownDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := g.Ready(); !ok {
		t.Fatalf("gateway not ready: %v", why)
	}
	rg := &realGateway{g: g, dir: dir}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	rg.url = "http://" + ln.Addr().String()
	if b.Server != nil && b.Server.TLSCertFile != "" {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = g.ServeTLS(tln) }()
		rg.tlsU = "https://" + tln.Addr().String()
	}
	t.Cleanup(g.Close)
	return rg
}

func (rg *realGateway) do(t *testing.T, method, path string, hdr map[string]string, body string) response {
	t.Helper()
	return doWith(t, &http.Client{Timeout: 10 * time.Second}, method, rg.url+path, hdr, body)
}

func TestWithRealGateway(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["rsa-1"], ks["ed-1"])
	rs := redistest.Start(t, "")
	up := newUpstream(t)
	ca := newCA(t, "clients")
	serverCert := ca.issue(t, certOpts{cn: "gateway", usage: x509.ExtKeyUsageServerAuth, ip: net.ParseIP("127.0.0.1")})
	certPEM, keyPEM := pemPair(t, serverCert)

	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		"GET /v1/pets":         {{{Name: "jwt", Scopes: []string{"pets:read"}}}},
		"POST /v1/pets":        {{{Name: "key"}}},
		"GET /v1/pets/{petId}": {{{Name: "mtls"}}},
	})
	api.Routes[0].RateLimits = []string{"perConsumer"}
	api.Routes[0].Validation.Request = true
	api.Routes[1].Validation.Request = true
	api.SecuritySchemes["mtls"] = bundle.SecurityScheme{Type: bundle.SchemeMTLS}
	api.RateLimits["perConsumer"] = bundle.RateLimit{}
	api.CORS = &bundle.CORS{AllowOrigins: []string{"https://app.example.com"}, AllowHeaders: []string{"authorization"}}

	b, dir := securityBinding(t, js.srv.URL)
	b.Security["jwt"] = bundle.SecurityBinding{JWT: &bundle.JWTBinding{Issuer: testIssuer, Audiences: []string{testAudience},
		JWKSURL: js.srv.URL, ClaimHeaders: map[string]string{"sub": "X-Consumer"}}}
	b.Security["mtls"] = bundle.SecurityBinding{MTLS: &bundle.MTLSBinding{ClientCAFile: "ca.pem"}}
	b.Endpoints = map[string]bundle.EndpointBinding{"pets": {URLs: []string{up.srv.URL}}}
	b.Redis = &bundle.RedisBinding{Address: rs.Addr}
	b.RateLimits["perConsumer"] = bundle.RateLimitBinding{Requests: 5, Period: bundle.Duration(time.Hour),
		Key: bundle.KeyConsumer, Store: bundle.StoreRedis}
	b.Server = &bundle.ServerBinding{TLSCertFile: "tls.crt", TLSKeyFile: "tls.key"}
	files := map[string]string{"ca.pem": string(ca.pem), "tls.crt": certPEM, "tls.key": keyPEM}
	for _, name := range []string{"keys", "htpasswd"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(data)
	}
	// Two replicas of the gateway share the Redis limit.
	gwA := startRealGateway(t, api, b, files)
	gwB := startRealGateway(t, api, b, files)

	tok := sign(t, ks["rsa-1"], claims(nil))
	t.Run("jwt, claim header, validation", func(t *testing.T) {
		res := gwA.do(t, "GET", "/v1/pets?limit=5", map[string]string{"Authorization": "Bearer " + tok, "X-Consumer": "mallory"}, "")
		if res.status != 200 || res.echo.Headers["X-Consumer"] != "alice" {
			t.Fatalf("status %d, X-Consumer %q: %s", res.status, res.echo.Headers["X-Consumer"], res.body)
		}
		// Bearer tokens are forwarded (see the package doc); API keys are not.
		if got := res.echo.Headers["Authorization"]; got != "Bearer "+tok {
			t.Fatalf("upstream saw Authorization %q, want the client's bearer token", got)
		}
		if res.header.Get("RateLimit-Policy") != `"perConsumer";q=5;w=3600` {
			t.Fatalf("RateLimit-Policy %q", res.header.Get("RateLimit-Policy"))
		}
		res = gwA.do(t, "GET", "/v1/pets?limit=500", bearer(tok), "")
		if res.status != 400 || len(res.prob.Errors) != 1 || res.prob.Errors[0].Pointer != "#/query/limit" {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
	})
	t.Run("attacks refused before the upstream", func(t *testing.T) {
		hits := up.hits.Load()
		for name, tok := range map[string]string{
			"alg none":    rawToken(map[string]any{"alg": "none", "kid": "rsa-1"}, claims(nil), nil),
			"expired":     sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })),
			"wrong aud":   sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { c["aud"] = "other" })),
			"unknown kid": sign(t, testKey{"nope", "RS256", ks["rogue"].priv}, claims(nil)),
		} {
			if res := gwA.do(t, "GET", "/v1/pets", bearer(tok), ""); res.status != 401 {
				t.Errorf("%s: status %d", name, res.status)
			}
		}
		// The gateway's own server refuses a 1 MB header before any policy
		// runs: 431, or the connection reset while the client is still writing.
		req, _ := http.NewRequest("GET", gwA.url+"/v1/pets", nil)
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("A", 1<<20))
		if resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("1 MB token: status %d", resp.StatusCode)
			}
		}
		if up.hits.Load() != hits {
			t.Fatalf("refused requests reached the upstream %d times", up.hits.Load()-hits)
		}
	})
	t.Run("two replicas share the redis limit", func(t *testing.T) {
		ed := sign(t, ks["ed-1"], claims(func(c jwt.MapClaims) { c["sub"] = "bob" }))
		var ok, limited atomic.Int64
		alternating(12, []*realGateway{gwA, gwB}, func(gw *realGateway) {
			switch gw.do(t, "GET", "/v1/pets", bearer(ed), "").status {
			case 200:
				ok.Add(1)
			case 429:
				limited.Add(1)
			}
		})
		if ok.Load() != 5 || limited.Load() != 7 {
			t.Fatalf("bob: %d admitted, %d limited; want 5 and 7 across both replicas", ok.Load(), limited.Load())
		}
	})
	t.Run("cors preflight answered by the gateway", func(t *testing.T) {
		res := gwA.do(t, "OPTIONS", "/v1/pets", map[string]string{"Origin": "https://app.example.com",
			"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}, "")
		if res.status != 204 || res.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Fatalf("preflight: status %d, headers %v", res.status, res.header)
		}
	})
	t.Run("mtls over the gateway's TLS listener", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(ca.cert)
		client := func(certs ...tls.Certificate) *http.Client {
			return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}}
		}
		good := ca.issue(t, certOpts{cn: "client-a", usage: x509.ExtKeyUsageClientAuth})
		if res := doWith(t, client(good), "GET", gwA.tlsU+"/v1/pets/1", nil, ""); res.status != 200 {
			t.Fatalf("client certificate: status %d: %s", res.status, res.body)
		}
		if res := doWith(t, client(), "GET", gwA.tlsU+"/v1/pets/1", nil, ""); res.status != 401 {
			t.Fatalf("no client certificate: status %d", res.status)
		}
	})
	t.Run("validated bodies keep the connection alive", func(t *testing.T) {
		var dials atomic.Int64
		tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
		defer tr.CloseIdleConnections()
		c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
		hdr := map[string]string{"Content-Type": "application/json", "X-Api-Key": "alice-secret-key"}
		for i, body := range []string{`{"id":1,"name":"rex"}`, `{"id":"x"}`, `{"id":2,"name":"tom"}`, `{}`, `{"id":3,"name":"kit"}`} {
			res := doWith(t, c, "POST", gwA.url+"/v1/pets", hdr, body)
			if want := []int{200, 400, 200, 400, 200}[i]; res.status != want {
				t.Fatalf("request %d: status %d, want %d", i, res.status, want)
			}
		}
		if dials.Load() != 1 {
			t.Fatalf("%d connections for 5 sequential requests: validation broke keep-alive", dials.Load())
		}
	})
	t.Run("a new keys file is picked up by a binding reload", func(t *testing.T) {
		body := `{"id":1,"name":"rex"}`
		js := map[string]string{"Content-Type": "application/json"}
		carol := map[string]string{"Content-Type": "application/json", "X-Api-Key": "carol-key"}
		if res := gwA.do(t, "POST", "/v1/pets", carol, body); res.status != 401 {
			t.Fatalf("before reload: status %d", res.status)
		}
		keys := "alice:" + sha("alice-secret-key") + "\ncarol:" + sha("carol-key") + "\n"
		if err := os.WriteFile(filepath.Join(gwA.dir, "keys"), []byte(keys), 0o600); err != nil {
			t.Fatal(err)
		}
		gwA.g.Reload()
		waitFor(t, 10*time.Second, "the reloaded keys", func() bool {
			return gwA.do(t, "POST", "/v1/pets", carol, body).status == 200
		})
		js["X-Api-Key"] = "alice-secret-key"
		if res := gwA.do(t, "POST", "/v1/pets", js, body); res.status != 200 {
			t.Fatalf("alice after reload: status %d", res.status)
		}
	})
}

func pemPair(t *testing.T, c tls.Certificate) (string, string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pemBlock("CERTIFICATE", c.Certificate[0])), string(pemBlock("PRIVATE KEY", der))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
