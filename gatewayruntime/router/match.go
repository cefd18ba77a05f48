package router

import (
	"net/http"
	"strings"
)

type segment struct {
	raw, dec string
}

// Match finds the route for method and the escaped request path (URL.EscapedPath
// or the raw request target without its query). Parameters are appended to
// params[:0], so a caller that keeps its slice between requests allocates nothing.
func (r *Router[T]) Match(method, path string, params []Param) (Result[T], []Param) {
	params = params[:0]
	if path == "" || path[0] != '/' {
		return Result[T]{Status: BadPath}, params
	}
	// One pass splits the path and checks each segment's bytes; a path
	// deeper than the buffer goes to the heap (and matches nothing deeper
	// than the deepest route).
	var segBuf [8]segment
	segs := segBuf[:0]
	start, pct, semi := 1, false, -1
	for i := 1; ; i++ {
		if i < len(path) && path[i] != '/' {
			switch c := path[i]; {
			case c == '%', c == '\\':
				pct = true // both take finishSegment's slow path
			case c == ';':
				if semi < 0 {
					semi = i - start
				}
			case c < 0x20 || c == 0x7f:
				return Result[T]{Status: BadPath}, params
			}
			continue
		}
		s := path[start:i]
		dec, ok := finishSegment(s, pct, semi)
		if !ok {
			return Result[T]{Status: BadPath}, params
		}
		segs = append(segs, segment{raw: s, dec: dec})
		if i >= len(path) {
			break
		}
		start, pct, semi = i+1, false, -1
	}
	if len(segs) > r.depth {
		return Result[T]{Status: NotFound}, params
	}
	var valBuf [8]string
	l, vals := r.root.match(segs, valBuf[:0])
	if l == nil {
		return Result[T]{Status: NotFound}, params
	}
	for i, v := range vals {
		params = append(params, Param{Name: l.names[i], Value: v})
	}
	res := Result[T]{Template: l.template, Allow: l.allow, methods: l}
	if v, ok := l.get(method); ok {
		res.Value = v
		return res, params
	}
	if method == http.MethodOptions {
		res.Status = Options
		return res, params
	}
	res.Status = MethodNotAllowed
	return res, params
}

func (n *node[T]) lit(seg string) *node[T] {
	if n.litMap != nil {
		return n.litMap[seg]
	}
	for i := range n.lits {
		if n.lits[i].seg == seg {
			return n.lits[i].node
		}
	}
	return nil
}

// match walks the trie depth first, concrete before templated, and returns the
// first leaf that consumes every segment.
func (n *node[T]) match(segs []segment, vals []string) (*leaf[T], []string) {
	if len(segs) == 0 {
		if n.leaf != nil && !n.leaf.accepts(vals) {
			return nil, vals
		}
		return n.leaf, vals
	}
	s := segs[0].dec
	if child := n.lit(s); child != nil {
		if l, v := child.match(segs[1:], vals); l != nil {
			return l, v
		}
	}
	mark := len(vals)
	for _, m := range n.mixed {
		v, ok := matchPieces(m.pieces, s, vals[:mark])
		if !ok {
			continue
		}
		if l, v := m.node.match(segs[1:], v); l != nil {
			return l, v
		}
	}
	if n.param != nil && s != "" {
		if l, v := n.param.match(segs[1:], append(vals[:mark], s)); l != nil {
			return l, v
		}
	}
	return nil, vals[:mark]
}

// matchPieces matches one decoded segment against literal text and parameters.
// A parameter runs to the first occurrence of the literal after it, or to the
// end of the segment when it is last; it must not be empty.
func matchPieces(pieces []piece, s string, vals []string) ([]string, bool) {
	for i, p := range pieces {
		if p.param == "" {
			if !strings.HasPrefix(s, p.lit) {
				return vals, false
			}
			s = s[len(p.lit):]
			continue
		}
		end := len(s)
		if i+1 < len(pieces) {
			end = strings.Index(s, pieces[i+1].lit)
			if end < 0 {
				return vals, false
			}
		}
		if end == 0 {
			return vals, false
		}
		vals = append(vals, s[:end])
		s = s[end:]
	}
	return vals, s == ""
}

// decodeSegment percent-decodes one path segment and refuses what the gateway
// will not forward: bad escapes, control characters, dot segments.
func decodeSegment(s string) (string, bool) {
	pct, semi := false, -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%', c == '\\':
			pct = true
		case c == ';':
			if semi < 0 {
				semi = i
			}
		case c < 0x20 || c == 0x7f:
			return "", false
		}
	}
	return finishSegment(s, pct, semi)
}

// finishSegment is decodeSegment for a segment already scanned: it has no
// control characters, pct says it has a '%' or a '\', semi is its first ';'
// (or -1).
func finishSegment(s string, pct bool, semi int) (string, bool) {
	// A dot segment, also with path parameters (see isDotSegment).
	d := s
	if semi >= 0 {
		d = s[:semi]
	}
	if d == "." || d == ".." {
		return "", false
	}
	if !pct {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", false
		}
		c = unhex(s[i+1])<<4 | unhex(s[i+2])
		if c < 0x20 || c == 0x7f {
			return "", false
		}
		b = append(b, c)
		i += 2
	}
	d = string(b)
	if hasDotSegment(d) {
		return "", false
	}
	return d, true
}

// hasDotSegment reports a decoded segment that is a dot segment or, split at
// its encoded slashes or its backslashes, holds one ("..%2Fadmin",
// "..\admin", "..%5Cadmin"): an upstream that decodes %2F, or takes "\" for
// "/" as IIS and ASP.NET do, before it normalises would resolve it onto
// another path.
func hasDotSegment(d string) bool {
	for part := range strings.FieldsFuncSeq(d, isSlash) {
		if isDotSegment(part) {
			return true
		}
	}
	// FieldsFunc drops empty fields, so a segment that is all slashes has
	// no parts; a dot segment is never empty, so that loses nothing.
	return false
}

func isSlash(r rune) bool { return r == '/' || r == '\\' }

// isDotSegment reports "." and "..", also with path parameters (".;x",
// "..;"): servlet containers drop a segment's ";..." before they resolve
// dot segments, so "/a/..;/b" is "/b" to them.
func isDotSegment(s string) bool {
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return s == "." || s == ".."
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
