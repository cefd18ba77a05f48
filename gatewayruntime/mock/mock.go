// Package mock is an upstream that answers every operation of a Bundle from
// the definition itself: the example of the operation's success response, or
// a value built from the response schema (its examples, defaults, enums and
// types) when the definition gives no example. The quick start puts it behind
// the gateway so that a definition can be tried with no backend at all.
//
// The answers are computed once, when the mock is built; a request only
// routes (with the gateway's own router, on the upstream paths) and writes
// bytes. A client may ask for another documented status with
// "Prefer: code=404" and for a named example with "Prefer: example=cat".
package mock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
	"github.com/gatekiln/gatekiln/gatewayruntime/router"
)

// Header marks every answer as the mock's.
const Header = "X-Gatekiln-Mock"

// Response is one prepared answer.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// operation holds the answers of one route: the default, every documented
// status, and every named example of each status.
type operation struct {
	id       string
	def      Response
	byStatus map[int]Response
	// examples maps "status/name" to an answer.
	examples map[string]Response
}

// Mock answers requests for one Bundle's operations.
type Mock struct {
	router *router.Router[*operation]
}

// New prepares an answer for every route of b. It fails only when the
// Bundle's OpenAPI document is not JSON or its upstream paths do not compile.
func New(b *bundle.Bundle) (*Mock, error) {
	doc, err := decode(b.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("mock: openapi: %w", err)
	}
	d := &document{root: doc}
	entries := make([]router.Entry[*operation], 0, len(b.Routes))
	for _, r := range b.Routes {
		op := d.operation(b, r)
		entries = append(entries, router.Entry[*operation]{Method: r.Method, Path: r.UpstreamPath, Value: op})
	}
	rt, err := router.Compile(entries)
	if err != nil {
		return nil, fmt.Errorf("mock: routes: %w", err)
	}
	return &Mock{router: rt}, nil
}

// ServeHTTP answers from the prepared responses.
func (m *Mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(Header, "true")
	res, _ := m.router.Match(r.Method, r.URL.EscapedPath(), nil)
	switch res.Status {
	case router.Found:
	case router.MethodNotAllowed, router.Options:
		w.Header().Set("Allow", res.Allow)
		problem.Write(w, r, http.StatusMethodNotAllowed, "", "the mock has no "+r.Method+" operation on this path")
		return
	case router.BadPath:
		problem.Write(w, r, http.StatusBadRequest, "", "malformed path")
		return
	default:
		problem.Write(w, r, http.StatusNotFound, "", "the definition has no operation on this path")
		return
	}
	op := res.Value
	answer := op.def
	prefer := parsePrefer(r.Header.Values("Prefer"))
	if c, ok := prefer["code"]; ok {
		code, err := strconv.Atoi(c)
		a, found := op.byStatus[code]
		if err != nil || !found {
			problem.Write(w, r, http.StatusNotImplemented, "", "operation "+op.id+" documents no response "+strconv.Quote(c))
			return
		}
		answer = a
	}
	if name, ok := prefer["example"]; ok {
		a, found := op.examples[strconv.Itoa(answer.Status)+"/"+name]
		if !found {
			problem.Write(w, r, http.StatusNotImplemented, "", "operation "+op.id+" has no example "+strconv.Quote(name)+" for status "+strconv.Itoa(answer.Status))
			return
		}
		answer = a
	}
	if answer.ContentType != "" {
		w.Header().Set("Content-Type", answer.ContentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(answer.Body)))
	w.WriteHeader(answer.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(answer.Body)
	}
}

// parsePrefer reads RFC 7240 preferences of the form token=value.
func parsePrefer(values []string) map[string]string {
	out := map[string]string{}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			for _, p := range strings.Split(part, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok {
					out[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(val), `"`)
				}
			}
		}
	}
	return out
}

// document is the OpenAPI document as generic JSON.
type document struct {
	root any
}

