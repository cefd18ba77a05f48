// Package promote copies a gateway image, every platform of it, by digest
// from one registry to another — what CI does to move the image QA tested into
// production. The destination ends up with the very same digest or the copy
// fails; a copy that is already there moves nothing. What is attached to the
// image (cosign signatures, attestations and SBOMs, OCI referrers) goes with
// it, so a policy that verifies signatures in production admits it.
package promote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/gatekiln/gatekiln/builder/registry"
)

// Failures a caller (a CI job) tells apart.
var (
	ErrAuth     = errors.New("registry refused the credentials")
	ErrNotFound = errors.New("image not found")
	ErrMismatch = errors.New("destination digest differs from the source")
)

// Request says what to copy where.
type Request struct {
	// Source is the image, by tag or digest.
	Source name.Reference
	// Destination is the repository to copy into.
	Destination name.Repository
	// Tag is the destination tag to (re)point at the image; empty means the
	// source's tag when the source is a tag, else none.
	Tag string
	// SourceOptions and DestinationOptions reach each registry.
	SourceOptions, DestinationOptions []remote.Option
	// DryRun reports what would be copied and writes nothing.
	DryRun bool
	// SkipAttached leaves out what is attached to the image and its
	// platforms: the cosign tags sha256-<hex>.sig, .att and .sbom, and the
	// OCI referrers.
	SkipAttached bool
}

// Result says what happened.
type Result struct {
	// Source and Destination are repo@sha256:… of the same digest.
	Source, Destination string
	// Tag is the destination tag written (or that would be), if any.
	Tag string
	// Platforms lists the platforms copied (empty for a single image
	// without platform information).
	Platforms []string
	// Blobs counts the distinct blobs (layers and configs); Missing how many
	// of them the destination lacked before the copy. Known in dry runs and
	// when the destination already held the image (then Missing is 0).
	Blobs, Missing int
	// AlreadyPresent: the destination held the digest before; nothing was
	// uploaded.
	AlreadyPresent bool
	// TagUpdated: the destination tag was written (it was absent or pointed
	// elsewhere).
	TagUpdated bool
	// Attached lists the attached artifacts copied (or that would be), which
	// the destination lacked: cosign tags ("sha256-<hex>.sig") and referrers
	// ("referrer sha256:… (artifact type)").
	Attached []string
}

// Promote copies r.Source to r.Destination by digest.
func Promote(ctx context.Context, r Request) (*Result, error) {
	srcOpts := withContext(ctx, r.SourceOptions)
	dstOpts := withContext(ctx, r.DestinationOptions)

	desc, err := remote.Get(r.Source, srcOpts...)
	if err != nil {
		return nil, classify("source", r.Source.String(), err)
	}
	digest := desc.Digest
	dstRepo := r.Destination
	res := &Result{
		Source:      r.Source.Context().Digest(digest.String()).String(),
		Destination: dstRepo.Digest(digest.String()).String(),
	}
	tagName := r.Tag
	if t, ok := r.Source.(name.Tag); ok && tagName == "" {
		tagName = t.TagStr()
	}
	var dstTag *name.Tag
	if tagName != "" {
		tag := dstRepo.Tag(tagName)
		dstTag = &tag
		res.Tag = tag.String()
	}

	blobs, platforms, err := contents(desc)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", res.Source, err)
	}
	res.Platforms = platforms
	res.Blobs = len(blobs)

	present, err := headDigest(dstRepo.Digest(digest.String()), dstOpts)
	if err != nil {
		return nil, classify("destination", dstRepo.String(), err)
	}
	res.AlreadyPresent = present
	if !present {
		for _, b := range blobs {
			ok, err := blobExists(ctx, dstRepo, b, r.DestinationOptions)
			if err != nil {
				return nil, classify("destination", dstRepo.String(), err)
			}
			if !ok {
				res.Missing++
			}
		}
	}
	tagNeedsWrite := false
	if dstTag != nil {
		cur, err := remote.Head(*dstTag, dstOpts...)
		switch {
		case err == nil:
			tagNeedsWrite = cur.Digest != digest
		case registry.IsNotFound(err):
			tagNeedsWrite = true
		default:
			return nil, classify("destination", dstTag.String(), err)
		}
	}
	var attached []attachment
	if !r.SkipAttached {
		// Listed before anything is written: a source that cannot be read
		// fails the promote with the destination untouched.
		attached, err = planAttached(desc, r.Source.Context(), dstRepo, srcOpts, dstOpts)
		if err != nil {
			return nil, fmt.Errorf("list what is attached to %s: %w", res.Source, err)
		}
		res.Attached = attachedNames(attached)
	}
	if r.DryRun {
		res.TagUpdated = tagNeedsWrite
		return res, nil
	}

	if !present || tagNeedsWrite {
		var target name.Reference = dstRepo.Digest(digest.String())
		if dstTag != nil {
			target = *dstTag
		}
		// When the digest is there, only the tag moves: go-containerregistry
		// finds every blob present and writes the manifest under the tag.
		if err := write(target, desc, dstOpts); err != nil {
			return nil, classify("destination", target.String(), err)
		}
		res.TagUpdated = tagNeedsWrite
	}

	if err := verify(dstRepo.Digest(digest.String()), digest, res.Source, dstOpts); err != nil {
		return nil, err
	}
	if dstTag != nil {
		if err := verify(*dstTag, digest, res.Source, dstOpts); err != nil {
			return nil, err
		}
	}
	// After the image, so that a signature never arrives before what it
	// signs.
	for _, a := range attached {
		if err := copyAttached(a, dstOpts); err != nil {
			return nil, fmt.Errorf("%s is promoted but not everything attached to it: copy %s: %w", res.Destination, a.name, err)
		}
	}
	return res, nil
}

