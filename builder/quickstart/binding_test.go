package quickstart

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// allSchemes is a Bundle using every scheme type, rate limits with and
// without defaults, and two endpoints.
func allSchemes() *bundle.Bundle {
	sec := func(names ...string) []bundle.SecurityRequirement {
		var alt bundle.SecurityRequirement
		for _, n := range names {
			ref := bundle.SchemeRef{Name: n}
			if n == "jwt" {
				ref.Scopes = []string{"pets:write", "pets:read"}
			}
			alt = append(alt, ref)
		}
		return []bundle.SecurityRequirement{alt}
	}
	return &bundle.Bundle{
		APIVersion: bundle.APIVersion,
		API:        bundle.API{Title: "All", Version: "1", BasePath: "/", SpecVersion: "3.0.3"},
		OpenAPI:    json.RawMessage(`{"openapi":"3.0.3","info":{"title":"All","version":"1"},"paths":{}}`),
		Routes: []bundle.Route{
			{Method: "GET", Path: "/a", UpstreamPath: "/a", Endpoint: "one", Security: sec("key-header"), RateLimits: []string{"plain"}},
			{Method: "GET", Path: "/b", UpstreamPath: "/b", Endpoint: "two", Security: sec("key-query", "key-cookie"), RateLimits: []string{"defaulted"}},
			{Method: "GET", Path: "/c", UpstreamPath: "/c", Endpoint: "one", Security: sec("basic")},
			{Method: "GET", Path: "/d", UpstreamPath: "/d", Endpoint: "one", Security: sec("jwt")},
			{Method: "GET", Path: "/e", UpstreamPath: "/e", Endpoint: "one", Security: sec("oauth")},
			{Method: "GET", Path: "/f", UpstreamPath: "/f", Endpoint: "one", Security: sec("mtls")},
		},
		Endpoints: map[string]bundle.Endpoint{"one": {}, "two": {}},
		SecuritySchemes: map[string]bundle.SecurityScheme{
			"key-header": {Type: bundle.SchemeAPIKey, In: "header", Name: "X-Key"},
			"key-query":  {Type: bundle.SchemeAPIKey, In: "query", Name: "key"},
			"key-cookie": {Type: bundle.SchemeAPIKey, In: "cookie", Name: "session"},
			"basic":      {Type: bundle.SchemeBasic},
			"jwt":        {Type: bundle.SchemeJWT},
			"oauth":      {Type: bundle.SchemeOAuth2},
			"mtls":       {Type: bundle.SchemeMTLS},
		},
		RateLimits: map[string]bundle.RateLimit{
			"plain":     {},
			"defaulted": {Default: &bundle.Rate{Requests: 5, Period: bundle.Duration(time.Second)}},
		},
	}
}

type seeded struct{ r *rand.ChaCha8 }

