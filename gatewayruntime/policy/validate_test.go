package policy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

func TestRequestValidation(t *testing.T) {
	api := petstore(t, func(r *bundle.Route) {
		r.Validation = bundle.Validation{Request: true, MaxBodyBytes: 256}
	})
	up := newUpstream(t)
	gw := startGateway(t, api, binding(), t.TempDir(), up)
	js := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		status             int
		errors             []problem.FieldError
	}{
		{"valid list", "GET", "/v1/pets?limit=10", nil, "", 200, nil},
		{"limit too big", "GET", "/v1/pets?limit=1000", nil, "", 400,
			[]problem.FieldError{{Pointer: "#/query/limit", Detail: "number must be at most 100"}}},
		{"limit not a number", "GET", "/v1/pets?limit=ten", nil, "", 400,
			[]problem.FieldError{{Pointer: "#/query/limit", Detail: "cannot be parsed: an invalid integer"}}},
		{"header pattern", "GET", "/v1/pets", map[string]string{"X-Trace": "NOT OK"}, "", 400,
			[]problem.FieldError{{Pointer: "#/header/X-Trace", Detail: `string doesn't match the regular expression "^[a-z0-9]+$"`}}},
		{"path parameter not an integer", "GET", "/v1/pets/rex", nil, "", 400,
			[]problem.FieldError{{Pointer: "#/path/petId", Detail: "cannot be parsed: an invalid integer"}}},
		{"valid path parameter", "GET", "/v1/pets/42", nil, "", 200, nil},
		{"valid body", "POST", "/v1/pets", js, `{"id":1,"name":"rex","owner":{"email":"a@b.example"}}`, 200, nil},
		{"missing required property", "POST", "/v1/pets", js, `{"id":1}`, 400,
			[]problem.FieldError{{Pointer: "#/body/name", Detail: `property "name" is missing`}}},
		{"two bad fields, nested", "POST", "/v1/pets", js, `{"id":"x","name":"rex","owner":{}}`, 400,
			[]problem.FieldError{
				{Pointer: "#/body/id", Detail: "value must be an integer"},
				{Pointer: "#/body/owner/email", Detail: `property "email" is missing`},
			}},
		{"empty body", "POST", "/v1/pets", js, "", 400, []problem.FieldError{{Pointer: "#/body", Detail: "is required"}}},
		{"not JSON", "POST", "/v1/pets", js, `{"id":`, 400,
			[]problem.FieldError{{Pointer: "#/body", Detail: "cannot be parsed as the declared content type"}}},
		{"wrong content type", "POST", "/v1/pets", map[string]string{"Content-Type": "text/plain"}, `{"id":1,"name":"rex"}`, 415,
			[]problem.FieldError{{Pointer: "#/header/Content-Type", Detail: "the operation does not accept this content type"}}},
		{"body over the route's limit", "POST", "/v1/pets", js, `{"id":1,"name":"` + strings.Repeat("x", 300) + `"}`, 413, nil},
	}
	var passed int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := gw.do(t, tt.method, tt.path, tt.hdr, tt.body)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 200 {
				passed++
				if res.echo.Body != tt.body {
					t.Fatalf("upstream got body %q, want it unchanged: %q", res.echo.Body, tt.body)
				}
				return
			}
			if res.prob.Status != tt.status {
				t.Fatalf("not a problem document: %s", res.body)
			}
			if tt.status == 400 && len(res.prob.Errors) == 0 {
				t.Fatalf("400 names no field: %s", res.body)
			}
			if tt.errors != nil && fmt.Sprint(res.prob.Errors) != fmt.Sprint(tt.errors) {
				t.Fatalf("errors %v, want %v", res.prob.Errors, tt.errors)
			}
			for _, fe := range res.prob.Errors {
				if !strings.HasPrefix(fe.Pointer, "#/") {
					t.Fatalf("pointer %q is not a JSON pointer fragment", fe.Pointer)
				}
			}
		})
	}
	if got := up.hits.Load(); got != passed {
		t.Fatalf("upstream hits %d, want %d: invalid requests reached it", got, passed)
	}
}

func TestResponseValidation(t *testing.T) {
	api := petstore(t, func(r *bundle.Route) { r.Validation = bundle.Validation{Response: true} })
	up := newUpstream(t)
	gw := startGateway(t, api, binding(), t.TempDir(), up)
	tests := []struct {
		name, body string
		status     int
	}{
		{"matches", `{"id":1,"name":"rex"}`, 200},
		{"breaks the schema", `{"id":"one"}`, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			up.body.Store(&body)
			res := gw.do(t, "GET", "/v1/pets/1", map[string]string{"X-Request-Id": "abc"}, "")
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 200 && string(res.body) != tt.body {
				t.Fatalf("body %q", res.body)
			}
			if tt.status == 502 {
				if res.header.Get("Access-Control-Allow-Origin") != "" {
					t.Fatal("the invalid upstream response's headers leaked into the 502")
				}
				if strings.Contains(string(res.body), "one") {
					t.Fatal("the 502 quotes the upstream's body")
				}
			}
		})
	}
}

