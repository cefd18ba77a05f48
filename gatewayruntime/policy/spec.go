package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// A Bundle's OpenAPI document is read for two things: request (and response)
// validation, which needs an operation's parameters, body and responses as
// kin-openapi objects, and the security filter, which asks which parameters an
// operation declares.
//
// A parsed kin-openapi document is large (box: 0.4 MB of JSON, without its
// documentation, is 2.4 MB of objects) and slow to parse (box: over 100 ms,
// most of the gateway's start). So the gateway parses it per operation, on the
// operation's first validated request: specIndex keeps the document cut into
// JSON pieces (each operation, each component) with the components each piece
// refers to, and an operation's validator loads a document of just that
// operation and the components it reaches. An idle gateway holds no parsed
// schema; a busy one holds about what the whole document would (box: the
// operations' closures overlap by under 10%).

// specIndex is one Bundle's document, cut up.
type specIndex struct {
	// frame holds the top-level fields other than paths and components
	// (openapi, info, servers, security...), and schemes the security schemes:
	// every operation's document has them.
	frame   map[string]json.RawMessage
	schemes json.RawMessage
	items   map[string]*itemIndex
	comps   map[compKey]piece
	// whole is set instead of items and comps when some reference is not a
	// plain "#/components/<kind>/<name>" one, so that a closure cannot be
	// computed: the (trimmed) document is then loaded whole, once.
	whole     []byte
	wholeOnce sync.Once
	wholeDoc  *openapi3.T
	wholeErr  error

	mu  sync.Mutex
	ops map[opKey]*lazyOp
	// declared are the parameters each operation declares (its path item's
	// included), for every operation, validated or not; paths are the
	// document's path keys.
	declared map[opKey][]paramID
	paths    map[string]bool
}

type itemIndex struct {
	// shared are the path item's fields other than operations (parameters,
	// servers), with the components they refer to.
	shared map[string]json.RawMessage
	refs   []compKey
	ops    map[string]piece // by lower-case method
}

type piece struct {
	raw  json.RawMessage
	refs []compKey
}

type compKey struct{ kind, name string }

type opKey struct{ path, method string }

type paramID struct{ in, name string }

type lazyOp struct {
	once  sync.Once
	route *routers.Route
	err   error
}

// methods are the operation keys of an OpenAPI path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// newSpecIndex cuts api's document up for api's routes.
func newSpecIndex(api *bundle.Bundle) (*specIndex, error) {
	d := json.NewDecoder(bytes.NewReader(api.OpenAPI))
	d.UseNumber() // numbers pass through as written (limits, enums)
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	doc, ok := lean(v, false).(map[string]any)
	if !ok {
		return nil, errors.New("the openapi document is not an object")
	}
	x := &specIndex{ops: map[opKey]*lazyOp{}}
	x.declared = declaredParameters(doc)
	x.paths = map[string]bool{}
	for k := range x.declared {
		x.paths[k.path] = true
	}
	trim(doc, api)

	plain := true
	refsOf := func(v any) []compKey {
		refs, ok := references(v)
		plain = plain && ok
		return refs
	}
	x.frame = map[string]json.RawMessage{}
	for k, v := range doc {
		if k == "paths" || k == "components" || k == "tags" || strings.HasPrefix(k, "x-") {
			continue
		}
		refsOf(v)
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		x.frame[k] = raw
	}
	comps, _ := doc["components"].(map[string]any)
	all := map[compKey]any{}
	for kind, v := range comps {
		entries, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if kind == "securitySchemes" {
			raw, err := json.Marshal(entries)
			if err != nil {
				return nil, err
			}
			x.schemes = raw
			continue
		}
		for name, c := range entries {
			all[compKey{kind, name}] = c
		}
	}
	x.items = map[string]*itemIndex{}
	paths, _ := doc["paths"].(map[string]any)
	for key, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			continue
		}
		it := &itemIndex{shared: map[string]json.RawMessage{}, ops: map[string]piece{}}
		for k, f := range item {
			raw, err := json.Marshal(f)
			if err != nil {
				return nil, err
			}
			if isMethod(k) {
				it.ops[k] = piece{raw, refsOf(f)}
				continue
			}
			if k == "$ref" {
				plain = false // a path item defined elsewhere
			}
			it.refs = append(it.refs, refsOf(f)...)
			it.shared[k] = raw
		}
		x.items[key] = it
	}
	// Only the components some operation reaches are kept.
	x.comps = map[compKey]piece{}
	var queue []compKey
	for _, it := range x.items {
		queue = append(queue, it.refs...)
		for _, op := range it.ops {
			queue = append(queue, op.refs...)
		}
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		v, ok := all[c]
		if _, done := x.comps[c]; done || !ok {
			continue
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		p := piece{raw, refsOf(v)}
		x.comps[c] = p
		queue = append(queue, p.refs...)
	}
	if _, ok := doc["webhooks"]; ok {
		plain = false
	}
	if !plain {
		whole, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		x.frame, x.schemes, x.items, x.comps = nil, nil, nil, nil
		x.whole = whole
	}
	return x, nil
}

