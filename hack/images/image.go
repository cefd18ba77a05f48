package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one entry of an image's single layer: either bytes (Data), a file
// on this machine (Source, read when the image is built) or a directory (Dir).
type File struct {
	Data   []byte
	Source string
	Dir    bool
	Mode   int64 // permission bits; 0 means 0644 (files) or 0755 (directories)
}

// Spec describes an image made of one layer on an empty base (or on Base).
// Everything is deterministic: entries are sorted, owned by 0:0, and carry
// a fixed modification time, so the same Spec gives the same digest.
type Spec struct {
	Base       v1.Image // nil: empty base
	Files      map[string]File
	Entrypoint []string
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
	Labels     map[string]string
	OS, Arch   string // default linux/amd64
}

// epoch is the modification time of every layer entry and the image's
// creation time.
var epoch = time.Unix(0, 0).UTC()

// Layer returns the deterministic tar of files, parent directories included.
func Layer(files map[string]File) ([]byte, error) {
	entries := map[string]File{}
	for p, f := range files {
		clean := strings.TrimPrefix(path.Clean("/"+p), "/")
		if clean == "" {
			return nil, fmt.Errorf("image file %q: empty path", p)
		}
		entries[clean] = f
		for dir := path.Dir(clean); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if _, ok := entries[dir]; !ok {
				entries[dir] = File{Dir: true}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := entries[n]
		hdr := &tar.Header{Name: n, ModTime: epoch, Format: tar.FormatPAX, Uname: "", Gname: ""}
		if f.Dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			hdr.Mode = 0o755
			if f.Mode != 0 {
				hdr.Mode = f.Mode
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		data := f.Data
		if f.Source != "" {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("image file /%s: %w", n, err)
			}
			data = b
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Mode = 0o644
		if f.Mode != 0 {
			hdr.Mode = f.Mode
		}
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Build assembles the image that spec describes.
func Build(spec Spec) (v1.Image, error) {
	tarBytes, err := Layer(spec.Files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	base := spec.Base
	if base == nil {
		base = empty.Image
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = spec.OS, spec.Arch
	if cf.OS == "" {
		cf.OS = "linux"
	}
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.Env = append(cf.Config.Env, spec.Env...)
	if spec.User != "" {
		cf.Config.User = spec.User
	}
	if spec.WorkingDir != "" {
		cf.Config.WorkingDir = spec.WorkingDir
	}
	if len(spec.Labels) > 0 {
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		for k, v := range spec.Labels {
			cf.Config.Labels[k] = v
		}
	}
	// The history entry keeps tools that count history against layers happy.
	cf.History = append(cf.History, v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "gatekiln hack/images"})
	return mutate.ConfigFile(img, cf)
}

// Push writes img to ref and returns ref by digest (repo@sha256:…).
// insecure allows plain HTTP for a registry other than localhost/127.0.0.1.
func Push(ctx context.Context, img v1.Image, ref string, insecure bool) (string, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}