func TestValidationBuildErrors(t *testing.T) {
	api := petstore(t, func(r *bundle.Route) { r.Validation.Request = true })
	f := &validationFactory{&shared{}}
	env := envFor(context.Background(), t.TempDir())
	missing := bundle.Route{Method: "GET", Path: "/v1/cats", UpstreamPath: "/cats", Validation: bundle.Validation{Request: true}}
	if _, err := f.Build(api, &missing, binding(), env); err == nil || !strings.Contains(err.Error(), "/cats not in the openapi document") {
		t.Fatalf("error %v", err)
	}
	wrongMethod := bundle.Route{Method: "DELETE", Path: "/v1/pets", UpstreamPath: "/pets", Validation: bundle.Validation{Request: true}}
	if _, err := f.Build(api, &wrongMethod, binding(), env); err == nil || !strings.Contains(err.Error(), "no DELETE operation") {
		t.Fatalf("error %v", err)
	}
	broken := *api
	broken.OpenAPI = []byte(`{"openapi":`)
	if _, err := f.Build(&broken, &api.Routes[0], binding(), env); err == nil || !strings.Contains(err.Error(), "load the bundle's openapi document") {
		t.Fatalf("error %v", err)
	}
	// A route found by its full path when the upstream path differs.
	moved := bundle.Route{Method: "GET", Path: "/v1/pets/{petId}", UpstreamPath: "/legacy/{petId}", Validation: bundle.Validation{Request: true}}
	if mw, err := f.Build(api, &moved, binding(), env); err != nil || mw == nil {
		t.Fatalf("route by full path: %v", err)
	}
	if mw, err := f.Build(api, &bundle.Route{Method: "GET", Path: "/v1/pets"}, binding(), env); err != nil || mw != nil {
		t.Fatalf("validation off: middleware %v, error %v", mw != nil, err)
	}
}

func TestEscapePointer(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "a/b": "a~1b", "m~n": "m~0n", "~/": "~0~1"} {
		if got := escapePointer(in); got != want {
			t.Errorf("escapePointer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLeanSpec(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"documentation dropped",
			`{"info":{"title":"t","description":"d"},"paths":{"/a":{"get":{"summary":"s","description":"d","externalDocs":{"url":"u"},"responses":{"200":{"description":"ok"}}}}}}`,
			`{"info":{"title":"t"},"paths":{"/a":{"get":{"responses":{"200":{}}}}}}`},
		{"names are kept",
			`{"components":{"schemas":{"description":{"type":"object","description":"d","properties":{"description":{"type":"string","example":"x"},"example":{"type":"integer"}},"required":["description"]}}}}`,
			`{"components":{"schemas":{"description":{"properties":{"description":{"type":"string"},"example":{"type":"integer"}},"required":["description"],"type":"object"}}}}`},
		{"values and extensions are kept",
			`{"enum":[{"description":"v"}],"default":{"example":1},"x-ext":{"description":"e"},"maximum":9007199254740993,"examples":[1]}`,
			`{"default":{"example":1},"enum":[{"description":"v"}],"maximum":9007199254740993,"x-ext":{"description":"e"}}`},
		{"media types and examples",
			`{"content":{"application/json":{"schema":{"type":"string"},"examples":{"a":{"value":1}}}}}`,
			`{"content":{"application/json":{"schema":{"type":"string"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := leanSpec([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestValidationAfterDocumentDropped: the gateway drops the document after
// ReadDocument; later generations build from the index alone.
func TestValidationAfterDocumentDropped(t *testing.T) {
	api := petstore(t, func(r *bundle.Route) { r.Validation.Request = true })
	s := &shared{}
	v, sec := &validationFactory{s}, &securityFactory{s}
	v.ReadDocument(api)
	sec.ReadDocument(api)
	api.OpenAPI = nil
	for gen := uint64(1); gen <= 2; gen++ {
		env := envFor(context.Background(), t.TempDir())
		env.Generation = gen
		for i := range api.Routes {
			mw, err := v.Build(api, &api.Routes[i], binding(), env)
			if err != nil || mw == nil {
				t.Fatalf("generation %d, %s %s: %v", gen, api.Routes[i].Method, api.Routes[i].Path, err)
			}
		}
	}
}
