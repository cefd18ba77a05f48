package policy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "petstore"
)

type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

func (k testKey) method() jwt.SigningMethod { return jwt.GetSigningMethod(k.alg) }

var (
	keysOnce sync.Once
	keys     map[string]testKey
)

// testKeys generates, once per test binary, keys of every supported type.
func testKeys(t *testing.T) map[string]testKey {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[string]testKey{}
		add := func(kid, alg string, priv crypto.Signer, err error) {
			if err != nil {
				panic(err)
			}
			keys[kid] = testKey{kid, alg, priv}
		}
		r1, err := rsa.GenerateKey(rand.Reader, 2048)
		add("rsa-1", "RS256", r1, err)
		r2, err := rsa.GenerateKey(rand.Reader, 2048)
		add("rsa-2", "RS256", r2, err)
		keys["rsa-pss"] = testKey{"rsa-1", "PS256", r1}
		rogue, err := rsa.GenerateKey(rand.Reader, 2048)
		add("rogue", "RS256", rogue, err)
		e256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		add("ec-256", "ES256", e256, err)
		e384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		add("ec-384", "ES384", e384, err)
		_, ed, err := ed25519.GenerateKey(rand.Reader)
		add("ed-1", "EdDSA", ed, err)
	})
	return keys
}

// jwksServer serves a JWKS on loopback whose keys the test can rotate, and
// counts fetches.
type jwksServer struct {
	srv    *httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	keys   []testKey
	status int
}

func newJWKSServer(t *testing.T, ks ...testKey) *jwksServer {
	t.Helper()
	return startJWKSServer(t, nil, ks...)
}

// startJWKSServer serves the JWKS over HTTPS with cert when cert is not nil.
func startJWKSServer(t *testing.T, cert *tls.Certificate, ks ...testKey) *jwksServer {
	t.Helper()
	j := &jwksServer{keys: ks, status: http.StatusOK}
	j.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.status != http.StatusOK {
			w.WriteHeader(j.status)
			return
		}
		var out struct {
			Keys []map[string]string `json:"keys"`
		}
		for _, k := range j.keys {
			out.Keys = append(out.Keys, jwkJSON(t, k))
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(out)
	}))
	startServer(t, j.srv, cert)
	return j
}

func (j *jwksServer) rotate(ks ...testKey) {
	j.mu.Lock()
	j.keys = ks
	j.mu.Unlock()
}

func (j *jwksServer) fail(status int) {
	j.mu.Lock()
	j.status = status
	j.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwkJSON(t *testing.T, k testKey) map[string]string {
	m := map[string]string{"kid": k.kid, "use": "sig"}
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		size := (len(raw) - 1) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", pub.Curve.Params().Name, b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(pub)
	}
	return m
}

