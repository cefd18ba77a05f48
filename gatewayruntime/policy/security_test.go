package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// htpasswdLine hashes pass with bcrypt at the minimum cost (tests only) and
// writes it the way Apache's htpasswd -B does ($2y$).
func htpasswdLine(t *testing.T, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + strings.Replace(string(h), "$2a$", "$2y$", 1) + "\n"
}

// securityAPI declares one scheme of each header-borne type and gives each
// route its own requirement.
func securityAPI(t *testing.T, reqs map[string][]bundle.SecurityRequirement) *bundle.Bundle {
	t.Helper()
	api := petstore(t, func(r *bundle.Route) { r.Security = reqs[r.Method+" "+r.Path] })
	api.SecuritySchemes["key"] = bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "header", Name: "x-api-key"}
	api.SecuritySchemes["qkey"] = bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "query", Name: "api_key"}
	api.SecuritySchemes["ckey"] = bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "cookie", Name: "session"}
	api.SecuritySchemes["basic"] = bundle.SecurityScheme{Type: bundle.SchemeBasic}
	api.SecuritySchemes["jwt"] = bundle.SecurityScheme{Type: bundle.SchemeJWT}
	return api
}

func securityBinding(t *testing.T, jwksURL string) (*bundle.Binding, string) {
	t.Helper()
	b := binding()
	keys := "# consumers\nalice:" + sha("alice-secret-key") + "\n\nbob : " + sha("bob-secret-key") + "\n"
	for _, n := range []string{"key", "qkey", "ckey"} {
		b.Security[n] = bundle.SecurityBinding{APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}
	}
	b.Security["basic"] = bundle.SecurityBinding{Basic: &bundle.BasicBinding{HtpasswdFile: "htpasswd", Realm: "pets"}}
	b.Security["jwt"] = bundle.SecurityBinding{JWT: &bundle.JWTBinding{Issuer: testIssuer, JWKSURL: jwksURL}}
	dir := writeFiles(t, map[string]string{
		"keys":     keys,
		"htpasswd": htpasswdLine(t, "carol", "correct horse") + htpasswdLine(t, "dan", "battery staple"),
	})
	return b, dir
}

func TestSecurityRequirements(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["ec-256"])
	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		// (key AND basic) OR jwt
		"GET /v1/pets": {{{Name: "key"}, {Name: "basic"}}, {{Name: "jwt"}}},
		// query key OR cookie key
		"POST /v1/pets": {{{Name: "qkey"}}, {{Name: "ckey"}}},
		// optional: anonymous, or an API key that then names the consumer
		"GET /v1/pets/{petId}": {{}, {{Name: "key"}}},
	})
	b, dir := securityBinding(t, js.srv.URL)
	up := newUpstream(t)
	gw := startGateway(t, api, b, dir, up)
	basic := func(u, p string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	jwtTok := sign(t, ks["ec-256"], claims(nil))
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		identity           string
		challenges         []string
		detail             string
	}{
		{"key alone is half of an AND", "GET", "/v1/pets", map[string]string{"X-Api-Key": "alice-secret-key"}, 401, "",
			[]string{`APIKey realm="Petstore", in="header", name="X-Api-Key"`, `Basic realm="pets", charset="UTF-8"`, `Bearer realm="Petstore"`},
			"this operation requires credentials: key and basic, or jwt"},
		{"basic alone is half of an AND", "GET", "/v1/pets", map[string]string{"Authorization": basic("carol", "correct horse")}, 401, "", nil, ""},
		{"key AND basic", "GET", "/v1/pets", map[string]string{"X-Api-Key": "alice-secret-key", "Authorization": basic("carol", "correct horse")}, 200, "key/alice", nil, ""},
		{"key AND wrong password", "GET", "/v1/pets", map[string]string{"X-Api-Key": "alice-secret-key", "Authorization": basic("carol", "wrong")}, 401, "", nil,
			"the user name or password is wrong"},
		{"unknown user", "GET", "/v1/pets", map[string]string{"X-Api-Key": "alice-secret-key", "Authorization": basic("zed", "correct horse")}, 401, "", nil, ""},
		{"jwt alternative", "GET", "/v1/pets", bearer(jwtTok), 200, "jwt/alice", nil, ""},
		{"wrong key", "GET", "/v1/pets", map[string]string{"X-Api-Key": "alice-secret-kez", "Authorization": basic("carol", "correct horse")}, 401, "", nil, ""},
		{"query key", "POST", "/v1/pets?api_key=bob-secret-key", nil, 200, "qkey/bob", nil, ""},
		{"cookie key", "POST", "/v1/pets", map[string]string{"Cookie": "session=alice-secret-key"}, 200, "ckey/alice", nil, ""},
		{"key in the wrong place", "POST", "/v1/pets", map[string]string{"X-Api-Key": "alice-secret-key"}, 401, "", nil, ""},
		{"anonymous allowed", "GET", "/v1/pets/7", nil, 200, "", nil, ""},
		{"optional key names the consumer", "GET", "/v1/pets/7", map[string]string{"X-Api-Key": "bob-secret-key"}, 200, "key/bob", nil, ""},
		{"optional key, wrong: still anonymous", "GET", "/v1/pets/7", map[string]string{"X-Api-Key": "nope"}, 200, "", nil, ""},
	}
	var passed int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"X-Test-Identity": "spoofed/admin"}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			res := gw.do(t, tt.method, tt.path, hdr, `{"id":1,"name":"rex"}`)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 200 {
				passed++
				if got := res.echo.Headers["X-Test-Identity"]; got != tt.identity {
					t.Fatalf("identity %q, want %q", got, tt.identity)
				}
			}
			if tt.detail != "" && res.prob.Detail != tt.detail {
				t.Fatalf("detail %q, want %q", res.prob.Detail, tt.detail)
			}
			if tt.challenges != nil {
				got := res.header.Values("WWW-Authenticate")
				if strings.Join(got, "|") != strings.Join(tt.challenges, "|") {
					t.Fatalf("WWW-Authenticate = %q, want %q", got, tt.challenges)
				}
			}
		})
	}
	if got := up.hits.Load(); got != passed {
		t.Fatalf("upstream hits %d, want %d", got, passed)
	}
}

