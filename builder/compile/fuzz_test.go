package compile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// FuzzCompile feeds arbitrary bytes to the compiler, seeded with every corpus
// definition (the large box file aside) and the sample. Whatever the input,
// Compile must return, either Problems that each say what is wrong, or a
// Bundle the gateway accepts, the same bytes every time.
func FuzzCompile(f *testing.F) {
	corpus := corpusDir(f)
	var seeds []string
	for _, dir := range []string{filepath.Join(corpus, "oas-examples"), filepath.Join(corpus, "bad")} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
				seeds = append(seeds, p)
			}
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	seeds = append(seeds, filepath.Join("..", "..", "samples", "petstore", "petstore.yaml"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := Input{Files: []File{{Path: "api.yaml", Data: data}}}
		res, err := Compile(in)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a list of problems: %v", err)
			}
			for _, p := range ps {
				if p.Code == "" || p.Reason == "" {
					t.Fatalf("problem without code or reason: %#v", p)
				}
			}
			return
		}
		if _, err := bundle.Parse(res.BundleBytes); err != nil {
			t.Fatalf("the gateway refuses the bundle: %v", err)
		}
		if res.BundleDigest != sha256Hex(res.BundleBytes) {
			t.Fatalf("digest does not match the bytes")
		}
		again, err := Compile(in)
		if err != nil || !bytes.Equal(again.BundleBytes, res.BundleBytes) {
			t.Fatalf("a second compile differs: %v", err)
		}
	})
}