// verify checks that the destination ref holds want: a registry that
// rewrote the manifest would answer with another digest.
func verify(ref name.Reference, want v1.Hash, source string, opts []remote.Option) error {
	got, err := remote.Head(ref, opts...)
	if err != nil {
		return classify("destination", ref.String(), err)
	}
	if got.Digest != want {
		return fmt.Errorf("%w: %s holds %s, source %s is %s", ErrMismatch, ref, got.Digest, source, want)
	}
	return nil
}

func write(target name.Reference, desc *remote.Descriptor, opts []remote.Option) error {
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		return remote.WriteIndex(target, idx, opts...)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	return remote.Write(target, img, opts...)
}

// contents lists the distinct blobs (configs and layers) of every platform,
// sorted, and the platforms.
func contents(desc *remote.Descriptor) ([]v1.Hash, []string, error) {
	set := map[v1.Hash]bool{}
	var platforms []string
	addImage := func(img v1.Image) error {
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		set[m.Config.Digest] = true
		for _, l := range m.Layers {
			set[l.Digest] = true
		}
		return nil
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, nil, err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, nil, err
		}
		for _, d := range im.Manifests {
			if !d.MediaType.IsImage() {
				return nil, nil, fmt.Errorf("manifest %s is %s; nested indexes are not promoted", d.Digest, d.MediaType)
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, nil, err
			}
			if err := addImage(img); err != nil {
				return nil, nil, err
			}
			if d.Platform != nil {
				platforms = append(platforms, d.Platform.String())
			}
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return nil, nil, err
		}
		if err := addImage(img); err != nil {
			return nil, nil, err
		}
		if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
			platforms = append(platforms, cf.Platform().String())
		}
	}
	out := make([]v1.Hash, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, platforms, nil
}

func headDigest(ref name.Digest, opts []remote.Option) (bool, error) {
	_, err := remote.Head(ref, opts...)
	if err == nil {
		return true, nil
	}
	if registry.IsNotFound(err) {
		return false, nil
	}
	return false, err
}

func blobExists(ctx context.Context, repo name.Repository, h v1.Hash, opts []remote.Option) (bool, error) {
	l, err := remote.Layer(repo.Digest(h.String()), withContext(ctx, opts)...)
	if err != nil {
		return false, err
	}
	if _, err := l.Size(); err != nil {
		if registry.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func withContext(ctx context.Context, opts []remote.Option) []remote.Option {
	return append(append([]remote.Option(nil), opts...), remote.WithContext(ctx))
}

// classify wraps err with the sentinel a caller can test and says which side
// (source or destination) it concerns.
func classify(side, what string, err error) error {
	// go-containerregistry checks a manifest fetched by digest against that
	// digest itself, with an untyped error; it is still a mismatch.
	if strings.Contains(err.Error(), "does not match requested digest") {
		return fmt.Errorf("%s %s: %w: %w", side, what, ErrMismatch, err)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%s %s: %w (HTTP %d): %w", side, what, ErrAuth, te.StatusCode, err)
		case registry.IsNotFound(err):
			return fmt.Errorf("%s %s: %w: %w", side, what, ErrNotFound, err)
		}
	}
	return fmt.Errorf("%s %s: %w", side, what, err)
}

// ParseDestination parses DST as given on a command line: a repository, or a
// repository and a tag. A digest is refused: the digest is the source's.
func ParseDestination(s string, parse func(string) (name.Reference, error)) (name.Repository, string, error) {
	ref, err := parse(s)
	if err != nil {
		return name.Repository{}, "", err
	}
	if _, ok := ref.(name.Digest); ok {
		return name.Repository{}, "", fmt.Errorf("destination %q: give a repository or repository:tag; the digest is the source's", s)
	}
	last := s[strings.LastIndex(s, "/")+1:]
	if strings.Contains(last, ":") {
		return ref.Context(), ref.Identifier(), nil
	}
	return ref.Context(), "", nil
}
