package compile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// corpusDir finds shared/corpus beside the repository: it walks up from the
// package directory to the directory holding go.mod, then looks for
// ../shared/corpus. The corpus is required; a missing one fails the test.
func corpusDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			c := filepath.Join(filepath.Dir(d), "shared", "corpus")
			if _, err := os.Stat(filepath.Join(c, "README.md")); err != nil {
				t.Fatalf("corpus not found at %s (expected beside the repository): %v", c, err)
			}
			return c
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// corpusFiles lists the definitions that must compile.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	root := corpusDir(t)
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "oas-examples"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".json")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "box", "openapi.json"))
	sort.Strings(files)
	if len(files) < 50 {
		t.Fatalf("corpus has only %d definitions; is it complete?", len(files))
	}
	return files
}

func compileFile(t testing.TB, path string, kinds *Kinds) (*Result, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Compile(Input{Files: []File{{Path: filepath.Base(path), Data: data}}, Kinds: kinds})
}

// corpusRejected are corpus files the gateway cannot serve as written, with the
// problem that must name what and where. response-http-behavior.yaml secures
// operations with a scheme it never declares: no gateway can tell what
// credential to check, and serving them unauthenticated would be worse.
var corpusRejected = map[string]Problem{
	"oas-examples/3.0/response-http-behavior.yaml": {File: "response-http-behavior.yaml",
		Pointer: "/paths/~1cache/get/security/0/api_key", Line: 42, Code: CodeInvalidDefinition,
		Reason: `security requirement /paths/~1cache/get/security/0/api_key refers to undefined security scheme "api_key"`},
}

func TestCorpusCompiles(t *testing.T) {
	root := corpusDir(t)
	for _, path := range corpusFiles(t) {
		rel, _ := filepath.Rel(root, path)
		t.Run(rel, func(t *testing.T) {
			res, err := compileFile(t, path, nil)
			if want, rejected := corpusRejected[filepath.ToSlash(rel)]; rejected {
				var ps Problems
				if !errors.As(err, &ps) {
					t.Fatalf("want problem %v, got %v", want, err)
				}
				if ps[0] != want {
					t.Fatalf("first problem:\n got %#v\nwant %#v", ps[0], want)
				}
				return
			}
			if err != nil {
				var ps Problems
				if !errors.As(err, &ps) {
					t.Fatalf("error is %T, not Problems: %v", err, err)
				}
				t.Fatalf("does not compile:\n%v", err)
			}
			if len(res.Bundle.Routes) == 0 && !strings.Contains(rel, "webhooks") {
				t.Errorf("no routes")
			}
			// The spliced bytes are exactly what the Bundle's own Marshal gives.
			want, err := res.Bundle.Marshal()
			if err != nil {
				t.Fatalf("bundle invalid: %v", err)
			}
			if !bytes.Equal(res.BundleBytes, want) {
				t.Errorf("BundleBytes differ from Bundle.Marshal()")
			}
			// The gateway loads the embedded document on its own.
			doc, err := openapi3.NewLoader().LoadFromData(res.Bundle.OpenAPI)
			if err != nil {
				t.Fatalf("embedded document does not load: %v", err)
			}
			if err := doc.Validate(context.Background(), ValidationOptions()...); err != nil {
				t.Errorf("embedded document does not validate: %v", err)
			}
		})
	}
}

// TestJSONDecodingMatchesTheLibrary: loadDoc decodes a one-file document
// itself rather than through the library's YAML reader. Every corpus
// definition, good or bad, must compile to the same Bundle, or fail with the
// same problems, both ways.
func TestJSONDecodingMatchesTheLibrary(t *testing.T) {
	files := corpusFiles(t)
	bad, err := filepath.Glob(filepath.Join(corpusDir(t), "bad", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, bad...) {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			readJSON = true
			fast, fastErr := compileFile(t, f, nil)
			readJSON = false
			lib, libErr := compileFile(t, f, nil)
			readJSON = true
			if fmt.Sprint(fastErr) != fmt.Sprint(libErr) {
				t.Fatalf("errors differ:\ndecoded: %v\nlibrary: %v", fastErr, libErr)
			}
			if fastErr == nil && !bytes.Equal(fast.BundleBytes, lib.BundleBytes) {
				t.Fatalf("bundles differ (%s vs %s)", fast.BundleDigest, lib.BundleDigest)
			}
		})
	}
}
