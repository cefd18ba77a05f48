// Package templates holds the text templates Gatekiln renders (embedded, so
// every binary carries the same ones) and the small functions that fill them.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed kaniko/Dockerfile.tmpl
var files embed.FS

var parsed = template.Must(template.New("").
	Funcs(template.FuncMap{"quote": dockerfileQuote}).
	Option("missingkey=error").
	ParseFS(files, "kaniko/*.tmpl"))

// Label is one LABEL instruction.
type Label struct{ Key, Value string }

// Dockerfile is what the Kaniko Dockerfile needs.
type Dockerfile struct {
	// Base is the runtime base image by digest: repo@sha256:….
	Base string
	// BundlePath is where the Bundle goes in the image.
	BundlePath string
	// Labels, in the order they are written (callers sort them).
	Labels []Label
}

// RenderDockerfile renders kaniko/Dockerfile.tmpl.
func RenderDockerfile(d Dockerfile) ([]byte, error) {
	if !strings.Contains(d.Base, "@sha256:") {
		return nil, fmt.Errorf("dockerfile: base %q is not pinned by digest", d.Base)
	}
	for _, l := range d.Labels {
		for _, s := range []string{l.Key, l.Value} {
			if strings.ContainsAny(s, "\n\r") {
				return nil, fmt.Errorf("dockerfile: label %q: line breaks are not allowed", l.Key)
			}
		}
	}
	var buf bytes.Buffer
	if err := parsed.ExecuteTemplate(&buf, "Dockerfile.tmpl", d); err != nil {
		return nil, fmt.Errorf("dockerfile: %w", err)
	}
	return buf.Bytes(), nil
}

// dockerfileQuote double-quotes s for a Dockerfile instruction: backslash and
// double quote are escaped, and so is $, which would otherwise expand a
// build variable.
func dockerfileQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`)
	return `"` + r.Replace(s) + `"`
}