func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// operation finds the route's operation in the document and prepares its
// answers. A route the document does not describe answers 200 with no body.
func (d *document) operation(b *bundle.Bundle, r bundle.Route) *operation {
	op := &operation{id: r.OperationID, byStatus: map[int]Response{}, examples: map[string]Response{}}
	if op.id == "" {
		op.id = r.Method + " " + r.Path
	}
	op.def = Response{Status: http.StatusOK}
	o := d.find(b, r)
	responses, _ := d.deref(o["responses"]).(map[string]any)
	codes := make([]string, 0, len(responses))
	for c := range responses {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	chosen := ""
	for _, c := range codes {
		status, ok := statusOf(c)
		if !ok {
			continue
		}
		resp, _ := d.deref(responses[c]).(map[string]any)
		a, named := d.answer(status, resp)
		op.byStatus[status] = a
		for name, na := range named {
			op.examples[strconv.Itoa(status)+"/"+name] = na
		}
		// The default answer is the lowest 2xx, else the "default" response.
		if chosen == "" && status/100 == 2 {
			chosen = c
			op.def = a
		}
	}
	if chosen == "" {
		if resp, ok := d.deref(responses["default"]).(map[string]any); ok {
			op.def, _ = d.answer(http.StatusOK, resp)
		}
	}
	return op
}

// find locates the operation object of r: the path item whose key, with the
// base path in front, is the route's path.
func (d *document) find(b *bundle.Bundle, r bundle.Route) map[string]any {
	root, _ := d.root.(map[string]any)
	paths, _ := root["paths"].(map[string]any)
	item, ok := paths[r.UpstreamPath].(map[string]any)
	if !ok {
		base := strings.TrimSuffix(b.API.BasePath, "/")
		for k, v := range paths {
			if base+k == r.Path {
				item, _ = v.(map[string]any)
				break
			}
		}
	}
	item, _ = d.deref(item).(map[string]any)
	o, _ := d.deref(item[strings.ToLower(r.Method)]).(map[string]any)
	return o
}

func statusOf(code string) (int, bool) {
	n, err := strconv.Atoi(code)
	if err == nil && n >= 100 && n <= 599 {
		return n, true
	}
	// "2XX" ranges answer with the range's first code.
	if len(code) == 3 && strings.EqualFold(code[1:], "XX") && code[0] >= '1' && code[0] <= '5' {
		return int(code[0]-'0') * 100, true
	}
	return 0, false
}

// answer prepares a response object's body: JSON when it documents JSON,
// else the first media type with an example, else no body.
func (d *document) answer(status int, resp map[string]any) (Response, map[string]Response) {
	a := Response{Status: status}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		return a, nil
	}
	types := make([]string, 0, len(content))
	for t := range content {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool {
		ji, jj := isJSON(types[i]), isJSON(types[j])
		if ji != jj {
			return ji
		}
		return types[i] < types[j]
	})
	ct := types[0]
	media, _ := d.deref(content[ct]).(map[string]any)
	a.ContentType = ct
	named := map[string]Response{}
	examples, _ := d.deref(media["examples"]).(map[string]any)
	for name, ex := range examples {
		exm, _ := d.deref(ex).(map[string]any)
		if v, ok := exm["value"]; ok {
			named[name] = Response{Status: status, ContentType: ct, Body: render(ct, v)}
		}
	}
	switch {
	case media["example"] != nil:
		a.Body = render(ct, media["example"])
	case len(named) > 0:
		first := ""
		for name := range named {
			if first == "" || name < first {
				first = name
			}
		}
		a.Body = named[first].Body
	default:
		v, ok := d.value(media["schema"], nil)
		if ok {
			a.Body = render(ct, v)
		}
	}
	return a, named
}

func isJSON(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "application/json") || strings.HasSuffix(strings.SplitN(ct, ";", 2)[0], "+json")
}

// render writes a value as the media type wants: JSON for JSON types, the
// string itself for a string example of another type.
func render(ct string, v any) []byte {
	if s, ok := v.(string); ok && !isJSON(ct) {
		return []byte(s)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return append(data, '\n')
}

// maxDepth bounds how many $refs deep an example is built.
const maxDepth = 16

// deref follows local $refs ("#/components/..."), a bounded number of times.
func (d *document) deref(v any) any {
	for range 32 {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		v = d.pointer(ref)
	}
	return nil
}

func (d *document) pointer(ref string) any {
	p, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil
	}
	cur := d.root
	for _, tok := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if tok == "" {
			continue
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			cur = c[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			cur = c[i]
		default:
			return nil
		}
	}
	return cur
}

