package operator

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/operator/render"
)

// Options configure the operator's manager.
type Options struct {
	Config
	// Namespaces are watched; empty means every namespace.
	Namespaces []string
	// MetricsAddr serves Prometheus metrics ("0" disables); ProbeAddr serves
	// /healthz and /readyz ("" or "0" disables).
	MetricsAddr, ProbeAddr string
	// PprofAddr serves net/http/pprof ("" or "0" disables).
	PprofAddr string
	// LeaderElection makes one replica active; LeaderElectionNamespace holds
	// the Lease (default: the operator's own namespace, from the Pod).
	LeaderElection          bool
	LeaderElectionNamespace string
	Logger                  logr.Logger
}

// LeaderElectionID is the Lease the operator's replicas compete for.
const LeaderElectionID = "gatekiln-operator.gatekiln.io"

// Scheme returns a scheme with the built-in kinds and ours.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// NewManager builds a manager running the API and Endpoint reconcilers.
func NewManager(ctx context.Context, rc *rest.Config, o Options) (ctrl.Manager, error) {
	cfg, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("operator config: %w", err)
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	managed := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	cacheOpts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		// The operator reads back only what it created; cache nothing else of
		// these kinds.
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:                     {Label: managed},
			&batchv1.Job{}:                           {Label: managed},
			&corev1.Service{}:                        {Label: managed},
			&autoscalingv2.HorizontalPodAutoscaler{}: {Label: managed},
			&policyv1.PodDisruptionBudget{}:          {Label: managed},
			&networkingv1.Ingress{}:                  {Label: managed},
		},
	}
	if len(o.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	probe := o.ProbeAddr
	if probe == "" {
		probe = "0"
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme: scheme,
		Logger: o.Logger,
		Cache:  cacheOpts,
		Client: client.Options{Cache: &client.CacheOptions{
			// Read straight from the API server, never through a full cache.
			DisableFor: []client.Object{&corev1.ConfigMap{}, &corev1.Secret{}, &corev1.Pod{}},
		}},
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  probe,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// A new leader starts at once when the old one exits cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if probe != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
	}
	if err := setup(ctx, mgr, cfg); err != nil {
		return nil, err
	}
	return mgr, nil
}

// setup registers the indexes and both reconcilers with mgr.
func setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	rem := newRemotes(ctx, cfg.RegistryConfig)
	own, err := rem.get(nil)
	if err != nil {
		return err
	}
	base, err := runtimeDigest(ctx, cfg, own.opts)
	if err != nil {
		return err
	}
	mgr.GetLogger().Info("runtime image", "image", base.String())
	served, err := discover(mgr.GetRESTMapper())
	if err != nil {
		return err
	}
	s := make(slots, cfg.MaxConcurrentBuilds)
	r := &APIReconciler{
		client:   mgr.GetClient(),
		reader:   mgr.GetAPIReader(),
		events:   mgr.GetEventRecorder("gatekiln-operator"),
		cfg:      cfg,
		base:     base,
		remotes:  rem,
		compiles: newCompileGate(cfg.CompileBudget),
		claimer:  claimer{cache: mgr.GetCache(), live: mgr.GetAPIReader()},
		builders: map[string]imageBuilder{
			v1alpha1.BuildDirect: &directBuilder{
				base:  &image.CachedBase{Options: own.opts},
				slots: s,
			},
		},
	}
	if cfg.KanikoImage != "" {
		r.builders[v1alpha1.BuildKaniko] = &kanikoBuilder{
			client: mgr.GetClient(),
			reader: mgr.GetAPIReader(),
			cache:  mgr.GetCache(),
			events: r.events,
			cfg:    cfg,
		}
	}
	r.setKinds(served)
	if err := registerIndexes(ctx, mgr); err != nil {
		return fmt.Errorf("indexes: %w", err)
	}
	c := mgr.GetClient()
	specOnly := builder.WithPredicates(predicate.GenerationChangedPredicate{})
	// The reconciler creates what it owns and knows it did: a create event
	// would only repeat the reconcile that made the object (and at start-up
	// every API is reconciled anyway). Changes and deletions bring it back.
	notCreated := predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }}
	owned := builder.WithPredicates(notCreated)
	// lateKinds reconciles APIs through this channel when their exposure
	// kind appears.
	late := make(chan event.GenericEvent)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("api").
		For(&v1alpha1.API{}, specOnly).
		Owns(&appsv1.Deployment{}, owned).
		Owns(&corev1.Service{}, builder.OnlyMetadata, owned).
		Owns(&corev1.ConfigMap{}, builder.OnlyMetadata, owned).
		Owns(&corev1.Secret{}, builder.OnlyMetadata, owned).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}, builder.OnlyMetadata, owned).
		Owns(&policyv1.PodDisruptionBudget{}, builder.OnlyMetadata, owned).
		Watches(&v1alpha1.Endpoint{}, handler.EnqueueRequestsFromMapFunc(apisUsing(c, indexEndpoints)), specOnly).
		Watches(&v1alpha1.RateLimit{}, handler.EnqueueRequestsFromMapFunc(apisUsing(c, indexRateLimits)), specOnly).
		Watches(&v1alpha1.Security{}, handler.EnqueueRequestsFromMapFunc(apisUsing(c, indexSecurities)), specOnly).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(apisUsing(c, indexConfigMaps))).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(apisUsing(c, indexSecrets))).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(apisUsing(c, indexBuildJob))).
		WatchesRawSource(source.Channel(late, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: cfg.MaxConcurrentReconciles})
	if served.Ingress {
		b = b.Owns(&networkingv1.Ingress{}, builder.OnlyMetadata, owned)
	}
	if served.HTTPRoute {
		hr := &metav1.PartialObjectMetadata{}
		hr.SetGroupVersionKind(render.HTTPRouteGVK)
		b = b.Owns(hr, owned)
	}
	ctl, err := b.Build(r)
	if err != nil {
		return fmt.Errorf("api controller: %w", err)
	}
	lk := &lateKinds{r: r, ctl: ctl, mgr: mgr, enqueue: late, interval: cfg.DiscoveryInterval,
		log: mgr.GetLogger().WithName("discovery")}
	if !lk.allServed() {
		if err := mgr.Add(lk); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("endpoint").
		For(&v1alpha1.Endpoint{}, specOnly).
		Owns(&appsv1.Deployment{}, owned).
		Owns(&corev1.Service{}, builder.OnlyMetadata, owned).
		Complete(&EndpointReconciler{client: c, claimer: r.claimer, conflictRequeue: cfg.NameConflictRequeue})
	if err != nil {
		return fmt.Errorf("endpoint controller: %w", err)
	}
	return nil
}

// runtimeDigest names the runtime image by digest, asking its registry when
// it was given by tag.
func runtimeDigest(ctx context.Context, cfg Config, opts []remote.Option) (name.Digest, error) {
	if d, err := name.NewDigest(cfg.RuntimeImage, name.StrictValidation); err == nil {
		return d, nil
	}
	ref, err := cfg.RegistryConfig.ParseReference(cfg.RuntimeImage)
	if err != nil {
		return name.Digest{}, fmt.Errorf("runtime image: %w", err)
	}
	desc, err := remote.Head(ref, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("runtime image %s: %w", ref, err)
	}
	return ref.Context().Digest(desc.Digest.String()), nil
}
