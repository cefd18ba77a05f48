package addapi_test

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/source"
)

// filesFromCluster reads an API's definition back from its ConfigMaps the
// way the operator does (spec.definition in order, every key of each
// ConfigMap, the root key first, file paths from the annotation), so that a
// test can compile what the operator will compile.
func filesFromCluster(t *testing.T, api *v1alpha1.API, cms []corev1.ConfigMap) []compile.File {
	t.Helper()
	byName := map[string]corev1.ConfigMap{}
	for _, cm := range cms {
		byName[cm.Name] = cm
	}
	var files []compile.File
	for i, ref := range api.Spec.Definition {
		cm, ok := byName[ref.Name]
		if !ok {
			t.Fatalf("spec.definition[%d] names %s, which is not there", i, ref.Name)
		}
		paths := map[string]string{}
		if raw := cm.Annotations[v1alpha1.AnnotationFilePaths]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &paths); err != nil {
				t.Fatal(err)
			}
		}
		var ks []string
		if rk := cm.Annotations[v1alpha1.AnnotationRootKey]; i == 0 && rk != "" {
			ks = append(ks, rk)
		}
		for _, k := range keys(cm) {
			k = strings.TrimSuffix(k, " (binary)")
			if len(ks) == 0 || k != ks[0] {
				ks = append(ks, k)
			}
		}
		for _, k := range ks {
			data := []byte(cm.Data[k])
			if b, ok := cm.BinaryData[k]; ok {
				data = b
			}
			p := k
			if mapped, ok := paths[k]; ok {
				p = mapped
			}
			files = append(files, compile.File{Path: p, Data: data})
		}
	}
	return files
}

// sameBundle checks the cluster holds a definition that compiles to the same
// Bundle as the files on disk.
func sameBundle(t *testing.T, api *v1alpha1.API, cms []corev1.ConfigMap, args ...string) {
	t.Helper()
	local, err := source.Read(args...)
	if err != nil {
		t.Fatal(err)
	}
	want, err := compile.Compile(compile.Input{Files: local})
	if err != nil {
		t.Fatal(err)
	}
	got, err := compile.Compile(compile.Input{Files: filesFromCluster(t, api, cms)})
	if err != nil {
		t.Fatalf("the stored definition does not compile: %v", err)
	}
	if got.BundleDigest != want.BundleDigest {
		t.Errorf("stored definition compiles to %s, the files on disk to %s", got.BundleDigest, want.BundleDigest)
	}
}

func TestBoxDefinition(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "box")
	box := e.corpus(t, "box", "openapi.json")
	e.mustKubectl(t, "add", "api", "box", "-n", ns, "--from-file="+box)
	api := e.api(t, ns, "box")
	cms := e.configMaps(t, ns)
	if len(cms) == 0 {
		t.Fatal("no definition configmaps")
	}
	info, _ := os.Stat(box)
	stored := 0
	for _, cm := range cms {
		for k, v := range cm.BinaryData {
			stored += len(k) + len(v)
		}
		for k, v := range cm.Data {
			stored += len(k) + len(v)
		}
		if len(cm.BinaryData) == 0 {
			t.Errorf("configmap %s: the %d-byte box definition should be stored gzip'd in binaryData", cm.Name, info.Size())
		}
	}
	t.Logf("box: %d bytes on disk, %d bytes in %d configmap(s)", info.Size(), stored, len(cms))
	sameBundle(t, api, cms, box)
}

func TestDirectoryKeepsRelativeRefs(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "dir")
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("openapi.yaml", `openapi: 3.0.3
info: {title: Split, version: "2.0"}
paths:
  /pets:
    get:
      responses:
        "200":
          description: pets
          content:
            application/json:
              schema:
                $ref: "./schemas/pet.yaml#/Pet"
`)
	write("schemas/pet.yaml", `Pet:
  type: object
  properties:
    name: {type: string}
`)
	e.mustKubectl(t, "add", "api", "split", "-n", ns, "--from-file="+dir)
	api := e.api(t, ns, "split")
	cms := e.configMaps(t, ns)
	if len(cms) != 1 {
		t.Fatalf("configmaps: %v", names(cms))
	}
	var paths map[string]string
	if err := json.Unmarshal([]byte(cms[0].Annotations[v1alpha1.AnnotationFilePaths]), &paths); err != nil || paths["schemas_pet.yaml"] != "schemas/pet.yaml" {
		t.Errorf("file-paths annotation = %q", cms[0].Annotations[v1alpha1.AnnotationFilePaths])
	}
	sameBundle(t, api, cms, dir)
}

