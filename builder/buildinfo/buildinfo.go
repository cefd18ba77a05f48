// Package buildinfo says which Gatekiln this is: the module version and VCS
// revision the binary was built from, and the versions of what it writes and
// reads (the compiler, the Bundle and Binding schemas). Two CLIs that print
// the same compiler version compute the same inputs digest for the same
// definition.
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Info describes a build.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
	Compiler  string `json:"compiler"`
	Bundle    string `json:"bundle"`
	Binding   string `json:"binding"`
}

// Read returns this binary's Info. A binary built from a checkout (go run,
// go build) has version "(devel)"; the revision is there when VCS stamping was on.
func Read() Info {
	i := Info{
		Version:   "(devel)",
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Compiler:  compile.Version,
		Bundle:    bundle.APIVersion,
		Binding:   bundle.BindingAPIVersion,
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	if v := bi.Main.Version; v != "" {
		i.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// Write prints i as a two-column table.
func (i Info) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rev := i.Revision
	if rev == "" {
		rev = "unknown (built without VCS stamping)"
	} else if i.Modified {
		rev += " (modified)"
	}
	for _, row := range [][2]string{
		{"gatekiln", i.Version},
		{"revision", rev},
		{"compiler", i.Compiler},
		{"bundle schema", i.Bundle},
		{"binding schema", i.Binding},
		{"go", i.GoVersion},
		{"platform", i.Platform},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}
