package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"time"

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
	once   sync.Once
	route  *routers.Route
	err    error
	logged sync.Once
}

// methods are the operation keys of an OpenAPI path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// newSpecIndex cuts api's document up for api's routes. It decodes the
// document piece by piece (each path item, each component an operation
// reaches): a large definition decoded whole into generic values is over ten
// times its size, all of it garbage a moment later.
func newSpecIndex(api *bundle.Bundle) (*specIndex, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(api.OpenAPI, &top); err != nil {
		return nil, err
	}
	var rawPaths, rawComps map[string]json.RawMessage
	if err := unmarshalField(top, "paths", &rawPaths); err != nil {
		return nil, err
	}
	if err := unmarshalField(top, "components", &rawComps); err != nil {
		return nil, err
	}
	kinds := map[string]map[string]json.RawMessage{}
	for kind := range rawComps {
		if strings.HasPrefix(kind, "x-") {
			continue
		}
		var m map[string]json.RawMessage
		if err := unmarshalField(rawComps, kind, &m); err != nil {
			return nil, fmt.Errorf("components: %w", err)
		}
		kinds[kind] = m
	}
	params, err := genericEach(kinds["parameters"])
	if err != nil {
		return nil, err
	}
	pathItems, err := genericEach(kinds["pathItems"])
	if err != nil {
		return nil, err
	}

	x := &specIndex{
		ops: map[opKey]*lazyOp{}, declared: map[opKey][]paramID{}, paths: map[string]bool{},
		frame: map[string]json.RawMessage{}, items: map[string]*itemIndex{}, comps: map[compKey]piece{},
	}
	vals := newValidations(api)
	plain := true
	refsOf := func(v any) []compKey {
		refs, ok := references(v)
		plain = plain && ok
		return refs
	}
	for k, raw := range top {
		switch {
		case k == "paths" || k == "components" || k == "tags" || strings.HasPrefix(k, "x-"):
			continue
		case k == "webhooks":
			plain = false
		}
		v, err := generic(raw)
		if err != nil {
			return nil, err
		}
		refsOf(v)
		if x.frame[k], err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	if schemes, err := genericEach(kinds["securitySchemes"]); err != nil {
		return nil, err
	} else if schemes != nil {
		if x.schemes, err = json.Marshal(schemes); err != nil {
			return nil, err
		}
	}
	for key, raw := range rawPaths {
		v, err := generic(raw)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", key, err)
		}
		item, ok := v.(map[string]any)
		if !ok {
			continue
		}
		x.paths[key] = true
		declare(x.declared, key, item, params, pathItems)
		trim(item, vals, key)
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
	// Only the components some operation reaches are decoded and kept.
	var queue []compKey
	for _, it := range x.items {
		queue = append(queue, it.refs...)
		for _, op := range it.ops {
			queue = append(queue, op.refs...)
		}
	}
	for len(queue) > 0 && plain {
		c := queue[0]
		queue = queue[1:]
		raw, ok := kinds[c.kind][c.name]
		if _, done := x.comps[c]; done || !ok {
			continue
		}
		v, err := generic(raw)
		if err != nil {
			return nil, fmt.Errorf("components.%s.%s: %w", c.kind, c.name, err)
		}
		p := piece{refs: refsOf(v)}
		if p.raw, err = json.Marshal(v); err != nil {
			return nil, err
		}
		x.comps[c] = p
		queue = append(queue, p.refs...)
	}
	if !plain {
		whole, err := wholeDocument(api)
		if err != nil {
			return nil, err
		}
		x.frame, x.schemes, x.items, x.comps = nil, nil, nil, nil
		x.whole = whole
	}
	return x, nil
}

// wholeDocument is the lean document, trimmed for api's routes.
func wholeDocument(api *bundle.Bundle) ([]byte, error) {
	v, err := generic(api.OpenAPI)
	if err != nil {
		return nil, err
	}
	doc, _ := v.(map[string]any)
	paths, _ := doc["paths"].(map[string]any)
	vals := newValidations(api)
	for key, item := range paths {
		if item, ok := item.(map[string]any); ok {
			trim(item, vals, key)
		}
	}
	return json.Marshal(doc)
}

// generic decodes a piece of the document without its documentation.
func generic(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // numbers pass through as written (limits, enums)
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return lean(v, false), nil
}

// genericEach decodes each entry of a components map (nil for none).
func genericEach(raw map[string]json.RawMessage) (map[string]any, error) {
	if raw == nil {
		return nil, nil
	}
	out := make(map[string]any, len(raw))
	for name, r := range raw {
		v, err := generic(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// unmarshalField decodes obj[key] into v when present.
func unmarshalField(obj map[string]json.RawMessage, key string, v any) error {
	raw, ok := obj[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
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
		releaseSoon()
	})
	return op.route, op.err
}

// releaseDelay is how long lazy loads must pause before their garbage is
// handed back.
const releaseDelay = time.Second

var release struct {
	sync.Mutex
	t *time.Timer
}

// releaseSoon hands the garbage of operation loads back to the OS once they
// pause for releaseDelay. A load makes several times more garbage than it
// keeps (parsing the operation's document); with a raised GC target
// (gateway.Config.HeapFloor) a gateway that then idles might not collect it
// for a long time, and it would stay resident. The gateway's own idle release
// (after 5 s without allocation) would get to it too, but later: the first
// requests' loads are a cold start's largest garbage, and this returns it a
// second after them.
func releaseSoon() {
	release.Lock()
	defer release.Unlock()
	if release.t == nil {
		release.t = time.AfterFunc(releaseDelay, debug.FreeOSMemory)
		return
	}
	release.t.Reset(releaseDelay)
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

// declare records the parameters each operation of a (generic) path item
// declares with those of the path item, following references to
// components.parameters (and a path item's own reference to
// components.pathItems).
func declare(out map[opKey][]paramID, key string, item, params, pathItems map[string]any) {
	ids := func(v any) []paramID {
		list, _ := v.([]any)
		var ids []paramID
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
				p = params[name]
			}
			m, _ := p.(map[string]any)
			in, _ := m["in"].(string)
			name, _ := m["name"].(string)
			if in != "" && name != "" {
				ids = append(ids, paramID{in, name})
			}
		}
		return ids
	}
	if ref, _ := item["$ref"].(string); ref != "" {
		if kind, name, ok := componentRef(ref); ok && kind == "pathItems" {
			item, _ = pathItems[name].(map[string]any)
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
	v, err := generic(raw)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
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

// trim drops from a path item what validating api's routes never reads:
// operations no route validates, and the responses of operations whose
// responses are not validated (they refer to most of a large definition's
// schemas).
func trim(item map[string]any, v validations, key string) {
	for _, m := range methods {
		op, ok := item[m].(map[string]any)
		if !ok {
			continue
		}
		val := v.of(key, m)
		switch {
		case !val.Request && !val.Response:
			delete(item, m)
		case !val.Response:
			delete(op, "responses")
		}
	}
}

// validations says what api's routes validate of each operation, by the
// document's path key as specIndex.find matches routes to keys: by upstream
// path, or by the path under the base path.
type validations struct {
	base             string
	byUpstream, full map[opKey]bundle.Validation
}

func newValidations(api *bundle.Bundle) validations {
	v := validations{base: api.API.BasePath, byUpstream: map[opKey]bundle.Validation{}, full: map[opKey]bundle.Validation{}}
	add := func(m map[opKey]bundle.Validation, k opKey, val bundle.Validation) {
		old := m[k]
		m[k] = bundle.Validation{Request: old.Request || val.Request, Response: old.Response || val.Response}
	}
	for _, r := range api.Routes {
		m := strings.ToLower(r.Method)
		add(v.byUpstream, opKey{r.UpstreamPath, m}, r.Validation)
		add(v.full, opKey{path.Join("/", r.Path), m}, r.Validation)
	}
	return v
}

func (v validations) of(key, method string) bundle.Validation {
	a := v.byUpstream[opKey{key, method}]
	b := v.full[opKey{path.Join("/", v.base, key), method}]
	return bundle.Validation{Request: a.Request || b.Request, Response: a.Response || b.Response}
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