func isMethod(k string) bool {
	for _, m := range methods {
		if k == m {
			return true
		}
	}
	return false
}

// find returns the document's path key for route: its upstream path (the
// document's own key), else the key that gives route.Path under the base path.
func (x *specIndex) find(api *bundle.Bundle, route *bundle.Route) (string, error) {
	key := route.UpstreamPath
	if !x.paths[key] {
		key = ""
		for k := range x.paths {
			if path.Join("/", api.API.BasePath, k) == path.Join("/", route.Path) {
				key = k
				break
			}
		}
	}
	if key == "" {
		return "", fmt.Errorf("path %s not in the openapi document", route.UpstreamPath)
	}
	if _, ok := x.declared[opKey{key, strings.ToLower(route.Method)}]; !ok {
		return "", fmt.Errorf("path %s has no %s operation", key, strings.ToUpper(route.Method))
	}
	return key, nil
}

// operation returns the lazily loaded operation at key and method.
func (x *specIndex) operation(key, method string) *lazyOp {
	k := opKey{key, strings.ToLower(method)}
	x.mu.Lock()
	defer x.mu.Unlock()
	op := x.ops[k]
	if op == nil {
		op = &lazyOp{}
		x.ops[k] = op
	}
	return op
}

// load parses the operation's document the first time it is asked for.
func (x *specIndex) load(op *lazyOp, key, method string) (*routers.Route, error) {
	op.once.Do(func() {
		var doc *openapi3.T
		if x.whole != nil {
			x.wholeOnce.Do(func() { x.wholeDoc, x.wholeErr = loadDoc(x.whole) })
			doc, op.err = x.wholeDoc, x.wholeErr
		} else {
			var data []byte
			if data, op.err = x.document(key, strings.ToLower(method)); op.err == nil {
				doc, op.err = loadDoc(data)
			}
		}
		if op.err != nil {
			op.err = fmt.Errorf("load the openapi document of %s %s: %w", strings.ToUpper(method), key, op.err)
			return
		}
		item := doc.Paths.Value(key)
		var o *openapi3.Operation
		if item != nil {
			o = item.GetOperation(strings.ToUpper(method))
		}
		if o == nil {
			op.err = fmt.Errorf("path %s has no %s operation", key, strings.ToUpper(method))
			return
		}
		op.route = &routers.Route{Spec: doc, Path: key, PathItem: item, Method: strings.ToUpper(method), Operation: o}
	})
	return op.route, op.err
}

