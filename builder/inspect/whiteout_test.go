package inspect

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layer is a layer of the given entries, in order; an entry whose content is
// "" is an empty regular file (a whiteout marker).
func layer(t *testing.T, entries ...[2]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e[1]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWhiteouts: the Bundle read is the one a container would see, per the
// OCI layer rules: a whiteout of the file or of a directory above it, or an
// opaque directory, hides it in lower layers, never in its own.
func TestWhiteouts(t *testing.T) {
	res := compileSample(t)
	old := string(res.BundleBytes)
	fresh := strings.Replace(old, `"title":"`+res.Bundle.API.Title+`"`, `"title":"new"`, 1)
	if fresh == old {
		t.Fatal("could not retitle the sample Bundle")
	}
	tests := []struct {
		name  string
		upper [][2]string
		want  string // the title read, or "" for none
	}{
		{"nothing above", nil, "Swagger Petstore"},
		{"an unrelated layer", [][2]string{{"etc/other", "x"}}, "Swagger Petstore"},
		{"file whiteout", [][2]string{{"etc/gatekiln/.wh.bundle.json", ""}}, ""},
		{"directory whiteout", [][2]string{{"etc/.wh.gatekiln", ""}}, ""},
		{"opaque directory", [][2]string{{"etc/gatekiln/.wh..wh..opq", ""}}, ""},
		{"opaque parent", [][2]string{{"etc/.wh..wh..opq", ""}}, ""},
		{"opaque elsewhere", [][2]string{{"var/.wh..wh..opq", ""}}, "Swagger Petstore"},
		{"opaque directory with a new Bundle", [][2]string{{"etc/gatekiln/.wh..wh..opq", ""}, {"etc/gatekiln/bundle.json", fresh}}, "new"},
		{"new Bundle, then a whiteout in the same layer", [][2]string{{"etc/gatekiln/bundle.json", fresh}, {"etc/gatekiln/.wh.bundle.json", ""}}, "new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layers := []v1.Layer{layer(t, [2]string{"etc/gatekiln/bundle.json", old})}
			if tt.upper != nil {
				layers = append(layers, layer(t, tt.upper...))
			}
			img, err := mutate.AppendLayers(empty.Image, layers...)
			if err != nil {
				t.Fatal(err)
			}
			l, err := FromImage(img)
			switch {
			case tt.want == "" && err == nil:
				t.Fatalf("read a Bundle titled %q, want it hidden", l.Bundle.API.Title)
			case tt.want == "" && !strings.Contains(err.Error(), "not a Gatekiln gateway image"):
				t.Fatalf("error %v", err)
			case tt.want != "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && l.Bundle.API.Title != tt.want:
				t.Fatalf("read the Bundle titled %q, want %q", l.Bundle.API.Title, tt.want)
			}
		})
	}
}
