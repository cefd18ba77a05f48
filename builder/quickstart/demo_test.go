package quickstart

import (
	"encoding/json"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func TestPickDemo(t *testing.T) {
	key := Credential{Scheme: "key", Type: bundle.SchemeAPIKey, In: "header", Name: "X-Key", Value: "k1"}
	qkey := Credential{Scheme: "qkey", Type: bundle.SchemeAPIKey, In: "query", Name: "api_key", Value: "k2"}
	tok := Credential{Scheme: "jwt", Type: bundle.SchemeJWT, Value: "t"}
	needKey := []bundle.SecurityRequirement{{{Name: "key"}}}
	needJWT := []bundle.SecurityRequirement{{{Name: "jwt"}}}
	route := func(method, path string, sec []bundle.SecurityRequirement) bundle.Route {
		return bundle.Route{Method: method, Path: path, UpstreamPath: path, Security: sec, Endpoint: "backend"}
	}
	doc := json.RawMessage(`{"paths":{"/search":{"get":{"parameters":[{"name":"q","in":"query","required":true}]}},
		"/items/{id}":{"parameters":[{"name":"id","in":"path","required":true}]}}}`)
	for _, c := range []struct {
		name        string
		routes      []bundle.Route
		creds       []Credential
		ok, refused string
		none        bool
	}{
		{name: "API key route without parameters first",
			routes: []bundle.Route{route("GET", "/status", nil), route("GET", "/items/{id}", needKey), route("GET", "/items", needKey), route("GET", "/me", needJWT)},
			creds:  []Credential{key, tok},
			ok:     `curl -i -H 'X-Key: k1' 'http://h/items'`, refused: `curl -i 'http://h/items'`},
		{name: "path parameters are filled in",
			routes: []bundle.Route{route("GET", "/items/{id}", needKey), route("POST", "/items", needKey)},
			creds:  []Credential{key},
			ok:     `curl -i -H 'X-Key: k1' 'http://h/items/1'`, refused: `curl -i 'http://h/items/1'`},
		{name: "required query parameters are skipped",
			routes: []bundle.Route{route("GET", "/search", needKey), route("GET", "/me", needJWT)},
			creds:  []Credential{key, tok},
			ok:     `curl -i -H 'Authorization: Bearer t' 'http://h/me'`, refused: `curl -i 'http://h/me'`},
		{name: "a query key goes in the URL",
			routes: []bundle.Route{route("GET", "/items", []bundle.SecurityRequirement{{{Name: "qkey"}}})},
			creds:  []Credential{qkey},
			ok:     `curl -i 'http://h/items?api_key=k2'`, refused: `curl -i 'http://h/items'`},
		{name: "public route has nothing to refuse",
			routes: []bundle.Route{route("GET", "/status", nil)},
			ok:     `curl -i 'http://h/status'`},
		{name: "routes without an endpoint answer 503: not shown",
			routes: []bundle.Route{{Method: "GET", Path: "/status", UpstreamPath: "/status"}}, none: true},
		{name: "no credentials for any GET route",
			routes: []bundle.Route{route("GET", "/me", needJWT), route("POST", "/status", nil)},
			creds:  []Credential{key}, none: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &bundle.Bundle{API: bundle.API{BasePath: "/"}, OpenAPI: doc, Routes: c.routes}
			d := PickDemo(b, c.creds, "http://h")
			if c.none {
				if d != nil {
					t.Fatalf("PickDemo = %+v, want none", d)
				}
				return
			}
			if d == nil {
				t.Fatal("no demo")
			}
			if d.OK != c.ok || d.Refused != c.refused {
				t.Errorf("ok %q refused %q\nwant %q and %q", d.OK, d.Refused, c.ok, c.refused)
			}
		})
	}
}
