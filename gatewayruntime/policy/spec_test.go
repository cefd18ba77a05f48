package policy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// specDoc is a document whose operations reach components in every way
// specIndex follows: directly, transitively, through path-item parameters, a
// discriminator mapping by bare name, and a property named like a keyword.
const specDoc = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1", "description": "dropped"},
  "tags": [{"name": "dropped"}],
  "security": [{"key": []}],
  "paths": {
    "/pets/{id}": {
      "parameters": [{"$ref": "#/components/parameters/Id"}],
      "get": {
        "parameters": [{"in": "header", "name": "X-Trace", "schema": {"$ref": "#/components/schemas/Trace"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
      },
      "put": {
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
        "responses": {"204": {"description": "ok"}}
      }
    },
    "/shapes": {
      "post": {
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Shape"}}}},
        "responses": {"201": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Unused"}}}}}
      }
    },
    "/unvalidated": {"get": {"parameters": [{"in": "query", "name": "q"}], "responses": {"200": {"description": "ok"}}}}
  },
  "components": {
    "securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}},
    "parameters": {"Id": {"in": "path", "name": "id", "required": true, "schema": {"$ref": "#/components/schemas/Id"}}},
    "schemas": {
      "Id": {"type": "integer"},
      "Trace": {"type": "string", "pattern": "^[a-z]+$"},
      "Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "owner": {"$ref": "#/components/schemas/Owner"}, "$id": {"type": "string"}}},
      "Owner": {"type": "object", "properties": {"email": {"type": "string"}}, "default": {"$ref": "not a reference"}},
      "Shape": {"oneOf": [{"$ref": "#/components/schemas/Circle"}], "discriminator": {"propertyName": "kind", "mapping": {"circle": "Circle", "square": "#/components/schemas/Square"}}},
      "Circle": {"type": "object", "properties": {"kind": {"type": "string"}, "r": {"type": "number"}}},
      "Square": {"type": "object", "properties": {"kind": {"type": "string"}, "side": {"type": "number"}}},
      "Unused": {"type": "object"}
    }
  }
}`

func specAPI(doc string, routes ...bundle.Route) *bundle.Bundle {
	return &bundle.Bundle{API: bundle.API{BasePath: "/v1"}, OpenAPI: json.RawMessage(doc), Routes: routes}
}

func TestSpecIndexDocuments(t *testing.T) {
	validated := bundle.Validation{Request: true}
	api := specAPI(specDoc,
		bundle.Route{Method: "GET", Path: "/v1/pets/{id}", UpstreamPath: "/pets/{id}", Validation: validated},
		bundle.Route{Method: "PUT", Path: "/v1/pets/{id}", UpstreamPath: "/pets/{id}", Validation: validated},
		bundle.Route{Method: "POST", Path: "/v1/shapes", UpstreamPath: "/shapes", Validation: bundle.Validation{Request: true, Response: true}},
		bundle.Route{Method: "GET", Path: "/v1/unvalidated", UpstreamPath: "/unvalidated"},
	)
	x, err := newSpecIndex(api)
	if err != nil {
		t.Fatal(err)
	}
	if x.whole != nil {
		t.Fatal("plain references: the document should be cut up, not kept whole")
	}
	tests := []struct {
		key, method string
		schemas     []string
		fields      int
		responses   bool
	}{
		{"/pets/{id}", "get", []string{"Id", "Trace"}, 2, false},
		{"/pets/{id}", "put", []string{"Id", "Owner", "Pet"}, 2, false},
		{"/shapes", "post", []string{"Circle", "Shape", "Square", "Unused"}, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.key, func(t *testing.T) {
			data, err := x.document(tt.key, tt.method)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Info       map[string]any                        `json:"info"`
				Tags       any                                   `json:"tags"`
				Security   any                                   `json:"security"`
				Paths      map[string]map[string]json.RawMessage `json:"paths"`
				Components map[string]map[string]any             `json:"components"`
			}
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			var got []string
			for name := range doc.Components["schemas"] {
				got = append(got, name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.schemas) {
				t.Errorf("schemas %v, want %v", got, tt.schemas)
			}
			if doc.Components["securitySchemes"]["key"] == nil || doc.Security == nil {
				t.Error("security schemes or requirements missing")
			}
			if doc.Tags != nil || doc.Info["description"] != nil {
				t.Error("documentation kept")
			}
			item := doc.Paths[tt.key]
			if len(item) != tt.fields || item[tt.method] == nil {
				t.Errorf("path item %s: want only %s and the shared parameters", data, tt.method)
			}
			if got := strings.Contains(string(item[tt.method]), `"responses"`); got != tt.responses {
				t.Errorf("responses kept %v, want %v", got, tt.responses)
			}
			rt, err := x.load(x.operation(tt.key, tt.method), tt.key, tt.method)
			if err != nil || rt.Operation == nil || rt.Path != tt.key {
				t.Fatalf("load: %v", err)
			}
		})
	}
	if _, ok := x.items["/unvalidated"].ops["get"]; ok {
		t.Error("an operation no route validates was kept")
	}
	if !x.declares("/unvalidated", "GET", "query", "q") || !x.declares("/pets/{id}", "get", "path", "id") ||
		!x.declares("/pets/{id}", "GET", "header", "x-trace") || x.declares("/pets/{id}", "get", "query", "id") {
		t.Error("declared parameters wrong")
	}
	a, b := x.operation("/pets/{id}", "GET"), x.operation("/pets/{id}", "get")
	if a != b {
		t.Error("one operation loads once, whatever the method's case")
	}
}

func TestSpecIndexWhole(t *testing.T) {
	// A schema an operation reaches that is identified by $id may be referred
	// to by it: no closure can be computed, so the document is loaded whole.
	doc := strings.Replace(specDoc, `"Trace": {"type": "string",`, `"Trace": {"$id": "https://example.com/trace", "type": "string",`, 1)
	api := specAPI(doc, bundle.Route{Method: "GET", Path: "/v1/pets/{id}", UpstreamPath: "/pets/{id}", Validation: bundle.Validation{Request: true}})
	x, err := newSpecIndex(api)
	if err != nil {
		t.Fatal(err)
	}
	if x.whole == nil || x.items != nil {
		t.Fatal("an $id in a schema: the document should be kept whole")
	}
	rt, err := x.load(x.operation("/pets/{id}", "get"), "/pets/{id}", "get")
	if err != nil || rt.Operation == nil {
		t.Fatalf("load: %v", err)
	}
	if !x.declares("/pets/{id}", "get", "path", "id") {
		t.Error("declared parameters wrong")
	}
}

func TestComponentRef(t *testing.T) {
	tests := []struct {
		ref, kind, name string
		ok              bool
	}{
		{"#/components/schemas/Pet", "schemas", "Pet", true},
		{"#/components/schemas/Pet/properties/name", "schemas", "Pet", true},
		{"#/components/schemas/a~1b~0c", "schemas", "a/b~c", true},
		{"#/components/schemas/a%20b", "schemas", "a b", true},
		{"#/components/schemas", "", "", false},
		{"#/paths/~1pets/get", "", "", false},
		{"other.json#/components/schemas/Pet", "", "", false},
	}
	for _, tt := range tests {
		kind, name, ok := componentRef(tt.ref)
		if kind != tt.kind || name != tt.name || ok != tt.ok {
			t.Errorf("componentRef(%q) = %q, %q, %v", tt.ref, kind, name, ok)
		}
	}
}

// TestSpecIndexCorpus loads every operation of the compiler's golden Bundles
// (corpus definitions: circular schemas, callbacks, 3.1, webhooks) from its
// own document and checks it against the same operation of the whole
// document.
func TestSpecIndexCorpus(t *testing.T) {
	for _, f := range compilerGoldens(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			api := readGolden(t, f)
			for i := range api.Routes {
				api.Routes[i].Validation = bundle.Validation{Request: true, Response: true}
			}
			x, err := newSpecIndex(api)
			if err != nil {
				t.Fatal(err)
			}
			lean, err := leanSpec(api.OpenAPI)
			if err != nil {
				t.Fatal(err)
			}
			whole, err := loadDoc(lean)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range api.Routes {
				key, err := x.find(api, &r)
				if err != nil {
					t.Fatalf("%s %s: %v", r.Method, r.Path, err)
				}
				rt, err := x.load(x.operation(key, r.Method), key, r.Method)
				if err != nil {
					t.Fatalf("%s %s: %v", r.Method, r.Path, err)
				}
				want := whole.Paths.Value(key).GetOperation(r.Method)
				got, _ := json.Marshal(rt.Operation)
				wantJSON, _ := json.Marshal(want)
				if string(got) != string(wantJSON) {
					t.Fatalf("%s %s: operation differs from the whole document's:\n got %s\nwant %s", r.Method, r.Path, got, wantJSON)
				}
			}
		})
	}
}

// TestValidationUnavailable: an operation whose document does not load (a
// dangling reference the compiler would have refused) answers 500 and never
// reaches the upstream.
func TestValidationUnavailable(t *testing.T) {
	doc := strings.Replace(specDoc, `"schema": {"$ref": "#/components/schemas/Trace"}`, `"schema": {"$ref": "#/components/schemas/Missing"}`, 1)
	route := bundle.Route{Method: "GET", Path: "/v1/pets/{id}", UpstreamPath: "/pets/{id}", Validation: bundle.Validation{Request: true}}
	api := specAPI(doc, route)
	f := &validationFactory{&shared{}}
	mw, err := f.Build(api, &route, binding(), envFor(context.Background(), t.TempDir()))
	if err != nil || mw == nil {
		t.Fatalf("build: %v", err)
	}
	reached := false
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/pets/1", nil))
		if rec.Code != http.StatusInternalServerError || reached {
			t.Fatalf("status %d, upstream reached %v", rec.Code, reached)
		}
	}
	if _, err := f.s.specs[api].x.load(f.s.specs[api].x.operation("/pets/{id}", "get"), "/pets/{id}", "get"); err == nil || !strings.Contains(err.Error(), "Missing") {
		t.Fatalf("load error %v, want one naming the missing component", err)
	}
}