// document assembles the document of one operation: the frame, the path item
// with only that operation, and the components it reaches.
func (x *specIndex) document(key, method string) ([]byte, error) {
	it := x.items[key]
	if it == nil || it.ops[method].raw == nil {
		return nil, fmt.Errorf("no %s %s in the index", method, key)
	}
	op := it.ops[method]
	item := map[string]json.RawMessage{method: op.raw}
	for k, v := range it.shared {
		item[k] = v
	}
	comps := map[string]map[string]json.RawMessage{}
	seen := map[compKey]bool{}
	queue := append(append([]compKey(nil), it.refs...), op.refs...)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if seen[c] {
			continue
		}
		seen[c] = true
		p, ok := x.comps[c]
		if !ok {
			continue // a dangling reference: the loader names it
		}
		if comps[c.kind] == nil {
			comps[c.kind] = map[string]json.RawMessage{}
		}
		comps[c.kind][c.name] = p.raw
		queue = append(queue, p.refs...)
	}
	if x.schemes != nil {
		var schemes map[string]json.RawMessage
		if err := json.Unmarshal(x.schemes, &schemes); err != nil {
			return nil, err
		}
		comps["securitySchemes"] = schemes
	}
	doc := map[string]any{"paths": map[string]any{key: item}, "components": comps}
	for k, v := range x.frame {
		doc[k] = v
	}
	return json.Marshal(doc)
}

// loadDoc parses a document as JSON (a Bundle always holds JSON) and resolves
// its references. The loader's own LoadFromData reads every document through
// its YAML parser, which is several times slower and makes several times the
// garbage.
func loadDoc(data []byte) (*openapi3.T, error) {
	doc := &openapi3.T{}
	if err := json.Unmarshal(data, doc); err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	if err := loader.ResolveRefsIn(doc, nil); err != nil {
		return nil, err
	}
	return doc, nil
}

// declaredParameters lists, for every operation of a generic document, the
// parameters it declares with those of its path item, following references
// to components.parameters.
func declaredParameters(doc map[string]any) map[opKey][]paramID {
	comps, _ := doc["components"].(map[string]any)
	named, _ := comps["parameters"].(map[string]any)
	ids := func(v any) []paramID {
		list, _ := v.([]any)
		var out []paramID
		for _, p := range list {
			for range 8 { // a reference to a reference, boundedly
				m, _ := p.(map[string]any)
				ref, _ := m["$ref"].(string)
				if ref == "" {
					break
				}
				kind, name, ok := componentRef(ref)
				if !ok || kind != "parameters" {
					break
				}
				p = named[name]
			}
			m, _ := p.(map[string]any)
			in, _ := m["in"].(string)
			name, _ := m["name"].(string)
			if in != "" && name != "" {
				out = append(out, paramID{in, name})
			}
		}
		return out
	}
	items, _ := comps["pathItems"].(map[string]any)
	out := map[opKey][]paramID{}
	paths, _ := doc["paths"].(map[string]any)
	for key, v := range paths {
		item, _ := v.(map[string]any)
		if ref, _ := item["$ref"].(string); ref != "" {
			if kind, name, ok := componentRef(ref); ok && kind == "pathItems" {
				item, _ = items[name].(map[string]any)
			}
		}
		shared := ids(item["parameters"])
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			out[opKey{key, m}] = append(append([]paramID{}, shared...), ids(op["parameters"])...)
		}
	}
	return out
}

// declares reports whether the operation at key and method declares a
// parameter called name in in (header names compare without case).
func (x *specIndex) declares(key, method, in, name string) bool {
	for _, p := range x.declared[opKey{key, strings.ToLower(method)}] {
		if p.in == in && (p.name == name || in == "header" && strings.EqualFold(p.name, name)) {
			return true
		}
	}
	return false
}

// leanSpec returns the OpenAPI document without what validation never reads:
// descriptions, summaries, examples and external docs. They are most of a
// large definition (box: 1.1 MB of JSON, 0.4 MB without them).
func leanSpec(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(lean(v, false))
}

var (
	// documentation fields of OpenAPI and JSON Schema objects.
	documentation = map[string]bool{"description": true, "summary": true, "example": true, "examples": true, "externalDocs": true}
	// nameKeyed fields map names (properties, status codes, media types,
	// paths...) to objects: their keys are data, never dropped.
	nameKeyed = map[string]bool{
		"properties": true, "patternProperties": true, "definitions": true, "$defs": true, "dependentSchemas": true,
		"dependentRequired": true, "dependencies": true, "schemas": true, "responses": true, "parameters": true,
		"requestBodies": true, "headers": true, "securitySchemes": true, "links": true, "callbacks": true,
		"paths": true, "webhooks": true, "content": true, "encoding": true, "variables": true, "mapping": true, "scopes": true,
		"pathItems": true,
	}
	// instanceValued fields hold values (or requirement lists) that are kept as written.
	instanceValued = map[string]bool{"enum": true, "const": true, "default": true, "security": true}
)

