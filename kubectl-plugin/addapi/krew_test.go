package addapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestKrewManifest keeps kubectl-plugin/krew/add.yaml a plugin krew can
// install as kubectl-add, with hack/cli.mk's archive names.
func TestKrewManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "krew", "add.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Version          string `json:"version"`
			Homepage         string `json:"homepage"`
			ShortDescription string `json:"shortDescription"`
			Description      string `json:"description"`
			Caveats          string `json:"caveats"`
			Platforms        []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
				Bin    string `json:"bin"`
				Files  []struct {
					From, To string
				} `json:"files"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(data, &m); err != nil {
		t.Fatalf("add.yaml: %v", err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "add" || m.Spec.ShortDescription == "" {
		t.Errorf("header: %+v", m)
	}
	if len(m.Spec.Platforms) == 0 {
		t.Fatal("no platforms")
	}
	for _, p := range m.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		if !strings.HasSuffix(p.URI, "/kubectl-add_"+os+"_"+arch+".tar.gz") || !strings.Contains(p.URI, "/"+m.Spec.Version+"/") {
			t.Errorf("%s/%s: uri %s does not name the archive hack/cli.mk builds", os, arch, p.URI)
		}
		if p.Bin != "kubectl-add" || len(p.Files) != 1 || p.Files[0].From != "kubectl-add" || len(p.SHA256) != 64 {
			t.Errorf("%s/%s: bin %q files %+v sha256 %q", os, arch, p.Bin, p.Files, p.SHA256)
		}
	}
}
