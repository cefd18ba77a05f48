package compile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v4"
)

// Limits on what one document may cost. A definition file larger than
// MaxDocumentBytes (after gunzip) is refused; YAML aliases may add at most
// max(aliasSlack, aliasFactor × the document's own nodes) nodes, which keeps an
// alias bomb from expanding at all (the check runs on the node tree, before
// anything is built); nesting deeper than maxDepth is refused so that no
// recursive walk, ours or the libraries', can exhaust the stack.
const (
	MaxDocumentBytes = 32 << 20
	aliasSlack       = 100_000
	aliasFactor      = 2
	maxDepth         = 512
)

// document is one input file, decoded.
type document struct {
	file  string // the path as given, for problems
	key   string // cleaned path relative to the root's directory, for $refs
	data  []byte // decompressed bytes
	value any    // generic JSON value: map[string]any, []any, string, json.Number, bool, nil
	// canonical is value in canonical JSON: sorted keys, no HTML escaping.
	canonical []byte
	// yaml: the document is YAML, not JSON. Its node tree is not kept: it
	// is several times the size of the value, and is needed only to locate
	// problems and warnings (lines parses it again then).
	yaml bool
}

var gzipMagic = []byte{0x1f, 0x8b}

// decodeDocument turns a file's bytes into a generic value, refusing what is
// too large, malformed or an alias bomb. It never reads anything but data.
func decodeDocument(file, key string, data []byte) (*document, []Problem) {
	d := &document{file: file, key: key}
	if bytes.HasPrefix(data, gzipMagic) {
		plain, p := gunzip(file, data)
		if p != nil {
			return nil, []Problem{*p}
		}
		data = plain
	}
	if len(data) > MaxDocumentBytes {
		return nil, []Problem{{File: file, Code: CodeTooLarge,
			Reason: fmt.Sprintf("document is %d bytes; the limit is %d (32 MiB)", len(data), MaxDocumentBytes)}}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	d.data = data

	if v, ok := decodeJSON(data); ok {
		d.value = v
	} else {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, []Problem{{File: file, Line: yamlErrorLine(err), Code: CodeParseError,
				Reason: "not valid YAML or JSON: " + yamlErrorMessage(err)}}
		}
		d.yaml = true
		if p := checkExpansion(&root); p != nil {
			p.File = file
			return nil, []Problem{*p}
		}
		v, p := nodeValue(&root)
		if p != nil {
			p.File = file
			return nil, []Problem{*p}
		}
		d.value = v
	}
	if depthOver(d.value, 0) {
		return nil, []Problem{{File: file, Code: CodeTooLarge,
			Reason: fmt.Sprintf("document nests deeper than %d levels", maxDepth)}}
	}
	return d, nil
}

// InputSize is the size of files as the compiler holds them, gzip'd files
// counted decompressed: what a compile's memory grows with. It inflates into
// nothing, so a large file costs CPU, not memory, and stops once the total
// passes limit, so a gzip bomb costs no more than limit bytes of inflating;
// exact is false when it stopped. A file that is not valid gzip counts as its
// own bytes: Compile refuses it, saying why.
func InputSize(files []File, limit int64) (size int64, exact bool) {
	for _, f := range files {
		if !bytes.HasPrefix(f.Data, gzipMagic) {
			size += int64(len(f.Data))
			continue
		}
		if size > limit {
			return size, false
		}
		size += inflatedSize(f.Data, limit-size+1)
		if size > limit {
			return size, false
		}
	}
	return size, true
}

// inflatedSize counts data's decompressed bytes, at most n.
func inflatedSize(data []byte, n int64) int64 {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return int64(len(data))
	}
	got, err := io.Copy(io.Discard, io.LimitReader(zr, n))
	if err != nil && got == 0 {
		return int64(len(data))
	}
	return got
}

func gunzip(file string, data []byte) ([]byte, *Problem) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, &Problem{File: file, Code: CodeParseError, Reason: "gzip: " + err.Error()}
	}
	plain, err := io.ReadAll(io.LimitReader(zr, MaxDocumentBytes+1))
	if err != nil {
		return nil, &Problem{File: file, Code: CodeParseError, Reason: "gzip: " + err.Error()}
	}
	if len(plain) > MaxDocumentBytes {
		return nil, &Problem{File: file, Code: CodeTooLarge,
			Reason: fmt.Sprintf("document is larger than %d bytes (32 MiB) once decompressed", MaxDocumentBytes)}
	}
	return plain, nil
}

// decodeJSON is the fast path for documents that are JSON: encoding/json is
// several times quicker than a YAML parser, and JSON has no aliases.
func decodeJSON(data []byte) (any, bool) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	return v, true
}

