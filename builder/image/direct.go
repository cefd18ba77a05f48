package image

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Request is what a builder needs to produce one API's image.
type Request struct {
	// Bundle is the canonical Bundle JSON.
	Bundle []byte
	// InputsDigest is the digest of (Bundle, runtime base digest, compiler
	// version), "sha256:<hex>" or bare hex.
	InputsDigest string
	// API names the API (the gatekiln.io/api label), e.g. "shop/petstore".
	API string
	// Version is the API's version; it starts the tag.
	Version string
	// Repository receives the image.
	Repository name.Repository
	// Base is the runtime base image, by digest.
	Base name.Digest
}

// Validate reports what is missing from the request.
func (r Request) Validate() error {
	var errs []error
	if len(r.Bundle) == 0 {
		errs = append(errs, errors.New("bundle: empty"))
	}
	if _, err := inputsHex(r.InputsDigest); err != nil {
		errs = append(errs, err)
	}
	if r.API == "" {
		errs = append(errs, errors.New("api: empty"))
	}
	if r.Repository.RepositoryStr() == "" {
		errs = append(errs, errors.New("repository: empty"))
	}
	if r.Base.DigestStr() == "" {
		errs = append(errs, errors.New("base: not a digest reference"))
	}
	return errors.Join(errs...)
}

// Tag is where the request's image goes: <repository>:<version>-<digest[:12]>.
func (r Request) Tag() (name.Tag, error) {
	t, err := TagFor(r.Version, r.InputsDigest)
	if err != nil {
		return name.Tag{}, err
	}
	return r.Repository.Tag(t), nil
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

func inputsHex(d string) (string, error) {
	h := strings.TrimPrefix(d, "sha256:")
	if !hexDigest.MatchString(h) {
		return "", fmt.Errorf("inputs digest %q: want sha256 hex", d)
	}
	return h, nil
}

// maxVersionInTag leaves room for "-" and 12 hex digits in a 128-character tag.
const maxVersionInTag = 128 - 13

var notInTag = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// TagFor returns "<version>-<digest[:12]>" with the version made a legal tag:
// runs of other characters become "-", it may not start with "." or "-", and
// it is cut to fit 128 characters. An empty version becomes "0".
func TagFor(version, inputsDigest string) (string, error) {
	h, err := inputsHex(inputsDigest)
	if err != nil {
		return "", err
	}
	v := notInTag.ReplaceAllString(version, "-")
	v = strings.TrimLeft(v, ".-")
	if len(v) > maxVersionInTag {
		v = v[:maxVersionInTag]
	}
	v = strings.TrimRight(v, ".-")
	if v == "" {
		v = "0"
	}
	return v + "-" + h[:12], nil
}

// Labels are the image labels both builders set (the Kaniko Dockerfile's
// LABEL lines come from this map too).
func Labels(r Request) map[string]string {
	l := map[string]string{
		LabelInputsDigest: r.InputsDigest,
		LabelAPI:          r.API,
		OCITitle:          r.API,
		OCIDescription:    "Gatekiln gateway for " + r.API,
		OCIBaseName:       r.Base.Context().Name(),
		OCIBaseDigest:     r.Base.DigestStr(),
	}
	if r.Version != "" {
		l[OCIVersion] = r.Version
	}
	return l
}

// BundleLayer is the one layer the per-API image adds: the Bundle at
// /etc/gatekiln/bundle.json, 0644, root, dated Epoch.
func BundleLayer(bundleJSON []byte) (v1.Layer, error) {
	return NewLayer([]Entry{{Path: bundle.Path, Data: bundleJSON, Mode: 0o644}})
}

// BundleHistory is the history entry of the Bundle layer; the Kaniko
// Dockerfile's COPY line is the same instruction.
const BundleHistory = "COPY bundle.json " + bundle.Path

// Assemble appends the Bundle layer to every platform of base and sets the
// labels, plus annotations on the index and each manifest so that the skip
// check reads the inputs digest from the one manifest it fetches. It does no
// I/O beyond what base's methods do.
func Assemble(base v1.ImageIndex, r Request) (v1.ImageIndex, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	layer, err := BundleLayer(r.Bundle)
	if err != nil {
		return nil, err
	}
	labels := Labels(r)
	annotations := map[string]string{
		LabelInputsDigest: r.InputsDigest,
		LabelAPI:          r.API,
		OCIBaseName:       labels[OCIBaseName],
		OCIBaseDigest:     labels[OCIBaseDigest],
	}
	im, err := base.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", r.Base, err)
	}
	out := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := 0
	for _, desc := range im.Manifests {
		if attestation(desc) {
			// An attestation describes the base's image, not ours: it is
			// left out rather than given a Bundle layer it does not run.
			continue
		}
		images++
		if !desc.MediaType.IsImage() {
			return nil, fmt.Errorf("base %s: manifest %s is %s, not an image", r.Base, desc.Digest, desc.MediaType)
		}
		img, err := base.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", r.Base, err)
		}
		img, err = appendBundle(img, layer, labels)
		if err != nil {
			return nil, fmt.Errorf("base %s platform %s: %w", r.Base, desc.Platform, err)
		}
		img = mutate.Annotations(img, annotations).(v1.Image)
		out = mutate.AppendManifests(out, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: desc.Platform},
		})
	}
	if images == 0 {
		return nil, fmt.Errorf("base %s: the index holds no image, only attestations", r.Base)
	}
	return mutate.Annotations(out, annotations).(v1.ImageIndex), nil
}

// attestation reports an index entry that is an attestation of another
// entry, as BuildKit writes them (its platform unknown/unknown).
func attestation(desc v1.Descriptor) bool {
	if desc.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return desc.Platform != nil && desc.Platform.OS == "unknown" && desc.Platform.Architecture == "unknown"
}

func appendBundle(img v1.Image, layer v1.Layer, labels map[string]string) (v1.Image, error) {
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: BundleHistory, Comment: "gatekiln direct"},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	merged := map[string]string{}
	for k, v := range cf.Config.Labels {
		merged[k] = v
	}
	for k, v := range labels {
		merged[k] = v
	}
	cf.Config.Labels = merged
	return mutate.ConfigFile(img, cf)
}

// Builder produces one API's image and publishes it, returning repo@sha256:….
type Builder interface {
	Build(ctx context.Context, r Request) (string, error)
}
