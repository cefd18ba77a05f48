package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Publisher writes an image index under a tag and returns where it is, by
// digest.
type Publisher interface {
	Publish(ctx context.Context, idx v1.ImageIndex, tag name.Tag) (string, error)
}

// RegistryPublisher pushes to a registry. go-containerregistry uploads only
// the blobs the repository lacks, mounting from another repository of the
// same registry when a layer came from there.
type RegistryPublisher struct {
	Options []remote.Option
}

// Publish pushes idx to tag and returns repo@sha256:….
func (p RegistryPublisher) Publish(ctx context.Context, idx v1.ImageIndex, tag name.Tag) (string, error) {
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", tag, err)
	}
	opts := append(append([]remote.Option(nil), p.Options...), remote.WithContext(ctx))
	if err := remote.WriteIndex(tag, idx, opts...); err != nil {
		return "", fmt.Errorf("publish %s: %w", tag, err)
	}
	return tag.Context().Digest(d.String()).String(), nil
}

// LayoutPublisher writes to an OCI image layout directory, replacing any
// earlier entry with the same tag (org.opencontainers.image.ref.name, which
// holds the tag alone, as the image-layout spec suggests).
type LayoutPublisher struct {
	Path string
}

const refNameAnnotation = "org.opencontainers.image.ref.name"

// Publish writes idx into the layout and returns <path>@sha256:….
func (p LayoutPublisher) Publish(_ context.Context, idx v1.ImageIndex, tag name.Tag) (string, error) {
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", p.Path, err)
	}
	lp, err := openLayout(p.Path)
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", p.Path, err)
	}
	ref := tag.TagStr()
	if err := lp.ReplaceIndex(idx, match.Annotation(refNameAnnotation, ref),
		layout.WithAnnotations(map[string]string{refNameAnnotation: ref})); err != nil {
		return "", fmt.Errorf("publish %s: %w", p.Path, err)
	}
	return p.Path + "@" + d.String(), nil
}

// openLayout opens the OCI layout at dir, or starts one when dir is missing
// or empty. Any other directory is refused: index.json and blobs/ written
// into, say, the definition's own folder would be read by the next compile
// of that folder and change its digest.
func openLayout(dir string) (layout.Path, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err == nil {
		return layout.FromPath(dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", err
	case len(entries) > 0:
		return "", errors.New("the directory is not empty and not an OCI image layout (it has no oci-layout file): give a new or empty directory")
	}
	return layout.Write(dir, empty.Index)
}

// BaseSource returns the runtime base image as an index.
type BaseSource interface {
	Base(ctx context.Context, ref name.Digest) (v1.ImageIndex, error)
}

// RemoteBase reads the base from its registry. A single-platform image is
// returned as a one-entry index.
type RemoteBase struct {
	Options []remote.Option
}

// Base fetches ref.
func (b RemoteBase) Base(ctx context.Context, ref name.Digest) (v1.ImageIndex, error) {
	opts := append(append([]remote.Option(nil), b.Options...), remote.WithContext(ctx))
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("runtime base %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		return desc.ImageIndex()
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("runtime base %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("runtime base %s: %w", ref, err)
	}
	p := cf.Platform()
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}}), nil
}

// CachedBase reads bases from their registry like RemoteBase and keeps their
// manifests and configs: a base is named by digest, so what it holds never
// changes, and a long-running builder need not fetch them again for every API.
// Layers are not kept; they are fetched (or, within one registry, mounted)
// with the context of each Base call.
type CachedBase struct {
	Options []remote.Option

	mu   sync.Mutex
	seen map[string]*snapshot
}

// Base returns ref, reading its manifests and configs on first use only.
func (c *CachedBase) Base(ctx context.Context, ref name.Digest) (v1.ImageIndex, error) {
	key := ref.String()
	c.mu.Lock()
	snap, ok := c.seen[key]
	c.mu.Unlock()
	if !ok {
		idx, err := RemoteBase{Options: c.Options}.Base(ctx, ref)
		if err != nil {
			return nil, err
		}
		if snap, err = takeSnapshot(idx); err != nil {
			return nil, fmt.Errorf("runtime base %s: %w", ref, err)
		}
		c.mu.Lock()
		if c.seen == nil {
			c.seen = map[string]*snapshot{}
		}
		c.seen[key] = snap
		c.mu.Unlock()
	}
	opts := append(append([]remote.Option(nil), c.Options...), remote.WithContext(ctx))
	return &memIndex{snap: snap, repo: ref.Context(), opts: opts}, nil
}

// Direct is the fast builder: it appends the Bundle layer to the runtime base
// in process and publishes the result.
type Direct struct {
	Base      BaseSource
	Publisher Publisher
}

// Build assembles r's image and publishes it under r.Tag().
func (d Direct) Build(ctx context.Context, r Request) (string, error) {
	tag, err := r.Tag()
	if err != nil {
		return "", err
	}
	base, err := d.Base.Base(ctx, r.Base)
	if err != nil {
		return "", err
	}
	idx, err := Assemble(base, r)
	if err != nil {
		return "", err
	}
	return d.Publisher.Publish(ctx, idx, tag)
}

// snapshot is an index's manifests and configs, in memory.
type snapshot struct {
	raw       []byte
	manifest  *v1.IndexManifest
	mediaType types.MediaType
	images    map[v1.Hash]*imageSnapshot
}

