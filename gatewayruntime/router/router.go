// Package router matches request paths against OpenAPI path templates. The
// routing table is compiled once, at start-up, into a segment trie; a match
// walks it without allocating unless a segment is percent-encoded or the route
// has parameters.
//
// # The rule
//
//   - The request path is split on "/" as it arrived (escaped). Each segment is
//     percent-decoded on its own before it is compared, so "/p%65ts" matches the
//     literal "/pets" and an encoded slash ("%2F") stays inside its segment: it
//     never creates a new segment and can be a parameter value ("a/b").
//   - A malformed escape ("%zz"), a control character after decoding, or a dot
//     segment ("." or "..", also when encoded, also between encoded slashes as
//     in "..%2Fadmin" or backslashes as in "..\admin" and "..%5Cadmin",
//     which IIS and ASP.NET take for slashes, also with path parameters as in
//     "..;x", which servlet containers drop before they resolve it) is
//     refused with 400: the gateway never forwards a path the upstream could
//     normalise onto another route.
//   - Matching is case-sensitive and exact. A trailing slash is significant:
//     "/pets/" is a different path from "/pets" and matches only a template
//     that ends in "/". An empty segment ("//") never matches a parameter.
//   - Concrete beats templated, segment by segment: at each level a literal
//     segment is tried first, then segments mixing text and parameters (most
//     literal text first, e.g. "{id}.json" before "{id}"), then a whole-segment
//     parameter; the walk backtracks when a branch leads nowhere. The first path
//     found is THE path (OpenAPI picks the path item before the operation): if
//     it lacks the request's method the answer is 405 with Allow, even when a
//     more templated path has that method.
//   - A parameter matches a non-empty value. Inside a mixed segment a parameter
//     extends to the first occurrence of the literal text that follows it. A
//     name a template repeats in whole segments ("/a/{id}/b/{id}", found in real
//     definitions) is one parameter: the path matches only when both values
//     are equal.
//   - HEAD is served by the GET operation when the path has no HEAD operation.
//     OPTIONS without an OPTIONS operation is reported as such (Result.Options)
//     so the gateway can answer it (Allow, or a CORS preflight).
package router

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Entry is one route to compile: a method, a path template and the caller's value.
type Entry[T any] struct {
	Method string
	Path   string
	Value  T
}

// Param is one path parameter, percent-decoded.
type Param struct {
	Name, Value string
}

// Status of a match.
type Status int

const (
	// Found: Value is the route.
	Found Status = iota
	// NotFound: no path matches (404).
	NotFound
	// MethodNotAllowed: a path matches but not the method (405); Allow is set.
	MethodNotAllowed
	// Options: an OPTIONS request on a path with no OPTIONS operation; Allow is set.
	Options
	// BadPath: the path is malformed (400).
	BadPath
)

// Result is the outcome of Match.
type Result[T any] struct {
	Status Status
	Value  T
	// Template is the matched path template ("/v1/pets/{id}").
	Template string
	// Allow lists the path's methods for 405 and OPTIONS ("GET, HEAD, OPTIONS").
	Allow string
	// Methods holds the path's operations by method, for a CORS preflight that
	// must find the route of Access-Control-Request-Method.
	methods *leaf[T]
}

// Lookup returns the value of the matched path's operation for method (an
// OPTIONS preflight asking about it). HEAD falls back to GET.
func (r Result[T]) Lookup(method string) (T, bool) {
	var zero T
	if r.methods == nil {
		return zero, false
	}
	return r.methods.get(method)
}

// Router is a compiled routing table. It is immutable and safe for concurrent use.
type Router[T any] struct {
	root *node[T]
	// depth is the most segments any template has; longer paths cannot match.
	depth int
}

type node[T any] struct {
	// literal children, tried first; a map once there are many.
	lits    []litChild[T]
	litMap  map[string]*node[T]
	mixed   []*mixedChild[T]
	param   *node[T]
	leaf    *leaf[T]
	pattern string // the template text of this level, for error messages
}

