package quickstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
)

// embeddedRegistry is go-containerregistry's registry, in memory, served by
// this process on a loopback port for as long as it runs.
type embeddedRegistry struct {
	Host   string
	Config registry.Config
	srv    *http.Server
}

func startRegistry() (*embeddedRegistry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded registry: %w", err)
	}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	host := ln.Addr().String()
	return &embeddedRegistry{Host: host, Config: registry.Config{Insecure: []string{host}}, srv: srv}, nil
}

func (r *embeddedRegistry) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// Built is the image the quick start built.
type Built struct {
	// Tag is <repo>:<version>-<digest12>; Ref is <repo>@sha256:….
	Tag, Ref string
	// Base is the runtime base by digest; BaseKind says what it holds.
	Base, BaseKind string
	InputsDigest   string
}

// Base kinds.
const (
	// BaseBundleOnly is an empty image: gatekiln up serves the gateway in
	// its own process, so nothing runs the image; it carries the Bundle.
	BaseBundleOnly = "empty (the gateway runs in this process; the image carries its Bundle)"
	// BaseRuntime is the runtime base image around a given gateway binary.
	BaseRuntime = "the gatekiln-gateway runtime base (the image also runs in a cluster)"
)

// hostCACerts is the CA bundle the runtime base image carries.
const hostCACerts = "/etc/ssl/certs/ca-certificates.crt"

// quickstartBase is the bundle-only base: one empty image for this
// machine's architecture. Needing no binary, no toolchain and no network is
// the point of the quick start; the per-API image is still the real thing —
// the same Direct builder appends the same Bundle layer to it.
func quickstartBase() (v1.ImageIndex, error) {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Created = v1.Time{Time: image.Epoch}
	cf.Config.Labels = map[string]string{
		image.OCITitle:       "gatekiln quick-start base",
		image.OCIDescription: "No gateway binary: gatekiln up serves the Bundle of images built on it in its own process",
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}), nil
}

// runtimeBase wraps a static gatekiln-gateway binary as the real runtime base.
func runtimeBase(binary string) (v1.ImageIndex, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("gateway binary: %w", err)
	}
	ca, err := os.ReadFile(hostCACerts)
	if err != nil {
		return nil, fmt.Errorf("runtime base: CA certificates: %w", err)
	}
	return image.RuntimeBase(image.RuntimeOptions{
		Binaries: []image.Binary{{Platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, Path: binary}},
		CACerts:  ca,
	})
}

var notInRepo = regexp.MustCompile(`[^a-z0-9]+`)

// repoName is a repository name from the API's title.
func repoName(title string) string {
	s := strings.Trim(notInRepo.ReplaceAllString(strings.ToLower(title), "-"), "-")
	if s == "" {
		s = "api"
	}
	if len(s) > 64 {
		s = strings.TrimRight(s[:64], "-")
	}
	return "gatekiln/" + s
}

// build pushes the base to the embedded registry and builds the API's image
// on it with the Direct builder.
func (r *embeddedRegistry) build(ctx context.Context, res *compile.Result, gatewayBinary string) (*Built, error) {
	opts, err := r.Config.Remote(ctx)
	if err != nil {
		return nil, err
	}
	base, kind := (v1.ImageIndex)(nil), BaseBundleOnly
	if gatewayBinary != "" {
		base, err = runtimeBase(gatewayBinary)
		kind = BaseRuntime
	} else {
		base, err = quickstartBase()
	}
	if err != nil {
		return nil, err
	}
	baseTag, err := name.NewTag(r.Host+"/gatekiln/runtime:quickstart", name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(baseTag, base, opts...); err != nil {
		return nil, fmt.Errorf("push runtime base to %s: %w", baseTag, err)
	}
	bd, err := base.Digest()
	if err != nil {
		return nil, err
	}
	baseRef := baseTag.Context().Digest(bd.String())

	repo, err := r.Config.ParseRepository(r.Host + "/" + repoName(res.Bundle.API.Title))
	if err != nil {
		return nil, err
	}
	req := image.Request{
		Bundle:       res.BundleBytes,
		InputsDigest: compile.InputsDigest(res.BundleBytes, bd.String(), compile.Version),
		API:          "local/" + strings.TrimPrefix(repoName(res.Bundle.API.Title), "gatekiln/"),
		Version:      res.Bundle.API.Version,
		Repository:   repo,
		Base:         baseRef,
	}
	tag, err := req.Tag()
	if err != nil {
		return nil, err
	}
	direct := image.Direct{Base: image.RemoteBase{Options: opts}, Publisher: image.RegistryPublisher{Options: opts}}
	ref, err := direct.Build(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", tag, err)
	}
	if ref == "" {
		return nil, errors.New("build: the builder returned no image")
	}
	return &Built{Tag: tag.String(), Ref: ref, Base: baseRef.String(), BaseKind: kind, InputsDigest: req.InputsDigest}, nil
}