type imageSnapshot struct {
	raw, config []byte
	manifest    *v1.Manifest
	configFile  *v1.ConfigFile
	mediaType   types.MediaType
}

func takeSnapshot(idx v1.ImageIndex) (*snapshot, error) {
	s := &snapshot{images: map[v1.Hash]*imageSnapshot{}}
	var err error
	if s.raw, err = idx.RawManifest(); err != nil {
		return nil, err
	}
	if s.manifest, err = idx.IndexManifest(); err != nil {
		return nil, err
	}
	if s.mediaType, err = idx.MediaType(); err != nil {
		return nil, err
	}
	for _, desc := range s.manifest.Manifests {
		if !desc.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, err
		}
		is := &imageSnapshot{}
		if is.raw, err = img.RawManifest(); err != nil {
			return nil, err
		}
		if is.manifest, err = img.Manifest(); err != nil {
			return nil, err
		}
		if is.config, err = img.RawConfigFile(); err != nil {
			return nil, err
		}
		if is.configFile, err = img.ConfigFile(); err != nil {
			return nil, err
		}
		if is.mediaType, err = img.MediaType(); err != nil {
			return nil, err
		}
		if len(is.configFile.RootFS.DiffIDs) != len(is.manifest.Layers) {
			return nil, fmt.Errorf("image %s: %d layers but %d diff IDs", desc.Digest, len(is.manifest.Layers), len(is.configFile.RootFS.DiffIDs))
		}
		s.images[desc.Digest] = is
	}
	return s, nil
}

// memIndex serves a snapshot; its layers come from repo.
type memIndex struct {
	snap *snapshot
	repo name.Repository
	opts []remote.Option
}

func (m *memIndex) MediaType() (types.MediaType, error)       { return m.snap.mediaType, nil }
func (m *memIndex) Digest() (v1.Hash, error)                  { return partial.Digest(m) }
func (m *memIndex) Size() (int64, error)                      { return partial.Size(m) }
func (m *memIndex) IndexManifest() (*v1.IndexManifest, error) { return m.snap.manifest.DeepCopy(), nil }
func (m *memIndex) RawManifest() ([]byte, error)              { return m.snap.raw, nil }
func (m *memIndex) Image(h v1.Hash) (v1.Image, error) {
	if is, ok := m.snap.images[h]; ok {
		return &memImage{snap: is, repo: m.repo, opts: m.opts}, nil
	}
	return nil, fmt.Errorf("image %s: not in index", h)
}
func (m *memIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s: nested indexes are not supported in a runtime base", h)
}

// memImage serves an image snapshot. Its layers are mountable from repo and
// answer digest, size and diff ID without a request.
type memImage struct {
	snap *imageSnapshot
	repo name.Repository
	opts []remote.Option
}

func (m *memImage) MediaType() (types.MediaType, error) { return m.snap.mediaType, nil }
func (m *memImage) Size() (int64, error)                { return int64(len(m.snap.raw)), nil }
func (m *memImage) Digest() (v1.Hash, error)            { return sha256Hash(m.snap.raw), nil }
func (m *memImage) RawManifest() ([]byte, error)        { return m.snap.raw, nil }
func (m *memImage) Manifest() (*v1.Manifest, error)     { return m.snap.manifest.DeepCopy(), nil }
func (m *memImage) RawConfigFile() ([]byte, error)      { return m.snap.config, nil }
func (m *memImage) ConfigFile() (*v1.ConfigFile, error) { return m.snap.configFile.DeepCopy(), nil }
func (m *memImage) ConfigName() (v1.Hash, error)        { return m.snap.manifest.Config.Digest, nil }
func (m *memImage) Layers() ([]v1.Layer, error) {
	out := make([]v1.Layer, 0, len(m.snap.manifest.Layers))
	for i := range m.snap.manifest.Layers {
		out = append(out, m.layer(i))
	}
	return out, nil
}
func (m *memImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for i, d := range m.snap.manifest.Layers {
		if d.Digest == h {
			return m.layer(i), nil
		}
	}
	return nil, fmt.Errorf("layer %s: not in image", h)
}
func (m *memImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for i, d := range m.snap.configFile.RootFS.DiffIDs {
		if d == h {
			return m.layer(i), nil
		}
	}
	return nil, fmt.Errorf("layer with diff ID %s: not in image", h)
}

func (m *memImage) layer(i int) v1.Layer {
	d := m.snap.manifest.Layers[i]
	ref := m.repo.Digest(d.Digest.String())
	return &remote.MountableLayer{
		Layer:     &lazyLayer{desc: d, diffID: m.snap.configFile.RootFS.DiffIDs[i], ref: ref, opts: m.opts},
		Reference: ref,
	}
}

// lazyLayer knows a layer's descriptor and fetches its bytes only if asked.
type lazyLayer struct {
	desc   v1.Descriptor
	diffID v1.Hash
	ref    name.Digest
	opts   []remote.Option
}

func (l *lazyLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *lazyLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *lazyLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *lazyLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *lazyLayer) Compressed() (io.ReadCloser, error) {
	rl, err := remote.Layer(l.ref, l.opts...)
	if err != nil {
		return nil, err
	}
	return rl.Compressed()
}
func (l *lazyLayer) Uncompressed() (io.ReadCloser, error) {
	rl, err := remote.Layer(l.ref, l.opts...)
	if err != nil {
		return nil, err
	}
	return rl.Uncompressed()
}
