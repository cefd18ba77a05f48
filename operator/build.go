package operator

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/singleflight"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
)

// buildRequest is one image to build for one API.
type buildRequest struct {
	API   *v1alpha1.API
	Image image.Request
	Tag   name.Tag
	// ForceRebuild is spec.build.forceRebuild; it is part of a Kaniko Job's
	// identity so that changing it builds again.
	ForceRebuild string
	// PushSecret is the push Secret's name and resourceVersion ("" when the
	// API names none); it is part of a Kaniko Job's identity so that fixing
	// the credentials builds again.
	PushSecret string
	// Remote reaches the destination (with the API's push secret, if any).
	Remote *remoteSet
}

// buildOutcome is where a build stands after one reconcile.
type buildOutcome struct {
	// Image is the built image by digest, once done.
	Image string
	// Job names the Kaniko Job, if one is involved.
	Job string
	// Pending: still queued or running; Reason and Message say which.
	Pending bool
	// Failed: the build ran and failed; Message says why (with the log tail).
	Failed  bool
	Reason  string
	Message string
	// RequeueAfter is set when nothing will trigger the next reconcile (a
	// queued Direct build); a Kaniko Job's events do that by themselves.
	Requeue bool
}

// imageBuilder is one build strategy.
type imageBuilder interface {
	build(ctx context.Context, req buildRequest) (buildOutcome, error)
}

// slots limits builds in flight across strategies.
type slots chan struct{}

func (s slots) tryAcquire() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s slots) release() { <-s }

// directBuilder builds in the operator: the runtime base plus the Bundle
// layer, pushed with go-containerregistry. Concurrent requests for the same
// tag share one build, so two APIs with the same inputs never push twice.
type directBuilder struct {
	base  image.BaseSource
	slots slots
	group singleflight.Group
}

func (d *directBuilder) build(ctx context.Context, req buildRequest) (buildOutcome, error) {
	if !d.slots.tryAcquire() {
		return buildOutcome{Pending: true, Requeue: true, Reason: ReasonBuildQueued,
			Message: "waiting for a free build slot (--max-concurrent-builds)"}, nil
	}
	defer d.slots.release()
	v, err, _ := d.group.Do(req.Tag.String(), func() (any, error) {
		b := image.Direct{Base: d.base, Publisher: image.RegistryPublisher{Options: req.Remote.opts}}
		return b.Build(ctx, req.Image)
	})
	if err != nil {
		return buildOutcome{Failed: true, Reason: failureReason(err),
			Message: fmt.Sprintf("direct build of %s: %v", req.Tag, err)}, nil
	}
	return buildOutcome{Image: v.(string), Reason: ReasonBuilt,
		Message: fmt.Sprintf("built %s (Direct)", req.Tag)}, nil
}

// failureReason tells a registry that cannot be reached from a build that
// failed for another reason.
func failureReason(err error) string {
	if isUnreachable(err) {
		return ReasonRegistryUnavailable
	}
	return ReasonBuildFailed
}

// isUnreachable: the network failed, or the registry answered with an
// error it calls temporary (5xx, 429: restarting, overloaded), which
// go-containerregistry's own few retries did not outlast. Either is retried
// with back-off; any other failure waits for a change.
func isUnreachable(err error) bool {
	var netErr net.Error
	var regErr *transport.Error
	return errors.As(err, &netErr) || (errors.As(err, &regErr) && regErr.Temporary())
}

// remotes hands out go-containerregistry options per set of registry
// credentials, made once each: every set owns one HTTP transport, so builds
// and skip checks reuse its connections instead of opening new ones. Every
// rotation of a push Secret makes a new set and the old one is never asked
// for again, so only the sets used most recently are kept (the operator's
// own always): an evicted set's idle connections close after the
// transport's idle timeout, and it is collected once no build holds it.
type remotes struct {
	base registry.Config
	ctx  context.Context
	// max is how many sets are kept, the operator's own included.
	max int

	mu    sync.Mutex
	sets  map[[sha256.Size]byte]*remoteEntry
	clock uint64
}

type remoteEntry struct {
	set *remoteSet
	// used is the remotes' clock when the set was last handed out.
	used uint64
}

// maxRemoteSets is the default bound: more than the push Secrets a cluster's
// APIs use at once, so that a set is evicted only once its Secret rotated.
const maxRemoteSets = 64

// remoteSet reaches registries with one set of credentials.
type remoteSet struct {
	opts    []remote.Option
	checker *image.Checker
}

func newRemotes(ctx context.Context, base registry.Config) *remotes {
	return &remotes{base: base, ctx: ctx, max: maxRemoteSets, sets: map[[sha256.Size]byte]*remoteEntry{}}
}

// ownKey is the key of the operator's own credentials.
var ownKey [sha256.Size]byte

// remoteKey keys a docker config; an empty one (from an empty push Secret)
// is not the operator's own.
func remoteKey(dockerConfig []byte) [sha256.Size]byte {
	if dockerConfig == nil {
		return ownKey
	}
	return sha256.Sum256(append([]byte("dockerconfig:"), dockerConfig...))
}

// get returns the set for a docker config (nil: the operator's own).
func (r *remotes) get(dockerConfig []byte) (*remoteSet, error) {
	key := remoteKey(dockerConfig)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock++
	if e, ok := r.sets[key]; ok {
		e.used = r.clock
		return e.set, nil
	}
	cfg := r.base
	if dockerConfig != nil {
		cfg.DockerConfig = dockerConfig
	}
	opts, err := cfg.Remote(r.ctx)
	if err != nil {
		return nil, fmt.Errorf("registry options: %w", err)
	}
	ch, err := image.NewChecker(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry options: %w", err)
	}
	s := &remoteSet{opts: opts, checker: ch}
	r.sets[key] = &remoteEntry{set: s, used: r.clock}
	r.evict()
	return s, nil
}

// evict drops the least recently used sets beyond max, never the
// operator's own (the Direct builder's base image reads through it).
func (r *remotes) evict() {
	for len(r.sets) > r.max {
		var oldest [sha256.Size]byte
		var found bool
		for k, e := range r.sets {
			if k == ownKey {
				continue
			}
			if !found || e.used < r.sets[oldest].used {
				oldest, found = k, true
			}
		}
		if !found {
			return
		}
		delete(r.sets, oldest)
	}
}

// lookup returns the image by digest, "" when absent, errTagCollision
// (wrapped) when the tag holds other inputs.
func (s *remoteSet) lookup(ctx context.Context, tag name.Tag, inputsDigest string) (string, error) {
	img, err := s.checker.Check(ctx, tag, inputsDigest)
	var coll *image.CollisionError
	if errors.As(err, &coll) {
		return "", fmt.Errorf("%w: %w", errTagCollision, coll)
	}
	if err != nil {
		return "", fmt.Errorf("registry: %w", err)
	}
	return img, nil
}