func claims(edit func(c jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": "alice",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "email": "alice@example.com",
		"scope": "pets:read pets:write",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func sign(t *testing.T, k testKey, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method(), c)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawToken builds a token from arbitrary header and claims with the given
// signature bytes (for tokens no honest library would sign).
func rawToken(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return b64(h) + "." + b64(c) + "." + b64(sig)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// jwtGateway serves petstore with every route needing the "jwt" scheme (and,
// for POST, the pets:write scope).
func jwtGateway(t *testing.T, jb *bundle.JWTBinding, files map[string]string, opts ...gatewayOptions) (*testGateway, *upstream) {
	t.Helper()
	api := jwtAPI(t)
	b := binding()
	b.Security["jwt"] = bundle.SecurityBinding{JWT: jb}
	up := newUpstream(t)
	return startGateway(t, api, b, writeFiles(t, files), up, opts...), up
}

// jwtAPI is petstore with every route needing the "jwt" scheme (and, for
// POST, the pets:write scope).
func jwtAPI(t *testing.T) *bundle.Bundle {
	t.Helper()
	api := petstore(t, func(r *bundle.Route) {
		ref := bundle.SchemeRef{Name: "jwt"}
		if r.Method == "POST" {
			ref.Scopes = []string{"pets:write"}
		}
		r.Security = []bundle.SecurityRequirement{{ref}}
	})
	api.SecuritySchemes["jwt"] = bundle.SecurityScheme{Type: bundle.SchemeJWT, BearerFormat: "JWT"}
	return api
}

func TestJWTAcceptsEveryKeyType(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["rsa-1"], ks["ec-256"], ks["ec-384"], ks["ed-1"])
	gw, up := jwtGateway(t, &bundle.JWTBinding{
		Issuer: testIssuer, Audiences: []string{"other", testAudience}, JWKSURL: js.srv.URL,
		ClaimHeaders: map[string]string{"sub": "X-Consumer", "email": "x-email"},
	}, nil)
	for _, name := range []string{"rsa-1", "rsa-pss", "ec-256", "ec-384", "ed-1"} {
		t.Run(name, func(t *testing.T) {
			k := ks[name]
			hdr := bearer(sign(t, k, claims(nil)))
			hdr["X-Consumer"] = "mallory" // a client cannot set a claim header itself
			hdr["X_Consumer"] = "mallory" // nor under a name CGI and WSGI read as the same
			res := gw.do(t, "GET", "/v1/pets", hdr, "")
			if res.status != http.StatusOK {
				t.Fatalf("%s: status %d: %+v", k.alg, res.status, res.prob)
			}
			if got := res.echo.Headers["X-Consumer"]; got != "alice" {
				t.Fatalf("X-Consumer upstream = %q, want alice", got)
			}
			for h, v := range res.echo.Headers {
				if h != "X-Consumer" && strings.EqualFold(strings.ReplaceAll(h, "_", "-"), "X-Consumer") {
					t.Fatalf("upstream got %s: %q", h, v)
				}
			}
			if got := res.echo.Headers["X-Email"]; got != "alice@example.com" {
				t.Fatalf("X-Email upstream = %q", got)
			}
		})
	}
	if got := up.hits.Load(); got != 5 {
		t.Fatalf("upstream hits = %d, want 5", got)
	}
}

func TestJWTAttacksNeverReachUpstream(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["rsa-1"], ks["ec-256"])
	gw, up := jwtGateway(t, &bundle.JWTBinding{
		Issuer: testIssuer, Audiences: []string{testAudience}, JWKSURL: js.srv.URL, Leeway: bundle.Duration(5 * time.Second),
	}, nil)
	rsaPub, err := x509.MarshalPKIXPublicKey(ks["rsa-1"].priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	hsWithPub := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(rsaPubPEM)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(t, ks["rsa-1"], claims(nil))
	parts := strings.Split(valid, ".")
	tests := []struct {
		name   string
		token  string
		detail string
	}{
		{"alg none", rawToken(map[string]any{"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims(nil), nil), "the token's algorithm is not accepted"},
		{"alg none without kid", rawToken(map[string]any{"alg": "none"}, claims(nil), nil), "the token's algorithm is not accepted"},
		{"alg NONE", rawToken(map[string]any{"alg": "NONE", "kid": "rsa-1"}, claims(nil), nil), "the token's algorithm is not accepted"},
		{"HS256 signed with the RSA public key", hsWithPub("rsa-1"), "the token's algorithm is not accepted"},
		{"HS256 signed with the RSA public key, no kid", hsWithPub(""), "the token's algorithm is not accepted"},
		{"expired", sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "the token has expired"},
		{"future nbf", sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Minute).Unix() })), "the token is not valid yet"},
		{"no exp", sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { delete(c, "exp") })), "the token lacks a required claim (exp, iss or aud)"},
		{"wrong iss", sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), "the token's issuer is not accepted"},
		{"no iss", sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { delete(c, "iss") })), "the token lacks a required claim (exp, iss or aud)"},
		{"wrong aud", sign(t, ks["rsa-1"], claims(func(c jwt.MapClaims) { c["aud"] = []string{"billing"} })), "the token's audience is not accepted"},
		{"signed by a rogue key claiming a known kid", sign(t, testKey{"rsa-1", "RS256", ks["rogue"].priv}, claims(nil)), "the token's signature is invalid"},
		{"EC kid with an RSA algorithm", sign(t, testKey{"ec-256", "RS256", ks["rsa-1"].priv}, claims(nil)), "the token's algorithm does not match its key"},
		{"RSA kid with an EC algorithm", sign(t, testKey{"rsa-1", "ES256", ks["ec-256"].priv}, claims(nil)), "the token's algorithm does not match its key"},
		{"tampered claims", parts[0] + "." + b64([]byte(`{"iss":"`+testIssuer+`","aud":"petstore","sub":"root","exp":9999999999}`)) + "." + parts[2], "the token's signature is invalid"},
		{"garbage", "abc.def.ghi", "the token is malformed"},
		{"crit extension", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(nil))
			tok.Header["kid"], tok.Header["crit"], tok.Header["exp-check"] = "rsa-1", []string{"exp-check"}, true
			s, err := tok.SignedString(ks["rsa-1"].priv)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), "the token requires extensions this gateway does not support"},
		{"1 MB token", parts[0] + "." + strings.Repeat("A", 1<<20) + "." + parts[2], "the token is too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := gw.do(t, "GET", "/v1/pets", bearer(tt.token), "")
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", res.status, res.body)
			}
			wa := res.header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, `Bearer realm="Petstore"`) || !strings.Contains(wa, `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate = %q", wa)
			}
			if res.prob.Status != 401 || res.prob.RequestID != "test-req" {
				t.Fatalf("problem = %+v", res.prob)
			}
			if res.prob.Detail != tt.detail {
				t.Fatalf("detail %q, want %q", res.prob.Detail, tt.detail)
			}
		})
	}
	t.Run("no token", func(t *testing.T) {
		res := gw.do(t, "GET", "/v1/pets", nil, "")
		if res.status != http.StatusUnauthorized || res.header.Get("WWW-Authenticate") != `Bearer realm="Petstore"` {
			t.Fatalf("status %d, WWW-Authenticate %q", res.status, res.header.Get("WWW-Authenticate"))
		}
	})
	t.Run("unknown kid flood", func(t *testing.T) {
		before := js.hits.Load()
		var wg sync.WaitGroup
		var refused atomic.Int64
		for i := range 200 {
			wg.Go(func() {
				tok := sign(t, testKey{fmt.Sprintf("made-up-%d", i), "RS256", ks["rogue"].priv}, claims(nil))
				if res := gw.do(t, "GET", "/v1/pets", bearer(tok), ""); res.status == http.StatusUnauthorized {
					refused.Add(1)
				}
			})
		}
		wg.Wait()
		if refused.Load() != 200 {
			t.Fatalf("refused %d of 200", refused.Load())
		}
		// One refetch per 10 s at most: the flood costs the issuer one request.
		if fetches := js.hits.Load() - before; fetches > 1 {
			t.Fatalf("unknown kids caused %d JWKS fetches, want at most 1", fetches)
		}
	})
	if got := up.hits.Load(); got != 0 {
		t.Fatalf("upstream was reached %d times by refused tokens", got)
	}
	// The valid token still passes: the gateway refused the attacks, not everything.
	if res := gw.do(t, "GET", "/v1/pets", bearer(valid), ""); res.status != http.StatusOK {
		t.Fatalf("valid token: status %d", res.status)
	}
	if got := gw.counter(t, "gatekiln_policy_denied_total", map[string]string{"policy": "security", "reason": "unauthenticated"}); got < float64(len(tests)+201) {
		t.Fatalf("denied metric = %v", got)
	}
}

func TestJWTClaimsAndScopes(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["ec-256"])
	gw, up := jwtGateway(t, &bundle.JWTBinding{
		Issuer: testIssuer, JWKSURL: js.srv.URL, Leeway: bundle.Duration(30 * time.Second),
	}, nil)
	tests := []struct {
		name      string
		method    string
		claims    jwt.MapClaims
		status    int
		wantScope string
	}{
		{"expired within leeway", "GET", claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }), 200, ""},
		{"scope string grants write", "POST", claims(nil), 200, ""},
		{"scp list grants write", "POST", claims(func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []string{"pets:write"} }), 200, ""},
		{"read-only token cannot write", "POST", claims(func(c jwt.MapClaims) { c["scope"] = "pets:read" }), 403, "pets:write"},
		{"no scope at all", "POST", claims(func(c jwt.MapClaims) { delete(c, "scope") }), 403, "pets:write"},
		{"no audience configured: any aud", "GET", claims(func(c jwt.MapClaims) { c["aud"] = "anything" }), 200, ""},
	}
	var passed int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := gw.do(t, tt.method, "/v1/pets", bearer(sign(t, ks["ec-256"], tt.claims)), `{"id":1,"name":"rex"}`)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 200 {
				passed++
			}
			if tt.wantScope != "" {
				wa := res.header.Get("WWW-Authenticate")
				if !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, `scope="`+tt.wantScope+`"`) {
					t.Fatalf("WWW-Authenticate = %q", wa)
				}
			}
		})
	}
	if got := up.hits.Load(); got != passed {
		t.Fatalf("upstream hits %d, want %d", got, passed)
	}
}

func TestJWKSRotation(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["rsa-1"])
	gw, _ := jwtGateway(t, &bundle.JWTBinding{Issuer: testIssuer, JWKSURL: js.srv.URL}, nil)
	old := sign(t, ks["rsa-1"], claims(nil))
	for range 3 { // verified once, then served from the verified-token cache
		if res := gw.do(t, "GET", "/v1/pets", bearer(old), ""); res.status != 200 {
			t.Fatalf("first key: status %d", res.status)
		}
	}
	before := js.hits.Load()
	js.rotate(ks["rsa-2"], ks["ed-1"])
	// A token signed by the new key names a kid the cache has not seen: one refetch.
	if res := gw.do(t, "GET", "/v1/pets", bearer(sign(t, ks["rsa-2"], claims(nil))), ""); res.status != 200 {
		t.Fatalf("rotated key: status %d: %s", res.status, res.body)
	}
	if res := gw.do(t, "GET", "/v1/pets", bearer(sign(t, ks["ed-1"], claims(nil))), ""); res.status != 200 {
		t.Fatalf("second new key: status %d", res.status)
	}
	if got := js.hits.Load() - before; got != 1 {
		t.Fatalf("rotation caused %d fetches, want 1", got)
	}
	// The old key left the JWKS: its token, though verified and cached before,
	// is checked again against the new set and refused.
	if res := gw.do(t, "GET", "/v1/pets", bearer(old), ""); res.status != http.StatusUnauthorized {
		t.Fatalf("token of a removed key: status %d, want 401", res.status)
	}
}

// A verified token is cached no longer than it is valid.
func TestJWTCacheEndsAtExpiry(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["ed-1"])
	gw, _ := jwtGateway(t, &bundle.JWTBinding{Issuer: testIssuer, JWKSURL: js.srv.URL}, nil)
	tok := sign(t, ks["ed-1"], claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Second).Unix() }))
	if res := gw.do(t, "GET", "/v1/pets", bearer(tok), ""); res.status != 200 {
		t.Fatalf("status %d", res.status)
	}
	waitFor(t, 5*time.Second, "the cached token to expire", func() bool {
		return gw.do(t, "GET", "/v1/pets", bearer(tok), "").status == http.StatusUnauthorized
	})
}

// TestJWKSCache exercises the cache directly with short intervals: background
// refresh drops revoked keys, a failing JWKS keeps the last good set, and
// concurrent unknown kids share one fetch.
func TestJWKSCache(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["rsa-1"])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var results sync.Map
	c, err := newJWKSCache(ctx, js.srv.URL, jwksOptions{refresh: 50 * time.Millisecond, retry: 50 * time.Millisecond,
		unknownKID: time.Hour}, nil, func(r string) {
		n, _ := results.LoadOrStore(r, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.key(ctx, "rsa-1"); err != nil {
		t.Fatalf("initial key: %v", err)
	}
	js.fail(http.StatusInternalServerError)
	waitFor(t, 5*time.Second, "a failed refresh", func() bool {
		n, ok := results.Load("error")
		return ok && n.(*atomic.Int64).Load() >= 2
	})
	if _, err := c.key(ctx, "rsa-1"); err != nil {
		t.Fatalf("stale-if-error: key lost after failed refreshes: %v", err)
	}
	js.fail(http.StatusOK)
	js.rotate(ks["rsa-2"])
	waitFor(t, 5*time.Second, "the revoked key to disappear", func() bool {
		set := c.set.Load()
		_, old := set.byKID["rsa-1"]
		_, cur := set.byKID["rsa-2"]
		return !old && cur
	})
	// The unknown-kid limiter (1 per hour here) is spent on the first miss;
	// later misses are answered from the cache without a fetch.
	before := js.hits.Load()
	for range 50 {
		if _, err := c.key(ctx, "nope"); err == nil {
			t.Fatal("unknown kid found")
		}
	}
	if got := js.hits.Load() - before; got > 2 { // at most the one allowed plus a background refresh
		t.Fatalf("50 unknown kids caused %d fetches", got)
	}
}

func TestJWKSUnreachableIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	ks := testKeys(t)
	gw, up := jwtGateway(t, &bundle.JWTBinding{Issuer: testIssuer, JWKSURL: dead}, nil)
	noKid := ks["rsa-1"]
	noKid.kid = "" // single-key issuers often name no key
	for name, k := range map[string]testKey{"with kid": ks["rsa-1"], "without kid": noKid} {
		res := gw.do(t, "GET", "/v1/pets", bearer(sign(t, k, claims(nil))), "")
		if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" {
			t.Fatalf("%s: status %d (Retry-After %q), want 503", name, res.status, res.header.Get("Retry-After"))
		}
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream reached")
	}
}

func TestJWTStaticKeysAndHMAC(t *testing.T) {
	ks := testKeys(t)
	cert := selfSigned(t, ks["rsa-1"].priv)
	edPub, err := x509.MarshalPKIXPublicKey(ks["ed-1"].priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKeys := string(cert) + string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edPub}))
	secret := strings.Repeat("s3cr3t-", 6)
	gw, _ := jwtGateway(t, &bundle.JWTBinding{Issuer: testIssuer, CertificateFile: "keys.pem", HMACSecretFile: "hmac"},
		map[string]string{"keys.pem": pemKeys, "hmac": secret + "\n"})
	hs := func(m jwt.SigningMethod, key []byte) string {
		s, err := jwt.NewWithClaims(m, claims(nil)).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"RS256 by the certificate's key, no kid", sign(t, testKey{"", "RS256", ks["rsa-1"].priv}, claims(nil)), 200},
		{"EdDSA by the PEM public key", sign(t, testKey{"", "EdDSA", ks["ed-1"].priv}, claims(nil)), 200},
		{"HS256 with the shared secret", hs(jwt.SigningMethodHS256, []byte(secret)), 200},
		{"HS512 with the shared secret", hs(jwt.SigningMethodHS512, []byte(secret)), 200},
		{"HS256 with the secret plus newline", hs(jwt.SigningMethodHS256, []byte(secret+"\n")), 401},
		{"RS256 by another key", sign(t, testKey{"", "RS256", ks["rsa-2"].priv}, claims(nil)), 401},
		{"ES256: no EC key configured", sign(t, testKey{"", "ES256", ks["ec-256"].priv}, claims(nil)), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := gw.do(t, "GET", "/v1/pets", bearer(tt.token), ""); res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
		})
	}
}

func TestJWTBindingErrors(t *testing.T) {
	tests := []struct {
		name  string
		jb    bundle.JWTBinding
		files map[string]string
		want  string
	}{
		{"no key source", bundle.JWTBinding{Issuer: testIssuer}, nil, "needs a JWKS URL"},
		{"short HMAC secret", bundle.JWTBinding{HMACSecretFile: "h"}, map[string]string{"h": "short"}, "at least 32"},
		{"alg none requested", bundle.JWTBinding{HMACSecretFile: "h", Algorithms: []string{"none"}},
			map[string]string{"h": strings.Repeat("x", 40)}, `"none" is not supported`},
		{"algorithms that fit no key", bundle.JWTBinding{HMACSecretFile: "h", Algorithms: []string{"RS256"}},
			map[string]string{"h": strings.Repeat("x", 40)}, "none fits"},
		{"missing certificate file", bundle.JWTBinding{CertificateFile: "nope.pem"}, nil, "nope.pem"},
		{"bad jwks url", bundle.JWTBinding{JWKSURL: "file:///etc/passwd"}, nil, "want an http(s) URL"},
		{"missing jwks CA file", bundle.JWTBinding{JWKSURL: "https://127.0.0.1:1/jwks", CAFile: "nope-ca.crt"}, nil, "nope-ca.crt"},
		{"jwks CA file without a certificate", bundle.JWTBinding{JWKSURL: "https://127.0.0.1:1/jwks", CAFile: "ca.crt"},
			map[string]string{"ca.crt": "not a certificate"}, "ca.crt: no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := petstore(t, func(r *bundle.Route) { r.Security = []bundle.SecurityRequirement{{{Name: "jwt"}}} })
			api.SecuritySchemes["jwt"] = bundle.SecurityScheme{Type: bundle.SchemeJWT}
			b := binding()
			jb := tt.jb
			b.Security["jwt"] = bundle.SecurityBinding{JWT: &jb}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f := &securityFactory{&shared{}}
			_, err := f.Build(api, &api.Routes[0], b, envFor(ctx, writeFiles(t, tt.files)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func selfSigned(t *testing.T, priv crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
