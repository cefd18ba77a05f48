package compile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenInputs are the definitions whose whole compiled output is kept under
// testdata/golden, so that any change to what the compiler emits shows up in
// review. Paths starting with "corpus/" are in the shared corpus.
var goldenInputs = []string{
	"corpus/oas-examples/2.0/petstore.yaml",
	"corpus/oas-examples/2.0/petstore-expanded.yaml",
	"corpus/oas-examples/2.0/schema-circular.yaml",
	"corpus/oas-examples/2.0/api-with-examples.yaml",
	"corpus/oas-examples/3.0/petstore-expanded.yaml",
	"corpus/oas-examples/3.0/callbacks.yaml",
	"corpus/oas-examples/3.0/circular.yaml",
	"corpus/oas-examples/3.0/security.yaml",
	"corpus/oas-examples/3.0/uspto.yaml",
	"corpus/oas-examples/3.0/server-variables.yaml",
	"corpus/oas-examples/3.0/schema-types.yaml",
	"corpus/oas-examples/3.1/train-travel.yaml",
	"corpus/oas-examples/3.1/webhooks.yaml",
	"corpus/oas-examples/3.1/security.yaml",
	"corpus/oas-examples/3.1/schema-validation-local.yaml",
	"samples/petstore/petstore.yaml",
}

type goldenOutput struct {
	Warnings    []string        `json:"warnings,omitempty"`
	Bundle      json.RawMessage `json:"bundle"`
	Binding     json.RawMessage `json:"binding,omitempty"`
	SecretFiles []SecretFile    `json:"secretFiles,omitempty"`
}

func TestGoldenBundles(t *testing.T) {
	corpus := corpusDir(t)
	for _, in := range goldenInputs {
		t.Run(in, func(t *testing.T) {
			path := filepath.Join("..", "..", filepath.FromSlash(in))
			if rest, ok := strings.CutPrefix(in, "corpus/"); ok {
				path = filepath.Join(corpus, filepath.FromSlash(rest))
			}
			var kinds *Kinds
			if strings.HasPrefix(in, "samples/petstore/") {
				kinds = petstoreKinds()
			}
			res, err := compileFile(t, path, kinds)
			if err != nil {
				t.Fatal(err)
			}
			out := goldenOutput{Bundle: res.BundleBytes, SecretFiles: res.SecretFiles}
			for _, w := range res.Warnings {
				out.Warnings = append(out.Warnings, w.Error())
			}
			if kinds != nil {
				if out.Binding, err = res.Binding.Marshal(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			name := strings.NewReplacer("corpus/oas-examples/", "", "/", "-").Replace(in)
			name = strings.TrimSuffix(name, filepath.Ext(name)) + ".json"
			file := filepath.Join("testdata", "golden", name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run Golden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s; if the change is intended, run go test ./builder/compile -run Golden -update and review the diff", file)
			}
		})
	}
}