// value builds an example value from a schema: its example, default, const
// or first enum value; for allOf the merge of the parts; for oneOf/anyOf the
// first part; else a value of its type that respects its bounds.
//
// stack holds the $refs being expanded: a schema that refers to itself (a
// tree node's children) stops at its first repetition instead of nesting.
func (d *document) value(schema any, stack []string) (any, bool) {
	if m, ok := schema.(map[string]any); ok {
		if ref, ok := m["$ref"].(string); ok {
			if slices.Contains(stack, ref) {
				return nil, false
			}
			stack = append(stack, ref)
		}
	}
	s, ok := d.deref(schema).(map[string]any)
	if !ok || len(stack) > maxDepth {
		return nil, false
	}
	for _, k := range []string{"example", "default", "const"} {
		if v, ok := s[k]; ok {
			return v, true
		}
	}
	if ex, ok := s["examples"].([]any); ok && len(ex) > 0 {
		return ex[0], true
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return enum[0], true
	}
	if all, ok := s["allOf"].([]any); ok && len(all) > 0 {
		merged := map[string]any{}
		var last any
		for _, part := range all {
			v, ok := d.value(part, stack)
			if !ok {
				continue
			}
			if m, ok := v.(map[string]any); ok {
				for k, x := range m {
					if _, have := merged[k]; !have {
						merged[k] = x
					}
				}
			} else {
				last = v
			}
		}
		if len(merged) > 0 || last == nil {
			return d.withProperties(s, merged, stack), true
		}
		return last, true
	}
	for _, k := range []string{"oneOf", "anyOf"} {
		if alts, ok := s[k].([]any); ok && len(alts) > 0 {
			return d.value(alts[0], stack)
		}
	}
	switch typeOf(s) {
	case "object":
		return d.withProperties(s, map[string]any{}, stack), true
	case "array":
		item, ok := d.value(s["items"], stack)
		if !ok {
			return []any{}, true
		}
		n := 1
		if m, ok := number(s["minItems"]); ok && m > 1 {
			n = int(min(m, 10))
		}
		out := make([]any, n)
		for i := range out {
			out[i] = item
		}
		return out, true
	case "string":
		return stringValue(s), true
	case "integer":
		return numberValue(s, true), true
	case "number":
		return numberValue(s, false), true
	case "boolean":
		return true, true
	case "null":
		return nil, true
	}
	return nil, false
}

// withProperties adds to m a value for every property of s it lacks.
func (d *document) withProperties(s map[string]any, m map[string]any, stack []string) map[string]any {
	props, _ := s["properties"].(map[string]any)
	for k, p := range props {
		if _, have := m[k]; have {
			continue
		}
		if v, ok := d.value(p, stack); ok {
			m[k] = v
		}
	}
	return m
}

func typeOf(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if str, ok := x.(string); ok && str != "null" {
				return str
			}
		}
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	if _, ok := s["items"]; ok {
		return "array"
	}
	return ""
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func stringValue(s map[string]any) string {
	switch s["format"] {
	case "date-time":
		return "2024-01-01T00:00:00Z"
	case "date":
		return "2024-01-01"
	case "uuid":
		return "00000000-0000-4000-8000-000000000000"
	case "email":
		return "user@example.com"
	case "uri", "url":
		return "https://example.com/"
	case "byte":
		return "AAAA"
	}
	v := "string"
	if m, ok := number(s["minLength"]); ok && int(m) > len(v) {
		v = strings.Repeat("x", int(min(m, 1024)))
	}
	if m, ok := number(s["maxLength"]); ok && int(m) < len(v) {
		v = v[:int(m)]
	}
	return v
}

// numberValue is 1 moved inside the schema's bounds.
func numberValue(s map[string]any, integer bool) json.Number {
	v := 1.0
	if m, ok := number(s["minimum"]); ok && m > v {
		v = m
	}
	if m, ok := number(s["maximum"]); ok && m < v {
		v = m
	}
	if integer {
		v = math.Ceil(v)
	}
	return json.Number(strconv.FormatFloat(v, 'f', -1, 64))
}
