package buildinfo

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Compiler != compile.Version || i.Bundle != bundle.APIVersion || i.Binding != bundle.BindingAPIVersion {
		t.Errorf("versions %+v", i)
	}
	if i.Version == "" || !strings.HasPrefix(i.GoVersion, "go") || !strings.Contains(i.Platform, "/") {
		t.Errorf("build %+v", i)
	}
	var out bytes.Buffer
	if err := i.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"compiler        " + compile.Version, "bundle schema   " + bundle.APIVersion, "revision"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	i.Revision, i.Modified = "abc123", true
	out.Reset()
	_ = i.Write(&out)
	if !strings.Contains(out.String(), "abc123 (modified)") {
		t.Errorf("a modified tree is not marked:\n%s", out.String())
	}
}