func TestBasicCachesOnlySuccess(t *testing.T) {
	dir := writeFiles(t, map[string]string{"htpasswd": htpasswdLine(t, "carol", "correct horse")})
	s, err := newBasicScheme(envFor(context.Background(), dir), "basic", "pets", &bundle.BasicBinding{HtpasswdFile: "htpasswd"})
	if err != nil {
		t.Fatal(err)
	}
	try := func(user, pass string) *authError {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		_, err := s.authenticate(r)
		return err
	}
	for range 3 {
		if err := try("carol", "wrong"); err == nil || err.kind != failInvalid {
			t.Fatalf("wrong password: %v", err)
		}
	}
	if len(s.cache) != 0 {
		t.Fatalf("failed verifications cached: %d", len(s.cache))
	}
	for range 3 {
		if err := try("carol", "correct horse"); err != nil {
			t.Fatalf("right password: %v", err)
		}
	}
	if len(s.cache) != 1 {
		t.Fatalf("cache has %d entries, want 1", len(s.cache))
	}
	// A cached pair does not let a different password through.
	if err := try("carol", "correct horse "); err == nil {
		t.Fatal("password with a trailing space accepted")
	}
}

func TestCredentialFilesRejected(t *testing.T) {
	tests := []struct {
		name, file, content string
		scheme              bundle.SecurityScheme
		sb                  bundle.SecurityBinding
		want                string
	}{
		{"api key not hex", "keys", "alice:zzzz\n", bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "header", Name: "k"},
			bundle.SecurityBinding{APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}, "line 1 (id alice): want 64 hex digits"},
		{"api key without id", "keys", ":" + sha("x") + "\n", bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "header", Name: "k"},
			bundle.SecurityBinding{APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}, "line 1: want id:sha256hex"},
		{"api key id twice", "keys", "a:" + sha("x") + "\na:" + sha("y") + "\n", bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "query", Name: "k"},
			bundle.SecurityBinding{APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}, "id a appears twice"},
		{"htpasswd md5", "htpasswd", "carol:$apr1$abc$defghijklmnopqrstuvwx.\n", bundle.SecurityScheme{Type: bundle.SchemeBasic},
			bundle.SecurityBinding{Basic: &bundle.BasicBinding{HtpasswdFile: "htpasswd"}}, "not a bcrypt hash"},
		{"htpasswd sha1", "htpasswd", "carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", bundle.SecurityScheme{Type: bundle.SchemeBasic},
			bundle.SecurityBinding{Basic: &bundle.BasicBinding{HtpasswdFile: "htpasswd"}}, "not a bcrypt hash"},
		{"missing file", "other", "", bundle.SecurityScheme{Type: bundle.SchemeBasic},
			bundle.SecurityBinding{Basic: &bundle.BasicBinding{HtpasswdFile: "htpasswd"}}, "read htpasswd"},
		{"client CA not PEM", "ca.pem", "hello", bundle.SecurityScheme{Type: bundle.SchemeMTLS},
			bundle.SecurityBinding{MTLS: &bundle.MTLSBinding{ClientCAFile: "ca.pem"}}, "no PEM certificate"},
		{"wrong binding type", "x", "", bundle.SecurityScheme{Type: bundle.SchemeBasic},
			bundle.SecurityBinding{MTLS: &bundle.MTLSBinding{ClientCAFile: "ca.pem"}}, "binding has no basic values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := petstore(t, func(r *bundle.Route) { r.Security = []bundle.SecurityRequirement{{{Name: "s"}}} })
			api.SecuritySchemes["s"] = tt.scheme
			b := binding()
			b.Security["s"] = tt.sb
			f := &securityFactory{&shared{}}
			_, err := f.Build(api, &api.Routes[0], b, envFor(context.Background(), writeFiles(t, map[string]string{tt.file: tt.content})))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "security scheme s") {
				t.Fatalf("error %v, want one naming the scheme and containing %q", err, tt.want)
			}
		})
	}
}

