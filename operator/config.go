// Package operator holds the controller-runtime reconcilers for the API and
// Endpoint kinds and wires them into a manager. Each reconciler gathers its
// inputs through the API server, calls the pure compiler and renderers, and
// applies the result with server-side apply; the registry is reached through
// builder/registry options only.
package operator

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

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
}

// Defaults for unset Config fields.
const (
	DefaultMaxConcurrentBuilds     = 4
	DefaultMaxConcurrentReconciles = 4
	DefaultBuildQueuedRequeue      = 2 * time.Second
	DefaultDiscoveryInterval       = 30 * time.Second
)

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
	return c, errors.Join(errs...)
}
