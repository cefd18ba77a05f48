package operator

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// imageFacts is what the image decision reads. Lookup is the one question
// that costs a registry round trip; it is asked only when the checks before it
// did not decide.
type imageFacts struct {
	// Prebuilt is spec.image.ref.
	Prebuilt string
	// InputsDigest and Tag identify the image these inputs make.
	InputsDigest string
	Tag          string
	// ForceRebuild is spec.build.forceRebuild.
	ForceRebuild string
	// Status is the API's status before this reconcile.
	Status *v1alpha1.APIStatus
	// Lookup asks the registry for Tag: the image by digest when present with
	// these inputs, "" when absent, an error when unreachable or a collision.
	Lookup func() (string, error)
}

// imageDecision is what a check decided.
type imageDecision struct {
	// Image is the image to deploy, by digest; empty means build.
	Image   string
	Build   bool
	Reason  string
	Message string
	// Err is set when the decision is that the image cannot be had now.
	Err error
}

// imageCheck decides, or says it cannot (ok false) and lets the next one try.
type imageCheck func(f *imageFacts) (d imageDecision, ok bool)

// imageChecks are asked in order; the first that decides wins and its reason
// becomes the Built condition's reason.
var imageChecks = []imageCheck{
	usePrebuiltImage,
	forcedRebuild,
	keepBuiltImage,
	useRegistryImage,
	buildImage,
}

func decideImage(f *imageFacts) imageDecision {
	for _, check := range imageChecks {
		if d, ok := check(f); ok {
			return d
		}
	}
	// buildImage always decides; reaching here is a programming error.
	return imageDecision{Build: true, Reason: ReasonBuilding, Message: "no check decided; building"}
}

// usePrebuiltImage: spec.image.ref names the image; nothing is built.
func usePrebuiltImage(f *imageFacts) (imageDecision, bool) {
	if f.Prebuilt == "" {
		return imageDecision{}, false
	}
	return imageDecision{Image: f.Prebuilt, Reason: ReasonPrebuilt, Message: "spec.image.ref names a prebuilt image"}, true
}

// forcedRebuild: spec.build.forceRebuild changed since the last build, so the
// registry's copy is not good enough.
func forcedRebuild(f *imageFacts) (imageDecision, bool) {
	if f.ForceRebuild == "" || f.ForceRebuild == f.Status.ForceRebuild {
		return imageDecision{}, false
	}
	return imageDecision{Build: true, Reason: ReasonBuilding, Message: fmt.Sprintf("spec.build.forceRebuild is %q: building %s again", f.ForceRebuild, f.Tag)}, true
}

// keepBuiltImage: the status already holds the image these very inputs made,
// so a resync costs no registry round trip.
func keepBuiltImage(f *imageFacts) (imageDecision, bool) {
	s := f.Status
	if s.Image == "" || s.InputsDigest != f.InputsDigest || !sameRepository(s.Image, f.Tag) {
		return imageDecision{}, false
	}
	c := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionBuilt)
	if c == nil || c.Status != "True" || c.Reason == ReasonPrebuilt {
		return imageDecision{}, false
	}
	return imageDecision{Image: s.Image, Reason: c.Reason, Message: c.Message}, true
}

// sameRepository reports whether image (by digest) is in tag's repository:
// the inputs digest leaves out where the image goes, so a new registry or
// repository must be looked up (and pushed to) rather than kept.
func sameRepository(image, tag string) bool {
	repo, _, ok := strings.Cut(image, "@")
	if !ok {
		return false
	}
	r, err := name.NewRepository(repo)
	if err != nil {
		return false
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return false
	}
	return r.Name() == t.Context().Name()
}

// errTagCollision marks a registry tag that holds an image of other inputs.
var errTagCollision = errors.New("tag collision")

// useRegistryImage: the registry has the content-addressed tag with these
// inputs (another API, another cluster or CI built it), so nothing is built.
func useRegistryImage(f *imageFacts) (imageDecision, bool) {
	img, err := f.Lookup()
	switch {
	case errors.Is(err, errTagCollision):
		return imageDecision{Reason: ReasonTagCollision, Message: err.Error(), Err: err}, true
	case err != nil:
		return imageDecision{Reason: ReasonRegistryUnavailable, Message: err.Error(), Err: err}, true
	case img != "":
		return imageDecision{Image: img, Reason: ReasonFoundInRegistry, Message: fmt.Sprintf("%s is in the registry; nothing to build", f.Tag)}, true
	}
	return imageDecision{}, false
}

// buildImage: nothing else decided, so build.
func buildImage(f *imageFacts) (imageDecision, bool) {
	return imageDecision{Build: true, Reason: ReasonBuilding, Message: "building " + f.Tag}, true
}
