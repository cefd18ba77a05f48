package mock

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const openapi = `{
  "openapi": "3.0.3",
  "info": {"title": "Shop", "version": "1"},
  "paths": {
    "/pets": {
      "get": {"operationId": "listPets", "responses": {
        "200": {"description": "pets", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pets"}}}},
        "default": {"$ref": "#/components/responses/Error"}}},
      "post": {"operationId": "createPet", "responses": {
        "201": {"description": "created", "content": {"application/json": {
          "examples": {"dog": {"value": {"id": 1, "name": "Rex"}}, "cat": {"value": {"id": 2, "name": "Tom"}}}}}},
        "400": {"description": "bad", "content": {"application/problem+json": {"example": {"title": "bad pet"}}}}}}
    },
    "/pets/{id}": {
      "get": {"operationId": "showPet", "responses": {
        "200": {"description": "a pet", "content": {"application/json": {"example": {"id": 7, "name": "Fido"}}}}}},
      "delete": {"operationId": "deletePet", "responses": {"204": {"description": "gone"}}}
    },
    "/status": {
      "get": {"operationId": "status", "responses": {
        "default": {"description": "status", "content": {"text/plain": {"example": "open"}}}}}
    },
    "/things": {
      "get": {"operationId": "things", "responses": {
        "200": {"description": "things", "content": {"application/json": {"schema": {"type": "object", "properties": {
          "when": {"type": "string", "format": "date-time"},
          "count": {"type": "integer", "minimum": 3},
          "ratio": {"type": "number", "maximum": 0.5},
          "kind": {"type": "string", "enum": ["big", "small"]},
          "code": {"type": "string", "minLength": 8},
          "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
          "self": {"$ref": "#/components/schemas/Tree"}}}}}}}}
    }
  },
  "components": {
    "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"type": "object", "properties": {"code": {"type": "integer"}}}}}}},
    "schemas": {
      "NewPet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "tag": {"type": "string"}}, "example": {"name": "Rex", "tag": "dog"}},
      "Pet": {"allOf": [{"$ref": "#/components/schemas/NewPet"}, {"type": "object", "properties": {"id": {"type": "integer", "format": "int64"}}}]},
      "Pets": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}},
      "Tree": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Tree"}}}
    }
  }
}`

func testBundle() *bundle.Bundle {
	route := func(method, path, op string) bundle.Route {
		return bundle.Route{Method: method, Path: "/v1" + path, UpstreamPath: path, OperationID: op, Endpoint: "backend"}
	}
	return &bundle.Bundle{
		APIVersion: bundle.APIVersion,
		API:        bundle.API{Title: "Shop", Version: "1", BasePath: "/v1", SpecVersion: "3.0.3"},
		OpenAPI:    json.RawMessage(openapi),
		Routes: []bundle.Route{
			route("GET", "/pets", "listPets"), route("POST", "/pets", "createPet"),
			route("GET", "/pets/{id}", "showPet"), route("DELETE", "/pets/{id}", "deletePet"),
			route("GET", "/status", "status"), route("GET", "/things", "things"),
		},
		Endpoints: map[string]bundle.Endpoint{"backend": {}},
	}
}

func TestMock(t *testing.T) {
	m, err := New(testBundle())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m)
	defer srv.Close()
	for _, c := range []struct {
		name, method, path, prefer string
		status                     int
		ctype, body                string
	}{
		{"schema built from allOf, $ref and the part's example", "GET", "/pets", "", 200, "application/json", `[{"id":1,"name":"Rex","tag":"dog"}]`},
		{"first named example", "POST", "/pets", "", 201, "application/json", `{"id":2,"name":"Tom"}`},
		{"named example by Prefer", "POST", "/pets", "example=dog", 201, "application/json", `{"id":1,"name":"Rex"}`},
		{"another documented status by Prefer", "POST", "/pets", "code=400", 400, "application/problem+json", `{"title":"bad pet"}`},
		{"undocumented status by Prefer", "POST", "/pets", "code=418", 501, "application/problem+json", ""},
		{"unknown example by Prefer", "POST", "/pets", "example=bird", 501, "application/problem+json", ""},
		{"media example, path parameter", "GET", "/pets/42", "", 200, "application/json", `{"id":7,"name":"Fido"}`},
		{"no content", "DELETE", "/pets/42", "", 204, "", ""},
		{"default response only, text", "GET", "/status", "", 200, "text/plain", "open"},
		{"types and bounds", "GET", "/things", "", 200, "application/json",
			`{"code":"xxxxxxxx","count":3,"kind":"big","ratio":0.5,"self":{},"tags":["string","string"],"when":"2024-01-01T00:00:00Z"}`},
		{"unknown path", "GET", "/nope", "", 404, "application/problem+json", ""},
		{"unknown method", "PUT", "/pets", "", 405, "application/problem+json", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
			if c.prefer != "" {
				req.Header.Set("Prefer", c.prefer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, c.status, body)
			}
			if got := resp.Header.Get("Content-Type"); got != c.ctype {
				t.Errorf("content type %q, want %q", got, c.ctype)
			}
			if resp.Header.Get(Header) != "true" {
				t.Errorf("no %s header", Header)
			}
			if c.body != "" && strings.TrimSpace(string(body)) != c.body {
				t.Errorf("body\n got %s\nwant %s", strings.TrimSpace(string(body)), c.body)
			}
		})
	}
}

func TestMockRouteNotInDocument(t *testing.T) {
	b := testBundle()
	b.Routes = append(b.Routes, bundle.Route{Method: "GET", Path: "/v1/ghost", UpstreamPath: "/ghost", Endpoint: "backend"})
	m, err := New(b)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest("GET", "/ghost", nil))
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Errorf("a route the document does not describe: %d %q, want 200 with no body", rec.Code, rec.Body.String())
	}
}
