package compile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

// reorderedYAML re-emits a generic value as YAML with every mapping's keys in
// reverse order and a different indentation.
func reorderedYAML(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(4)
	if err := enc.Encode(toNode(v)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func toNode(v any) *yaml.Node {
	switch t := v.(type) {
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(keys)))
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, toNode(t[k]))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, e := range t {
			n.Content = append(n.Content, toNode(e))
		}
		return n
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(string(t), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(t)}
	case bool:
		if t {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
}

func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCanonicalBundle compiles each definition as written, as indented JSON,
// as YAML with every key order reversed, gzip'd, with CRLF line ends and under
// another file name: every form must give the same Bundle bytes.
func TestCanonicalBundle(t *testing.T) {
	corpus := corpusDir(t)
	inputs := []string{
		filepath.Join("..", "..", "samples", "petstore", "petstore.yaml"),
		filepath.Join(corpus, "oas-examples", "2.0", "petstore.yaml"),
		filepath.Join(corpus, "oas-examples", "3.0", "uspto.yaml"),
		filepath.Join(corpus, "oas-examples", "3.0", "circular.yaml"),
		filepath.Join(corpus, "oas-examples", "3.1", "train-travel.yaml"),
		filepath.Join(corpus, "box", "openapi.json"),
	}
	for _, path := range inputs {
		t.Run(filepath.Base(filepath.Dir(path))+"/"+filepath.Base(path), func(t *testing.T) {
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			d, ps := decodeDocument("x", "x", orig)
			if len(ps) > 0 {
				t.Fatal(ps)
			}
			indented, err := json.MarshalIndent(d.value, "", "   ")
			if err != nil {
				t.Fatal(err)
			}
			variants := map[string]File{
				"original":  {Path: filepath.Base(path), Data: orig},
				"json":      {Path: "api.json", Data: indented},
				"reordered": {Path: "api.yaml", Data: reorderedYAML(t, d.value)},
				"gzip":      {Path: "api.yaml", Data: gzipped(t, orig)},
				"crlf":      {Path: "other-name.yaml", Data: bytes.ReplaceAll(orig, []byte("\n"), []byte("\r\n"))},
			}
			want, err := Compile(Input{Files: []File{variants["original"]}})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range sortedKeys(variants) {
				got, err := Compile(Input{Files: []File{variants[name]}})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !bytes.Equal(got.BundleBytes, want.BundleBytes) {
					t.Errorf("%s: bundle differs from the original's (%s vs %s)", name, got.BundleDigest, want.BundleDigest)
				}
			}
			if again, _ := Compile(Input{Files: []File{variants["original"]}}); !bytes.Equal(again.BundleBytes, want.BundleBytes) {
				t.Errorf("two compiles of the same input differ")
			}
		})
	}
}

func TestInputsDigest(t *testing.T) {
	base := InputsDigest([]byte("bundle"), "sha256:aaa", "0.1.0")
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("digest %q is not sha256:<64 hex>", base)
	}
	if again := InputsDigest([]byte("bundle"), "sha256:aaa", "0.1.0"); again != base {
		t.Errorf("not deterministic")
	}
	for name, d := range map[string]string{
		"bundle":   InputsDigest([]byte("bundle2"), "sha256:aaa", "0.1.0"),
		"runtime":  InputsDigest([]byte("bundle"), "sha256:aab", "0.1.0"),
		"compiler": InputsDigest([]byte("bundle"), "sha256:aaa", "0.1.1"),
		// Moving bytes between fields must change the digest.
		"boundary": InputsDigest([]byte("bundles"), "ha256:aaa", "0.1.0"),
	} {
		if d == base {
			t.Errorf("changing the %s does not change the digest", name)
		}
	}
}
