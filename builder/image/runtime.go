package image

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the runtime base image.
const (
	GatewayPath = "/usr/local/bin/gatekiln-gateway"
	CACertsPath = "/etc/ssl/certs/ca-certificates.crt"
	NonRootUID  = 65532
	NonRootHome = "/home/nonroot"
)

// Label and annotation keys.
const (
	LabelInputsDigest = "gatekiln.io/inputs-digest"
	LabelAPI          = "gatekiln.io/api"
	OCITitle          = "org.opencontainers.image.title"
	OCIDescription    = "org.opencontainers.image.description"
	OCIVersion        = "org.opencontainers.image.version"
	OCIRevision       = "org.opencontainers.image.revision"
	OCISource         = "org.opencontainers.image.source"
	OCIBaseName       = "org.opencontainers.image.base.name"
	OCIBaseDigest     = "org.opencontainers.image.base.digest"
)

// Binary is the gateway executable built for one platform.
type Binary struct {
	Platform v1.Platform
	// Path is a static executable on this machine.
	Path string
}

// RuntimeOptions describes the runtime base image.
type RuntimeOptions struct {
	Binaries []Binary
	// CACerts is the PEM bundle installed at /etc/ssl/certs/ca-certificates.crt.
	CACerts []byte
	// Version, Revision and Source become OCI labels (empty ones are left out).
	Version, Revision, Source string
}

// DefaultPlatforms are the platforms the runtime base image is built for.
var DefaultPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// RuntimeBase assembles the runtime base image index: per platform, one layer
// shared by all platforms (users, CA certificates, directories) and one
// holding the gateway binary. The same binaries and certificates give the same
// digest.
func RuntimeBase(opts RuntimeOptions) (v1.ImageIndex, error) {
	if len(opts.Binaries) == 0 {
		return nil, errors.New("runtime base: no gateway binary given")
	}
	if err := CheckCACerts(opts.CACerts); err != nil {
		return nil, fmt.Errorf("runtime base: %w", err)
	}
	files, err := NewLayer(baseFiles(opts.CACerts))
	if err != nil {
		return nil, fmt.Errorf("runtime base files: %w", err)
	}
	labels := map[string]string{
		OCITitle:       "gatekiln-gateway",
		OCIDescription: "Gatekiln microgateway runtime; per-API images add /etc/gatekiln/bundle.json",
	}
	for k, v := range map[string]string{OCIVersion: opts.Version, OCIRevision: opts.Revision, OCISource: opts.Source} {
		if v != "" {
			labels[k] = v
		}
	}

	binaries := append([]Binary(nil), opts.Binaries...)
	sort.Slice(binaries, func(i, j int) bool { return binaries[i].Platform.String() < binaries[j].Platform.String() })
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]bool{}
	for _, b := range binaries {
		p := b.Platform
		if seen[p.String()] {
			return nil, fmt.Errorf("runtime base: platform %s given twice", p)
		}
		seen[p.String()] = true
		data, err := os.ReadFile(b.Path)
		if err != nil {
			return nil, fmt.Errorf("runtime base %s: %w", p, err)
		}
		bin, err := NewLayer([]Entry{{Path: GatewayPath, Data: data, Mode: 0o755}})
		if err != nil {
			return nil, fmt.Errorf("runtime base %s: %w", p, err)
		}
		img, err := runtimeImage(p, files, bin, labels)
		if err != nil {
			return nil, fmt.Errorf("runtime base %s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

// CheckCACerts returns an error unless pem holds at least one PEM
// certificate, as a registry CA bundle must: the file becomes every TLS
// client's trust store in the image, and random bytes there would trust
// nothing without anyone noticing until the gateway calls an HTTPS upstream.
func CheckCACerts(pem []byte) error {
	if len(pem) == 0 {
		return errors.New("no CA certificates given")
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return errors.New("CA certificates: no PEM certificate found")
	}
	return nil
}

func runtimeImage(p v1.Platform, files, bin v1.Layer, labels map[string]string) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img,
		mutate.Addendum{Layer: files, History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "gatekiln runtime-image: users, CA certificates, directories"}},
		mutate.Addendum{Layer: bin, History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "gatekiln runtime-image: " + GatewayPath}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Created = v1.Time{Time: Epoch}
	cf.Author = "gatekiln"
	cf.Config = v1.Config{
		Entrypoint: []string{GatewayPath},
		User:       fmt.Sprintf("%d:%d", NonRootUID, NonRootUID),
		WorkingDir: NonRootHome,
		Env: []string{
			"PATH=/usr/local/bin:/usr/bin:/bin",
			"SSL_CERT_FILE=" + CACertsPath,
		},
		Labels: labels,
	}
	return mutate.ConfigFile(img, cf)
}

// baseFiles are the files every platform shares: a passwd and group naming
// root and nonroot (65532), the CA bundle, the Bundle's directory and a /tmp.
func baseFiles(caCerts []byte) []Entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", NonRootUID, NonRootUID, NonRootHome)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRootUID)
	return []Entry{
		// The root directory's entry makes its mode explicit; Kaniko's layers
		// carry one too, so both builders give the same tree.
		{Path: "/", Dir: true},
		{Path: "/etc/passwd", Data: []byte(passwd)},
		{Path: "/etc/group", Data: []byte(group)},
		{Path: CACertsPath, Data: caCerts},
		{Path: "/etc/gatekiln", Dir: true},
		{Path: NonRootHome, Dir: true, Mode: 0o700, UID: NonRootUID, GID: NonRootUID},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	}
}

// GoBuild describes a static build of the gateway for one platform.
type GoBuild struct {
	// Dir is the module root the package is built from.
	Dir string
	// Package is the main package, e.g. ./cmd/gatekiln-gateway.
	Package  string
	Platform v1.Platform
	// Out is the path of the executable to write.
	Out string
}

// BuildBinary compiles a static, reproducible executable: CGO off, -trimpath,
// no VCS stamping, stripped.
func BuildBinary(ctx context.Context, b GoBuild) error {
	if err := os.MkdirAll(filepath.Dir(b.Out), 0o755); err != nil {
		return err
	}
	// go build's work directory goes into one of ours, removed on return: go
	// build stopped by a signal (Ctrl-C, or ctx cancelled) leaves its own
	// /tmp/go-build* behind.
	work, err := os.MkdirTemp("", "gatekiln-gobuild-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", b.Out, b.Package)
	cmd.Dir = b.Dir
	env := append(os.Environ(), "CGO_ENABLED=0", "GOTMPDIR="+work, "GOOS="+b.Platform.OS, "GOARCH="+b.Platform.Architecture)
	if b.Platform.Variant != "" && b.Platform.Architecture == "arm" {
		env = append(env, "GOARM="+b.Platform.Variant[1:])
	}
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", b.Package, b.Platform, err, out)
	}
	return nil
}
