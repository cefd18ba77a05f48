// Package operator holds the controller-runtime reconcilers for the API and
// Endpoint kinds and wires them into a manager. Each reconciler gathers its
// inputs through the API server, calls the pure compiler and renderers, and
// applies the result with server-side apply; the registry is reached through
// builder/registry options only.
package operator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/registry"
)

// Config is how the operator builds and where images go.
type Config struct {
	// Registry is where built images go, "host[:port][/prefix]"; an API's
	// spec.image.registry overrides it.
	Registry string
	// RuntimeImage is the gateway runtime base image, by digest; a tag is
	// resolved to its digest once, when the operator starts, and every build
	// of this process uses that digest.
	RuntimeImage string
	// KanikoImage is the executor image Kaniko Jobs run.
	KanikoImage string
	// KanikoJoinImage joins a build context split across ConfigMaps (it needs
	// a shell); default: KanikoImage's tag with "-debug", Kaniko's debug image.
	KanikoJoinImage string
	// DefaultStrategy builds APIs that name no strategy: Kaniko or Direct.
	DefaultStrategy string
	// RegistryConfig is how the operator reaches registries (CA, plain-HTTP
	// hosts, credentials for the runtime image and the skip check). Kaniko
	// Jobs get the same CA, written into the API's namespace as the Secret
	// RegistryCASecretName, and the same plain-HTTP hosts.
	RegistryConfig registry.Config
	// MaxConcurrentBuilds limits builds in flight (Direct builds in the
	// operator, Kaniko Jobs in the cluster).
	MaxConcurrentBuilds int
	// MaxConcurrentReconciles is the number of API reconcile workers.
	MaxConcurrentReconciles int
	// BuildQueuedRequeue is how soon a build that found no free slot is tried again.
	BuildQueuedRequeue time.Duration
	// DiscoveryInterval is how often the operator looks for exposure kinds
	// (Ingress, Gateway API HTTPRoute) the cluster did not serve when it
	// started, until it serves them all.
	DiscoveryInterval time.Duration
	// CompileBudget is how many bytes of definitions (decompressed) the
	// reconcile workers compile at once; a definition larger than the
	// budget compiles alone. The operator's memory limit must hold about 20
	// times the larger of CompileBudget and MaxDefinitionBytes on top of its
	// steady state.
	CompileBudget int64
	// MaxDefinitionBytes is the largest definition (all its files,
	// decompressed) the operator compiles; a larger one is refused with
	// Resolved=False, reason DefinitionTooLarge.
	MaxDefinitionBytes int64
	// NameConflictRequeue is how soon an API or Endpoint whose objects'
	// names are taken by someone else's is tried again: nothing watches the
	// other object, and the controller's error back-off would grow to many
	// minutes.
	NameConflictRequeue time.Duration
	// KanikoResources are the Kaniko Job containers' requests and limits;
	// nil means DefaultKanikoResources. A namespace whose ResourceQuota
	// covers CPU or memory admits only Pods that state them.
	KanikoResources *corev1.ResourceRequirements
}

// Defaults for unset Config fields.
const (
	DefaultMaxConcurrentBuilds     = 4
	DefaultMaxConcurrentReconciles = 4
	DefaultBuildQueuedRequeue      = 2 * time.Second
	DefaultDiscoveryInterval       = 30 * time.Second
	// DefaultCompileBudget and DefaultMaxDefinitionBytes: one 8 MiB
	// definition, or several smaller ones adding up to 8 MiB, compile at a
	// time, peaking at about 160 MiB of live heap (config/manager sizes the
	// operator's memory limit for it). kubectl add api stores definitions
	// gzip'd, so a ConfigMap can hold several MiB of definition.
	DefaultCompileBudget       = 8 << 20
	DefaultMaxDefinitionBytes  = 8 << 20
	DefaultNameConflictRequeue = 30 * time.Second
)

// DefaultKanikoResources are sized for what a Kaniko executor does for a
// Gatekiln image: unpack the runtime base (one static binary and CA
// certificates), copy the Bundle, push. The requests are small so that a
// build schedules on a busy node; the memory limit leaves room for a large
// Bundle and keeps a runaway build off the node's other Pods; the CPU limit
// is there because a namespace whose ResourceQuota covers limits.cpu admits
// no Pod without one (--kaniko-cpu-limit="" drops it where CPU limits are
// unwanted).
func DefaultKanikoResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("1"),
			corev1.ResourceMemory: resource.MustParse("1Gi"),
		},
	}
}

// Validate reports what is wrong with c, every problem at once; NewManager
// checks the same.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills unset fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.DefaultStrategy == "" {
		c.DefaultStrategy = v1alpha1.BuildKaniko
	}
	if c.MaxConcurrentBuilds <= 0 {
		c.MaxConcurrentBuilds = DefaultMaxConcurrentBuilds
	}
	if c.MaxConcurrentReconciles <= 0 {
		c.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	}
	if c.BuildQueuedRequeue <= 0 {
		c.BuildQueuedRequeue = DefaultBuildQueuedRequeue
	}
	if c.DiscoveryInterval <= 0 {
		c.DiscoveryInterval = DefaultDiscoveryInterval
	}
	if c.CompileBudget <= 0 {
		c.CompileBudget = DefaultCompileBudget
	}
	if c.MaxDefinitionBytes <= 0 {
		c.MaxDefinitionBytes = DefaultMaxDefinitionBytes
	}
	if c.NameConflictRequeue <= 0 {
		c.NameConflictRequeue = DefaultNameConflictRequeue
	}
	if c.KanikoResources == nil {
		r := DefaultKanikoResources()
		c.KanikoResources = &r
	}
	if c.KanikoJoinImage == "" && c.KanikoImage != "" {
		if ref, err := name.NewTag(c.KanikoImage); err == nil {
			c.KanikoJoinImage = ref.Context().Tag(ref.TagStr() + "-debug").String()
		}
	}
	var errs []error
	switch c.DefaultStrategy {
	case v1alpha1.BuildKaniko, v1alpha1.BuildDirect:
	default:
		errs = append(errs, fmt.Errorf("default strategy %q: want %s or %s", c.DefaultStrategy, v1alpha1.BuildKaniko, v1alpha1.BuildDirect))
	}
	if c.RuntimeImage == "" {
		errs = append(errs, errors.New("runtime image: not set"))
	} else if _, err := name.ParseReference(c.RuntimeImage, name.StrictValidation); err != nil {
		errs = append(errs, fmt.Errorf("runtime image %q: %w", c.RuntimeImage, err))
	}
	if c.Registry == "" {
		errs = append(errs, errors.New("registry: not set"))
	}
	if c.DefaultStrategy == v1alpha1.BuildKaniko && c.KanikoImage == "" {
		errs = append(errs, errors.New("kaniko image: not set (the default strategy is Kaniko)"))
	}
	// The API server refuses a Job whose request exceeds its limit; say so
	// at start rather than on every build.
	for _, name := range slices.Sorted(maps.Keys(c.KanikoResources.Requests)) {
		req := c.KanikoResources.Requests[name]
		if lim, ok := c.KanikoResources.Limits[name]; ok && req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("kaniko %s request %s is over its limit %s", name, req.String(), lim.String()))
		}
	}
	return c, errors.Join(errs...)
}
