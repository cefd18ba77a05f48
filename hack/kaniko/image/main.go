// Command image assembles the Kaniko executor image from an executor binary
// built from source (hack/kaniko/build-executor.sh), laid out like upstream's
// gcr.io/kaniko-project/executor, and pushes it:
//
//	<repo>:<version>        /kaniko/executor, /kaniko/ssl/certs/ca-certificates.crt,
//	                        /kaniko/.docker/, DOCKER_CONFIG=/kaniko/.docker/
//	<repo>:<version>-debug  the same plus a static busybox under /busybox,
//	                        which the build Job uses to join a split context
//
// It prints one repo@sha256:… line per image.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
)

// busyboxApplets are linked under /busybox, as in upstream's debug image.
var busyboxApplets = []string{"sh", "cat", "ls", "cp", "mv", "rm", "mkdir", "echo", "env", "sleep", "tar", "gzip", "wget", "vi", "find", "grep", "sed", "head", "tail", "wc", "du", "df", "ps", "id"}

func main() {
	var (
		executor = flag.String("executor", "bin/kaniko/executor", "Kaniko executor binary")
		busybox  = flag.String("busybox", "/usr/bin/busybox", "static busybox for the -debug image")
		caFile   = flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle installed at /kaniko/ssl/certs/ca-certificates.crt")
		repo     = flag.String("repo", "", "repository to push to, e.g. 127.0.0.1:5000/kaniko/executor")
		version  = flag.String("version", "v1.24.0", "tag of the executor image")
		arch     = flag.String("arch", "amd64", "architecture of the executor and busybox binaries")
		insecure = flag.Bool("insecure", false, "the registry is plain HTTP")
		regCA    = flag.String("registry-ca", "", "PEM CA bundle of the registry")
	)
	flag.Parse()
	if err := run(*executor, *busybox, *caFile, *repo, *version, *arch, *insecure, *regCA); err != nil {
		fmt.Fprintln(os.Stderr, "kaniko image:", err)
		os.Exit(1)
	}
}

func run(executor, busybox, caFile, repoName, version, arch string, insecure bool, regCA string) error {
	if repoName == "" {
		return fmt.Errorf("-repo is required")
	}
	exe, err := os.ReadFile(executor)
	if err != nil {
		return fmt.Errorf("executor: %w (run make kaniko)", err)
	}
	certs, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	cfg := registry.Config{}
	if regCA != "" {
		if cfg.CABundle, err = os.ReadFile(regCA); err != nil {
			return err
		}
	}
	repo, err := cfg.ParseRepository(repoName)
	if err != nil {
		return err
	}
	if insecure {
		cfg.Insecure = []string{repo.RegistryStr()}
		if repo, err = cfg.ParseRepository(repoName); err != nil {
			return err
		}
	}
	opts, err := cfg.Remote(context.Background())
	if err != nil {
		return err
	}

	base, err := image.NewLayer([]image.Entry{
		{Path: "/", Dir: true},
		{Path: "/kaniko", Dir: true, Mode: 0o777},
		{Path: "/kaniko/.docker", Dir: true, Mode: 0o755},
		{Path: "/kaniko/executor", Data: exe, Mode: 0o755},
		{Path: "/kaniko/ssl/certs/ca-certificates.crt", Data: certs},
		{Path: "/etc/nsswitch.conf", Data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
		{Path: "/workspace", Dir: true},
	})
	if err != nil {
		return err
	}
	env := []string{"HOME=/root", "USER=root", "PATH=/usr/local/bin:/kaniko", "SSL_CERT_DIR=/kaniko/ssl/certs", "DOCKER_CONFIG=/kaniko/.docker/"}
	plain, err := executorImage(arch, env, base)
	if err != nil {
		return err
	}

	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("busybox: %w (install busybox-static)", err)
	}
	dbg := []image.Entry{{Path: "/busybox/busybox", Data: bb, Mode: 0o755}}
	for _, a := range busyboxApplets {
		dbg = append(dbg, image.Entry{Path: "/busybox/" + a, Link: "busybox"})
	}
	dbgLayer, err := image.NewLayer(dbg)
	if err != nil {
		return err
	}
	debug, err := executorImage(arch, append(env[:2:2], "PATH=/usr/local/bin:/kaniko:/busybox", env[3], env[4]), base, dbgLayer)
	if err != nil {
		return err
	}

	for tag, img := range map[string]v1.Image{version: plain, version + "-debug": debug} {
		ref := repo.Tag(tag)
		if err := remote.Write(ref, img, opts...); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", ref, repo.Digest(d.String()))
	}
	return nil
}

func executorImage(arch string, env []string, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: image.Epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/kaniko/executor"},
		Env:        env,
		WorkingDir: "/workspace",
		Labels:     map[string]string{"org.opencontainers.image.title": "kaniko executor (built from source by gatekiln hack/kaniko)"},
	}
	return mutate.ConfigFile(img, cf)
}