type litChild[T any] struct {
	seg  string
	node *node[T]
}

type mixedChild[T any] struct {
	pieces []piece
	lits   int // literal bytes, for ordering
	node   *node[T]
	text   string
}

type piece struct {
	lit   string // literal text, or "" for a parameter
	param string
}

type leaf[T any] struct {
	template string
	// names are the template's parameters in path order.
	names []string
	// same lists positions of a name the template repeats ("/a/{id}/b/{id}"):
	// their values must be equal for the path to match.
	same [][2]int
	// The common methods by index, others in extra.
	common [len(commonMethods)]*T
	extra  map[string]*T
	allow  string
}

var commonMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace,
}

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodTrace:
		return 7
	}
	return -1
}

func (l *leaf[T]) get(method string) (T, bool) {
	var zero T
	if i := methodIndex(method); i >= 0 {
		if v := l.common[i]; v != nil {
			return *v, true
		}
		if i == 1 && l.common[0] != nil {
			return *l.common[0], true
		}
		return zero, false
	}
	if v, ok := l.extra[method]; ok {
		return *v, true
	}
	return zero, false
}

const litMapThreshold = 8

// Compile builds the routing table. It refuses a template it cannot parse, a
// method that is not an HTTP token, and two routes for the same method whose
// templates differ only in parameter names (which one wins would be arbitrary).
func Compile[T any](entries []Entry[T]) (*Router[T], error) {
	root := &node[T]{}
	var errs []error
	for _, e := range entries {
		if err := root.insert(e); err != nil {
			errs = append(errs, fmt.Errorf("route %s %s: %w", e.Method, e.Path, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	root.finish()
	depth := 0
	for _, e := range entries {
		depth = max(depth, strings.Count(e.Path, "/"))
	}
	return &Router[T]{root: root, depth: depth}, nil
}

func (n *node[T]) insert(e Entry[T]) error {
	if !validMethod(e.Method) {
		return errors.New("method is not an HTTP token")
	}
	if !strings.HasPrefix(e.Path, "/") {
		return errors.New("path must start with /")
	}
	segs := strings.Split(e.Path[1:], "/")
	cur := n
	names := map[string]bool{}
	for _, s := range segs {
		pieces, err := parseSegment(s)
		if err != nil {
			return err
		}
		for _, p := range pieces {
			if p.param == "" {
				continue
			}
			if names[p.param] && len(pieces) > 1 {
				return fmt.Errorf("parameter {%s} appears twice", p.param)
			}
			names[p.param] = true
		}
		switch {
		case len(pieces) == 1 && pieces[0].param == "":
			cur = cur.literal(pieces[0].lit)
		case len(pieces) == 1:
			if cur.param == nil {
				cur.param = &node[T]{pattern: s}
			}
			cur = cur.param
		case len(pieces) == 0:
			cur = cur.literal("")
		default:
			cur = cur.mixedChild(pieces, s)
		}
	}
	if cur.leaf == nil {
		cur.leaf = &leaf[T]{template: e.Path, names: paramNames(segs)}
		cur.leaf.same = samePairs(cur.leaf.names)
	} else if cur.leaf.template != e.Path {
		// Same shape, different parameter names: /pets/{id} and /pets/{name}.
		// OpenAPI calls such paths identical; which one serves would be arbitrary.
		return fmt.Errorf("ambiguous with %s", cur.leaf.template)
	}
	v := e.Value
	if i := methodIndex(e.Method); i >= 0 {
		if cur.leaf.common[i] != nil {
			return errors.New("duplicate route")
		}
		cur.leaf.common[i] = &v
		return nil
	}
	if cur.leaf.extra == nil {
		cur.leaf.extra = map[string]*T{}
	}
	if _, ok := cur.leaf.extra[e.Method]; ok {
		return errors.New("duplicate route")
	}
	cur.leaf.extra[e.Method] = &v
	return nil
}

func (n *node[T]) literal(seg string) *node[T] {
	for _, c := range n.lits {
		if c.seg == seg {
			return c.node
		}
	}
	child := &node[T]{pattern: seg}
	n.lits = append(n.lits, litChild[T]{seg, child})
	return child
}

func (n *node[T]) mixedChild(pieces []piece, text string) *node[T] {
	shape := shapeOf(pieces)
	for _, m := range n.mixed {
		if shapeOf(m.pieces) == shape {
			return m.node
		}
	}
	lits := 0
	for _, p := range pieces {
		lits += len(p.lit)
	}
	m := &mixedChild[T]{pieces: pieces, lits: lits, node: &node[T]{pattern: text}, text: text}
	n.mixed = append(n.mixed, m)
	return m.node
}

func paramNames(segs []string) []string {
	var names []string
	for _, s := range segs {
		pieces, _ := parseSegment(s)
		for _, p := range pieces {
			if p.param != "" {
				names = append(names, p.param)
			}
		}
	}
	return names
}

func samePairs(names []string) [][2]int {
	var pairs [][2]int
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[i] == names[j] {
				pairs = append(pairs, [2]int{i, j})
			}
		}
	}
	return pairs
}

// accepts reports whether the values satisfy the leaf's repeated names.
func (l *leaf[T]) accepts(vals []string) bool {
	for _, p := range l.same {
		if vals[p[0]] != vals[p[1]] {
			return false
		}
	}
	return true
}

// shapeOf writes a segment with its parameter names erased.
func shapeOf(pieces []piece) string {
	var b strings.Builder
	for _, p := range pieces {
		if p.param != "" {
			b.WriteString("{}")
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// finish orders children for matching and precomputes Allow headers.
func (n *node[T]) finish() {
	sort.Slice(n.lits, func(i, j int) bool { return n.lits[i].seg < n.lits[j].seg })
	if len(n.lits) > litMapThreshold {
		n.litMap = make(map[string]*node[T], len(n.lits))
		for _, c := range n.lits {
			n.litMap[c.seg] = c.node
		}
	}
	sort.SliceStable(n.mixed, func(i, j int) bool {
		if n.mixed[i].lits != n.mixed[j].lits {
			return n.mixed[i].lits > n.mixed[j].lits
		}
		return n.mixed[i].text < n.mixed[j].text
	})
	if n.leaf != nil {
		n.leaf.allow = allowOf(n.leaf)
	}
	for _, c := range n.lits {
		c.node.finish()
	}
	for _, m := range n.mixed {
		m.node.finish()
	}
	if n.param != nil {
		n.param.finish()
	}
}

func allowOf[T any](l *leaf[T]) string {
	set := map[string]bool{}
	for i, v := range l.common {
		if v != nil {
			set[commonMethods[i]] = true
		}
	}
	for m := range l.extra {
		set[m] = true
	}
	if set[http.MethodGet] {
		set[http.MethodHead] = true
	}
	set[http.MethodOptions] = true
	methods := make([]string, 0, len(set))
	for m := range set {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	return strings.Join(methods, ", ")
}

// parseSegment splits a template segment into literal text and {parameters}.
// Two parameters must be separated by literal text.
func parseSegment(s string) ([]piece, error) {
	var out []piece
	for len(s) > 0 {
		open := strings.IndexByte(s, '{')
		if close := strings.IndexByte(s, '}'); close >= 0 && (open < 0 || close < open) {
			return nil, errors.New("unbalanced }")
		}
		if open < 0 {
			out = append(out, piece{lit: s})
			break
		}
		if open > 0 {
			out = append(out, piece{lit: s[:open]})
		}
		rest := s[open+1:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, errors.New("unbalanced {")
		}
		name := rest[:end]
		if name == "" || strings.ContainsAny(name, "{/") {
			return nil, fmt.Errorf("bad parameter name %q", name)
		}
		if len(out) > 0 && out[len(out)-1].param != "" {
			return nil, errors.New("two parameters without text between them")
		}
		out = append(out, piece{param: name})
		s = rest[end+1:]
	}
	return out, nil
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !isTokenChar(m[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
