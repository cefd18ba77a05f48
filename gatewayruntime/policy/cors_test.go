package policy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func TestCORS(t *testing.T) {
	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		"POST /v1/pets": {{{Name: "key"}}},
	})
	api.CORS = &bundle.CORS{
		AllowOrigins:  []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods:  []string{"GET", "POST"},
		AllowHeaders:  []string{"Content-Type", "X-Api-Key"},
		ExposeHeaders: []string{"RateLimit", "X-Request-Id"},
		MaxAge:        bundle.Duration(10 * time.Minute), AllowCredentials: true,
	}
	// The single-pet route has its own, public policy.
	api.Routes[2].CORS = &bundle.CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"*"}}
	b, dir := securityBinding(t, "http://127.0.0.1:1/")
	up := newUpstream(t)
	gw := startGateway(t, api, b, dir, up)

	preflight := func(origin, method, headers string) map[string]string {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method}
		if headers != "" {
			h["Access-Control-Request-Headers"] = headers
		}
		return h
	}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		want               map[string]string // response headers; "" means absent
	}{
		{"preflight allowed, no credentials needed", "OPTIONS", "/v1/pets", preflight("https://app.example.com", "POST", "content-type, x-api-key"), 204,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Methods": "GET, POST",
				"Access-Control-Allow-Headers": "content-type, x-api-key", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Max-Age": "600"}},
		{"preflight from a subdomain pattern", "OPTIONS", "/v1/pets", preflight("https://shop.example.org", "GET", ""), 204,
			map[string]string{"Access-Control-Allow-Origin": "https://shop.example.org"}},
		{"preflight: the bare domain is not a subdomain", "OPTIONS", "/v1/pets", preflight("https://example.org", "GET", ""), 403,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight: foreign origin", "OPTIONS", "/v1/pets", preflight("https://evil.test", "POST", ""), 403,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight: header not allowed", "OPTIONS", "/v1/pets", preflight("https://app.example.com", "POST", "x-secret"), 403, nil},
		{"preflight: public route echoes any header", "OPTIONS", "/v1/pets/1", preflight("https://any.test", "GET", "x-whatever"), 204,
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "x-whatever", "Access-Control-Allow-Credentials": ""}},
		{"actual request from an allowed origin", "GET", "/v1/pets", map[string]string{"Origin": "https://app.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Expose-Headers": "RateLimit, X-Request-Id",
				"Vary": "Origin"}},
		{"refusal by a later filter still carries CORS", "POST", "/v1/pets", map[string]string{"Origin": "https://app.example.com"}, 401,
			map[string]string{"Access-Control-Allow-Origin": "https://app.example.com"}},
		{"actual request from a foreign origin", "GET", "/v1/pets", map[string]string{"Origin": "https://evil.test"}, 200,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"no Origin: untouched", "GET", "/v1/pets", nil, 200, map[string]string{"Access-Control-Allow-Origin": "", "Vary": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := gw.do(t, tt.method, tt.path, tt.hdr, "")
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			for k, v := range tt.want {
				if got := strings.Join(res.header.Values(k), ", "); got != v {
					t.Fatalf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if got := up.hits.Load(); got != 3 {
		t.Fatalf("upstream hits %d, want 3 (preflights are answered by the gateway)", got)
	}
}

// The upstream's own CORS headers never override the API's policy.
func TestCORSReplacesUpstreamHeaders(t *testing.T) {
	api := petstore(t, nil)
	api.CORS = &bundle.CORS{AllowOrigins: []string{"https://app.example.com"}}
	up := newUpstream(t)
	body := `{"id":1,"name":"rex"}`
	up.body.Store(&body) // this upstream answers with Access-Control-Allow-Origin: *
	gw := startGateway(t, api, binding(), t.TempDir(), up)
	res := gw.do(t, "GET", "/v1/pets/1", map[string]string{"Origin": "https://evil.test"}, "")
	if res.status != http.StatusOK || len(res.header.Values("Access-Control-Allow-Origin")) != 0 {
		t.Fatalf("status %d, Access-Control-Allow-Origin %q", res.status, res.header.Values("Access-Control-Allow-Origin"))
	}
	res = gw.do(t, "GET", "/v1/pets/1", map[string]string{"Origin": "https://app.example.com"}, "")
	if got := res.header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example.com" {
		t.Fatalf("Access-Control-Allow-Origin %q", got)
	}
}