// yamlErrorMessage is the parser's message without its "yaml: line N:"
// prefix, which Problem.Line carries.
func yamlErrorMessage(err error) string {
	var le *yaml.LoadError
	if errors.As(err, &le) && le.Message != "" {
		return le.Message
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	var le *yaml.LoadError
	if errors.As(err, &le) && le.Mark.Line > 0 {
		return le.Mark.Line
	}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// checkExpansion sizes the tree as it would be with every alias expanded,
// without expanding anything: each anchored node's expanded size is computed
// once and reused. An alias bomb of a few hundred bytes is refused here in
// microseconds.
func checkExpansion(root *yaml.Node) *Problem {
	own := countNodes(root)
	limit := own + max(aliasSlack, aliasFactor*own)
	s := sizer{memo: map[*yaml.Node]sized{}, active: map[*yaml.Node]bool{}, limit: limit}
	size, height, p := s.size(root)
	if p != nil {
		return p
	}
	if size > limit {
		return &Problem{Line: s.worst, Code: CodeTooLarge,
			Reason: fmt.Sprintf("YAML aliases expand the document beyond %d nodes (it has %d of its own)", limit, own)}
	}
	if height > maxDepth {
		return &Problem{Code: CodeTooLarge, Reason: fmt.Sprintf("document nests deeper than %d levels", maxDepth)}
	}
	return nil
}

func countNodes(n *yaml.Node) int64 {
	var c int64 = 1
	for _, ch := range n.Content {
		c += countNodes(ch)
	}
	return c
}

type sized struct{ size, height int64 }

type sizer struct {
	memo   map[*yaml.Node]sized
	active map[*yaml.Node]bool
	limit  int64
	worst  int // line of the alias that went over the limit
}

func (s *sizer) size(n *yaml.Node) (int64, int64, *Problem) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 0, 0, &Problem{Line: n.Line, Code: CodeParseError, Reason: "alias to an unknown anchor"}
		}
		sz, h, p := s.size(n.Alias)
		if p == nil && sz > s.limit && s.worst == 0 {
			s.worst = n.Line
		}
		return sz, h, p
	}
	if n.Anchor != "" {
		if r, ok := s.memo[n]; ok {
			return r.size, r.height, nil
		}
		if s.active[n] {
			return 0, 0, &Problem{Line: n.Line, Code: CodeParseError, Reason: fmt.Sprintf("anchor %q contains an alias to itself", n.Anchor)}
		}
		s.active[n] = true
		defer delete(s.active, n)
	}
	var total, height int64 = 1, 0
	for _, ch := range n.Content {
		sz, h, p := s.size(ch)
		if p != nil {
			return 0, 0, p
		}
		total = satAdd(total, sz)
		height = max(height, h)
		if height > maxDepth {
			return 0, 0, &Problem{Line: ch.Line, Code: CodeTooLarge, Reason: fmt.Sprintf("document nests deeper than %d levels", maxDepth)}
		}
	}
	height++
	if n.Anchor != "" {
		s.memo[n] = sized{total, height}
	}
	return total, height, nil
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// nodeValue converts a YAML node tree (already checked by checkExpansion) to
// the generic value encoding/json would produce for the same document as JSON.
func nodeValue(n *yaml.Node) (any, *Problem) {
	switch n.Kind {
	case 0:
		// An empty input parses to no node at all.
		return nil, nil
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return nodeValue(n.Content[0])
	case yaml.AliasNode:
		return nodeValue(n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, ch := range n.Content {
			v, p := nodeValue(ch)
			if p != nil {
				return nil, p
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return mappingValue(n)
	case yaml.ScalarNode:
		return scalarValue(n)
	}
	return nil, &Problem{Line: n.Line, Code: CodeParseError, Reason: "unsupported YAML node"}
}

func mappingValue(n *yaml.Node) (any, *Problem) {
	out := make(map[string]any, len(n.Content)/2)
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, &Problem{Line: k.Line, Code: CodeParseError, Reason: "a mapping key must be a scalar"}
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if _, dup := out[k.Value]; dup {
			return nil, &Problem{Line: k.Line, Code: CodeParseError, Reason: fmt.Sprintf("duplicate key %q", k.Value)}
		}
		val, p := nodeValue(v)
		if p != nil {
			return nil, p
		}
		out[k.Value] = val
	}
	// Merge keys (<<) add what the mapping does not set itself; of several
	// merged mappings, the first to set a key wins.
	for _, m := range merges {
		if m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			v, p := nodeValue(src)
			if p != nil {
				return nil, p
			}
			mm, ok := v.(map[string]any)
			if !ok {
				return nil, &Problem{Line: src.Line, Code: CodeParseError, Reason: "a merge key (<<) must merge mappings"}
			}
			for k, val := range mm {
				if _, set := out[k]; !set {
					out[k] = val
				}
			}
		}
	}
	return out, nil
}

var jsonNumberRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func scalarValue(n *yaml.Node) (any, *Problem) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, &Problem{Line: n.Line, Code: CodeParseError, Reason: err.Error()}
		}
		return b, nil
	case "!!int":
		if jsonNumberRE.MatchString(n.Value) {
			return json.Number(n.Value), nil
		}
		var i any
		if err := n.Decode(&i); err != nil {
			return nil, &Problem{Line: n.Line, Code: CodeParseError, Reason: err.Error()}
		}
		return json.Number(fmt.Sprint(i)), nil
	case "!!float":
		if jsonNumberRE.MatchString(n.Value) {
			return json.Number(n.Value), nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, &Problem{Line: n.Line, Code: CodeParseError, Reason: err.Error()}
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			// JSON has no infinities; keep what was written.
			return n.Value, nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	default:
		// Strings, timestamps (kept as written, as in JSON), binary and
		// custom tags.
		return n.Value, nil
	}
}

