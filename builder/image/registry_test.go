package image_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

// setup starts docker-registry (TLS + auth), pushes a runtime base to
// gatekiln/runtime and returns a request for apis/petstore.
func setup(t *testing.T) (*registrytest.Registry, *registrytest.Recorder, registry.Config, image.Request) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	base := imagetest.PushRuntimeBase(t, reg.Config(), reg.Host)
	rec := &registrytest.Recorder{}
	cfg := reg.Config()
	cfg.WrapTransport = rec.Wrap
	repo, err := cfg.ParseRepository(reg.Host + "/apis/petstore")
	if err != nil {
		t.Fatal(err)
	}
	b := imagetest.Petstore(t)
	return reg, rec, cfg, image.Request{
		Bundle:       b,
		InputsDigest: imagetest.InputsDigest(b, base.DigestStr()),
		API:          "shop/petstore",
		Version:      "1.0.0",
		Repository:   repo,
		Base:         base,
	}
}

func remoteOpts(t *testing.T, cfg registry.Config) []remote.Option {
	t.Helper()
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func TestDirectUploadsOnlyMissingBlobs(t *testing.T) {
	for _, cachedBase := range []bool{false, true} {
		t.Run(fmt.Sprintf("cached base %v", cachedBase), func(t *testing.T) {
			testDirectUploadsOnlyMissingBlobs(t, cachedBase)
		})
	}
}

func testDirectUploadsOnlyMissingBlobs(t *testing.T, cachedBase bool) {
	_, rec, cfg, req := setup(t)
	opts := remoteOpts(t, cfg)
	var base image.BaseSource = image.RemoteBase{Options: opts}
	if cachedBase {
		base = &image.CachedBase{Options: opts}
	}
	direct := image.Direct{Base: base, Publisher: image.RegistryPublisher{Options: opts}}

	ref, err := direct.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := req.Tag()
	if !strings.HasPrefix(ref, req.Repository.Name()+"@sha256:") {
		t.Fatalf("ref %q, want %s@sha256:…", ref, req.Repository.Name())
	}
	if !strings.HasSuffix(tag.TagStr(), "-"+strings.TrimPrefix(req.InputsDigest, "sha256:")[:12]) {
		t.Fatalf("tag %s does not end with the inputs digest", tag)
	}
	// The registry serves the tag at the digest the builder returned.
	desc, err := remote.Get(tag, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Repository.Digest(desc.Digest.String()).String(); got != ref {
		t.Fatalf("registry has %s at the tag, builder said %s", got, ref)
	}

	// What was uploaded: the Bundle layer once, and the two new configs. The
	// base's three layers were mounted from gatekiln/runtime, not sent again.
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	want := newBlobs(t, idx)
	if got := rec.UploadedBlobs(); !slices.Equal(got, want) {
		t.Fatalf("uploaded %v, want only the new blobs %v", got, want)
	}
	if n := len(rec.Mounts()); n != 3 {
		t.Fatalf("%d blobs mounted, want the base's 3", n)
	}

	// A second build of the same request uploads nothing.
	rec.Reset()
	again, err := direct.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again != ref {
		t.Fatalf("second build gave %s, first %s", again, ref)
	}
	if up := rec.Uploads(); len(up) != 0 {
		t.Fatalf("second build uploaded %v", up)
	}
	if m := rec.Mounts(); len(m) != 0 {
		t.Fatalf("second build mounted %v", m)
	}
	if cachedBase {
		for _, q := range rec.Requests() {
			if strings.Contains(q.Path, "/gatekiln/runtime/") {
				t.Fatalf("a cached base was read again: %s %s", q.Method, q.Path)
			}
		}
	}
}

// newBlobs lists, sorted, the blobs of idx that are not the base's: the
// Bundle layer (shared by every platform) and each platform's config.
func newBlobs(t *testing.T, idx v1.ImageIndex) []string {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		top, _ := ls[len(ls)-1].Digest()
		cfg, _ := img.ConfigName()
		set[top.String()], set[cfg.String()] = true, true
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestSkipCheck(t *testing.T) {
	reg, rec, cfg, req := setup(t)
	opts := remoteOpts(t, cfg)
	ctx := context.Background()
	tag, err := req.Tag()
	if err != nil {
		t.Fatal(err)
	}

	checker, err := image.NewChecker(opts...)
	if err != nil {
		t.Fatal(err)
	}
	rec.Reset()
	if ref, err := checker.Check(ctx, tag, req.InputsDigest); err != nil || ref != "" {
		t.Fatalf("absent tag: ref %q, err %v", ref, err)
	}

	direct := image.Direct{Base: image.RemoteBase{Options: opts}, Publisher: image.RegistryPublisher{Options: opts}}
	built, err := direct.Build(ctx, req)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("present: one round trip", func(t *testing.T) {
		fresh, err := image.NewChecker(opts...)
		if err != nil {
			t.Fatal(err)
		}
		rec.Reset()
		ref, err := fresh.Check(ctx, tag, req.InputsDigest)
		if err != nil || ref != built {
			t.Fatalf("ref %q err %v, want %s", ref, err, built)
		}
		if n := rec.RoundTrips(); n != 1 {
			t.Fatalf("first check: %d requests besides the /v2/ ping, want 1: %v", n, rec.Requests())
		}
		// A checker that has already talked to the registry does not ping again.
		rec.Reset()
		if _, err := fresh.Check(ctx, tag, req.InputsDigest); err != nil {
			t.Fatal(err)
		}
		if got := rec.Requests(); len(got) != 1 {
			t.Fatalf("warm check: %d requests, want 1: %v", len(got), got)
		}
	})

	t.Run("collision names both digests", func(t *testing.T) {
		other := strings.TrimPrefix(req.InputsDigest, "sha256:")[:12] + strings.Repeat("f", 52)
		_, err := checker.Check(ctx, tag, "sha256:"+other)
		var ce *image.CollisionError
		if !errors.As(err, &ce) {
			t.Fatalf("error = %v, want a CollisionError", err)
		}
		if !strings.Contains(err.Error(), req.InputsDigest) || !strings.Contains(err.Error(), other) {
			t.Fatalf("error %q does not name both digests", err)
		}
		skipping := image.Skipping{Checker: checker, Next: mustNotBuild{t}}
		collide := req
		collide.InputsDigest = "sha256:" + other
		if _, err := skipping.Build(ctx, collide); !errors.As(err, &ce) {
			t.Fatalf("Skipping.Build error = %v, want a CollisionError", err)
		}
	})

	t.Run("skipping wrapper reuses", func(t *testing.T) {
		skipping := image.Skipping{Checker: checker, Next: mustNotBuild{t}}
		ref, err := skipping.Build(ctx, req)
		if err != nil || ref != built {
			t.Fatalf("ref %q err %v, want %s", ref, err, built)
		}
	})

	t.Run("label only, as Kaniko writes it: two round trips", func(t *testing.T) {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.Config.Labels = map[string]string{image.LabelInputsDigest: req.InputsDigest}
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		kTag := req.Repository.Tag("kaniko-" + tag.TagStr())
		if err := remote.Write(kTag, img, opts...); err != nil {
			t.Fatal(err)
		}
		fresh, _ := image.NewChecker(opts...)
		rec.Reset()
		ref, err := fresh.Check(ctx, kTag, req.InputsDigest)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		if ref != req.Repository.Digest(d.String()).String() {
			t.Fatalf("ref %s, want the image's digest %s", ref, d)
		}
		if n := rec.RoundTrips(); n != 2 {
			t.Fatalf("%d round trips, want 2 (manifest, config): %v", n, rec.Requests())
		}
		if _, err := fresh.Check(ctx, kTag, "sha256:"+strings.Repeat("e", 64)); err == nil {
			t.Fatal("label mismatch not reported")
		}
	})

	t.Run("auth failure is an error, not absent", func(t *testing.T) {
		bad := reg.Config()
		bad.DockerConfig = nil
		badChecker, err := image.NewChecker(remoteOpts(t, bad)...)
		if err != nil {
			t.Fatal(err)
		}
		if ref, err := badChecker.Check(ctx, tag, req.InputsDigest); err == nil {
			t.Fatalf("anonymous check of a private registry: ref %q, no error", ref)
		}
	})
}

type mustNotBuild struct{ t *testing.T }

func (m mustNotBuild) Build(context.Context, image.Request) (string, error) {
	m.t.Fatal("the image exists; nothing should have been built")
	return "", nil
}

func TestLayoutPublisher(t *testing.T) {
	base := imagetest.RuntimeBase(t, imagetest.FakeBinaries(t))
	req := request(t, imagetest.Petstore(t), base)
	dir := filepath.Join(t.TempDir(), "oci")
	direct := image.Direct{Base: staticBase{base}, Publisher: image.LayoutPublisher{Path: dir}}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		ref, err := direct.Build(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ref, dir+"@sha256:") {
			t.Fatalf("ref %q", ref)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 {
		t.Fatalf("layout holds %d entries after two builds of one tag, want 1", len(im.Manifests))
	}
	tag, _ := req.Tag()
	if got := im.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != tag.TagStr() {
		t.Fatalf("ref.name %q, want %s", got, tag)
	}
	child, err := idx.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := image.Assemble(base, req)
	wd, _ := want.Digest()
	if cd, _ := child.Digest(); cd != wd {
		t.Fatalf("layout holds %s, want %s", cd, wd)
	}
}

type staticBase struct{ idx v1.ImageIndex }

func (s staticBase) Base(context.Context, name.Digest) (v1.ImageIndex, error) { return s.idx, nil }

// TestLayoutPublisherDirectories: a layout is written into a new or empty
// directory or an existing layout, never into another directory, which is
// left as it was.
func TestLayoutPublisherDirectories(t *testing.T) {
	base := imagetest.RuntimeBase(t, imagetest.FakeBinaries(t))
	req := request(t, imagetest.Petstore(t), base)
	idx, err := image.Assemble(base, req)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := req.Tag()
	tests := []struct {
		name    string
		files   map[string]string // what the directory holds before; nil: no directory
		wantErr string
	}{
		{name: "new directory"},
		{name: "empty directory", files: map[string]string{}},
		{name: "a definition's folder", files: map[string]string{"openapi.yaml": "openapi: 3.0.3\n"}, wantErr: "not empty and not an OCI image layout"},
		{name: "only an index.json", files: map[string]string{"index.json": "{}"}, wantErr: "not empty and not an OCI image layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "oci")
			if tc.files != nil {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, data := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := image.LayoutPublisher{Path: dir}.Publish(context.Background(), idx, tag)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				// Publishing again finds the layout it wrote.
				if _, err := (image.LayoutPublisher{Path: dir}).Publish(context.Background(), idx, tag); err != nil {
					t.Fatalf("publish into the layout again: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %v, want one naming %s with %q", err, dir, tc.wantErr)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != len(tc.files) {
				t.Errorf("the directory changed: %v", entries)
			}
		})
	}
}
