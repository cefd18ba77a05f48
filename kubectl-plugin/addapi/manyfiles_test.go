package addapi_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManyFiles adds a definition directory of thousands of small files in
// subdirectories: their paths, kept in each ConfigMap's file-paths
// annotation, run past the 256 KiB the API server allows for a ConfigMap's
// annotations unless the files are spread over more ConfigMaps.
func TestManyFiles(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "many-files")
	dir := t.TempDir()
	sample, err := os.ReadFile(e.sample())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.yaml"), sample, 0o644); err != nil {
		t.Fatal(err)
	}
	schemas := filepath.Join(dir, "components", "schemas")
	if err := os.MkdirAll(schemas, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		f := filepath.Join(schemas, fmt.Sprintf("schema-definition-for-resource-number-%d.yaml", i))
		if err := os.WriteFile(f, []byte("type: object\nproperties:\n  id: {type: integer}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := e.kubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+dir)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	api := e.api(t, ns, "petstore")
	keys := 0
	for _, cm := range e.configMaps(t, ns) {
		keys += len(cm.Data) + len(cm.BinaryData)
		size := 0
		for k, v := range cm.Annotations {
			size += len(k) + len(v)
		}
		if size > 256<<10 {
			t.Errorf("configmap %s: annotations of %d bytes", cm.Name, size)
		}
	}
	if keys != n+1 {
		t.Errorf("the ConfigMaps hold %d files, want %d", keys, n+1)
	}
	if got := len(api.Spec.Definition); got < 2 || !strings.Contains(r.stdout, "api.gatekiln.io/petstore serverside-applied") {
		t.Errorf("spec.definition names %d ConfigMaps; stdout:\n%s", got, r.stdout)
	}
}
