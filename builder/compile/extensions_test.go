package compile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// doc builds a small OpenAPI 3.0 document: top is inserted at the document
// level, op into GET /pets/{id}; POST /pets stays plain.
func doc(top, op string) string {
	return `openapi: 3.0.3
info: {title: t, version: "2.1"}
` + top + `
paths:
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
` + indent(op, "      ") + `
      responses: {"200": {description: ok}}
  /pets:
    post:
      responses: {"201": {description: ok}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    jwt: {type: http, scheme: bearer, bearerFormat: JWT}
    basic: {type: http, scheme: basic}
    digest: {type: http, scheme: digest}
    oidc: {type: openIdConnect, openIdConnectUrl: "https://id.example.com/.well-known/openid-configuration"}
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: "https://id.example.com/token", scopes: {read: r, write: w}}}}
`
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}

func compileString(t *testing.T, src string, kinds *Kinds) (*Result, Problems) {
	t.Helper()
	res, err := Compile(Input{Files: []File{{Path: "api.yaml", Data: []byte(src)}}, Kinds: kinds})
	if err != nil {
		var ps Problems
		if !errors.As(err, &ps) {
			t.Fatalf("error is not Problems: %v", err)
		}
		return nil, ps
	}
	return res, nil
}

func routeOf(t *testing.T, res *Result, method, path string) bundle.Route {
	t.Helper()
	for _, r := range res.Bundle.Routes {
		if r.Method == method && r.Path == path {
			return r
		}
	}
	t.Fatalf("no route %s %s in %+v", method, path, res.Bundle.Routes)
	return bundle.Route{}
}

type extCase struct {
	name    string
	src     string
	version string
	// check inspects a successful compile; problem names the expected failure.
	check   func(t *testing.T, res *Result)
	problem *Problem
	warning string
}

