package kaniko_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/kaniko"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
	"github.com/gatekiln/gatekiln/test/kanikorun"
)

// boxCorpus is the large real-world definition (1.7 MB) whose compiled Bundle
// is built by Kaniko through several ConfigMaps.
const boxCorpus = "../../../shared/corpus/box/openapi.json"

// TestExecutor runs the real Kaniko executor on the context and Job this
// package renders, against docker-registry on 127.0.0.1.
func TestExecutor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Kaniko executor")
	}
	exe, err := kanikorun.Default()
	if err != nil {
		t.Fatal(err)
	}
	exe.WorkDir = t.TempDir()

	t.Run("plain registry: same digest twice, same tree as Direct", func(t *testing.T) {
		reg := registrytest.Start(t, registrytest.Options{})
		cfg := reg.Config()
		req := kanikoRequest(t, cfg, reg.Host, imagetest.Petstore(t))
		b, err := kaniko.Render(req, kaniko.Options{Name: "petstore-build", Namespace: "shop", Insecure: cfg.Insecure})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.ConfigMaps) != 1 || len(b.Job.Spec.Template.Spec.InitContainers) != 0 {
			t.Fatalf("petstore context should fit one ConfigMap without a join step")
		}
		first := build(t, exe, b, req, nil)
		second := build(t, exe, b, req, nil)
		if first != second {
			t.Fatalf("two Kaniko runs gave %s and %s", first, second)
		}
		checkAgainstRegistryAndDirect(t, cfg, req, first)
	})

	t.Run("TLS and auth registry, box corpus split across ConfigMaps", func(t *testing.T) {
		corpus, err := os.ReadFile(boxCorpus)
		if err != nil {
			t.Fatalf("box corpus: %v", err)
		}
		reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
		cfg := reg.Config()
		res, err := compile.Compile(compile.Input{Files: []compile.File{{Path: "openapi.json", Data: corpus}}})
		if err != nil {
			t.Fatalf("compile box: %v", err)
		}
		req := kanikoRequest(t, cfg, reg.Host, res.BundleBytes)
		// The box Bundle (about 1.1 MB) compresses to about 0.17 MB, so at the
		// API server's 1 MiB it takes one ConfigMap; 64 KiB parts exercise the
		// join the way a larger definition would.
		b, err := kaniko.Render(req, kaniko.Options{
			Name: "box-build", Namespace: "shop",
			DockerConfigSecret: "push", RegistryCASecret: "registry-ca",
			MaxPartBytes: 64 << 10,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.ConfigMaps) < 2 {
			t.Fatalf("%d ConfigMaps, want a split context", len(b.ConfigMaps))
		}
		secrets := []corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Name: "push"}, Type: corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: reg.DockerConfig()}},
			{ObjectMeta: metav1.ObjectMeta{Name: "registry-ca"}, Data: map[string][]byte{"ca.crt": reg.CACert}},
		}
		digest := build(t, exe, b, req, secrets)
		checkAgainstRegistryAndDirect(t, cfg, req, digest)
	})
}

func kanikoRequest(t *testing.T, cfg registry.Config, host string, bundleBytes []byte) image.Request {
	t.Helper()
	base := imagetest.PushRuntimeBase(t, cfg, host)
	repo, err := cfg.ParseRepository(host + "/apis/petstore")
	if err != nil {
		t.Fatal(err)
	}
	return image.Request{
		Bundle:       bundleBytes,
		InputsDigest: compile.InputsDigest(bundleBytes, base.DigestStr(), compile.Version),
		API:          "shop/petstore",
		Version:      "1.0.0",
		Repository:   repo,
		Base:         base,
	}
}

// build runs the Job and returns the image as the operator would name it
// from the termination message: repo@sha256:….
func build(t *testing.T, exe kanikorun.Executor, b *kaniko.Build, req image.Request, secrets []corev1.Secret) string {
	t.Helper()
	res, err := exe.Run(context.Background(), b, secrets)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := kaniko.ImageFromTermination(req, res.Message)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// checkAgainstRegistryAndDirect: the tag holds the image Kaniko reported,
// and its file tree equals the Direct image's for the same platform.
func checkAgainstRegistryAndDirect(t *testing.T, cfg registry.Config, req image.Request, built string) {
	t.Helper()
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := req.Tag()
	desc, err := remote.Head(tag, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Repository.Digest(desc.Digest.String()).String(); got != built {
		t.Fatalf("registry has %s at %s, Kaniko reported %s", got, tag, built)
	}
	kimg, err := remote.Image(tag, opts...)
	if err != nil {
		t.Fatal(err)
	}
	kcf, err := kimg.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range image.Labels(req) {
		if kcf.Config.Labels[k] != v {
			t.Errorf("Kaniko image label %s = %q, want %q", k, kcf.Config.Labels[k], v)
		}
	}

	base, err := image.RemoteBase{Options: opts}.Base(context.Background(), req.Base)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := image.Assemble(base, req)
	if err != nil {
		t.Fatal(err)
	}
	dimg, err := platformImage(direct, v1.Platform{OS: kcf.OS, Architecture: kcf.Architecture})
	if err != nil {
		t.Fatal(err)
	}
	ktree, err := imagetest.Tree(kimg)
	if err != nil {
		t.Fatal(err)
	}
	dtree, err := imagetest.Tree(dimg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := treeDiff(dtree, ktree); diff != "" {
		t.Fatalf("Kaniko and Direct file trees differ (- direct, + kaniko):\n%s", diff)
	}
}

func platformImage(idx v1.ImageIndex, p v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(p) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no %s image in the index", p)
}

func treeDiff(a, b []imagetest.TreeEntry) string {
	as, bs := map[string]string{}, map[string]string{}
	for _, e := range a {
		as[e.Path] = e.String()
	}
	for _, e := range b {
		bs[e.Path] = e.String()
	}
	var out strings.Builder
	for _, e := range a {
		if bs[e.Path] != e.String() {
			fmt.Fprintf(&out, "- %s\n", e)
			if s, ok := bs[e.Path]; ok {
				fmt.Fprintf(&out, "+ %s\n", s)
			}
		}
	}
	for _, e := range b {
		if _, ok := as[e.Path]; !ok {
			fmt.Fprintf(&out, "+ %s\n", e)
		}
	}
	return out.String()
}
