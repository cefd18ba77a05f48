package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/registry"
)

// CollisionError says a tag already holds an image built from other inputs.
// Reusing it would deploy the wrong gateway; overwriting it would break
// whoever deployed it. Either way a person has to look.
type CollisionError struct {
	Tag string
	// Want is the inputs digest of this build; Got is the one the tag carries
	// (empty when the image has no gatekiln.io/inputs-digest label).
	Want, Got string
}

func (e *CollisionError) Error() string {
	got := e.Got
	if got == "" {
		got = "no " + LabelInputsDigest + " label"
	}
	return fmt.Sprintf("tag %s already holds an image with inputs digest %s, this build's is %s", e.Tag, got, e.Want)
}

// Checker asks a registry whether an API's image already exists. It keeps one
// go-containerregistry puller, so after the first check against a registry
// (which also pings /v2/ and authenticates) a check is one GET of the tag.
type Checker struct {
	puller *remote.Puller
}

// NewChecker returns a Checker using the given registry options.
func NewChecker(opts ...remote.Option) (*Checker, error) {
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	return &Checker{puller: p}, nil
}

// Check looks at tag. Absent: ("", nil). Present with the same inputs digest:
// its repo@sha256:…. Present with another: a *CollisionError naming both.
//
// The inputs digest is read from the manifest's annotations, which the Direct
// builder writes, so the answer takes one request. An image without the
// annotation (Kaniko cannot annotate manifests) costs one more request, for
// the config's label.
func (c *Checker) Check(ctx context.Context, tag name.Tag, inputsDigest string) (string, error) {
	desc, err := c.puller.Get(ctx, tag)
	if err != nil {
		if registry.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("check %s: %w", tag, err)
	}
	got, err := inputsDigestOf(desc)
	if err != nil {
		return "", fmt.Errorf("check %s: %w", tag, err)
	}
	if got != inputsDigest {
		return "", &CollisionError{Tag: tag.String(), Want: inputsDigest, Got: got}
	}
	return tag.Context().Digest(desc.Digest.String()).String(), nil
}

func inputsDigestOf(desc *remote.Descriptor) (string, error) {
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	if d, ok := m.Annotations[LabelInputsDigest]; ok {
		return d, nil
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return "", err
		}
		if len(im.Manifests) == 0 {
			return "", errors.New("index has no manifests")
		}
		if img, err = idx.Image(im.Manifests[0].Digest); err != nil {
			return "", err
		}
	} else {
		var err error
		if img, err = desc.Image(); err != nil {
			return "", err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	return cf.Config.Labels[LabelInputsDigest], nil
}

// Skipping wraps a Builder: when the request's tag already holds an image of
// the same inputs, it returns that image and builds nothing.
type Skipping struct {
	Checker *Checker
	Next    Builder
}

// Build checks, then builds only when the tag is absent.
func (s Skipping) Build(ctx context.Context, r Request) (string, error) {
	tag, err := r.Tag()
	if err != nil {
		return "", err
	}
	ref, err := s.Checker.Check(ctx, tag, r.InputsDigest)
	if err != nil || ref != "" {
		return ref, err
	}
	return s.Next.Build(ctx, r)
}
