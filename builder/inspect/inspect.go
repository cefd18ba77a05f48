// Package inspect reads a gateway image's Bundle back out of the image (from
// a registry or an OCI image layout), or a bundle.json file, and describes it
// as tables: the API, its routes and the policies each route applies. The
// quick start also uses it to serve the gateway from the very Bundle its
// image holds.
package inspect

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Loaded is a Bundle and where it came from.
type Loaded struct {
	// Ref is what was read: a file, layout@digest or repo@digest.
	Ref    string
	Bundle *bundle.Bundle
	Bytes  []byte
	// Labels are the image's config labels; nil for a bundle file.
	Labels map[string]string
}

// Load reads arg, which is a bundle.json file, an OCI image layout
// directory (DIR for its only image, DIR:TAG or DIR@sha256:… for one of
// several), or an image reference in a registry reached with reg. A name
// that exists on disk, or that looks like a path (see looksLikePath), is
// never looked up in a registry: a mistyped file name would otherwise become
// a Docker Hub reference and a request over the network.
func Load(ctx context.Context, arg string, reg registry.Config) (*Loaded, error) {
	if dir, sel, ok := layoutArg(arg); ok {
		return loadLayout(dir, sel)
	}
	info, err := os.Stat(arg)
	switch {
	case err == nil && info.IsDir():
		return nil, fmt.Errorf("%s is a directory but not an OCI image layout (it has no oci-layout file)", arg)
	case err == nil:
		return loadFile(arg)
	case looksLikePath(arg):
		return nil, fmt.Errorf("read %s: %w", arg, pathError(err))
	}
	return loadRemote(ctx, arg, reg)
}

// looksLikePath reports whether a name that is not on disk was meant as a
// path: an image reference never starts with /, ./, ../ or ~, nor ends in a
// file extension.
func looksLikePath(arg string) bool {
	for _, p := range []string{"/", "./", "../", "~"} {
		if strings.HasPrefix(arg, p) {
			return true
		}
	}
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".json", ".yaml", ".yml", ".tar":
		return true
	}
	return false
}

// pathError drops the operation and path os.Stat put in err, which the
// caller names itself.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loadFile reads a bundle.json file.
func loadFile(p string) (*Loaded, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", p, err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s is not a Gatekiln bundle.json: %w", p, err)
	}
	return &Loaded{Ref: p, Bundle: b, Bytes: data}, nil
}

// loadRemote reads an image from its registry.
func loadRemote(ctx context.Context, arg string, reg registry.Config) (*Loaded, error) {
	ref, err := reg.ParseReference(arg)
	if err != nil {
		return nil, err
	}
	opts, err := reg.Remote(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", arg, err)
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", arg, err)
	}
	img, err := platformImage(desc)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", arg, err)
	}
	l, err := FromImage(img)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", arg, err)
	}
	l.Ref = ref.Context().Digest(desc.Digest.String()).String()
	return l, nil
}

// layoutArg splits DIR, DIR:TAG and DIR@sha256:… when DIR is an OCI layout.
func layoutArg(arg string) (dir, sel string, ok bool) {
	isLayout := func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "oci-layout"))
		return err == nil
	}
	if isLayout(arg) {
		return arg, "", true
	}
	if i := strings.LastIndex(arg, "@"); i > 0 && isLayout(arg[:i]) {
		return arg[:i], arg[i+1:], true
	}
	if i := strings.LastIndex(arg, ":"); i > 0 && isLayout(arg[:i]) {
		return arg[:i], arg[i+1:], true
	}
	return "", "", false
}

const refNameAnnotation = "org.opencontainers.image.ref.name"

