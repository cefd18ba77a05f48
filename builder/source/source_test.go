package source

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/builder/compile"
)

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(t *testing.T, data []byte) []byte {
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

const root = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /pets:
    get:
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "schemas/pet.yaml#/Pet"}
        default:
          description: error
          content:
            application/json:
              schema: {$ref: "../common/error.json#/Error"}
`

func paths(files []compile.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	rootFile := write(t, dir, "api/openapi.yaml", []byte(root))
	write(t, dir, "api/schemas/pet.yaml.gz", gz(t, []byte("Pet: {type: object}\n")))
	write(t, dir, "api/schemas/README.md", []byte("not a definition"))
	write(t, dir, "api/.git/config.yaml", []byte("hidden: true"))
	write(t, dir, "common/error.json", []byte(`{"Error": {"type": "object"}}`))

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"root file and directories", []string{rootFile, filepath.Join(dir, "api"), filepath.Join(dir, "common")},
			[]string{"openapi.yaml", "schemas/pet.yaml", "../common/error.json"}},
		{"a directory as the root", []string{filepath.Join(dir, "api"), filepath.Join(dir, "common", "error.json")},
			[]string{"openapi.yaml", "schemas/pet.yaml", "../common/error.json"}},
		{"one file", []string{rootFile}, []string{"openapi.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Read(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := paths(files); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("paths %v, want %v", got, tc.want)
			}
		})
	}

	// What Read returns compiles, $refs and gzip included.
	files, err := Read(rootFile, filepath.Join(dir, "api"), filepath.Join(dir, "common"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := compile.Compile(compile.Input{Files: files}); err != nil {
		t.Fatalf("compile: %v", err)
	}
	// Without the referenced files the compile names what is missing.
	one, err := Read(rootFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := compile.Compile(compile.Input{Files: one}); err == nil || !strings.Contains(err.Error(), `"schemas/pet.yaml", which is not among the supplied files`) {
		t.Errorf("compile without the schema file: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "two/a.yaml", []byte("a: 1"))
	write(t, dir, "two/b.yaml", []byte("b: 1"))
	big := write(t, dir, "big.yaml", bytes.Repeat([]byte("#"), compile.MaxDocumentBytes+1))
	for name, args := range map[string][]string{
		"nothing":        nil,
		"missing":        {filepath.Join(dir, "nope.yaml")},
		"ambiguous root": {filepath.Join(dir, "two")},
		"too large":      {big},
	} {
		if _, err := Read(args...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestReadNamesGzipFileAsGiven: the compiler would name a truncated
// x.yaml.gz "x.yaml", a file that does not exist.
func TestReadNamesGzipFileAsGiven(t *testing.T) {
	dir := t.TempDir()
	whole := gz(t, []byte("openapi: 3.0.3\n"))
	bomb := gz(t, bytes.Repeat([]byte("#"), compile.MaxDocumentBytes+1))
	tests := []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"truncated", "cut.yaml.gz", whole[:len(whole)-6], "cut.yaml.gz: gzip: unexpected EOF"},
		{"bad header", "head.yaml.gz", append([]byte{0x1f, 0x8b}, "not gzip"...), "head.yaml.gz: gzip: "},
		{"too large once decompressed", "big.yaml.gz", bomb, "big.yaml.gz: larger than 33554432 bytes (32 MiB) once decompressed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, dir, tc.file, tc.data)
			_, err := Read(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read(%s) = %v, want an error with %q", tc.file, err, tc.want)
			}
		})
	}
}

func TestParseKinds(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "samples", "petstore", "kinds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKinds(data)
	if err != nil {
		t.Fatal(err)
	}
	if k.Namespace != "default" || len(k.Endpoints) != 1 || len(k.RateLimits) != 1 || len(k.Security) != 2 {
		t.Fatalf("kinds %+v", k)
	}
	if e := k.Endpoints["petstore-backend"]; e.Timeout == nil || e.Timeout.Seconds() != 5 || e.Retries.Attempts != 2 {
		t.Errorf("endpoint %+v", e)
	}
	// The sample definition resolves fully against the sample kinds.
	files, err := Read(filepath.Join("..", "..", "samples", "petstore", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := compile.Compile(compile.Input{Files: files, Kinds: k})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Binding.Missing(res.Bundle); len(m) != 0 {
		t.Errorf("sample binding lacks %v", m)
	}

	withAPI := `apiVersion: v1
kind: Secret
metadata: {name: s, namespace: shop}
---
apiVersion: gatekiln.io/v1alpha1
kind: API
metadata: {name: petstore, namespace: shop}
spec:
  definition: [{name: petstore}]
  refs: {endpoints: {petstore-backend: backend}}
  redis: {address: "redis:6379"}
---
apiVersion: gatekiln.io/v1alpha1
kind: Endpoint
metadata: {name: backend, namespace: shop}
spec: {urls: ["http://b:80"]}
`
	k, err = ParseKinds([]byte(withAPI))
	if err != nil {
		t.Fatal(err)
	}
	if k.Namespace != "shop" || k.Refs.Endpoints["petstore-backend"] != "backend" || k.Redis.Address != "redis:6379" {
		t.Errorf("kinds %+v", k)
	}

	for name, bad := range map[string]string{
		"two namespaces": "apiVersion: gatekiln.io/v1alpha1\nkind: Endpoint\nmetadata: {name: a, namespace: x}\nspec: {urls: [http://a]}\n---\n" +
			"apiVersion: gatekiln.io/v1alpha1\nkind: Endpoint\nmetadata: {name: b, namespace: y}\nspec: {urls: [http://b]}\n",
		"unknown field":           "apiVersion: gatekiln.io/v1alpha1\nkind: Endpoint\nmetadata: {name: a}\nspec: {url: http://a}\n",
		"unknown kind":            "apiVersion: gatekiln.io/v1alpha1\nkind: Gateway\nmetadata: {name: a}\nspec: {}\n",
		"twice":                   "apiVersion: gatekiln.io/v1alpha1\nkind: RateLimit\nmetadata: {name: a}\nspec: {requests: 1}\n---\napiVersion: gatekiln.io/v1alpha1\nkind: RateLimit\nmetadata: {name: a}\nspec: {requests: 2}\n",
		"no name":                 "apiVersion: gatekiln.io/v1alpha1\nkind: RateLimit\nspec: {requests: 1}\n",
		"not yaml":                "a: [",
		"another version of ours": "apiVersion: gatekiln.io/v1beta1\nkind: Endpoint\nmetadata: {name: a}\nspec: {urls: [http://a]}\n",
		"none of ours":            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
		"not objects at all":      "hello: world\n",
	} {
		if _, err := ParseKinds([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
