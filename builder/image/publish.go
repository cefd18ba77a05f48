package image

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	lp, err := layout.FromPath(p.Path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("publish %s: %w", p.Path, err)
		}
		if lp, err = layout.Write(p.Path, empty.Index); err != nil {
			return "", fmt.Errorf("publish %s: %w", p.Path, err)
		}
	}
	ref := tag.TagStr()
	if err := lp.ReplaceIndex(idx, match.Annotation(refNameAnnotation, ref),
		layout.WithAnnotations(map[string]string{refNameAnnotation: ref})); err != nil {
		return "", fmt.Errorf("publish %s: %w", p.Path, err)
	}
	return p.Path + "@" + d.String(), nil
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

// CachedBase remembers each base it has read: a base is named by digest, so
// what it holds never changes, and a long-running builder need not fetch its
// manifests and configs again for every API.
type CachedBase struct {
	Source BaseSource

	mu   sync.Mutex
	seen map[string]v1.ImageIndex
}

// Base returns the cached index for ref, reading it once.
func (c *CachedBase) Base(ctx context.Context, ref name.Digest) (v1.ImageIndex, error) {
	key := ref.String()
	c.mu.Lock()
	idx, ok := c.seen[key]
	c.mu.Unlock()
	if ok {
		return idx, nil
	}
	idx, err := c.Source.Base(ctx, ref)
	if err != nil {
		return nil, err
	}
	idx, err = materialize(idx)
	if err != nil {
		return nil, fmt.Errorf("runtime base %s: %w", ref, err)
	}
	c.mu.Lock()
	if c.seen == nil {
		c.seen = map[string]v1.ImageIndex{}
	}
	c.seen[key] = idx
	c.mu.Unlock()
	return idx, nil
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

// materialize reads every manifest and config of idx once and keeps them in
// memory. Layers stay as idx gives them (for a remote base: lazily fetched and
// mountable into another repository of the same registry).
func materialize(idx v1.ImageIndex) (v1.ImageIndex, error) {
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return nil, err
	}
	ci := &memIndex{raw: raw, manifest: im, mediaType: mt, images: map[v1.Hash]v1.Image{}}
	for _, desc := range im.Manifests {
		if !desc.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, err
		}
		core := &memImage{src: img}
		if core.manifest, err = img.RawManifest(); err != nil {
			return nil, err
		}
		if core.config, err = img.RawConfigFile(); err != nil {
			return nil, err
		}
		if core.mediaType, err = img.MediaType(); err != nil {
			return nil, err
		}
		if ci.images[desc.Digest], err = partial.CompressedToImage(core); err != nil {
			return nil, err
		}
	}
	return ci, nil
}

// memIndex is an index whose manifest and child images are in memory.
type memIndex struct {
	raw       []byte
	manifest  *v1.IndexManifest
	mediaType types.MediaType
	images    map[v1.Hash]v1.Image
}

func (m *memIndex) MediaType() (types.MediaType, error)       { return m.mediaType, nil }
func (m *memIndex) Digest() (v1.Hash, error)                  { return partial.Digest(m) }
func (m *memIndex) Size() (int64, error)                      { return partial.Size(m) }
func (m *memIndex) IndexManifest() (*v1.IndexManifest, error) { return m.manifest.DeepCopy(), nil }
func (m *memIndex) RawManifest() ([]byte, error)              { return m.raw, nil }
func (m *memIndex) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := m.images[h]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %s: not in index", h)
}
func (m *memIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("index %s: nested indexes are not supported in a runtime base", h)
}

// memImage keeps an image's manifest and config in memory and asks the source
// image for layers.
type memImage struct {
	src              v1.Image
	manifest, config []byte
	mediaType        types.MediaType
}

func (m *memImage) RawConfigFile() ([]byte, error)      { return m.config, nil }
func (m *memImage) MediaType() (types.MediaType, error) { return m.mediaType, nil }
func (m *memImage) RawManifest() ([]byte, error)        { return m.manifest, nil }
func (m *memImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return m.src.LayerByDigest(h)
}
