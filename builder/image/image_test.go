package image_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const digestA = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestTagFor(t *testing.T) {
	tests := []struct {
		name, version, digest, want, wantErr string
	}{
		{name: "semver", version: "1.0.0", digest: digestA, want: "1.0.0-0123456789ab"},
		{name: "bare hex digest", version: "1.0.0", digest: strings.TrimPrefix(digestA, "sha256:"), want: "1.0.0-0123456789ab"},
		{name: "spaces and slashes", version: "v1 (beta)/x", digest: digestA, want: "v1-beta-x-0123456789ab"},
		{name: "leading dot and dash", version: ".-1.2", digest: digestA, want: "1.2-0123456789ab"},
		{name: "underscore kept", version: "_1_2", digest: digestA, want: "_1_2-0123456789ab"},
		{name: "empty", version: "", digest: digestA, want: "0-0123456789ab"},
		{name: "nothing legal", version: "???", digest: digestA, want: "0-0123456789ab"},
		{name: "unicode", version: "versión 2", digest: digestA, want: "versi-n-2-0123456789ab"},
		{name: "too long", version: strings.Repeat("v", 200), digest: digestA, want: strings.Repeat("v", 115) + "-0123456789ab"},
		{name: "cut before a dash", version: strings.Repeat("v", 114) + "-x", digest: digestA, want: strings.Repeat("v", 114) + "-0123456789ab"},
		{name: "not a digest", version: "1", digest: "sha256:xyz", wantErr: "want sha256 hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := image.TagFor(tt.version, tt.digest)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("TagFor(%q) = %q, want %q", tt.version, got, tt.want)
			}
			if len(got) > 128 {
				t.Fatalf("tag %d characters long", len(got))
			}
			if _, err := name.NewTag("r.example/x:"+got, name.StrictValidation); err != nil {
				t.Fatalf("tag %q is not legal: %v", got, err)
			}
		})
	}
}

func TestNewLayer(t *testing.T) {
	entries := []image.Entry{
		{Path: "/etc/gatekiln/bundle.json", Data: []byte("{}")},
		{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: 65532, GID: 65532},
		{Path: "/usr/local/bin/x", Data: []byte("bin"), Mode: 0o755},
		{Path: "/usr/local/bin/y", Link: "x"},
	}
	l1, err := image.NewLayer(entries)
	if err != nil {
		t.Fatal(err)
	}
	// The same entries in another order make the same layer.
	l2, err := image.NewLayer([]image.Entry{entries[3], entries[2], entries[0], entries[1]})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := l1.Digest()
	d2, _ := l2.Digest()
	if d1 != d2 {
		t.Fatalf("digests differ: %s vs %s", d1, d2)
	}
	tree := layerTree(t, l1)
	want := []string{
		"/etc type=5 mode=755 uid=0 gid=0",
		"/etc/gatekiln type=5 mode=755 uid=0 gid=0",
		"/etc/gatekiln/bundle.json type=0 mode=644 uid=0 gid=0",
		"/home type=5 mode=755 uid=0 gid=0",
		"/home/nonroot type=5 mode=700 uid=65532 gid=65532",
		"/usr type=5 mode=755 uid=0 gid=0",
		"/usr/local type=5 mode=755 uid=0 gid=0",
		"/usr/local/bin type=5 mode=755 uid=0 gid=0",
		"/usr/local/bin/x type=0 mode=755 uid=0 gid=0",
		`/usr/local/bin/y type=2 mode=777 uid=0 gid=0 size=0 mtime=0 link="x"`,
	}
	if len(tree) != len(want) {
		t.Fatalf("layer has %d entries, want %d:\n%v", len(tree), len(want), tree)
	}
	for i, e := range tree {
		if !strings.HasPrefix(e.String(), want[i]+" ") {
			t.Errorf("entry %d = %s, want %s", i, e, want[i])
		}
		if e.ModTime != 0 {
			t.Errorf("entry %s mtime %d, want 0", e.Path, e.ModTime)
		}
	}

	if _, err := image.NewLayer([]image.Entry{{Path: "/a"}, {Path: "a"}}); err == nil {
		t.Fatal("duplicate path accepted")
	}
	if _, err := image.NewLayer([]image.Entry{{Path: "/"}}); err == nil {
		t.Fatal("root accepted as a file")
	}
}