// lean drops documentation fields in place. named says v's keys are names.
func lean(v any, named bool) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if !named {
				if documentation[k] {
					delete(t, k)
					continue
				}
				if instanceValued[k] || strings.HasPrefix(k, "x-") {
					continue
				}
			}
			t[k] = lean(x, !named && nameKeyed[k])
		}
	case []any:
		for i, x := range t {
			t[i] = lean(x, false)
		}
	}
	return v
}

// trim drops what validating api's routes never reads: operations no route
// validates, and the responses of operations whose responses are not
// validated (they refer to most of a large definition's schemas).
func trim(doc map[string]any, api *bundle.Bundle) {
	paths, _ := doc["paths"].(map[string]any)
	for key, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			continue
		}
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			request, response := validated(api, key, m)
			switch {
			case !request && !response:
				delete(item, m)
			case !response:
				delete(op, "responses")
			}
		}
	}
}

// validated reports whether some route of api validates the request or the
// response of the document's operation at path key and method m, matched as
// specIndex.find matches them.
func validated(api *bundle.Bundle, key, m string) (request, response bool) {
	for i := range api.Routes {
		r := &api.Routes[i]
		if !strings.EqualFold(r.Method, m) {
			continue
		}
		if r.UpstreamPath != key && path.Join("/", api.API.BasePath, key) != path.Join("/", r.Path) {
			continue
		}
		request = request || r.Validation.Request
		response = response || r.Validation.Response
	}
	return request, response
}

// references lists the components v refers to. ok is false when some
// reference is not a plain local component reference (or a schema names
// itself by $id or an anchor), so that the list cannot be trusted. Keys of
// name-keyed fields (properties...) are names, and values (enum, default,
// extensions) are data: neither is read as a keyword.
func references(v any) (refs []compKey, ok bool) {
	ok = true
	add := func(ref string) {
		kind, name, plain := componentRef(ref)
		if !plain {
			ok = false
			return
		}
		refs = append(refs, compKey{kind, name})
	}
	var walk func(v any, named bool)
	walk = func(v any, named bool) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				if named {
					walk(x, false)
					continue
				}
				s, _ := x.(string)
				switch {
				case instanceValued[k] || strings.HasPrefix(k, "x-"):
				case k == "$ref" && s != "":
					add(s)
				case k == "$dynamicRef" || k == "$id" || k == "$anchor" || k == "$dynamicAnchor":
					ok = false
				case k == "mapping":
					// A discriminator mapping names schemas by reference or,
					// as OpenAPI allows, by bare name.
					m, _ := x.(map[string]any)
					for _, y := range m {
						switch s, _ := y.(string); {
						case strings.HasPrefix(s, "#"):
							add(s)
						case s == "":
						case strings.Contains(s, "/"):
							ok = false
						default:
							refs = append(refs, compKey{"schemas", s})
						}
					}
				default:
					walk(x, nameKeyed[k])
				}
			}
		case []any:
			for _, x := range t {
				walk(x, false)
			}
		}
	}
	walk(v, false)
	return refs, ok
}

// componentRef splits "#/components/<kind>/<name>[/...]" into kind and name,
// unescaping the JSON pointer.
func componentRef(ref string) (kind, name string, ok bool) {
	rest, found := strings.CutPrefix(ref, "#/components/")
	if !found {
		return "", "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 {
		return "", "", false
	}
	unescape := func(s string) (string, bool) {
		u, err := url.PathUnescape(s)
		if err != nil {
			return "", false
		}
		return strings.ReplaceAll(strings.ReplaceAll(u, "~1", "/"), "~0", "~"), true
	}
	kind, ok1 := unescape(parts[0])
	name, ok2 := unescape(parts[1])
	return kind, name, ok1 && ok2
}