func (s seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

func TestNewLocalGeneratesEverything(t *testing.T) {
	b := allSchemes()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l, err := NewLocal(b, Values{
		DefaultURL: "http://127.0.0.1:1",
		Endpoints:  map[string][]string{"two": {"http://127.0.0.1:2", "http://127.0.0.1:3"}},
		APIKeys:    map[string]string{"key-query": "given-key"},
		Generate:   true,
		Rand:       seeded{rand.NewChaCha8([32]byte{1})},
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if missing := l.Binding.Missing(b); len(missing) != 0 {
		t.Errorf("the gateway would not be ready: %v", missing)
	}
	if got := l.Binding.Endpoints["one"].URLs; len(got) != 1 || got[0] != "http://127.0.0.1:1" {
		t.Errorf("endpoint one = %v, want the default URL", got)
	}
	if got := l.Binding.Endpoints["two"].URLs; len(got) != 2 {
		t.Errorf("endpoint two = %v, want the two given URLs", got)
	}
	if _, ok := l.Binding.RateLimits["defaulted"]; ok {
		t.Error("a policy with the definition's default got a local value")
	}
	if rl := l.Binding.RateLimits["plain"]; rl.Requests != 1000 || rl.Store != bundle.StoreLocal {
		t.Errorf("plain rate limit = %+v", rl)
	}
	if len(l.RateLimits) != 2 || !strings.Contains(strings.Join(l.RateLimits, "\n"), "defaulted: 5 per second (the definition's default)") {
		t.Errorf("rate limit descriptions %q", l.RateLimits)
	}

	dir := t.TempDir()
	if err := l.Write(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := bundle.LoadBinding(dir)
	if err != nil {
		t.Fatalf("the written binding does not load: %v", err)
	}
	for _, f := range loaded.SecretFiles() {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("binding names %s, not written: %v", f, err)
		}
	}

	creds := map[string]Credential{}
	for _, c := range l.Credentials {
		creds[c.Scheme] = c
	}
	if len(creds) != 7 {
		t.Fatalf("credentials for %d schemes, want 7: %+v", len(creds), l.Credentials)
	}
	// API keys are stored as hashes only.
	for scheme, c := range map[string]Credential{"key-header": creds["key-header"], "key-query": creds["key-query"]} {
		data := l.Files[l.Binding.Security[scheme].APIKey.KeysFile]
		sum := sha256.Sum256([]byte(c.Value))
		if string(data) != "quickstart:"+hex.EncodeToString(sum[:])+"\n" || bytes.Contains(data, []byte(c.Value)) {
			t.Errorf("%s keys file %q", scheme, data)
		}
	}
	if creds["key-query"].Value != "given-key" {
		t.Errorf("the given key was not used: %q", creds["key-query"].Value)
	}
	// The password matches the bcrypt entry.
	ht := string(l.Files[l.Binding.Security["basic"].Basic.HtpasswdFile])
	user, hash, _ := strings.Cut(strings.TrimSpace(ht), ":")
	if user != "quickstart" || bcrypt.CompareHashAndPassword([]byte(hash), []byte(creds["basic"].Value)) != nil {
		t.Errorf("htpasswd %q does not match the printed password", ht)
	}
	// The token verifies with the public key written, and carries every scope asked for.
	jb := l.Binding.Security["jwt"].JWT
	pub, err := jwt.ParseECPublicKeyFromPEM(l.Files[jb.CertificateFile])
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(creds["jwt"].Value, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithIssuer(Issuer), jwt.WithTimeFunc(func() time.Time { return now.Add(time.Hour) })); err != nil {
		t.Fatalf("token: %v", err)
	}
	if claims["scope"] != "pets:read pets:write" {
		t.Errorf("scope = %v", claims["scope"])
	}
	if l.Binding.Security["oauth"].JWT == nil {
		t.Error("oauth2 scheme should be served as JWT locally")
	}
	if creds["mtls"].Presentable() || creds["mtls"].Note == "" {
		t.Errorf("mtls credential %+v: it cannot be presented over plain HTTP and should say so", creds["mtls"])
	}

	// Curl arguments put each key where its scheme reads it.
	for scheme, want := range map[string]string{"key-header": "-H 'X-Key: ", "key-cookie": "--cookie 'session=", "basic": "-u 'quickstart:", "jwt": "-H 'Authorization: Bearer "} {
		args, _ := creds[scheme].Curl()
		if !strings.HasPrefix(strings.Join(args, " "), want) {
			t.Errorf("%s curl args %q, want prefix %q", scheme, args, want)
		}
	}
	if _, q := creds["key-query"].Curl(); q != "key=given-key" {
		t.Errorf("query key %q", q)
	}
}

func TestNewLocalRefusesUnknownNames(t *testing.T) {
	b := allSchemes()
	for _, c := range []struct {
		v    Values
		want string
	}{
		{Values{Endpoints: map[string][]string{"three": {"http://x"}}}, `endpoint "three"`},
		{Values{APIKeys: map[string]string{"basic": "k"}}, `api key for "basic"`},
		{Values{APIKeys: map[string]string{"nope": "k"}}, `api key for a scheme the definition does not have (its apiKey schemes: `},
	} {
		if _, err := NewLocal(b, c.v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewLocal(%+v) = %v, want an error naming %s", c.v, err, c.want)
		}
	}
}

func TestNewLocalWithoutGenerate(t *testing.T) {
	b := allSchemes()
	l, err := NewLocal(b, Values{DefaultURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	missing := l.Binding.Missing(b)
	if len(missing) != 7 {
		t.Errorf("without --credentials every scheme should be missing, got %v", missing)
	}
	sc := bufio.NewScanner(strings.NewReader(strings.Join(missing, "\n")))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "security ") {
			t.Errorf("unexpected missing value %q", sc.Text())
		}
	}
}