// loadLayout picks the layout's entry sel names (a digest, a tag or a full
// reference in org.opencontainers.image.ref.name), or its only entry.
func loadLayout(dir, sel string) (*Loaded, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		refName := d.Annotations[refNameAnnotation]
		switch {
		case sel == "":
			found = append(found, d)
		case d.Digest.String() == sel, refName == sel, strings.HasSuffix(refName, ":"+sel):
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && sel != "":
		return nil, fmt.Errorf("oci layout %s: no image %q", dir, sel)
	case len(found) == 0:
		return nil, fmt.Errorf("oci layout %s: empty", dir)
	case len(found) > 1:
		var names []string
		for _, d := range found {
			names = append(names, d.Annotations[refNameAnnotation]+"@"+d.Digest.String())
		}
		return nil, fmt.Errorf("oci layout %s holds %d images; name one as %s:TAG or %s@DIGEST (%s)", dir, len(found), dir, dir, strings.Join(names, ", "))
	}
	d := found[0]
	var img v1.Image
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("oci layout %s: %w", dir, err)
		}
		if img, err = pick(child); err != nil {
			return nil, fmt.Errorf("oci layout %s: %w", dir, err)
		}
	} else if img, err = idx.Image(d.Digest); err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	l, err := FromImage(img)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	l.Ref = dir + "@" + d.Digest.String()
	return l, nil
}

func platformImage(desc *remote.Descriptor) (v1.Image, error) {
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		return pick(idx)
	}
	return desc.Image()
}

// pick chooses this machine's platform from an index, else its first image:
// every platform of a gateway image carries the same Bundle layer.
func pick(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var chosen *v1.Descriptor
	for i := range im.Manifests {
		d := &im.Manifests[i]
		if !d.MediaType.IsImage() {
			continue
		}
		if chosen == nil {
			chosen = d
		}
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			chosen = d
			break
		}
	}
	if chosen == nil {
		return nil, errors.New("the index holds no image")
	}
	return idx.Image(chosen.Digest)
}

// FromImage reads the Bundle at bundle.Path out of img's layers, the topmost
// layer that has it winning, and the image's labels.
func FromImage(img v1.Image) (*Loaded, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	want := strings.TrimPrefix(bundle.Path, "/")
	hiders := whiteoutsOf(want)
	for i := len(layers) - 1; i >= 0; i-- {
		data, found, removed, err := findInLayer(layers[i], want, hiders)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if found {
			b, err := bundle.Parse(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", bundle.Path, err)
			}
			return &Loaded{Bundle: b, Bytes: data, Labels: cf.Config.Labels}, nil
		}
		if removed {
			break
		}
	}
	return nil, fmt.Errorf("no %s in the image: not a Gatekiln gateway image", bundle.Path)
}

// maxBundleBytes bounds what is read from a layer entry claiming to be the Bundle.
const maxBundleBytes = 256 << 20

// whiteoutsOf lists the layer entries that hide file from lower layers
// (OCI image spec, layer changesets): its whiteout, and the whiteout or
// opaque marker of each directory above it.
func whiteoutsOf(file string) map[string]bool {
	hiders := map[string]bool{}
	for p := file; p != "." && p != "/"; p = path.Dir(p) {
		hiders[path.Join(path.Dir(p), ".wh."+path.Base(p))] = true
		if p != file {
			hiders[path.Join(p, ".wh..wh..opq")] = true
		}
	}
	hiders[".wh..wh..opq"] = true
	return hiders
}

// findInLayer reads want from one layer. removed: the layer hides want in the
// layers below it (a whiteout applies only to lower layers, so want in the
// same layer is still found).
func findInLayer(l v1.Layer, want string, hiders map[string]bool) (data []byte, found, removed bool, err error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, false, false, err
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, false, removed, nil
		}
		if err != nil {
			return nil, false, false, err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch {
		case hiders[name]:
			removed = true
		case name == want:
			if hdr.Typeflag != tar.TypeReg {
				return nil, false, false, fmt.Errorf("%s is not a regular file", bundle.Path)
			}
			data, err := io.ReadAll(io.LimitReader(tr, maxBundleBytes+1))
			if err != nil {
				return nil, false, false, err
			}
			if len(data) > maxBundleBytes {
				return nil, false, false, fmt.Errorf("%s is larger than %d bytes", bundle.Path, maxBundleBytes)
			}
			return data, true, false, nil
		}
	}
}