func TestUpdateInPlace(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "update")
	sample, err := os.ReadFile(e.sample())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "petstore.yaml")
	if err := os.WriteFile(file, sample, 0o644); err != nil {
		t.Fatal(err)
	}
	add := func(extra ...string) {
		t.Helper()
		e.mustKubectl(t, append([]string{"add", "api", "petstore", "-n", ns, "--from-file=" + file}, extra...)...)
	}

	add()
	first := e.api(t, ns, "petstore")
	firstCM := first.Spec.Definition[0].Name

	// The same files again change nothing.
	add()
	if again := e.api(t, ns, "petstore"); again.Generation != first.Generation || again.ResourceVersion != first.ResourceVersion {
		t.Errorf("re-applying the same definition changed the API: generation %d → %d", first.Generation, again.Generation)
	}

	// A changed file: same API object, new generation, the new ConfigMap in
	// place of the old one.
	changed := strings.Replace(string(sample), "title: Swagger Petstore", "title: Swagger Petstore v2", 1)
	if changed == string(sample) {
		t.Fatal("the sample's title line moved; update this test")
	}
	if err := os.WriteFile(file, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	add()
	second := e.api(t, ns, "petstore")
	if second.UID != first.UID {
		t.Fatalf("the API was replaced (uid %s → %s), not updated in place", first.UID, second.UID)
	}
	if second.Generation <= first.Generation {
		t.Errorf("generation %d → %d: a changed definition must change the spec", first.Generation, second.Generation)
	}
	cms := e.configMaps(t, ns)
	if len(cms) != 1 || cms[0].Name == firstCM || cms[0].Name != second.Spec.Definition[0].Name {
		t.Errorf("configmaps %v; want only %s (the old %s deleted)", names(cms), second.Spec.Definition[0].Name, firstCM)
	}
	sameBundle(t, second, cms, file)

	// Flags are desired state: --replicas sets it, leaving it out releases it.
	add("--replicas", "3")
	if r := e.api(t, ns, "petstore").Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("replicas = %v, want 3", r)
	}
	add("--force-rebuild")
	token := e.api(t, ns, "petstore").Spec.Build.ForceRebuild
	if token == "" {
		t.Fatal("--force-rebuild set no spec.build.forceRebuild")
	}
	add()
	last := e.api(t, ns, "petstore")
	if last.Spec.Replicas == nil || *last.Spec.Replicas != 1 {
		t.Errorf("replicas = %v after the flag was left out, want the default 1", last.Spec.Replicas)
	}
	if last.Spec.Build.ForceRebuild != token {
		t.Errorf("forceRebuild %q → %q: a run without --force-rebuild must keep the last token", token, last.Spec.Build.ForceRebuild)
	}
}

// TestSplitAcrossConfigMaps stores a definition too large for one ConfigMap
// even gzip'd: its files spread over several, all named by spec.definition.
func TestSplitAcrossConfigMaps(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "split")
	dir := t.TempDir()
	root := "openapi: 3.0.3\ninfo: {title: Large, version: \"1\"}\npaths:\n"
	for i, name := range []string{"one", "two", "three"} {
		root += "  /" + name + ":\n    get:\n      responses:\n        \"200\":\n          description: ok\n          content:\n            application/json:\n              schema:\n                $ref: \"./schemas/" + name + ".yaml#/Thing\"\n"
		doc := "Thing:\n  type: object\n  description: " + string(noise(uint64(i+1), 600_000)) + "\n"
		if err := os.MkdirAll(filepath.Join(dir, "schemas"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "schemas", name+".yaml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.yaml"), []byte(root), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustKubectl(t, "add", "api", "large", "-n", ns, "--from-file="+dir)
	api := e.api(t, ns, "large")
	cms := e.configMaps(t, ns)
	if len(cms) < 2 || len(api.Spec.Definition) != len(cms) {
		t.Fatalf("%d configmaps, spec.definition %v: want the definition split over several", len(cms), api.Spec.Definition)
	}
	sameBundle(t, api, cms, dir)
}

// noise is text gzip cannot shrink much.
func noise(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}
