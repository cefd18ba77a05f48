package compile

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// maxRefHops bounds a chain of $refs that point at other $refs.
const maxRefHops = 32

// fileSet is the supplied documents by their cleaned relative path: the only
// things a $ref may name.
type fileSet struct {
	root *document
	docs map[string]*document
	// mayNeedFix is set when a schema looks like one fixSchemas repairs, so
	// that the (costly) schema walk runs only then.
	mayNeedFix bool
}

// cleanKey normalises a supplied path or a resolved $ref path so both compare
// equal: slash-separated, no "./", no trailing slash.
func cleanKey(p string) string {
	p = strings.ReplaceAll(p, "\\", "/")
	return path.Clean(p)
}

// checkRefs finds every $ref in every document and checks, before any library
// follows one, that it names a supplied file and an element that exists in it.
// Every problem is reported, not just the first.
func (fs *fileSet) checkRefs(order []*document) []Problem {
	var problems []Problem
	for _, d := range order {
		w := refWalker{fs: fs, doc: d}
		w.walk(d.value, make([]string, 0, 32))
		problems = append(problems, w.problems...)
	}
	return problems
}

type refWalker struct {
	fs       *fileSet
	doc      *document
	problems []Problem
}

// Keys whose values are literal data, not OpenAPI objects: a "$ref" under
// them is an example's content, not a reference. They are skipped unless they
// are a name (a property called "example", a component called "default").
var literalKeys = map[string]bool{"example": true, "default": true, "enum": true, "const": true}

var nameContainers = map[string]bool{
	"properties": true, "patternProperties": true, "definitions": true, "$defs": true,
	"dependentSchemas": true, "schemas": true, "parameters": true, "responses": true,
	"requestBodies": true, "headers": true, "securitySchemes": true, "links": true,
	"callbacks": true, "pathItems": true, "examples": true, "encoding": true,
	"content": true, "paths": true, "webhooks": true, "variables": true,
}

func (w *refWalker) walk(v any, toks []string) {
	switch t := v.(type) {
	case map[string]any:
		parent := ""
		if len(toks) > 0 {
			parent = toks[len(toks)-1]
		}
		if ref, ok := t["$ref"].(string); ok && !nameContainers[parent] {
			w.check(ref, pointer(append(toks, "$ref")...))
		}
		if !nameContainers[parent] {
			w.checkURIs(t, toks)
		}
		if !w.fs.mayNeedFix && mayNeedFix(t) {
			w.fs.mayNeedFix = true
		}
		for k, c := range t {
			if k == "$ref" {
				continue
			}
			if !nameContainers[parent] {
				if strings.HasPrefix(k, "x-") || literalKeys[k] {
					continue
				}
				// An Example Object's value is literal data.
				if k == "value" && len(toks) >= 2 && toks[len(toks)-2] == "examples" {
					continue
				}
			}
			w.walk(c, append(toks, k))
		}
	case []any:
		for i, c := range t {
			w.walk(c, append(toks, strconv.Itoa(i)))
		}
	}
}

// schemaURIKeys are the JSON Schema keywords whose URIs a schema library may
// load. A file: URI among them would read the gateway's own file system.
var schemaURIKeys = []string{"$schema", "$id", "$dynamicRef", "$recursiveRef"}

func (w *refWalker) checkURIs(m map[string]any, toks []string) {
	for _, k := range schemaURIKeys {
		s, ok := m[k].(string)
		if !ok {
			continue
		}
		if u, err := url.Parse(s); err == nil && strings.EqualFold(u.Scheme, "file") {
			w.add(pointer(append(toks, k)...), CodeExternalRef, fmt.Sprintf("%s %q names a local file; nothing outside the supplied files is ever read", k, s))
		}
	}
}

func mayNeedFix(m map[string]any) bool {
	if typ, _ := m["type"].(string); typ == "array" {
		if _, has := m["items"]; !has {
			return true
		}
	}
	_, minBool := m["exclusiveMinimum"].(bool)
	_, maxBool := m["exclusiveMaximum"].(bool)
	return minBool || maxBool
}

func (w *refWalker) add(ptr, code, reason string) {
	w.problems = append(w.problems, Problem{File: w.doc.file, Pointer: ptr, Code: code, Reason: reason})
}