func depthOver(v any, depth int) bool {
	if depth > maxDepth {
		return true
	}
	switch t := v.(type) {
	case map[string]any:
		for _, c := range t {
			if depthOver(c, depth+1) {
				return true
			}
		}
	case []any:
		for _, c := range t {
			if depthOver(c, depth+1) {
				return true
			}
		}
	}
	return false
}

// canonicalJSON encodes a generic value with sorted keys and no HTML escaping.
func canonicalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// lines finds the line of the value each JSON pointer names, 0 if unknown.
func (d *document) lines(ptrs []string) []int {
	if !d.yaml {
		return jsonLines(d.data, ptrs)
	}
	out := make([]int, len(ptrs))
	var root yaml.Node
	if yaml.Unmarshal(d.data, &root) != nil {
		return out // decodeDocument parsed it once; not reached
	}
	for i, p := range ptrs {
		out[i] = nodeLine(&root, p)
	}
	return out
}

// nodeLine finds the line of the value a JSON pointer names in a YAML node
// tree: the line of the deepest element the pointer reaches; 0 if not even
// its first step exists (the pointer is into a converted document).
func nodeLine(n *yaml.Node, ptr string) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, tok := range splitPointer(ptr) {
		for hops := 0; n.Kind == yaml.AliasNode && n.Alias != nil && hops < 64; hops++ {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					line = n.Content[i].Line
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// jsonLines is nodeLine for a JSON document, for all pointers in one pass
// over its tokens: a member's line is its key's, an element's its first
// token's, and of duplicate keys the first counts. Reading the document as
// YAML for a node tree, as before, cost about 120 times its size (380 MB for
// 3 MB), on every compile with a warning.
func jsonLines(data []byte, ptrs []string) []int {
	w := &lineWalker{dec: json.NewDecoder(bytes.NewReader(data)), data: data,
		toks: make([][]string, len(ptrs)), lines: make([]int, len(ptrs))}
	w.dec.UseNumber()
	var alive []int
	for i, p := range ptrs {
		if w.toks[i] = splitPointer(p); len(w.toks[i]) > 0 {
			alive = append(alive, i)
		}
	}
	if tok, err := w.dec.Token(); err == nil && len(alive) > 0 {
		// On an error the lines found so far stand (the document decoded
		// as JSON once already).
		_ = w.value(tok, 0, alive)
	}
	return w.lines
}

type lineWalker struct {
	dec   *json.Decoder
	data  []byte
	pos   int // newlines in data[:pos] are counted in nl
	nl    int
	toks  [][]string // each pointer's tokens
	lines []int
}

// value walks the value whose first token is tok; alive are the pointers
// that reach it, with depth tokens consumed. It returns after the value's
// last token.
func (w *lineWalker) value(tok json.Token, depth int, alive []int) error {
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: one token
	}
	for i := 0; w.dec.More(); i++ {
		key, line := "", 0
		if delim == '{' {
			kt, err := w.dec.Token()
			if err != nil {
				return err
			}
			key, _ = kt.(string)
			line = w.lineOf(w.dec.InputOffset())
		}
		vt, err := w.dec.Token()
		if err != nil {
			return err
		}
		if delim == '[' {
			line = w.lineOf(w.dec.InputOffset())
		}
		var child []int
		alive, child = w.step(alive, depth, delim == '{', key, i, line)
		if err := w.value(vt, depth+1, child); err != nil {
			return err
		}
	}
	_, err := w.dec.Token() // the closing delimiter
	return err
}

// step takes from alive the pointers whose next token names this member
// (key) or element (index), records line for them and returns those that go
// deeper as child.
func (w *lineWalker) step(alive []int, depth int, member bool, key string, index, line int) (rest, child []int) {
	rest = alive[:0]
	for _, p := range alive {
		tok := w.toks[p][depth]
		match := tok == key
		if !member {
			n, err := strconv.Atoi(tok)
			match = err == nil && n == index
		}
		if !match {
			rest = append(rest, p)
			continue
		}
		w.lines[p] = line
		if depth+1 < len(w.toks[p]) {
			child = append(child, p)
		}
	}
	return rest, child
}

// lineOf is the line of the token that ends at offset end.
func (w *lineWalker) lineOf(end int64) int {
	for last := int(end) - 1; w.pos < last; w.pos++ {
		if w.data[w.pos] == '\n' {
			w.nl++
		}
	}
	return w.nl + 1
}
