package compile

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

// TestJSONLinesMatchNodeLines: jsonLines, which reads JSON as tokens, finds
// for every pointer the line the YAML node walk finds, on the corpus's JSON
// definition and on every corpus definition re-encoded as indented and as
// compact JSON; pointers are the documents' own paths, and each also with
// a step that does not exist.
func TestJSONLinesMatchNodeLines(t *testing.T) {
	docs := map[string][]byte{}
	for _, f := range corpusFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d, ps := decodeDocument(f, f, data)
		if len(ps) > 0 {
			t.Fatalf("%s: %v", f, ps)
		}
		if strings.HasSuffix(f, ".json") {
			docs[f] = data
		}
		indented, err := json.MarshalIndent(d.value, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		docs[f+" indented"] = indented
		if docs[f+" compact"], err = canonicalJSON(d.value); err != nil {
			t.Fatal(err)
		}
	}
	docs["hand-written"] = []byte("{\n  \"a\": [\n    1,\n    {\"b\":\n      \"x\"},\n\n    [2,\n 3]\n  ],\n  \"c\": {}, \"d\": \"~/\"\n}\n")
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	checked := 0
	for _, name := range names {
		data := docs[name]
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var ptrs []string
		paths(v, "", &ptrs)
		if len(ptrs) > 4000 { // box: keep every k-th, ends included
			k := len(ptrs) / 4000
			var some []string
			for i := 0; i < len(ptrs); i += k {
				some = append(some, ptrs[i])
			}
			ptrs = append(some, ptrs[len(ptrs)-1])
		}
		for _, p := range ptrs[:len(ptrs):len(ptrs)] {
			ptrs = append(ptrs, p+"/nope", p+"/0/x")
		}
		ptrs = append(ptrs, "/nope", "/a/01", "/a/+1", "/a/-1", "/d")
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := jsonLines(data, ptrs)
		for i, p := range ptrs {
			if want := nodeLine(&root, p); got[i] != want {
				t.Errorf("%s %s: line %d, the node walk says %d", name, p, got[i], want)
			}
		}
		checked += len(ptrs)
	}
	if checked < 10000 {
		t.Fatalf("only %d pointers checked", checked)
	}
}

// paths lists the JSON pointers of v's members and elements, depth first.
func paths(v any, at string, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := at + "/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
			*out = append(*out, p)
			paths(x[k], p, out)
		}
	case []any:
		for i, e := range x {
			p := fmt.Sprintf("%s/%d", at, i)
			*out = append(*out, p)
			paths(e, p, out)
		}
	}
}
