package inspect

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/source"
)

var update = flag.Bool("update", false, "rewrite golden files")

func compileSample(t *testing.T) *compile.Result {
	t.Helper()
	files, err := source.Read(filepath.Join("..", "..", "samples", "petstore", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := compile.Compile(compile.Input{Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestGoldenTable(t *testing.T) {
	res := compileSample(t)
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, res.BundleBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Load(context.Background(), path, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l.Ref = "bundle.json"
	var out bytes.Buffer
	if err := Table(&out, l); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "petstore.txt")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, out.Bytes()) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", golden, out.String())
	}
}

// request is the sample's image request, on a runtime base of fake binaries.
func request(t *testing.T, res *compile.Result) (v1.ImageIndex, image.Request) {
	t.Helper()
	base := imagetest.RuntimeBase(t, imagetest.FakeBinaries(t))
	bd, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository("registry.example/apis/petstore")
	if err != nil {
		t.Fatal(err)
	}
	return base, image.Request{
		Bundle:       res.BundleBytes,
		InputsDigest: compile.InputsDigest(res.BundleBytes, bd.String(), compile.Version),
		API:          "shop/petstore",
		Version:      res.Bundle.API.Version,
		Repository:   repo,
		Base:         repo.Registry.Repo("gatekiln", "runtime").Digest(bd.String()),
	}
}

func TestLoadImage(t *testing.T) {
	res := compileSample(t)
	base, req := request(t, res)
	idx, err := image.Assemble(base, req)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := req.Tag()
	ctx := context.Background()

	dir := filepath.Join(t.TempDir(), "layout")
	ref, err := image.LayoutPublisher{Path: dir}.Publish(ctx, idx, tag)
	if err != nil {
		t.Fatal(err)
	}
	digest := ref[strings.LastIndex(ref, "@")+1:]

	srv := httptest.NewServer(ggcrregistry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg := registry.Config{Insecure: []string{host}}
	pushed, err := cfg.ParseReference(host + "/apis/petstore:" + tag.TagStr())
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := cfg.Remote(ctx)
	if err := remote.WriteIndex(pushed.(name.Tag), idx, opts...); err != nil {
		t.Fatal(err)
	}

	for _, arg := range []string{dir, dir + ":" + tag.TagStr(), dir + "@" + digest, pushed.String()} {
		t.Run(arg, func(t *testing.T) {
			l, err := Load(ctx, arg, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(l.Bytes, res.BundleBytes) {
				t.Error("the Bundle read back differs from the one built in")
			}
			if l.Labels[image.LabelInputsDigest] != req.InputsDigest || !strings.HasSuffix(l.Ref, digest) {
				t.Errorf("labels %v, ref %s", l.Labels, l.Ref)
			}
			var out bytes.Buffer
			if err := Table(&out, l); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "INPUTS DIGEST  "+req.InputsDigest) {
				t.Errorf("table lacks the inputs digest:\n%s", out.String())
			}
		})
	}

	// What is not a gateway image, or not there, is named in the error.
	plain, _ := random.Image(64, 1)
	plainRef, _ := cfg.ParseReference(host + "/plain:latest")
	if err := remote.Write(plainRef, plain, opts...); err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[string]string{
		plainRef.String():             "not a Gatekiln gateway image",
		host + "/apis/nope:1":         host + "/apis/nope:1",
		dir + ":no-such-tag":          "no image \"no-such-tag\"",
		filepath.Join(dir, "..", "x"): "x",
	} {
		_, err := Load(ctx, arg, cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s) = %v, want an error naming %q", arg, err, want)
		}
	}
}

// refuseTransport fails every request: a local name must never reach a registry.
type refuseTransport struct{ requests *[]string }

func (r refuseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	*r.requests = append(*r.requests, req.URL.String())
	return nil, errors.New("no network in this test")
}

// TestLoadLocalNames: a name on disk, or one that looks like a path, is read
// locally or refused with an error naming it, without a registry request.
func TestLoadLocalNames(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		arg, want string
	}{
		{"missing.json", "read missing.json: no such file or directory"},
		{"missing.yaml", "read missing.yaml: no such file or directory"},
		{"out.tar", "read out.tar: no such file or directory"},
		{"./missing", "read ./missing: no such file or directory"},
		{"../missing", "read ../missing: no such file or directory"},
		{"~/missing", "read ~/missing: no such file or directory"},
		{filepath.Join(empty, "missing"), "read " + filepath.Join(empty, "missing") + ": no such file or directory"},
		{empty, empty + " is a directory but not an OCI image layout (it has no oci-layout file)"},
		{"testdata", "testdata is a directory but not an OCI image layout"},
		{filepath.Join("testdata", "petstore.txt"), filepath.Join("testdata", "petstore.txt") + " is not a Gatekiln bundle.json: "},
	}
	for _, tc := range tests {
		t.Run(tc.arg, func(t *testing.T) {
			var requests []string
			cfg := registry.Config{WrapTransport: func(http.RoundTripper) http.RoundTripper { return refuseTransport{&requests} }}
			_, err := Load(context.Background(), tc.arg, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%s) = %v, want an error with %q", tc.arg, err, tc.want)
			}
			if len(requests) > 0 {
				t.Errorf("Load(%s) asked a registry: %v", tc.arg, requests)
			}
		})
	}
}