func runExtCases(t *testing.T, cases []extCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Compile(Input{Files: []File{{Path: "api.yaml", Data: []byte(tc.src)}}, Version: tc.version})
			if tc.problem != nil {
				var ps Problems
				if !errors.As(err, &ps) {
					t.Fatalf("want problem %+v, got %v", *tc.problem, err)
				}
				for _, p := range ps {
					if p.Code == tc.problem.Code && p.Pointer == tc.problem.Pointer && strings.Contains(p.Reason, tc.problem.Reason) {
						return
					}
				}
				t.Fatalf("want problem %+v among:\n%v", *tc.problem, ps)
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warning != "" {
				found := false
				for _, w := range res.Warnings {
					if strings.Contains(w.Error(), tc.warning) {
						found = true
					}
				}
				if !found {
					t.Errorf("no warning containing %q in %v", tc.warning, res.Warnings)
				}
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func TestGatekilnExtensions(t *testing.T) {
	runExtCases(t, []extCase{
		{name: "endpoint name at document, overridden by operation",
			src: doc("x-gatekiln-endpoint: main", "x-gatekiln-endpoint: special"),
			check: func(t *testing.T, res *Result) {
				if e := routeOf(t, res, "GET", "/pets/{id}").Endpoint; e != "special" {
					t.Errorf("GET endpoint %q", e)
				}
				if e := routeOf(t, res, "POST", "/pets").Endpoint; e != "main" {
					t.Errorf("POST endpoint %q", e)
				}
				if !reflect.DeepEqual(res.Bundle.EndpointNames(), []string{"main", "special"}) {
					t.Errorf("endpoints %v", res.Bundle.EndpointNames())
				}
			}},
		{name: "inline endpoint: document default, operation named by operationId",
			src: doc("x-gatekiln-endpoint: {urls: [http://a:1, http://b:2], loadBalance: least-request, timeout: 3s, circuitBreaker: {consecutiveFailures: 5, baseEjection: 30s}}",
				"x-gatekiln-endpoint: {urls: http://c:3, retries: {attempts: 2, on: [5xx, reset]}}"),
			check: func(t *testing.T, res *Result) {
				want := map[string]bundle.Endpoint{
					"default": {URLs: []string{"http://a:1", "http://b:2"}, LoadBalance: "least-request", Timeout: bundle.Duration(3 * time.Second),
						CircuitBreaker: &bundle.CircuitBreaker{ConsecutiveFailures: 5, BaseEjection: bundle.Duration(30 * time.Second)}},
					"getPet": {URLs: []string{"http://c:3"}, Retries: &bundle.Retries{Attempts: 2, On: []string{"5xx", "reset"}}},
				}
				if !reflect.DeepEqual(res.Bundle.Endpoints, want) {
					t.Errorf("endpoints %+v", res.Bundle.Endpoints)
				}
			}},
		{name: "declared endpoints by name",
			src: doc("x-gatekiln-endpoints: {users: {urls: [https://users.internal]}}\nx-gatekiln-endpoint: users", ""),
			check: func(t *testing.T, res *Result) {
				if u := res.Bundle.Endpoints["users"].URLs; !reflect.DeepEqual(u, []string{"https://users.internal"}) {
					t.Errorf("users urls %v", u)
				}
			}},
		{name: "endpoint URL must be absolute http(s)",
			src:     doc("x-gatekiln-endpoint: {urls: [http://ok, 'ftp://no']}", ""),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/x-gatekiln-endpoint/urls/1", Reason: `"ftp://no" is not an absolute http(s) URL`}},
		{name: "endpoint of the wrong shape",
			src:     doc("", "x-gatekiln-endpoint: 42"),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/paths/~1pets~1{id}/get/x-gatekiln-endpoint", Reason: "want an endpoint name"}},
		{name: "no endpoint is a warning",
			src: doc("", ""), warning: "name no endpoint",
			check: func(t *testing.T, res *Result) {
				if res.Bundle.Endpoints != nil {
					t.Errorf("endpoints %v", res.Bundle.Endpoints)
				}
			}},
		{name: "rate limits: name, inline default, list, cleared",
			src: doc("x-gatekiln-ratelimit: standard",
				"x-gatekiln-ratelimit: [standard, {name: burst, requests: 10, unit: Second, burst: 5}, {requests: 100, period: 1h}]"),
			check: func(t *testing.T, res *Result) {
				if rl := routeOf(t, res, "GET", "/pets/{id}").RateLimits; !reflect.DeepEqual(rl, []string{"standard", "burst", "getPet-2"}) {
					t.Errorf("GET rate limits %v", rl)
				}
				want := map[string]bundle.RateLimit{
					"standard": {},
					"burst":    {Default: &bundle.Rate{Requests: 10, Period: bundle.Duration(time.Second), Burst: 5}},
					"getPet-2": {Default: &bundle.Rate{Requests: 100, Period: bundle.Duration(time.Hour)}},
				}
				if !reflect.DeepEqual(res.Bundle.RateLimits, want) {
					t.Errorf("rate limits %+v", res.Bundle.RateLimits)
				}
			}},
		{name: "an operation clears the document's rate limit",
			src: doc("x-gatekiln-ratelimit: standard", "x-gatekiln-ratelimit: []"),
			check: func(t *testing.T, res *Result) {
				if rl := routeOf(t, res, "GET", "/pets/{id}").RateLimits; rl != nil {
					t.Errorf("GET rate limits %v", rl)
				}
			}},
		{name: "rate limit needs whole requests",
			src:     doc("x-gatekiln-ratelimit: {requests: 0.5}", ""),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/x-gatekiln-ratelimit/requests", Reason: "at least 1"}},
		{name: "two inline defaults for one name",
			src:     doc("x-gatekiln-ratelimit: {name: a, requests: 1}", "x-gatekiln-ratelimit: {name: a, requests: 2}"),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/paths/~1pets~1{id}/get/x-gatekiln-ratelimit", Reason: "two different inline defaults"}},
		{name: "security: native document, extension per operation",
			src: doc("security: [{key: []}]", "x-gatekiln-security: [jwt, {oauth: [read, write], key: []}]"),
			check: func(t *testing.T, res *Result) {
				want := []bundle.SecurityRequirement{{{Name: "jwt"}}, {{Name: "key"}, {Name: "oauth", Scopes: []string{"read", "write"}}}}
				if s := routeOf(t, res, "GET", "/pets/{id}").Security; !reflect.DeepEqual(s, want) {
					t.Errorf("GET security %+v", s)
				}
				if s := routeOf(t, res, "POST", "/pets").Security; !reflect.DeepEqual(s, []bundle.SecurityRequirement{{{Name: "key"}}}) {
					t.Errorf("POST security %+v", s)
				}
				wantSchemes := map[string]bundle.SecurityScheme{
					"jwt": {Type: bundle.SchemeJWT, BearerFormat: "JWT"},
					"key": {Type: bundle.SchemeAPIKey, In: "header", Name: "X-Key"},
					"oauth": {Type: bundle.SchemeOAuth2, Flows: map[string]bundle.OAuthFlow{
						"clientCredentials": {TokenURL: "https://id.example.com/token", Scopes: map[string]string{"read": "r", "write": "w"}}}},
				}
				if !reflect.DeepEqual(res.Bundle.SecuritySchemes, wantSchemes) {
					t.Errorf("schemes %+v", res.Bundle.SecuritySchemes)
				}
			}},
		{name: "security: an empty list is public",
			src: doc("x-gatekiln-security: basic", "x-gatekiln-security: []"),
			check: func(t *testing.T, res *Result) {
				if s := routeOf(t, res, "GET", "/pets/{id}").Security; s != nil {
					t.Errorf("GET security %+v", s)
				}
				if s := routeOf(t, res, "POST", "/pets").Security; len(s) != 1 || s[0][0].Name != "basic" {
					t.Errorf("POST security %+v", s)
				}
			}},
		{name: "openIdConnect is verified as JWT",
			src: doc("x-gatekiln-security: oidc", ""),
			check: func(t *testing.T, res *Result) {
				if s := res.Bundle.SecuritySchemes["oidc"]; s.Type != bundle.SchemeJWT || s.OpenIDConnectURL == "" {
					t.Errorf("oidc %+v", s)
				}
			}},
		{name: "security names must be declared",
			src:     doc("", "x-gatekiln-security: nope"),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/paths/~1pets~1{id}/get/x-gatekiln-security/0", Reason: `"nope" is not declared`}},
		{name: "a scheme the gateway cannot check is refused where used",
			src:     doc("", "security: [{digest: []}]"),
			problem: &Problem{Code: CodeUnsupportedFeature, Pointer: "/components/securitySchemes/digest/scheme", Reason: `"digest" is not supported`}},
		{name: "an unused unsupported scheme is fine",
			src: doc("", "")},
		{name: "roles on an API key scheme are refused: the gateway could not check them",
			src:     doc("", "security: [{jwt: [read]}, {key: [admin]}]"),
			problem: &Problem{Code: CodeUnsupportedFeature, Pointer: "/paths/~1pets~1{id}/get/security/1/key", Reason: `"key" is an API key, for which the gateway cannot check the roles admin`}},
		{name: "roles on a basic scheme are refused too",
			src:     doc("security: [{basic: [admin, ops]}]", ""),
			problem: &Problem{Code: CodeUnsupportedFeature, Pointer: "/security/0/basic", Reason: "cannot check the roles admin, ops"}},
		{name: "scopes on bearer and oauth2 schemes are checked, so allowed",
			src: doc("", "security: [{jwt: [read]}, {oauth: [write]}]"),
			check: func(t *testing.T, res *Result) {
				if s := routeOf(t, res, "GET", "/pets/{id}").Security; len(s) != 2 || s[0][0].Scopes[0] != "read" || s[1][0].Scopes[0] != "write" {
					t.Errorf("security %+v", s)
				}
			}},
		{name: "cors, timeout, retries, validation",
			src: doc("x-gatekiln-cors: {allowOrigins: ['*'], maxAge: 600}\nx-gatekiln-timeout: 2s\nx-gatekiln-retries: 3\nx-gatekiln-validate: false",
				"x-gatekiln-cors: {allowOrigins: [https://a.example], allowCredentials: true}\nx-gatekiln-timeout: 1.5\nx-gatekiln-validate: {response: true, maxBodyBytes: 1024}"),
			check: func(t *testing.T, res *Result) {
				if c := res.Bundle.CORS; c == nil || c.AllowOrigins[0] != "*" || c.MaxAge.D() != 10*time.Minute {
					t.Errorf("document cors %+v", c)
				}
				get := routeOf(t, res, "GET", "/pets/{id}")
				if get.CORS == nil || !get.CORS.AllowCredentials || get.Timeout.D() != 1500*time.Millisecond ||
					get.Retries.Attempts != 3 || get.Validation != (bundle.Validation{Request: true, Response: true, MaxBodyBytes: 1024}) {
					t.Errorf("GET %+v", get)
				}
				post := routeOf(t, res, "POST", "/pets")
				if post.CORS != nil || post.Timeout.D() != 2*time.Second || post.Validation.Request {
					t.Errorf("POST %+v", post)
				}
			}},
		{name: "bad timeout",
			src:     doc("", "x-gatekiln-timeout: soon"),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/paths/~1pets~1{id}/get/x-gatekiln-timeout", Reason: "not a duration"}},
		{name: "too many retries",
			src:     doc("x-gatekiln-retries: 11", ""),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/x-gatekiln-retries", Reason: "between 0 and 10"}},
		{name: "unknown gatekiln extension is a warning",
			src: doc("", "x-gatekiln-ratelimits: x"), warning: "x-gatekiln-ratelimits is not a Gatekiln extension"},
		{name: "an extension at the wrong level is a warning",
			src: doc("", "x-gatekiln-basepath: /x"), warning: "x-gatekiln-basepath is not read here (document only)"},
		{name: "unknown field of a known extension is a warning",
			src: doc("x-gatekiln-endpoint: {urls: [http://a], weight: 3}", ""), warning: "x-gatekiln-endpoint.weight is not a known field"},
		{name: "several problems are reported together",
			src:     doc("x-gatekiln-timeout: soon\nx-gatekiln-retries: -1", "x-gatekiln-endpoint: 42"),
			problem: &Problem{Code: CodeInvalidDefinition, Pointer: "/x-gatekiln-retries", Reason: "between 0 and 10"}},
	})
}

func TestBasePath(t *testing.T) {
	base := func(res *Result) string { return res.Bundle.API.BasePath }
	want := func(bp, first string) func(t *testing.T, res *Result) {
		return func(t *testing.T, res *Result) {
			if base(res) != bp {
				t.Errorf("base path %q, want %q", base(res), bp)
			}
			if p := res.Bundle.Routes[0].Path; p != first {
				t.Errorf("first route %q, want %q", p, first)
			}
		}
	}
	runExtCases(t, []extCase{
		{name: "none", src: doc("", ""), check: want("/", "/pets")},
		{name: "server path", src: doc("servers: [{url: 'https://api.example.com/v2/'}, {url: /other}]", ""), check: want("/v2", "/v2/pets")},
		{name: "server variables take their defaults",
			src:   doc("servers: [{url: 'https://{host}/{base}/v{major}', variables: {host: {default: a.example}, base: {default: store}, major: {default: '3'}}}]", ""),
			check: want("/store/v3", "/store/v3/pets")},
		{name: "relative server", src: doc("servers: [{url: /api}]", ""), check: want("/api", "/api/pets")},
		{name: "extension wins", src: doc("servers: [{url: /api}]\nx-gatekiln-basepath: /gw//v1/", ""), check: want("/gw/v1", "/gw/v1/pets")},
		{name: "wso2 with version", src: doc("x-wso2-basePath: /petstore/{version}", ""), check: want("/petstore/2.1", "/petstore/2.1/pets")},
		{name: "version override", src: doc("x-wso2-basePath: /petstore/{version}", ""), version: "9",
			check: func(t *testing.T, res *Result) {
				if base(res) != "/petstore/9" || res.Bundle.API.Version != "9" {
					t.Errorf("api %+v", res.Bundle.API)
				}
			}},
		{name: "a template the router cannot serve", src: doc("x-gatekiln-basepath: /{tenant}/v1", ""),
			problem: &Problem{Code: CodeUnsupportedFeature, Pointer: "/x-gatekiln-basepath", Reason: "has a template"}},
	})
}

func TestWSO2Extensions(t *testing.T) {
	runExtCases(t, []extCase{
		{name: "production endpoint URLs are the default endpoint",
			src: doc("x-wso2-production-endpoints: {urls: [http://prod:8080], type: load_balance}", ""),
			check: func(t *testing.T, res *Result) {
				want := map[string]bundle.Endpoint{"default": {URLs: []string{"http://prod:8080"}, LoadBalance: "round-robin"}}
				if !reflect.DeepEqual(res.Bundle.Endpoints, want) || routeOf(t, res, "POST", "/pets").Endpoint != "default" {
					t.Errorf("endpoints %+v", res.Bundle.Endpoints)
				}
			}},
		{name: "reference to x-wso2-endpoints, as a string and as a $ref",
			src: doc(`x-wso2-endpoints:
  - users: {urls: [https://users:9443]}
  - orders: {urls: [https://orders:9443]}
x-wso2-production-endpoints: "#/x-wso2-endpoints/users"`, "x-wso2-production-endpoints: {$ref: '#/x-wso2-endpoints/orders'}"),
			check: func(t *testing.T, res *Result) {
				if e := routeOf(t, res, "GET", "/pets/{id}").Endpoint; e != "orders" {
					t.Errorf("GET endpoint %q", e)
				}
				if e := routeOf(t, res, "POST", "/pets").Endpoint; e != "users" {
					t.Errorf("POST endpoint %q", e)
				}
				if u := res.Bundle.Endpoints["orders"].URLs; !reflect.DeepEqual(u, []string{"https://orders:9443"}) {
					t.Errorf("orders %v", u)
				}
			}},
		{name: "a reference to an undeclared entry",
			src:     doc("x-wso2-production-endpoints: '#/x-wso2-endpoints/nope'", ""),
			problem: &Problem{Code: CodeUnresolvedRef, Pointer: "/x-wso2-production-endpoints", Reason: "names no entry of x-wso2-endpoints"}},
		{name: "a bare name is an Endpoint object, with its namespace",
			src: doc("x-wso2-production-endpoints: products.shop", ""),
			check: func(t *testing.T, res *Result) {
				if e := routeOf(t, res, "POST", "/pets").Endpoint; e != "products" {
					t.Errorf("endpoint %q", e)
				}
			}},
		{name: "throttling tier is a RateLimit name; Unlimited is none",
			src: doc("x-wso2-throttling-tier: Gold", "x-wso2-throttling-tier: Unlimited"),
			check: func(t *testing.T, res *Result) {
				if rl := routeOf(t, res, "POST", "/pets").RateLimits; !reflect.DeepEqual(rl, []string{"Gold"}) {
					t.Errorf("POST %v", rl)
				}
				if rl := routeOf(t, res, "GET", "/pets/{id}").RateLimits; rl != nil {
					t.Errorf("GET %v", rl)
				}
			}},
		{name: "cors",
			src: doc("x-wso2-cors: {corsConfigurationEnabled: true, accessControlAllowOrigins: ['*'], accessControlAllowCredentials: false, accessControlAllowHeaders: [authorization], accessControlAllowMethods: [GET]}", ""),
			check: func(t *testing.T, res *Result) {
				want := &bundle.CORS{AllowOrigins: []string{"*"}, AllowHeaders: []string{"authorization"}, AllowMethods: []string{"GET"}}
				if !reflect.DeepEqual(res.Bundle.CORS, want) {
					t.Errorf("cors %+v", res.Bundle.CORS)
				}
			}},
		{name: "disable security on an operation",
			src: doc("security: [{key: []}]", "x-wso2-disable-security: true"),
			check: func(t *testing.T, res *Result) {
				if s := routeOf(t, res, "GET", "/pets/{id}").Security; s != nil {
					t.Errorf("GET security %v", s)
				}
			}},
		{name: "mode is read but not honoured", src: doc("x-wso2-mode: privateJet", ""), warning: "x-wso2-mode is a WSO2 extension the gateway cannot honour"},
		{name: "interceptors are read but not honoured", src: doc("", "x-wso2-request-interceptor: http://i"), warning: "x-wso2-request-interceptor"},
		{name: "sandbox endpoints are read but not honoured",
			src: doc("x-wso2-sandbox-endpoints: {urls: [http://sandbox]}", ""), warning: "x-wso2-sandbox-endpoints is read but not honoured"},
		{name: "failover is read but not honoured",
			src: doc("x-wso2-production-endpoints: {urls: [http://a, http://b], type: failover}", ""), warning: "failover is not honoured"},
		{name: "gatekiln wins over wso2 at the same place",
			src: doc("x-wso2-production-endpoints: wso2name\nx-gatekiln-endpoint: ours", ""), warning: "x-gatekiln-endpoint is set at the same place and wins",
			check: func(t *testing.T, res *Result) {
				if e := routeOf(t, res, "POST", "/pets").Endpoint; e != "ours" {
					t.Errorf("endpoint %q", e)
				}
			}},
	})
}

// TestWSO2Swagger2 compiles a WSO2-style Swagger 2.0 definition unchanged.
func TestWSO2Swagger2(t *testing.T) {
	src := `swagger: "2.0"
info: {title: Products, version: v1}
host: products.example.com
basePath: /ignored
schemes: [https]
x-wso2-basePath: /store/{version}
x-wso2-production-endpoints: {urls: ["http://products-svc:8080"]}
x-wso2-throttling-tier: Bronze
securityDefinitions:
  petstore_auth:
    type: oauth2
    flow: implicit
    authorizationUrl: https://id.example.com/authorize
    scopes: {read: read things}
  key: {type: apiKey, in: query, name: api_key}
security: [{petstore_auth: [read]}]
paths:
  /products/{id}:
    get:
      parameters: [{name: id, in: path, required: true, type: integer}]
      responses: {"200": {description: ok, schema: {$ref: "#/definitions/Product"}}}
      security: [{key: []}]
      x-wso2-throttling-tier: Gold
definitions:
  Product: {type: object, properties: {id: {type: integer}, related: {type: array, items: {$ref: "#/definitions/Product"}}}}
`
	res, ps := compileString(t, src, nil)
	if ps != nil {
		t.Fatal(ps)
	}
	b := res.Bundle
	if b.API.BasePath != "/store/v1" || b.API.SpecVersion != "2.0" {
		t.Errorf("api %+v", b.API)
	}
	r := routeOf(t, res, "GET", "/store/v1/products/{id}")
	if r.Endpoint != "default" || !reflect.DeepEqual(r.RateLimits, []string{"Gold"}) || r.Security[0][0].Name != "key" || r.UpstreamPath != "/products/{id}" {
		t.Errorf("route %+v", r)
	}
	if s := b.SecuritySchemes["key"]; !reflect.DeepEqual(s, bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: "query", Name: "api_key"}) {
		t.Errorf("key scheme %+v", s)
	}
	if !strings.Contains(string(b.OpenAPI), `"openapi":"3.0.3"`) || !strings.Contains(string(b.OpenAPI), `"#/components/schemas/Product"`) {
		t.Errorf("openapi not converted: %.300s", b.OpenAPI)
	}
}

// Problems found in the converted document point into the Swagger 2.0 source.
func TestSwagger2ProblemPointers(t *testing.T) {
	src := `swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /a:
    get:
      responses: {"200": {description: ok}}
securityDefinitions:
  key:
    type: apiKey
    in: header
`
	_, ps := compileString(t, src, nil)
	if len(ps) != 1 || ps[0].Pointer != "/securityDefinitions/key" || ps[0].Line != 8 || !strings.Contains(ps[0].Reason, "should have 'name'") {
		t.Errorf("problems %#v", ps)
	}
}