func TestLacking(t *testing.T) {
	tests := []struct {
		granted, required, want []string
	}{
		{nil, nil, nil},
		{[]string{"a"}, nil, nil},
		{[]string{"a", "b"}, []string{"b"}, nil},
		{[]string{"a"}, []string{"a", "c", "d"}, []string{"c", "d"}},
	}
	for _, tt := range tests {
		if got := lacking(tt.granted, tt.required); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("lacking(%v, %v) = %v, want %v", tt.granted, tt.required, got, tt.want)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER   abc ", "abc", true},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"Bearerabc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		got, ok := bearerToken(r)
		if got != tt.want || ok != tt.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFactoriesOrder(t *testing.T) {
	var names []string
	for _, f := range Factories() {
		names = append(names, f.Name())
	}
	if got := strings.Join(names, " "); got != "cors mtls security ratelimit validation" {
		t.Fatalf("order %q: filter documents CORS → mTLS → security → rate limit → validation", got)
	}
}

// A new Binding generation reads the files again; the previous generation's
// chain keeps its own state.
func TestGenerationReload(t *testing.T) {
	api := securityAPI(t, map[string][]bundle.SecurityRequirement{"GET /v1/pets": {{{Name: "key"}}}})
	b, dir := securityBinding(t, "http://127.0.0.1:1/")
	sec := Factories()[2]
	build := func(gen uint64) http.Handler {
		t.Helper()
		env := envFor(context.Background(), dir)
		env.Generation = gen
		mw, err := sec.Build(api, &api.Routes[0], b, env)
		if err != nil {
			t.Fatal(err)
		}
		return mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	}
	call := func(h http.Handler, key string) int {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/pets", nil)
		r.Header.Set("X-Api-Key", key)
		h.ServeHTTP(w, r)
		return w.Code
	}
	gen1 := build(1)
	if err := os.WriteFile(filepath.Join(dir, "keys"), []byte("carol:"+sha("carol-key")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gen2 := build(2)
	if call(gen1, "alice-secret-key") != 204 || call(gen1, "carol-key") != 401 {
		t.Fatal("generation 1 changed under its chain")
	}
	if call(gen2, "alice-secret-key") != 401 || call(gen2, "carol-key") != 204 {
		t.Fatal("generation 2 did not read the new keys file")
	}
}

// TestAPIKeyNotForwarded: through the real gateway, over HTTP, the upstream
// never sees an API key the gateway consumed — in a header, the query or a
// cookie — while the rest of the request reaches it as the client sent it.
func TestAPIKeyNotForwarded(t *testing.T) {
	up := newUpstream(t)
	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		"GET /v1/pets":         {{{Name: "qkey"}}, {{Name: "tkey"}}},
		"POST /v1/pets":        {{{Name: "key"}}},
		"GET /v1/pets/{petId}": {{}, {{Name: "ckey"}}},
	})
	// The listPets operation declares X-Trace as its own header parameter: a
	// key sent there is meant for the upstream too.
	api.SecuritySchemes["tkey"] = bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "header", Name: "X-Trace"}
	// A limit keyed by the API-key header counts per key (its id) although the
	// header is gone by the time the limit runs.
	api.Routes[1].RateLimits = []string{"perKey"}
	api.RateLimits["perKey"] = bundle.RateLimit{}
	b, dir := securityBinding(t, "http://127.0.0.1:1/")
	b.Security["tkey"] = b.Security["key"]
	b.RateLimits["perKey"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Hour),
		Key: bundle.KeyHeader, Header: "X-Api-Key"}
	b.Endpoints = map[string]bundle.EndpointBinding{"pets": {URLs: []string{up.srv.URL}}}
	keys, err := os.ReadFile(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	gw := startRealGateway(t, api, b, map[string]string{"keys": string(keys)})

	tests := []struct {
		name, method, path string
		hdr                map[string]string
		// What the upstream must see; "" for a header that must be absent.
		query   string
		headers map[string]string
	}{
		{name: "header key", method: "POST", path: "/v1/pets",
			hdr:     map[string]string{"X-Api-Key": "alice-secret-key", "X-Other": "kept", "Content-Type": "application/json"},
			headers: map[string]string{"X-Api-Key": "", "X-Other": "kept"}},
		{name: "header key, another consumer's bucket", method: "POST", path: "/v1/pets",
			hdr:     map[string]string{"X-Api-Key": "bob-secret-key", "Content-Type": "application/json"},
			headers: map[string]string{"X-Api-Key": ""}},
		{name: "query key, every copy, other parameters as sent", method: "GET",
			path:  "/v1/pets?limit=5&api_key=alice-secret-key&tag=a%20b&api%5Fkey=alice-secret-key",
			query: "limit=5&tag=a%20b"},
		{name: "query key alone", method: "GET", path: "/v1/pets?api_key=bob-secret-key",
			query: ""},
		{name: "a key the operation declares is forwarded", method: "GET", path: "/v1/pets",
			hdr:     map[string]string{"X-Trace": "alice-secret-key"},
			headers: map[string]string{"X-Trace": "alice-secret-key"}},
		{name: "cookie key, other cookies kept", method: "GET", path: "/v1/pets/1",
			hdr:     map[string]string{"Cookie": "theme=dark; session=alice-secret-key; lang=en"},
			headers: map[string]string{"Cookie": "theme=dark; lang=en"}},
		{name: "cookie key alone", method: "GET", path: "/v1/pets/1",
			hdr:     map[string]string{"Cookie": "session=bob-secret-key"},
			headers: map[string]string{"Cookie": ""}},
		{name: "an unknown key on an optional route is not forwarded either", method: "GET", path: "/v1/pets/1",
			hdr:     map[string]string{"Cookie": "session=guess; theme=dark"},
			headers: map[string]string{"Cookie": "theme=dark"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.method == "POST" {
				body = `{"id":1,"name":"rex"}`
			}
			res := gw.do(t, tt.method, tt.path, tt.hdr, body)
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			for name, want := range tt.headers {
				if got := res.echo.Headers[name]; got != want {
					t.Errorf("upstream saw %s %q, want %q", name, got, want)
				}
			}
			if strings.Contains(tt.path, "?") && res.echo.Query != tt.query {
				t.Errorf("upstream saw query %q, want %q", res.echo.Query, tt.query)
			}
			for _, v := range res.echo.Headers {
				if tt.headers["X-Trace"] == "" && strings.Contains(v, "secret-key") {
					t.Errorf("a key reached the upstream: %q", v)
				}
			}
			if strings.Contains(res.echo.Query, "secret-key") {
				t.Errorf("a key reached the upstream in the query: %q", res.echo.Query)
			}
		})
	}
	// Each key had its own bucket of one: a second request with alice's key is refused.
	hdr := map[string]string{"X-Api-Key": "alice-secret-key", "Content-Type": "application/json"}
	if res := gw.do(t, "POST", "/v1/pets", hdr, `{"id":1,"name":"rex"}`); res.status != 429 {
		t.Fatalf("alice's second request: status %d, want 429", res.status)
	}
}

func TestStripAPIKey(t *testing.T) {
	queries := []struct{ raw, want string }{
		{"api_key=k", ""},
		{"a=1&api_key=k&b=2", "a=1&b=2"},
		{"api_key=k&api_key=k2&b=%20x", "b=%20x"},
		{"api%5Fkey=k&b=2", "b=2"},
		{"api_key2=x&xapi_key=y", "api_key2=x&xapi_key=y"},
		{"api_key&b=2", "b=2"},
		{"a=1&&b=2", "a=1&&b=2"},
	}
	for _, tt := range queries {
		if got := withoutQueryParam(tt.raw, "api_key"); got != tt.want {
			t.Errorf("withoutQueryParam(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	cookies := []struct {
		fields []string
		want   []string
	}{
		{[]string{"session=k"}, nil},
		{[]string{"a=1; session=k; b=2"}, []string{"a=1; b=2"}},
		{[]string{"session=k", "a=1"}, []string{"a=1"}},
		{[]string{"sessionid=x;session=k"}, []string{"sessionid=x"}},
		{[]string{"a=1"}, []string{"a=1"}},
	}
	for _, tt := range cookies {
		h := http.Header{"Cookie": tt.fields}
		withoutCookie(h, "session")
		if got := h["Cookie"]; strings.Join(got, "|") != strings.Join(tt.want, "|") || (tt.want == nil) != (got == nil) {
			t.Errorf("withoutCookie(%q) = %q, want %q", tt.fields, got, tt.want)
		}
	}
}

// TestUnverifiedCredentialsAreNotForwarded: the upstream may trust what the
// gateway forwards in Authorization and in claim fields, so neither carries
// what a client made up: Authorization goes on only when the alternative that
// passed verified it, a request with two is refused, and claim fields are
// stripped on every route, public ones included.
func TestUnverifiedCredentialsAreNotForwarded(t *testing.T) {
	ks := testKeys(t)
	js := newJWKSServer(t, ks["ec-256"])
	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		"GET /v1/pets":         {{{Name: "key"}}, {{Name: "jwt"}}},
		"GET /v1/pets/{petId}": {{}, {{Name: "jwt"}}},
		// POST /v1/pets is public.
	})
	b, dir := securityBinding(t, js.srv.URL)
	jb := *b.Security["jwt"].JWT
	jb.ClaimHeaders = map[string]string{"sub": "X-User"}
	b.Security["jwt"] = bundle.SecurityBinding{JWT: &jb}
	up := newUpstream(t)
	gw := startGateway(t, api, b, dir, up)
	good := "Bearer " + sign(t, ks["ec-256"], claims(nil))
	forged := "Bearer " + rawToken(map[string]any{"alg": "none"}, map[string]any{"sub": "admin", "iss": testIssuer}, nil)
	tests := []struct {
		name, method, path string
		authz              []string
		key                string
		status             int
		wantAuthz, user    string // what the upstream gets
	}{
		{"key passes, forged token dropped", "GET", "/v1/pets", []string{forged}, "alice-secret-key", 200, "", ""},
		{"token passes and goes on", "GET", "/v1/pets", []string{good}, "", 200, good, "alice"},
		{"two Authorization fields", "GET", "/v1/pets", []string{good, forged}, "", 400, "", ""},
		{"optional token, forged: anonymous, dropped", "GET", "/v1/pets/1", []string{forged}, "", 200, "", ""},
		{"optional token, good", "GET", "/v1/pets/1", []string{good}, "", 200, good, "alice"},
		{"public route: claim field dropped", "POST", "/v1/pets", nil, "", 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, gw.URL+tt.path, strings.NewReader(`{"id":1,"name":"rex"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header["Authorization"] = tt.authz
			req.Header["X-User"] = []string{"root"}
			req.Header["X_User"] = []string{"root"}
			if tt.key != "" {
				req.Header.Set("X-Api-Key", tt.key)
			}
			resp, err := gw.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e echo
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if got := e.Headers["Authorization"]; got != tt.wantAuthz {
				t.Errorf("upstream Authorization %q, want %q", got, tt.wantAuthz)
			}
			if got, alias := e.Headers["X-User"], e.Headers["X_user"]; got != tt.user || alias != "" {
				t.Errorf("upstream X-User %q (alias %q), want %q", got, alias, tt.user)
			}
		})
	}
}
