package promote

import (
	"fmt"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/registry"
)

// cosignSuffixes are the tags cosign gives what it attaches to a digest,
// sha256-<hex>.<suffix>: signatures, attestations and SBOMs.
var cosignSuffixes = []string{"sig", "att", "sbom"}

// attachment is an artifact attached to the image (or to one of its
// platforms) that the destination lacks.
type attachment struct {
	// name is what Result.Attached reports.
	name string
	// from and src are the source manifest; it is copied as is, so its
	// digest stays.
	from name.Reference
	src  *remote.Descriptor
	// target is the destination: the same tag for a cosign artifact, the
	// digest for a referrer.
	target name.Reference
	// relist: a referrer the destination holds but does not list; putting
	// its manifest again makes the registry (or go-containerregistry's
	// fallback tag) list it.
	relist bool
}

// maxAttachedDepth bounds how far planAttached follows attachments of
// attachments: the image's signatures and SBOMs (1), a signature of an SBOM
// (2), and one more level for good measure.
const maxAttachedDepth = 3

// planAttached lists what is attached to the image's digest and to each of
// its platforms' in the source and missing from the destination, and what is
// attached to those in turn (a signed SBOM), up to maxAttachedDepth. It
// writes nothing, so a failure here leaves the destination as it was.
func planAttached(desc *remote.Descriptor, srcRepo, dstRepo name.Repository, srcOpts, dstOpts []remote.Option) ([]attachment, error) {
	level, err := subjects(desc)
	if err != nil {
		return nil, err
	}
	seen := map[v1.Hash]bool{}
	for _, s := range level {
		seen[s] = true
	}
	var out []attachment
	for depth := 0; depth < maxAttachedDepth && len(level) > 0; depth++ {
		var next []v1.Hash
		for _, s := range level {
			found, missing, err := attachedTo(s, srcRepo, dstRepo, srcOpts, dstOpts)
			if err != nil {
				return nil, err
			}
			out = append(out, missing...)
			// Followed whether or not the destination has them: what is
			// attached to them may still be missing there.
			for _, d := range found {
				if !seen[d] {
					seen[d] = true
					next = append(next, d)
				}
			}
		}
		level = next
	}
	return out, nil
}

// attachedTo returns the digests of everything the source attaches to
// subject, and those of them the destination lacks.
func attachedTo(subject v1.Hash, srcRepo, dstRepo name.Repository, srcOpts, dstOpts []remote.Option) (found []v1.Hash, missing []attachment, err error) {
	for _, suffix := range cosignSuffixes {
		d, a, err := cosignTag(subject, suffix, srcRepo, dstRepo, srcOpts, dstOpts)
		if err != nil {
			return nil, nil, err
		}
		if d != nil {
			found = append(found, *d)
		}
		if a != nil {
			missing = append(missing, *a)
		}
	}
	refs, absent, err := referrersOf(subject, srcRepo, dstRepo, srcOpts, dstOpts)
	if err != nil {
		return nil, nil, err
	}
	return append(found, refs...), append(missing, absent...), nil
}

// subjects are the digests something can be attached to: the image's and,
// for an index, each platform manifest's (cosign signs both).
func subjects(desc *remote.Descriptor) ([]v1.Hash, error) {
	out := []v1.Hash{desc.Digest}
	if !desc.MediaType.IsIndex() {
		return out, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	seen := map[v1.Hash]bool{desc.Digest: true}
	for _, d := range im.Manifests {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			out = append(out, d.Digest)
		}
	}
	return out, nil
}

// cosignTag looks for the cosign artifact sha256-<hex>.<suffix> of subject
// in the source; a source without it is the common case, not an error. It
// returns the artifact's digest when the source has it, and the attachment
// to copy when the destination tag does not point at that digest.
func cosignTag(subject v1.Hash, suffix string, srcRepo, dstRepo name.Repository, srcOpts, dstOpts []remote.Option) (*v1.Hash, *attachment, error) {
	tag := fmt.Sprintf("%s-%s.%s", subject.Algorithm, subject.Hex, suffix)
	src := srcRepo.Tag(tag)
	d, err := remote.Get(src, srcOpts...)
	if registry.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, classify("source", src.String(), err)
	}
	dst := dstRepo.Tag(tag)
	cur, err := remote.Head(dst, dstOpts...)
	switch {
	case err == nil && cur.Digest == d.Digest:
		return &d.Digest, nil, nil
	case err != nil && !registry.IsNotFound(err):
		return nil, nil, classify("destination", dst.String(), err)
	}
	return &d.Digest, &attachment{name: tag, from: src, src: d, target: dst}, nil
}

// referrersOf returns the digests of the source's referrers of subject (but
// for those deleted since), and those of them the destination does not
// list, by digest order.
func referrersOf(subject v1.Hash, srcRepo, dstRepo name.Repository, srcOpts, dstOpts []remote.Option) ([]v1.Hash, []attachment, error) {
	want, err := referrers(srcRepo.Digest(subject.String()), "source", srcOpts)
	if err != nil || len(want) == 0 {
		return nil, nil, err
	}
	have, err := referrers(dstRepo.Digest(subject.String()), "destination", dstOpts)
	if err != nil {
		return nil, nil, err
	}
	listed := map[v1.Hash]bool{}
	for _, d := range have {
		listed[d.Digest] = true
	}
	var found []v1.Hash
	var out []attachment
	for _, d := range want {
		src := srcRepo.Digest(d.Digest.String())
		if listed[d.Digest] {
			found = append(found, d.Digest)
			continue
		}
		m, err := remote.Get(src, srcOpts...)
		if registry.IsNotFound(err) {
			// The fallback tag still lists a referrer deleted since (nothing
			// removes it from there): the source has nothing to copy.
			continue
		}
		if err != nil {
			return nil, nil, classify("source", src.String(), err)
		}
		found = append(found, d.Digest)
		dst := dstRepo.Digest(d.Digest.String())
		present, err := headDigest(dst, dstOpts)
		if err != nil {
			return nil, nil, classify("destination", dst.String(), err)
		}
		kind := d.ArtifactType
		if kind == "" {
			kind = string(d.MediaType)
		}
		out = append(out, attachment{name: fmt.Sprintf("referrer %s (%s)", d.Digest, kind), from: src, src: m, target: dst, relist: present})
	}
	return found, out, nil
}

// referrers lists the manifests whose subject is d, through the referrers
// API or, on registries without it (distribution 2.8), the fallback tag
// sha256-<hex>; go-containerregistry picks.
func referrers(d name.Digest, side string, opts []remote.Option) ([]v1.Descriptor, error) {
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil, classify(side, "referrers of "+d.String(), err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s referrers of %s: %w", side, d, err)
	}
	out := append([]v1.Descriptor(nil), im.Manifests...)
	sort.Slice(out, func(i, j int) bool { return out[i].Digest.String() < out[j].Digest.String() })
	return out, nil
}

// copyAttached copies a with the image's machinery: blobs the destination
// lacks, then the manifest, byte for byte. Writing a manifest that has a
// subject makes go-containerregistry add it to the destination's fallback
// tag when the registry has no referrers API.
func copyAttached(a attachment, opts []remote.Option) error {
	var err error
	if a.relist {
		// Its blobs are there; a write would find the manifest present and
		// stop before listing it.
		err = remote.Put(a.target, a.src, opts...)
	} else {
		err = write(a.target, a.src, opts)
	}
	if err != nil {
		return classify("destination", a.target.String(), err)
	}
	return verify(a.target, a.src.Digest, a.from.String(), opts)
}

func attachedNames(as []attachment) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.name)
	}
	return out
}
