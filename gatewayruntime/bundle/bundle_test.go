package bundle

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func petstore() *Bundle {
	return &Bundle{
		APIVersion: APIVersion,
		API:        API{Title: "Petstore", Version: "1.0", BasePath: "/v1", SpecVersion: "3.0.3"},
		Source:     Source{Files: map[string]string{"": "sha256:00"}},
		OpenAPI:    json.RawMessage(`{"openapi":"3.0.3"}`),
		Routes: []Route{
			{Method: "GET", Path: "/v1/pets", UpstreamPath: "/pets", Endpoint: "backend",
				Security:   []SecurityRequirement{{{Name: "key"}}},
				RateLimits: []string{"standard"}},
			{Method: "POST", Path: "/v1/pets", UpstreamPath: "/pets", Endpoint: "backend",
				Security: []SecurityRequirement{{{Name: "jwt", Scopes: []string{"write"}}}}},
		},
		Endpoints: map[string]Endpoint{"backend": {}},
		SecuritySchemes: map[string]SecurityScheme{
			"key": {Type: SchemeAPIKey, In: "header", Name: "X-API-Key"},
			"jwt": {Type: SchemeJWT},
		},
		RateLimits: map[string]RateLimit{"standard": {}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b *Bundle)
		want   []string // substrings of the joined error; none means valid
	}{
		{"valid", func(*Bundle) {}, nil},
		{"wrong version", func(b *Bundle) { b.APIVersion = "v0" }, []string{`apiVersion "v0"`}},
		{"relative base path", func(b *Bundle) { b.API.BasePath = "v1" }, []string{"basePath"}},
		{"no openapi", func(b *Bundle) { b.OpenAPI = nil }, []string{"openapi: missing"}},
		{"duplicate route", func(b *Bundle) { b.Routes = append(b.Routes, b.Routes[0]) }, []string{"duplicate GET /v1/pets"}},
		{"undeclared names, all reported", func(b *Bundle) {
			b.Endpoints = nil
			b.SecuritySchemes = nil
			b.RateLimits = nil
		}, []string{`endpoint "backend"`, `security scheme "key"`, `security scheme "jwt"`, `rate limit "standard"`}},
		{"apiKey without location", func(b *Bundle) {
			b.SecuritySchemes["key"] = SecurityScheme{Type: SchemeAPIKey}
		}, []string{"securitySchemes.key: apiKey needs"}},
		{"unknown scheme type", func(b *Bundle) {
			b.SecuritySchemes["jwt"] = SecurityScheme{Type: "kerberos"}
		}, []string{`unknown type "kerberos"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := petstore()
			tt.mutate(b)
			err := b.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestMarshalIsCanonicalAndRoundTrips(t *testing.T) {
	a, err := petstore().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The same Bundle built with maps filled in another order gives the same bytes.
	b2 := petstore()
	b2.SecuritySchemes = map[string]SecurityScheme{}
	b2.SecuritySchemes["jwt"] = SecurityScheme{Type: SchemeJWT}
	b2.SecuritySchemes["key"] = SecurityScheme{Type: SchemeAPIKey, In: "header", Name: "X-API-Key"}
	b, err := b2.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("same Bundle, different bytes:\n%s\n%s", a, b)
	}
	// Keys are sorted: "api" precedes "apiVersion" precedes "endpoints".
	if i, j := strings.Index(string(a), `"api":`), strings.Index(string(a), `"apiVersion":`); i < 0 || j < 0 || i > j {
		t.Errorf("keys not sorted: %s", a)
	}
	got, err := Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	again, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(a) {
		t.Errorf("round trip changed the bytes:\n%s\n%s", a, again)
	}
	if _, err := petstore().Marshal(); err != nil {
		t.Fatal(err)
	}
	bad := petstore()
	bad.APIVersion = ""
	if _, err := bad.Marshal(); err == nil {
		t.Error("Marshal of an invalid Bundle succeeded")
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	a, err := petstore().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	withExtra := strings.Replace(string(a), `{"api":`, `{"surprise":1,"api":`, 1)
	if _, err := Parse([]byte(withExtra)); err == nil || !strings.Contains(err.Error(), "surprise") {
		t.Errorf("Parse(unknown field) = %v, want an error naming it", err)
	}
}

func TestCanonicalizeJSONKeepsNumbersAndHTML(t *testing.T) {
	got, err := CanonicalizeJSON([]byte(` { "b": 1.50, "a": "<x&y>", "c": 12345678901234567890 } `))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":"<x&y>","b":1.50,"c":12345678901234567890}`
	if string(got) != want {
		t.Errorf("CanonicalizeJSON = %s, want %s", got, want)
	}
}

func TestDuration(t *testing.T) {
	var d struct {
		T Duration `json:"t"`
	}
	if err := json.Unmarshal([]byte(`{"t":"1.5s"}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.T.D() != 1500*time.Millisecond {
		t.Errorf("got %v", d.T.D())
	}
	out, _ := json.Marshal(d)
	if string(out) != `{"t":"1.5s"}` {
		t.Errorf("Marshal = %s", out)
	}
	for _, bad := range []string{`{"t":5}`, `{"t":"five"}`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

func TestMissing(t *testing.T) {
	bd := petstore()
	tests := []struct {
		name string
		b    Binding
		want []string
	}{
		{"empty binding names every need", Binding{}, []string{
			"endpoint backend: no URLs",
			"security jwt: no values",
			"security key: no values",
			"rate limit standard: no rate",
		}},
		{"complete", Binding{
			Endpoints: map[string]EndpointBinding{"backend": {URLs: []string{"http://127.0.0.1:1"}}},
			Security: map[string]SecurityBinding{
				"key": {APIKey: &APIKeyBinding{KeysFile: "keys"}},
				"jwt": {JWT: &JWTBinding{JWKSURL: "http://127.0.0.1:2/jwks"}},
			},
			RateLimits: map[string]RateLimitBinding{"standard": {Requests: 10, Period: Duration(time.Minute)}},
		}, nil},
		{"wrong kind of values, redis without address", Binding{
			Endpoints: map[string]EndpointBinding{"backend": {URLs: []string{"http://127.0.0.1:1"}}},
			Security: map[string]SecurityBinding{
				"key": {Basic: &BasicBinding{HtpasswdFile: "h"}},
				"jwt": {JWT: &JWTBinding{Issuer: "i"}},
			},
			RateLimits: map[string]RateLimitBinding{"standard": {Requests: 10, Period: Duration(time.Minute), Store: StoreRedis}},
		}, []string{
			"security jwt: jwt needs a JWKS URL, a certificate or an HMAC secret",
			"security key: needs an API key file",
			"rate limit standard: store redis but no redis address",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.b.Missing(bd)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Missing() = %q, want %q", got, tt.want)
			}
		})
	}
	// Bundle defaults satisfy what the Binding does not give.
	withDefaults := petstore()
	withDefaults.Endpoints["backend"] = Endpoint{URLs: []string{"http://127.0.0.1:3"}}
	withDefaults.RateLimits["standard"] = RateLimit{Default: &Rate{Requests: 5, Period: Duration(time.Second)}}
	got := (&Binding{}).Missing(withDefaults)
	want := []string{"security jwt: no values", "security key: no values"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Missing() with Bundle defaults = %q, want %q", got, want)
	}
}

func TestSecretFiles(t *testing.T) {
	b := Binding{
		Security: map[string]SecurityBinding{
			"key":   {APIKey: &APIKeyBinding{KeysFile: "security/key/keys"}},
			"basic": {Basic: &BasicBinding{HtpasswdFile: "./security/basic/htpasswd"}},
			// An OAuth2 scheme may carry both: each CA is its own file.
			"oauth": {
				JWT:    &JWTBinding{JWKSURL: "https://id/jwks", CAFile: "security/oauth/jwks-ca.crt"},
				OAuth2: &OAuth2Binding{IntrospectionURL: "https://id/introspect", CAFile: "security/oauth/ca.crt"},
			},
		},
		Server: &ServerBinding{TLSCertFile: "tls.crt", TLSKeyFile: "tls.key"},
		Redis:  &RedisBinding{Address: "127.0.0.1:6379", PasswordFile: "redis/password"},
		Endpoints: map[string]EndpointBinding{
			"a": {URLs: []string{"https://x"}, CAFile: "ca.crt"},
			"b": {URLs: []string{"https://y"}, CAFile: "ca.crt"},
		},
	}
	want := []string{"ca.crt", "redis/password", "security/basic/htpasswd", "security/key/keys",
		"security/oauth/ca.crt", "security/oauth/jwks-ca.crt", "tls.crt", "tls.key"}
	if got := b.SecretFiles(); !reflect.DeepEqual(got, want) {
		t.Errorf("SecretFiles() = %q, want %q", got, want)
	}
}

func TestParseBinding(t *testing.T) {
	if _, err := ParseBinding([]byte(`{"apiVersion":"gatekiln.io/binding/v0"}`)); err == nil {
		t.Error("wrong apiVersion accepted")
	}
	if _, err := ParseBinding([]byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoint":{}}`)); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := ParseBinding([]byte(`{"apiVersion":"gatekiln.io/binding/v1","redis":{"address":"r:6379","cluster":true,"db":2}}`)); err == nil || !strings.Contains(err.Error(), "only database 0") {
		t.Errorf("a cluster Redis with db 2: %v, want an error naming database 0", err)
	}
	if b, err := ParseBinding([]byte(`{"apiVersion":"gatekiln.io/binding/v1","redis":{"address":"r:6379","cluster":true}}`)); err != nil || !b.Redis.Cluster {
		t.Errorf("a cluster Redis: %+v, %v", b, err)
	}
	b, err := ParseBinding([]byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoints":{"a":{"urls":["http://127.0.0.1:1"]}}}`))
	if err != nil || b.Endpoints["a"].URLs[0] != "http://127.0.0.1:1" {
		t.Errorf("ParseBinding = %+v, %v", b, err)
	}
	// jwt.caFile is optional: a Binding written before it existed still
	// parses, and one that sets it round-trips.
	b, err = ParseBinding([]byte(`{"apiVersion":"gatekiln.io/binding/v1","security":{"j":{"jwt":{"jwksUrl":"https://id/jwks"}}}}`))
	if err != nil || b.Security["j"].JWT.CAFile != "" {
		t.Errorf("binding without jwt.caFile = %+v, %v", b, err)
	}
	withCA := `{"apiVersion":"gatekiln.io/binding/v1","security":{"j":{"jwt":{"caFile":"jwks-ca.crt","jwksUrl":"https://id/jwks"}}}}`
	b, err = ParseBinding([]byte(withCA))
	if err != nil || b.Security["j"].JWT.CAFile != "jwks-ca.crt" {
		t.Fatalf("binding with jwt.caFile = %+v, %v", b, err)
	}
	if out, err := b.Marshal(); err != nil || string(out) != withCA {
		t.Errorf("jwt.caFile round trip: %s, %v", out, err)
	}
	b, err = LoadBinding(t.TempDir())
	if err != nil || b.APIVersion != BindingAPIVersion {
		t.Errorf("LoadBinding(empty dir) = %+v, %v; want an empty Binding", b, err)
	}
}
