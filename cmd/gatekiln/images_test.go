package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/spf13/cobra"

	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

// runCLI runs one gatekiln subcommand and returns its stdout.
func runCLI(t *testing.T, sub *cobra.Command, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCLIStreams(t, sub, args...)
	return out, err
}

// runCLIStreams runs one gatekiln subcommand and returns its stdout and stderr.
func runCLIStreams(t *testing.T, sub *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "gatekiln", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(sub)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestImageCommands drives runtime-image, build and promote the way a user
// (or CI) does: a plain QA registry and a TLS + auth production registry.
func TestImageCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	qa := registrytest.Start(t, registrytest.Options{})
	prod := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	dir := t.TempDir()
	dockerConfig := filepath.Join(dir, "config.json")
	if err := os.WriteFile(dockerConfig, prod.DockerConfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	qaFlags := []string{"--insecure-registry", qa.Host}
	prodFlags := []string{"--docker-config", dockerConfig, "--registry-ca", prod.CACertFile, "--insecure-registry", qa.Host}

	var binFlags []string
	for _, b := range imagetest.FakeBinaries(t) {
		binFlags = append(binFlags, "--binary", b.Platform.String()+"="+b.Path)
	}
	runtimeArgs := append(append([]string{"runtime-image", "--push", qa.Host + "/gatekiln/runtime"}, binFlags...), qaFlags...)
	out, err := runCLI(t, newRuntimeImageCmd(), runtimeArgs...)
	if err != nil {
		t.Fatal(err)
	}
	runtime := lastLine(out)
	if !strings.HasPrefix(runtime, qa.Host+"/gatekiln/runtime@sha256:") {
		t.Fatalf("runtime-image printed %q", out)
	}
	out, err = runCLI(t, newRuntimeImageCmd(), runtimeArgs...)
	if err != nil {
		t.Fatal(err)
	}
	if lastLine(out) != runtime {
		t.Fatalf("runtime-image is not reproducible: %s then %s", runtime, lastLine(out))
	}

	buildArgs := append([]string{"build", "--runtime", runtime, "--repo", qa.Host + "/qa/petstore", "../../samples/petstore/petstore.yaml"}, qaFlags...)
	out, err = runCLI(t, newBuildCmd(), buildArgs...)
	if err != nil {
		t.Fatal(err)
	}
	built := lastLine(out)
	if !strings.Contains(out, "\nbuilt\n") || !strings.HasPrefix(built, qa.Host+"/qa/petstore@sha256:") {
		t.Fatalf("build printed:\n%s", out)
	}
	out, err = runCLI(t, newBuildCmd(), buildArgs...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "reused") || lastLine(out) != built {
		t.Fatalf("second build should reuse %s, printed:\n%s", built, out)
	}
	tagLine := strings.TrimPrefix(strings.Split(out, "\n")[2], "tag: ")

	layoutDir := filepath.Join(dir, "oci")
	out, err = runCLI(t, newBuildCmd(), append([]string{"build", "--runtime", runtime, "--oci-layout", layoutDir, "../../samples/petstore/petstore.yaml"}, qaFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if lastLine(out) != layoutDir+"@"+strings.Split(built, "@")[1] {
		t.Fatalf("layout build gave %s, registry build %s: the same inputs must give the same digest", lastLine(out), built)
	}
	if _, err := layout.FromPath(layoutDir); err != nil {
		t.Fatal(err)
	}

	src := qa.Host + "/qa/petstore:" + tagLine
	dst := prod.Host + "/prod/petstore"
	out, err = runCLI(t, newPromoteCmd(), append([]string{"promote", src, dst, "--dry-run"}, prodFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "would promote") {
		t.Fatalf("dry run printed:\n%s", out)
	}
	out, err = runCLI(t, newPromoteCmd(), append([]string{"promote", src, dst}, prodFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	promoted := lastLine(out)
	if promoted != dst+"@"+strings.Split(built, "@")[1] {
		t.Fatalf("promoted to %s, want the built digest in %s:\n%s", promoted, dst, out)
	}
	out, err = runCLI(t, newPromoteCmd(), append([]string{"promote", src, dst}, prodFlags...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "already present") {
		t.Fatalf("second promote printed:\n%s", out)
	}

	_, err = runCLI(t, newPromoteCmd(), append([]string{"promote", qa.Host + "/qa/petstore:nope", dst}, prodFlags...)...)
	if exitCode(err) != exitPromoteMissing {
		t.Fatalf("missing source: err %v, exit %d, want %d", err, exitCode(err), exitPromoteMissing)
	}
	_, err = runCLI(t, newPromoteCmd(), "promote", src, dst, "--registry-ca", prod.CACertFile, "--insecure-registry", qa.Host)
	if exitCode(err) != exitPromoteAuth {
		t.Fatalf("no credentials: err %v, exit %d, want %d", err, exitCode(err), exitPromoteAuth)
	}

	// The promoted image is there, by digest, in production.
	cfg := prod.Config()
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := cfg.ParseReference(promoted)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Index(ref, opts...); err != nil {
		t.Fatal(err)
	}
}

// TestPromoteAttachedCLI promotes an image that carries a cosign signature
// and an SBOM referrer: one "attached:" line each, DST@sha256:… still last.
func TestPromoteAttachedCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	qa := registrytest.Start(t, registrytest.Options{})
	prod := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	dockerConfig := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(dockerConfig, prod.DockerConfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--docker-config", dockerConfig, "--registry-ca", prod.CACertFile, "--insecure-registry", qa.Host}
	qaCfg := qa.Config()
	qaOpts, err := qaCfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := qaCfg.ParseReference(qa.Host + "/apis/petstore:1.0.0")
	if err := remote.Write(src, img, qaOpts...); err != nil {
		t.Fatal(err)
	}
	subject, err := remote.Head(src, qaOpts...)
	if err != nil {
		t.Fatal(err)
	}
	sigTag := "sha256-" + subject.Digest.Hex + ".sig"
	sig, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(src.Context().Tag(sigTag), sig, qaOpts...); err != nil {
		t.Fatal(err)
	}
	sigDigest, _ := sig.Digest()
	sbom, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer([]byte("{}"), "application/spdx+json"))
	if err != nil {
		t.Fatal(err)
	}
	sbom = mutate.Subject(mutate.ConfigMediaType(sbom, "application/spdx+json"), *subject).(v1.Image)
	sbomDigest, _ := sbom.Digest()
	if err := remote.Write(src.Context().Digest(sbomDigest.String()), sbom, qaOpts...); err != nil {
		t.Fatal(err)
	}
	referrer := "referrer " + sbomDigest.String() + " (application/spdx+json)"

	dst, unsigned := prod.Host+"/apis/petstore", prod.Host+"/apis/unsigned"
	for _, step := range []struct {
		name, dst string
		flags     []string
		attached  []string
	}{
		{name: "dry run", dst: dst, flags: []string{"--dry-run"}, attached: []string{"attached: " + sigTag + " (would be copied)", "attached: " + referrer + " (would be copied)"}},
		{name: "promote", dst: dst, attached: []string{"attached: " + sigTag + " (copied)", "attached: " + referrer + " (copied)"}},
		{name: "again", dst: dst},
		{name: "skip-attached", dst: unsigned, flags: []string{"--skip-attached"}},
	} {
		out, err := runCLI(t, newPromoteCmd(), append(append([]string{"promote", src.String(), step.dst}, step.flags...), flags...)...)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		var attached []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "attached: ") {
				attached = append(attached, l)
			}
		}
		if !slices.Equal(attached, step.attached) || lastLine(out) != step.dst+"@"+subject.Digest.String() {
			t.Fatalf("%s printed:\n%s\nwant attached lines %q and %s@%s last", step.name, out, step.attached, step.dst, subject.Digest)
		}
	}

	cfg := prod.Config()
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{dst: true, unsigned: false} {
		ref, err := cfg.ParseReference(repo + ":" + sigTag)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Head(ref, opts...)
		if want && (err != nil || got.Digest != sigDigest) {
			t.Errorf("%s: %v, %v; want the signature %s", ref, got, err, sigDigest)
		}
		if !want && err == nil {
			t.Errorf("%s: copied with --skip-attached", ref)
		}
	}
}

func TestBuildRefusesRuntimeByTag(t *testing.T) {
	_, err := runCLI(t, newBuildCmd(), "build", "--runtime", "registry.example/rt:latest", "--repo", "registry.example/x", "../../samples/petstore/petstore.yaml")
	if err == nil || !strings.Contains(err.Error(), "by digest") {
		t.Fatalf("error = %v, want a request for a digest", err)
	}
}

// TestCISample runs samples/ci/promote.sh with this gatekiln, as a CI job
// would: QA (plain) to production (TLS + auth), twice.
func TestCISample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gatekiln and starts docker-registry")
	}
	binDir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "gatekiln"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	qa := registrytest.Start(t, registrytest.Options{})
	prod := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	qaCfg := qa.Config()
	qaOpts, err := qaCfg.Remote(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := qaCfg.ParseReference(qa.Host + "/apis/petstore:1.0.0-0123456789ab")
	if err := remote.Write(src, img, qaOpts...); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()

	// One docker config for both registries, and plain HTTP for QA only.
	config := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(config, prod.DockerConfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../../samples/ci/promote.sh")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"promoted", "already present"} {
		cmd := exec.Command(script, qa.Host+"/apis/petstore@"+digest.String(), prod.Host+"/apis/petstore:1.0.0-0123456789ab")
		cmd.Env = append(os.Environ(),
			"PATH="+binDir+":"+os.Getenv("PATH"),
			"DOCKER_CONFIG_JSON="+config,
			"REGISTRY_CA="+prod.CACertFile,
			"GATEKILN_INSECURE_REGISTRY="+qa.Host,
		)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		if !strings.HasPrefix(string(out), want) || lastLine(string(out)) != prod.Host+"/apis/petstore@"+digest.String() {
			t.Fatalf("run %d printed:\n%s", i, out)
		}
	}
}
