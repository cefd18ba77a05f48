package promote_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/promote"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

type side struct {
	reg  *registrytest.Registry
	cfg  registry.Config
	rec  *registrytest.Recorder
	opts []remote.Option
}

func newSide(t *testing.T, reg *registrytest.Registry) side {
	t.Helper()
	rec := &registrytest.Recorder{}
	cfg := reg.Config()
	cfg.WrapTransport = rec.Wrap
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return side{reg: reg, cfg: cfg, rec: rec, opts: opts}
}

// gatewayImage builds a two-platform gateway image in the QA registry with
// the Direct builder and returns its tag.
func gatewayImage(t *testing.T, qa side) name.Tag {
	t.Helper()
	base := imagetest.PushRuntimeBase(t, qa.cfg, qa.reg.Host)
	repo, err := qa.cfg.ParseRepository(qa.reg.Host + "/qa/petstore")
	if err != nil {
		t.Fatal(err)
	}
	b := imagetest.Petstore(t)
	req := image.Request{Bundle: b, InputsDigest: imagetest.InputsDigest(b, base.DigestStr()), API: "shop/petstore", Version: "1.0.0", Repository: repo, Base: base}
	direct := image.Direct{Base: image.RemoteBase{Options: qa.opts}, Publisher: image.RegistryPublisher{Options: qa.opts}}
	if _, err := direct.Build(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	tag, _ := req.Tag()
	return tag
}

func TestPromote(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	ctx := context.Background()
	qa := newSide(t, registrytest.Start(t, registrytest.Options{}))
	prod := newSide(t, registrytest.Start(t, registrytest.Options{TLS: true, Auth: true}))
	src := gatewayImage(t, qa)
	srcDesc, err := remote.Head(src, qa.opts...)
	if err != nil {
		t.Fatal(err)
	}
	dstRepo, err := prod.cfg.ParseRepository(prod.reg.Host + "/prod/petstore")
	if err != nil {
		t.Fatal(err)
	}
	req := promote.Request{Source: src, Destination: dstRepo, SourceOptions: qa.opts, DestinationOptions: prod.opts}

	t.Run("dry run writes nothing", func(t *testing.T) {
		dry := req
		dry.DryRun = true
		prod.rec.Reset()
		res, err := promote.Promote(ctx, dry)
		if err != nil {
			t.Fatal(err)
		}
		if res.AlreadyPresent || res.Blobs != 6 || res.Missing != 6 || !res.TagUpdated {
			t.Fatalf("dry run result %+v, want 6 blobs (3 base layers, the Bundle layer, 2 configs) all missing and a tag to write", res)
		}
		for _, q := range prod.rec.Requests() {
			if q.Method != http.MethodGet && q.Method != http.MethodHead {
				t.Fatalf("dry run sent %s %s", q.Method, q.Path)
			}
		}
		if _, err := remote.Head(dstRepo.Digest(srcDesc.Digest.String()), prod.opts...); err == nil {
			t.Fatal("dry run copied the image")
		}
	})

	t.Run("copies every platform by digest, TLS and auth destination", func(t *testing.T) {
		prod.rec.Reset()
		res, err := promote.Promote(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := dstRepo.Digest(srcDesc.Digest.String()).String()
		if res.Destination != want || res.AlreadyPresent {
			t.Fatalf("result %+v, want destination %s, newly copied", res, want)
		}
		if !slices.Equal(res.Platforms, []string{"linux/amd64", "linux/arm64"}) {
			t.Fatalf("platforms %v", res.Platforms)
		}
		if len(prod.rec.UploadedBlobs()) != 6 {
			t.Fatalf("uploaded %v, want the 6 blobs", prod.rec.UploadedBlobs())
		}
		tagged, err := remote.Head(dstRepo.Tag(src.TagStr()), prod.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if tagged.Digest != srcDesc.Digest {
			t.Fatalf("destination tag at %s, source %s", tagged.Digest, srcDesc.Digest)
		}
		// Every platform image is readable at the destination.
		idx, err := remote.Index(dstRepo.Digest(srcDesc.Digest.String()), prod.opts...)
		if err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		for _, d := range im.Manifests {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := imagetest.ReadFile(img, "/etc/gatekiln/bundle.json"); err != nil {
				t.Fatalf("%s: %v", d.Platform, err)
			}
		}
	})

	t.Run("second run uploads nothing", func(t *testing.T) {
		prod.rec.Reset()
		res, err := promote.Promote(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !res.AlreadyPresent || res.TagUpdated {
			t.Fatalf("result %+v, want already present", res)
		}
		if up := prod.rec.Uploads(); len(up) != 0 {
			t.Fatalf("second run uploaded %v", up)
		}
		if w := prod.rec.ManifestWrites(); len(w) != 0 {
			t.Fatalf("second run wrote manifests %v", w)
		}
	})

	t.Run("moving a tag uploads no blob", func(t *testing.T) {
		moved := req
		moved.Tag = "production"
		prod.rec.Reset()
		res, err := promote.Promote(ctx, moved)
		if err != nil {
			t.Fatal(err)
		}
		if !res.AlreadyPresent || !res.TagUpdated {
			t.Fatalf("result %+v", res)
		}
		if up := prod.rec.Uploads(); len(up) != 0 {
			t.Fatalf("moving a tag uploaded %v", up)
		}
	})

	t.Run("same registry: blobs are mounted", func(t *testing.T) {
		same := promote.Request{Source: src, SourceOptions: qa.opts, DestinationOptions: qa.opts}
		var err error
		if same.Destination, err = qa.cfg.ParseRepository(qa.reg.Host + "/prod/petstore"); err != nil {
			t.Fatal(err)
		}
		qa.rec.Reset()
		if _, err := promote.Promote(ctx, same); err != nil {
			t.Fatal(err)
		}
		if up := qa.rec.UploadedBlobs(); len(up) != 0 {
			t.Fatalf("uploaded %v, want mounts only", up)
		}
		if n := len(qa.rec.Mounts()); n != 6 {
			t.Fatalf("%d mounts, want 6", n)
		}
	})

	t.Run("missing source", func(t *testing.T) {
		missing := req
		missing.Source = src.Context().Tag("does-not-exist")
		_, err := promote.Promote(ctx, missing)
		if !errors.Is(err, promote.ErrNotFound) || !strings.Contains(err.Error(), "does-not-exist") {
			t.Fatalf("error = %v, want ErrNotFound naming the tag", err)
		}
	})

	t.Run("wrong destination credentials", func(t *testing.T) {
		bad := prod.cfg
		cfg, err := registry.DockerConfigFor(map[string]authn.Basic{prod.reg.Host: {Username: prod.reg.Username, Password: "wrong"}})
		if err != nil {
			t.Fatal(err)
		}
		bad.DockerConfig = cfg
		badOpts, err := bad.Remote(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wrong := req
		wrong.DestinationOptions = badOpts
		_, err = promote.Promote(ctx, wrong)
		if !errors.Is(err, promote.ErrAuth) || !strings.Contains(err.Error(), "destination") {
			t.Fatalf("error = %v, want ErrAuth on the destination", err)
		}
	})
}

// TestPromoteDetectsMismatch puts a proxy in front of the destination that
// reports another digest, as a registry that rewrote the manifest would.
func TestPromoteDetectsMismatch(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.InProcess(t)
	target, _ := url.Parse(reg.URL)
	lying := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method == http.MethodHead && strings.Contains(resp.Request.URL.Path, "/manifests/") && resp.StatusCode == http.StatusOK {
				resp.Header.Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
			}
			return nil
		},
	})
	t.Cleanup(lying.Close)
	lyingHost := strings.TrimPrefix(lying.URL, "http://")

	cfg := registry.Config{Insecure: []string{reg.Host, lyingHost}}
	opts, err := cfg.Remote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := cfg.ParseReference(reg.Host + "/qa/x:v1")
	if err := remote.Write(src, img, opts...); err != nil {
		t.Fatal(err)
	}
	dst, _ := cfg.ParseRepository(lyingHost + "/prod/x")
	_, err = promote.Promote(ctx, promote.Request{Source: src, Destination: dst, SourceOptions: opts, DestinationOptions: opts})
	if !errors.Is(err, promote.ErrMismatch) {
		t.Fatalf("error = %v, want ErrMismatch", err)
	}
}

func TestParseDestination(t *testing.T) {
	parse := func(s string) (name.Reference, error) { return name.ParseReference(s) }
	tests := []struct {
		in, repo, tag, wantErr string
	}{
		{in: "reg.example/prod/petstore", repo: "reg.example/prod/petstore"},
		{in: "reg.example:5000/prod/petstore", repo: "reg.example:5000/prod/petstore"},
		{in: "reg.example:5000/prod/petstore:1.0", repo: "reg.example:5000/prod/petstore", tag: "1.0"},
		{in: "reg.example/prod/petstore:latest", repo: "reg.example/prod/petstore", tag: "latest"},
		{in: "reg.example/prod/petstore@sha256:" + strings.Repeat("a", 64), wantErr: "the digest is the source's"},
		{in: "UPPER/case", wantErr: "parse"},
	}
	for _, tt := range tests {
		repo, tag, err := promote.ParseDestination(tt.in, parse)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || repo.Name() != tt.repo || tag != tt.tag {
			t.Errorf("%s: (%s, %q, %v), want (%s, %q)", tt.in, repo.Name(), tag, err, tt.repo, tt.tag)
		}
	}
}