func layerTree(t *testing.T, l v1.Layer) []imagetest.TreeEntry {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := imagetest.Tree(img)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestRuntimeBaseIsReproducible(t *testing.T) {
	bins := imagetest.FakeBinaries(t)
	a := imagetest.RuntimeBase(t, bins)
	b := imagetest.RuntimeBase(t, []image.Binary{bins[1], bins[0]})
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same inputs, different digests: %s vs %s", da, db)
	}

	changed := append([]image.Binary(nil), bins...)
	changed[0].Path = filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(changed[0].Path, []byte("another binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	dc, _ := imagetest.RuntimeBase(t, changed).Digest()
	if dc == da {
		t.Fatal("a different binary gave the same digest")
	}
}

func TestRuntimeBaseContents(t *testing.T) {
	bins := imagetest.FakeBinaries(t)
	idx := imagetest.RuntimeBase(t, bins)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2", len(im.Manifests))
	}
	if im.Annotations[image.OCITitle] != "gatekiln-gateway" || im.Annotations[image.OCIVersion] != "test" {
		t.Fatalf("index annotations = %v", im.Annotations)
	}
	certs, err := os.ReadFile(imagetest.HostCACerts)
	if err != nil {
		t.Fatal(err)
	}
	for i, desc := range im.Manifests {
		p := image.DefaultPlatforms[i]
		if desc.Platform == nil || desc.Platform.String() != p.String() {
			t.Fatalf("manifest %d platform %v, want %s", i, desc.Platform, p)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != p.Architecture || cf.OS != "linux" {
			t.Errorf("%s: config platform %s/%s", p, cf.OS, cf.Architecture)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532", p, cf.Config.User)
		}
		if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != image.GatewayPath {
			t.Errorf("%s: entrypoint %v", p, cf.Config.Entrypoint)
		}
		if !cf.Created.Equal(image.Epoch) {
			t.Errorf("%s: created %v, want the epoch", p, cf.Created)
		}
		tree, err := imagetest.Tree(img)
		if err != nil {
			t.Fatal(err)
		}
		binData, err := os.ReadFile(bins[i].Path)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"/":                                  "type=5 mode=755 uid=0 gid=0",
			"/etc/passwd":                        "mode=644 uid=0 gid=0",
			"/etc/gatekiln":                      "mode=755 uid=0 gid=0",
			"/home/nonroot":                      "mode=700 uid=65532 gid=65532",
			"/tmp":                               "mode=1777 uid=0 gid=0",
			"/usr/local/bin/gatekiln-gateway":    "mode=755 uid=0 gid=0 size=" + strconv.Itoa(len(binData)),
			"/etc/ssl/certs/ca-certificates.crt": "mode=644 uid=0 gid=0 size=" + strconv.Itoa(len(certs)),
		}
		found := map[string]bool{}
		for _, e := range tree {
			if w, ok := want[e.Path]; ok {
				found[e.Path] = true
				if !strings.Contains(e.String(), w) {
					t.Errorf("%s: %s, want %s", p, e, w)
				}
			}
		}
		for path := range want {
			if !found[path] {
				t.Errorf("%s: %s missing from the image", p, path)
			}
		}
	}
	passwd := readFile(t, idx, im.Manifests[0].Digest, "/etc/passwd")
	if !bytes.Contains(passwd, []byte("nonroot:x:65532:65532:")) {
		t.Fatalf("/etc/passwd lacks nonroot 65532:\n%s", passwd)
	}
}

func TestRuntimeBaseRefusesBadInput(t *testing.T) {
	bins := imagetest.FakeBinaries(t)
	certs, err := os.ReadFile(imagetest.HostCACerts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    image.RuntimeOptions
		wantErr string
	}{
		{name: "no binary", opts: image.RuntimeOptions{CACerts: certs}, wantErr: "no gateway binary"},
		{name: "no certificates", opts: image.RuntimeOptions{Binaries: bins}, wantErr: "no CA certificates"},
		{name: "certificates not PEM", opts: image.RuntimeOptions{Binaries: bins, CACerts: []byte("random bytes\n")}, wantErr: "no PEM certificate found"},
		{name: "PEM but no certificate", opts: image.RuntimeOptions{Binaries: bins, CACerts: []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}, wantErr: "no PEM certificate found"},
		{name: "platform twice", opts: image.RuntimeOptions{Binaries: []image.Binary{bins[0], bins[0]}, CACerts: certs}, wantErr: "given twice"},
		{name: "missing file", opts: image.RuntimeOptions{Binaries: []image.Binary{{Platform: bins[0].Platform, Path: "/nonexistent"}}, CACerts: certs}, wantErr: "/nonexistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := image.RuntimeBase(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func request(t *testing.T, bundleBytes []byte, base v1.ImageIndex) image.Request {
	t.Helper()
	d, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	baseRef, err := name.NewDigest("registry.example/gatekiln/runtime@" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository("registry.example/apis/petstore")
	if err != nil {
		t.Fatal(err)
	}
	return image.Request{
		Bundle:       bundleBytes,
		InputsDigest: imagetest.InputsDigest(bundleBytes, d.String()),
		API:          "shop/petstore",
		Version:      "1.0.0",
		Repository:   repo,
		Base:         baseRef,
	}
}

func TestAssemble(t *testing.T) {
	base := imagetest.RuntimeBase(t, imagetest.FakeBinaries(t))
	bundleBytes := imagetest.Petstore(t)
	req := request(t, bundleBytes, base)

	out, err := image.Assemble(base, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := image.Assemble(base, req)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := out.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("Assemble is not reproducible: %s vs %s", d1, d2)
	}

	im, err := out.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.Annotations[image.LabelInputsDigest] != req.InputsDigest {
		t.Fatalf("index annotation %s = %q", image.LabelInputsDigest, im.Annotations[image.LabelInputsDigest])
	}
	baseIM, _ := base.IndexManifest()
	if len(im.Manifests) != len(baseIM.Manifests) {
		t.Fatalf("%d platforms, base has %d", len(im.Manifests), len(baseIM.Manifests))
	}
	for i, desc := range im.Manifests {
		if desc.Platform.String() != baseIM.Manifests[i].Platform.String() {
			t.Errorf("platform %d = %s, want %s", i, desc.Platform, baseIM.Manifests[i].Platform)
		}
		img, err := out.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		baseImg, _ := base.Image(baseIM.Manifests[i].Digest)
		baseLayers, _ := baseImg.Layers()
		layers, _ := img.Layers()
		if len(layers) != len(baseLayers)+1 {
			t.Fatalf("%s: %d layers, want base's %d + 1", desc.Platform, len(layers), len(baseLayers))
		}
		for j := range baseLayers {
			a, _ := baseLayers[j].Digest()
			b, _ := layers[j].Digest()
			if a != b {
				t.Errorf("%s: layer %d changed: %s -> %s", desc.Platform, j, a, b)
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range image.Labels(req) {
			if cf.Config.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", desc.Platform, k, cf.Config.Labels[k], v)
			}
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: base config lost: user %q", desc.Platform, cf.Config.User)
		}
		if last := cf.History[len(cf.History)-1]; last.CreatedBy != image.BundleHistory {
			t.Errorf("%s: last history %q", desc.Platform, last.CreatedBy)
		}
		m, _ := img.Manifest()
		if m.Annotations[image.LabelInputsDigest] != req.InputsDigest {
			t.Errorf("%s: manifest annotation %q", desc.Platform, m.Annotations[image.LabelInputsDigest])
		}
		if got := readFile(t, out, desc.Digest, bundle.Path); !bytes.Equal(got, bundleBytes) {
			t.Errorf("%s: %s differs from the Bundle", desc.Platform, bundle.Path)
		}
	}

	other := req
	other.Bundle = imagetest.Bundle(t, "Swagger Petstore", "1.0.1", []byte(imagetest.PetstoreOpenAPI))
	d3, _ := mustAssemble(t, base, other).Digest()
	if d3 == d1 {
		t.Fatal("a different Bundle gave the same digest")
	}

	bad := req
	bad.InputsDigest = "nope"
	if _, err := image.Assemble(base, bad); err == nil || !strings.Contains(err.Error(), "inputs digest") {
		t.Fatalf("bad inputs digest: error = %v", err)
	}
}

// TestAssembleLeavesOutAttestations: a base index with BuildKit-style
// attestation manifests gives the same image as one without them; they are
// not images to run, and they describe the base, not the gateway image.
func TestAssembleLeavesOutAttestations(t *testing.T) {
	base := imagetest.RuntimeBase(t, imagetest.FakeBinaries(t))
	req := request(t, imagetest.Petstore(t), base)
	want, _ := mustAssemble(t, base, req).Digest()

	baseIM, _ := base.IndexManifest()
	att, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	attested := mutate.AppendManifests(base, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
		Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{
			"vnd.docker.reference.type":   "attestation-manifest",
			"vnd.docker.reference.digest": baseIM.Manifests[0].Digest.String(),
		},
	}})
	got, _ := mustAssemble(t, attested, req).Digest()
	if got != want {
		t.Fatalf("with an attestation in the base: %s, want %s as without", got, want)
	}

	only := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: att,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}})
	if _, err := image.Assemble(only, req); err == nil || !strings.Contains(err.Error(), "only attestations") {
		t.Fatalf("a base of attestations only: error = %v", err)
	}
}

func mustAssemble(t *testing.T, base v1.ImageIndex, r image.Request) v1.ImageIndex {
	t.Helper()
	idx, err := image.Assemble(base, r)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func readFile(t *testing.T, idx v1.ImageIndex, d v1.Hash, path string) []byte {
	t.Helper()
	img, err := idx.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	data, err := imagetest.ReadFile(img, path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
