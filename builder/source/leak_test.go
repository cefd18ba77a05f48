package source

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/builder/compile"
)

// canary is a secret value no output may carry.
const canary = "s3cr3t-CANARY-7f3a"

const secretManifest = `apiVersion: v1
kind: Secret
metadata: {name: petstore-api-keys}
stringData:
  alice: ` + canary + "\n"

// TestReadLeavesOutManifests: Kubernetes objects kept beside a definition
// (a Secret, the kinds file with a Secret in it) are no part of it. Found in
// a directory they are left out, so that kubectl add does not store the
// Secret's keys in a ConfigMap and the Bundle does not fingerprint them;
// named as an argument, a file is still read.
func TestReadLeavesOutManifests(t *testing.T) {
	dir := t.TempDir()
	api := filepath.Join(dir, "api")
	rootFile := write(t, dir, "api/openapi.yaml", []byte(root))
	write(t, dir, "api/schemas/pet.yaml", []byte("Pet: {type: object}\n"))
	write(t, dir, "common/error.json", []byte(`{"Error": {"type": "object"}}`))
	// A schema with apiVersion and kind properties is a fragment, not an object.
	write(t, dir, "api/schemas/object.yaml", []byte("type: object\nproperties: {apiVersion: {type: string}, kind: {type: string}}\n"))
	write(t, dir, "api/secret.yaml", []byte(secretManifest))
	write(t, dir, "api/deploy/secret.json", []byte(`{"apiVersion": "v1", "kind": "Secret", "data": {"k": "`+canary+`"}}`))
	write(t, dir, "api/deploy/secret.yaml.gz", gz(t, []byte(secretManifest)))
	// The Secret is the second document of the kinds file.
	kinds := write(t, dir, "api/kinds.yaml", []byte("apiVersion: gatekiln.io/v1alpha1\nkind: Endpoint\nmetadata: {name: b}\nspec: {urls: [\"http://b\"]}\n---\n"+secretManifest))

	tests := []struct {
		name   string
		args   []string
		want   []string
		canary bool
	}{
		{"directories", []string{rootFile, api, filepath.Join(dir, "common")},
			[]string{"openapi.yaml", "schemas/object.yaml", "schemas/pet.yaml", "../common/error.json"}, false},
		{"a directory as the root", []string{api, filepath.Join(dir, "common")},
			[]string{"openapi.yaml", "schemas/object.yaml", "schemas/pet.yaml", "../common/error.json"}, false},
		{"a manifest named as an argument", []string{rootFile, kinds},
			[]string{"openapi.yaml", "kinds.yaml"}, true},
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
			var all []byte
			for _, f := range files {
				all = append(all, f.Data...)
			}
			if got := bytes.Contains(all, []byte(canary)); got != tc.canary {
				t.Errorf("the Secret's value read: %t, want %t", got, tc.canary)
			}
		})
	}
	// What is left compiles, and the Bundle does not change with the secret.
	digest := func() string {
		t.Helper()
		files, err := Read(api, filepath.Join(dir, "common"))
		if err != nil {
			t.Fatal(err)
		}
		res, err := compile.Compile(compile.Input{Files: files})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(res.BundleBytes, []byte(canary)) {
			t.Fatal("the Bundle holds the secret")
		}
		return compile.InputsDigest(res.BundleBytes, "", compile.Version)
	}
	before := digest()
	write(t, dir, "api/secret.yaml", []byte(strings.ReplaceAll(secretManifest, canary, "rotated")))
	if after := digest(); after != before {
		t.Errorf("inputs digest %s → %s when only a Secret beside the definition changed", before, after)
	}
}

// TestFindRootSkipsManifests: a directory holding the definition and its
// kinds file (as samples/petstore does) has one root.
func TestFindRootSkipsManifests(t *testing.T) {
	files, err := Read(filepath.Join("..", "..", "samples", "petstore"))
	if err != nil {
		t.Fatal(err)
	}
	if got := paths(files); !reflect.DeepEqual(got, []string{"petstore.yaml"}) {
		t.Errorf("paths %v, want [petstore.yaml]", got)
	}
}

func TestManifest(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want bool
	}{
		{"secret", secretManifest, true},
		{"json", `{"kind": "ConfigMap", "apiVersion": "v1"}`, true},
		{"second document", "a: 1\n---\n" + secretManifest, true},
		{"openapi", root, false},
		{"schema naming both", "type: object\nproperties: {apiVersion: {}, kind: {}}\n", false},
		{"only kind", "kind: x\n", false},
		{"a list", "- apiVersion: v1\n  kind: Secret\n", false},
		{"not yaml", "a: [\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Manifest([]byte(tc.data)); got != tc.want {
				t.Errorf("Manifest = %t, want %t", got, tc.want)
			}
		})
	}
	if !Manifest(gz(t, []byte(secretManifest))) {
		t.Error("a gzip'd Secret is not taken for a manifest")
	}
}

// TestParseKindsQuotesNoSecret: a kinds file may hold the Secrets its
// objects name (objects of other groups are skipped). Whatever is wrong in
// such a Secret, or elsewhere in the file, the error gatekiln compile prints
// names the document and line, never a value.
func TestParseKindsQuotesNoSecret(t *testing.T) {
	endpoint := "apiVersion: gatekiln.io/v1alpha1\nkind: Endpoint\nmetadata: {name: b}\nspec: {urls: [\"http://b\"]}\n---\n"
	for _, tc := range []struct {
		name, data string
		// wantErr: the file is refused (with an error naming no value).
		wantErr bool
	}{
		{"a value tagged as an int", endpoint + "apiVersion: v1\nkind: Secret\nstringData:\n  password: !!int " + canary + "\n", false},
		{"a value tagged as a float", endpoint + "apiVersion: v1\nkind: Secret\ndata: {password: !!float " + canary + "}\n", false},
		{"a value tagged as a timestamp", "apiVersion: v1\nkind: Secret\nstringData: {password: !!timestamp " + canary + "}\n---\n" + endpoint, false},
		{"a tagged value under metadata", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations: {last-applied: !!bool " + canary + "}\n---\n" + endpoint, false},
		{"a tagged value and a bad line", endpoint + "apiVersion: v1\nkind: Secret\nstringData:\n  password: !!int " + canary + "\n  other: [\n", true},
		{"the secret unquoted before a syntax error", endpoint + "apiVersion: v1\nkind: Secret\nstringData:\n  password: " + canary + ": x\n", true},
		{"a document of the secret alone", endpoint + canary + "\n", true},
		{"a list of secrets", endpoint + "- " + canary + "\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKinds([]byte(tc.data))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseKinds error %v, want an error: %t", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), canary) {
				t.Errorf("error quotes the secret: %v", err)
			}
			if err == nil && len(k.Endpoints) != 1 {
				t.Errorf("kinds %+v, want the Endpoint", k)
			}
		})
	}
}
