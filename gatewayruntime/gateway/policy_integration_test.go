package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/gateway"
	"github.com/gatekiln/gatekiln/gatewayruntime/policy"
)

// TestWithThePolicies wires the real policy Factories the way
// cmd/gatekiln-gateway does and checks what the gateway owns in that
// contract: CORS preflights reach the chain of the operation they ask about,
// and a refusal by a policy never reaches the upstream.
func TestWithThePolicies(t *testing.T) {
	var hits atomic.Int64
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(uln) }()
	t.Cleanup(func() { _ = up.Close() })

	secured := []bundle.SecurityRequirement{{{Name: "key"}}}
	api := &bundle.Bundle{
		APIVersion: bundle.APIVersion,
		API:        bundle.API{Title: "it", Version: "1", BasePath: "/v1", SpecVersion: "3.0.3"},
		OpenAPI: json.RawMessage(`{"openapi":"3.0.3","info":{"title":"it","version":"1"},"servers":[{"url":"/v1"}],"paths":{"/items":{"post":{` +
			`"requestBody":{"required":true,"content":{"application/json":{"schema":{"type":"object"}}}},"responses":{"200":{"description":"ok"}}}}}}`),
		Routes: []bundle.Route{
			{Method: "GET", Path: "/v1/items/{id}", UpstreamPath: "/items/{id}", Endpoint: "backend", Security: secured},
			{Method: "PUT", Path: "/v1/items/{id}", UpstreamPath: "/items/{id}", Endpoint: "backend", Security: secured},
			{Method: "POST", Path: "/v1/items", UpstreamPath: "/items", Endpoint: "backend",
				Validation: bundle.Validation{Request: true, MaxBodyBytes: 64}},
		},
		Endpoints:       map[string]bundle.Endpoint{"backend": {}},
		SecuritySchemes: map[string]bundle.SecurityScheme{"key": {Type: bundle.SchemeAPIKey, In: "header", Name: "X-Api-Key"}},
		CORS:            &bundle.CORS{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "PUT"}},
	}
	dir := t.TempDir()
	sum := sha256.Sum256([]byte("s3cret"))
	b := &bundle.Binding{
		APIVersion: bundle.BindingAPIVersion,
		Endpoints:  map[string]bundle.EndpointBinding{"backend": {URLs: []string{"http://" + uln.Addr().String()}}},
		Security:   map[string]bundle.SecurityBinding{"key": {APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}},
	}
	data, _ := json.Marshal(b)
	_ = os.WriteFile(filepath.Join(dir, "binding.json"), data, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "keys"), []byte("app1:"+hex.EncodeToString(sum[:])+"\n"), 0o644)

	g, err := gateway.New(gateway.Config{Bundle: api, BindingDir: dir, Factories: policy.Factories(), ShutdownDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	if ok, why := g.Ready(); !ok {
		t.Fatalf("not ready: %v", why)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	send := func(method string, hdr map[string]string) (int, http.Header) {
		req, _ := http.NewRequest(method, base+"/v1/items/1", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	tests := []struct {
		name       string
		method     string
		hdr        map[string]string
		status     int
		allowOrig  string
		reachesUp  bool
		allowField string
	}{
		{"preflight for PUT is answered by the CORS policy", "OPTIONS",
			map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}, 204, "https://app.example", false, ""},
		{"preflight from another origin is refused", "OPTIONS",
			map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"}, 403, "", false, ""},
		{"preflight for a method the path lacks", "OPTIONS",
			map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"}, 204, "", false, "GET, HEAD, OPTIONS, PUT"},
		{"no key", "GET", map[string]string{"Origin": "https://app.example"}, 401, "https://app.example", false, ""},
		{"wrong key", "GET", map[string]string{"X-Api-Key": "nope"}, 401, "", false, ""},
		{"good key", "GET", map[string]string{"X-Api-Key": "s3cret", "Origin": "https://app.example"}, 200, "https://app.example", true, ""},
	}
	t.Run("a chunked body over the validation limit", func(t *testing.T) {
		// No declared length to refuse up front: validation reads up to its
		// limit and refuses. The rest of the body is not read, so the
		// response ends the connection.
		before := hits.Load()
		body := io.MultiReader(strings.NewReader(`{"a":"` + strings.Repeat("x", 100_000) + `"}`))
		req, _ := http.NewRequest("POST", base+"/v1/items", body)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !resp.Close || hits.Load() != before {
			t.Fatalf("status %d, Connection: close %v, upstream reached %v; want 413, close, not reached",
				resp.StatusCode, resp.Close, hits.Load() != before)
		}
	})
	// Validating that request loaded the operation's document; the policies
	// hand that garbage back a second later (debug.FreeOSMemory, a forced
	// collection and a full scavenge). Wait for it here rather than let it
	// land in a later test that measures the heap (TestReleaseIdleOnce).
	// The gateway's own post-load release ends first, so that its forced
	// collection is not taken for the policies'.
	gateway.WaitPostLoad(t)
	forced := forcedGCs()
	t.Cleanup(func() {
		for deadline := time.Now().Add(3 * time.Second); forcedGCs() == forced && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			status, header := send(tt.method, tt.hdr)
			if status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
			if got := header.Get("Access-Control-Allow-Origin"); got != tt.allowOrig {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.allowOrig)
			}
			if (hits.Load() > before) != tt.reachesUp {
				t.Errorf("upstream reached: %v, want %v", hits.Load() > before, tt.reachesUp)
			}
			if tt.allowField != "" && header.Get("Allow") != tt.allowField {
				t.Errorf("Allow %q", header.Get("Allow"))
			}
		})
	}
}

func forcedGCs() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