func (w *refWalker) check(ref, ptr string) {
	target, frag, code, reason := w.fs.locate(w.doc, ref)
	if code != "" {
		w.add(ptr, code, reason)
		return
	}
	seen := map[string]bool{}
	// One budget for the whole chain and every $ref a pointer passes through.
	budget := 2 * maxRefHops
	for hops := 0; ; hops++ {
		v, ok := w.fs.resolvePointer(target, frag, &budget)
		if !ok {
			w.add(ptr, CodeUnresolvedRef, fmt.Sprintf("$ref %q: %s has no element %s", ref, describeDoc(target, w.fs), fragOrRoot(frag)))
			return
		}
		m, isMap := v.(map[string]any)
		next, chained := m["$ref"].(string)
		if !isMap || !chained {
			return
		}
		key := target.key + "#" + frag
		if seen[key] {
			w.add(ptr, CodeInvalidDefinition, fmt.Sprintf("$ref %q is part of a cycle of $refs that never reaches a value", ref))
			return
		}
		seen[key] = true
		if hops >= maxRefHops {
			w.add(ptr, CodeInvalidDefinition, fmt.Sprintf("$ref %q starts a chain of more than %d $refs", ref, maxRefHops))
			return
		}
		var c string
		target, frag, c, _ = w.fs.locate(target, next)
		if c != "" {
			// The element at the end of the chain is checked where it is written.
			return
		}
	}
}

func fragOrRoot(frag string) string {
	if frag == "" {
		return "(the whole document)"
	}
	return "#" + frag
}

func describeDoc(d *document, fs *fileSet) string {
	if d == fs.root {
		return "the document"
	}
	return strconv.Quote(d.key)
}

// locate resolves a $ref written in doc to a supplied document and a JSON
// pointer fragment, or says why it may not be followed.
func (fs *fileSet) locate(doc *document, ref string) (target *document, frag, code, reason string) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, "", CodeUnresolvedRef, fmt.Sprintf("$ref %q cannot be parsed: %v", ref, err)
	}
	if u.Host != "" || u.Scheme == "http" || u.Scheme == "https" {
		return nil, "", CodeRemoteRef, fmt.Sprintf("$ref %q is remote: references are never fetched over the network; supply the file instead", ref)
	}
	if u.Scheme != "" || u.Opaque != "" {
		return nil, "", CodeExternalRef, fmt.Sprintf("$ref %q is outside the supplied files (scheme %q); references are only followed between supplied files", ref, u.Scheme)
	}
	target = doc
	if u.Path != "" {
		if path.IsAbs(u.Path) {
			return nil, "", CodeExternalRef, fmt.Sprintf("$ref %q names an absolute path; references are only followed between supplied files, by relative path", ref)
		}
		key := cleanKey(path.Join(path.Dir(doc.key), u.Path))
		t, ok := fs.docs[key]
		if !ok {
			return nil, "", CodeExternalRef, fmt.Sprintf("$ref %q refers to %q, which is not among the supplied files", ref, key)
		}
		target = t
	}
	frag = u.Fragment
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return nil, "", CodeUnresolvedRef, fmt.Sprintf("$ref %q: the fragment must be a JSON pointer (#/...)", ref)
	}
	return target, frag, "", ""
}

// resolvePointer walks a JSON pointer through a document. Where the pointer
// goes on through an object that is itself a $ref ("#/components/schemas/A/
// properties/id" with A a $ref), it follows that $ref, as the library does;
// budget bounds the $refs followed in all, however they nest.
func (fs *fileSet) resolvePointer(d *document, ptr string, budget *int) (any, bool) {
	v := d.value
	for _, tok := range splitPointer(ptr) {
		switch t := v.(type) {
		case map[string]any:
			c, ok := t[tok]
			for !ok {
				ref, isRef := t["$ref"].(string)
				if !isRef || *budget <= 0 {
					return nil, false
				}
				*budget--
				target, frag, code, _ := fs.locate(d, ref)
				if code != "" {
					return nil, false
				}
				next, found := fs.resolvePointer(target, frag, budget)
				m, isMap := next.(map[string]any)
				if !found || !isMap {
					return nil, false
				}
				d, t = target, m
				c, ok = t[tok]
			}
			if !ok {
				return nil, false
			}
			v = c
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// readFile is the kin-openapi loader's only way to read a document: it serves
// the supplied files (in canonical JSON) and refuses everything else, so
// nothing outside the inputs, local or remote, is ever read.
func (fs *fileSet) readFile(location *url.URL) ([]byte, error) {
	if location.Scheme != "" || location.Host != "" || location.Opaque != "" {
		return nil, fmt.Errorf("refusing to read %q: only supplied files are read", location.String())
	}
	d, ok := fs.docs[cleanKey(location.Path)]
	if !ok {
		return nil, fmt.Errorf("refusing to read %q: not among the supplied files", location.Path)
	}
	return d.canonical, nil
}
