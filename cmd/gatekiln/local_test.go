package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/compile"
)

// TestInspectAndVersion drives `gatekiln inspect` on a compiled Bundle and
// `gatekiln version -o json` through their cobra commands.
func TestInspectAndVersion(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCLI(t, newCompileCmd(), "compile", "-o", dir, filepath.Join("..", "..", "samples", "petstore", "petstore.yaml")); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, newInspectCmd(), "inspect", filepath.Join(dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"API         Swagger Petstore 1.0.0", "GET     /v1/pets ", "petstore-api-key  apiKey  header X-API-Key"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	if _, err := runCLI(t, newInspectCmd(), "inspect", filepath.Join(dir, "nope.json")); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("inspect of a missing file: %v, want an error naming it", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"apiVersion":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, newInspectCmd(), "inspect", filepath.Join(dir, "bad.json")); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("inspect of a bad bundle: %v, want an error naming it", err)
	}

	out, err = runCLI(t, newVersionCmd(), "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["compiler"] != compile.Version {
		t.Errorf("version -o json = %s (%v)", out, err)
	}
}

// TestWarningsOnStderr: every command that compiles a definition prints the
// compiler's warnings on stderr, never among the results on stdout. The
// corpus's petstore names no endpoint, which is a warning; --addr nonsense
// stops run and up once they have compiled.
func TestWarningsOnStderr(t *testing.T) {
	def := filepath.Join("..", "..", "..", "shared", "corpus", "oas-examples", "3.0", "petstore.yaml")
	if _, err := os.Stat(def); err != nil {
		t.Fatalf("corpus not found beside the repository: %v", err)
	}
	const warning = "warning: petstore.yaml: some operations name no endpoint"
	tests := []struct {
		name string
		cmd  *cobra.Command
		args []string
	}{
		{"compile", newCompileCmd(), []string{"compile", def}},
		{"run", newRunCmd(), []string{"run", "--addr", "nonsense", def}},
		{"up", newUpCmd(), []string{"up", "--addr", "nonsense", def}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, _ := runCLIStreams(t, tc.cmd, tc.args...)
			if strings.Contains(stdout, "warning:") {
				t.Errorf("a warning on stdout:\n%s", stdout)
			}
			if !strings.Contains(stderr, warning) {
				t.Errorf("stderr lacks %q:\n%s", warning, stderr)
			}
		})
	}
}
