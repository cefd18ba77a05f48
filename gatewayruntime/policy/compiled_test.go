package policy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// TestCompilerBundlesBuild builds every policy for every route of the Bundles
// the compiler produces from real definitions (its golden files: Swagger 2.0,
// OpenAPI 3.0 and 3.1, every scheme type), with a Binding that gives each name
// a value. The contract between build and run holds when none is refused.
func TestCompilerBundlesBuild(t *testing.T) {
	files := compilerGoldens(t)
	ca := newCA(t, "clients")
	dir := writeFiles(t, map[string]string{
		"hmac":     "0123456789abcdef0123456789abcdef",
		"keys":     "alice:" + sha("k") + "\n",
		"htpasswd": htpasswdLine(t, "carol", "pw"),
		"ca.pem":   string(ca.pem),
	})
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			api := readGolden(t, file)
			b := binding()
			for name, s := range api.SecuritySchemes {
				switch s.Type {
				case bundle.SchemeJWT:
					b.Security[name] = bundle.SecurityBinding{JWT: &bundle.JWTBinding{HMACSecretFile: "hmac"}}
				case bundle.SchemeOAuth2:
					b.Security[name] = bundle.SecurityBinding{OAuth2: &bundle.OAuth2Binding{IntrospectionURL: "http://127.0.0.1:1/introspect"}}
				case bundle.SchemeAPIKey:
					b.Security[name] = bundle.SecurityBinding{APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}
				case bundle.SchemeBasic:
					b.Security[name] = bundle.SecurityBinding{Basic: &bundle.BasicBinding{HtpasswdFile: "htpasswd"}}
				case bundle.SchemeMTLS:
					b.Security[name] = bundle.SecurityBinding{MTLS: &bundle.MTLSBinding{ClientCAFile: "ca.pem"}}
				}
			}
			b.Endpoints = map[string]bundle.EndpointBinding{}
			for name := range api.Endpoints {
				b.Endpoints[name] = bundle.EndpointBinding{URLs: []string{"http://127.0.0.1:1"}}
			}
			for name := range api.RateLimits {
				b.RateLimits[name] = bundle.RateLimitBinding{Requests: 10, Period: bundle.Duration(time.Second)}
			}
			if missing := b.Missing(api); len(missing) > 0 {
				t.Fatalf("the test binding lacks %v", missing)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			env := envFor(ctx, dir)
			built := 0
			for _, f := range Factories() {
				for i := range api.Routes {
					mw, err := f.Build(api, &api.Routes[i], b, env)
					if err != nil {
						t.Fatalf("%s on %s %s: %v", f.Name(), api.Routes[i].Method, api.Routes[i].Path, err)
					}
					if mw != nil {
						built++
					}
				}
			}
			if len(api.Routes) > 0 && built == 0 {
				t.Fatal("no policy on any route: the Bundle's validation switches were ignored")
			}
		})
	}
}

// compilerGoldens lists the compiler's golden files: Bundles it made from
// corpus definitions.
func compilerGoldens(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "builder", "compile", "testdata", "golden", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no compiler golden Bundles under builder/compile/testdata/golden (%v): this test needs them", err)
	}
	return files
}

// readGolden parses the Bundle of one compiler golden file.
func readGolden(t *testing.T, file string) *bundle.Bundle {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Bundle json.RawMessage `json:"bundle"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	api, err := bundle.Parse(golden.Bundle)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return api
}
