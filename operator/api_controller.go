package operator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/operator/render"
)

// Permissions of the API reconciler (config/rbac is generated from these).
// +kubebuilder:rbac:groups=gatekiln.io,resources=apis;endpoints;ratelimits;securities,verbs=get;list;watch
// +kubebuilder:rbac:groups=gatekiln.io,resources=apis/status;endpoints/status,verbs=patch
// +kubebuilder:rbac:groups=gatekiln.io,resources=apis/finalizers;endpoints/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// APIReconciler resolves, builds and deploys API objects.
type APIReconciler struct {
	client client.Client
	// reader reads ConfigMaps, Secrets and Pods straight from the API
	// server: caching every Secret and ConfigMap of the cluster would cost
	// more memory than the operator is allowed, and these are read rarely.
	reader   client.Reader
	events   events.EventRecorder
	cfg      Config
	base     name.Digest
	remotes  *remotes
	builders map[string]imageBuilder
	// compiles bounds the memory the reconcile workers' compiles take at once.
	compiles *compileGate
	// served is which optional kinds the cluster serves (lateKinds adds
	// those installed after the operator started).
	served atomic.Pointer[servedKinds]
	// claimer keeps applies off objects of the same name that are not the API's.
	claimer
}

func (r *APIReconciler) kinds() servedKinds     { return *r.served.Load() }
func (r *APIReconciler) setKinds(s servedKinds) { r.served.Store(&s) }

// Reconcile is the one skeleton: get, compute, apply, one status write.
func (r *APIReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Read the API itself from the API server, not the cache: the events of
	// the objects the last reconcile applied arrive before the cache sees its
	// status write, and deciding on a stale status would redo its work.
	api := &v1alpha1.API{}
	if err := r.reader.Get(ctx, req.NamespacedName, api); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !api.DeletionTimestamp.IsZero() {
		// Owner references delete the objects of the API.
		return ctrl.Result{}, nil
	}
	st := api.Status.DeepCopy()
	res, err := r.reconcile(ctx, api, st)
	sortConditions(st.Conditions)
	if werr := r.writeStatus(ctx, api, st); werr != nil {
		return ctrl.Result{}, errors.Join(err, werr)
	}
	return res, err
}

// writeStatus patches the status only when it changed, so a reconcile that
// finds the world as it left it writes nothing.
func (r *APIReconciler) writeStatus(ctx context.Context, api *v1alpha1.API, st *v1alpha1.APIStatus) error {
	if equality.Semantic.DeepEqual(&api.Status, st) {
		return nil
	}
	orig := api.DeepCopy()
	api.Status = *st
	if err := r.client.Status().Patch(ctx, api, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("status of %s/%s: %w", api.Namespace, api.Name, err)
	}
	statusWrites.Inc()
	return nil
}

// reconcile runs the pipeline, recording each phase's outcome in st.
func (r *APIReconciler) reconcile(ctx context.Context, api *v1alpha1.API, st *v1alpha1.APIStatus) (ctrl.Result, error) {
	gen := api.Generation
	rs, err := r.resolve(ctx, api)
	if err != nil {
		return ctrl.Result{}, err
	}
	if rs.refs != nil {
		st.References = rs.refs
	}
	if rs.refusal != nil {
		setCondition(&st.Conditions, gen, v1alpha1.ConditionResolved, metav1.ConditionFalse, rs.refusal.Reason, rs.refusal.Message)
		ensureCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionUnknown, ReasonNotResolved, "waiting for the definition to resolve")
		ensureCondition(&st.Conditions, gen, v1alpha1.ConditionDeployed, metav1.ConditionUnknown, ReasonNotResolved, "waiting for the definition to resolve")
		setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonNotResolved, "the definition does not resolve: see the Resolved condition")
		// A watch on what is missing brings the API back; nothing to retry.
		return ctrl.Result{}, nil
	}
	setCondition(&st.Conditions, gen, v1alpha1.ConditionResolved, metav1.ConditionTrue, ReasonResolved,
		fmt.Sprintf("%d routes resolved", len(rs.result.Bundle.Routes)))
	st.Warnings = rs.warnings

	digest := compile.InputsDigest(rs.result.BundleBytes, r.base.DigestStr(), compile.Version)
	img, res, err := r.image(ctx, api, st, rs, digest)
	if img == "" || err != nil {
		if st.Image != "" {
			if rerr := r.refreshBinding(ctx, api, rs); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		ensureCondition(&st.Conditions, gen, v1alpha1.ConditionDeployed, metav1.ConditionUnknown, ReasonNotBuilt, "waiting for the image")
		if st.Image == "" {
			setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonWaitingImage, "waiting for the image: see the Built condition")
		}
		return res, err
	}

	if err := r.deploy(ctx, api, img, rs); err != nil {
		var nc *nameConflict
		if errors.As(err, &nc) {
			setCondition(&st.Conditions, gen, v1alpha1.ConditionDeployed, metav1.ConditionFalse, ReasonNameConflict, err.Error())
			setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonNotDeployed, "not deployed: see the Deployed condition")
			// Nothing watches the other object, and the error back-off would
			// grow to many minutes: look again at a fixed interval, so that
			// removing it deploys the API within that interval.
			return ctrl.Result{RequeueAfter: r.cfg.NameConflictRequeue}, nil
		}
		setCondition(&st.Conditions, gen, v1alpha1.ConditionDeployed, metav1.ConditionFalse, ReasonApplyFailed, err.Error())
		setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonNotDeployed, "not deployed: see the Deployed condition")
		return ctrl.Result{}, err
	}
	st.Image, st.InputsDigest = img, digest
	st.URL = render.URL(api, r.exposed(api))
	st.ObservedGeneration = gen
	setCondition(&st.Conditions, gen, v1alpha1.ConditionDeployed, metav1.ConditionTrue, ReasonDeployed, r.deployedMessage(api))

	dep := &appsv1.Deployment{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: api.Namespace, Name: render.ServiceName(api)}, dep); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("get deployment: %w", err)
		}
		dep = nil
	}
	rd := deploymentReadiness(dep, img)
	setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, rd.Status, rd.Reason, rd.Message)
	return res, nil
}

// resolved is what the resolve phase produced.
type resolved struct {
	result     *compile.Result
	secretData map[string][]byte
	refs       *v1alpha1.References
	warnings   []string
	refusal    *refusal
}

// resolve gathers the API's inputs and compiles them. A problem with the
// inputs is a refusal (Resolved=False); an error is a failure to talk to the
// API server, retried.
func (r *APIReconciler) resolve(ctx context.Context, api *v1alpha1.API) (resolved, error) {
	cmNames, ref := definitionConfigMaps(api)
	if ref != nil {
		return resolved{refusal: ref}, nil
	}
	refs := &v1alpha1.References{ConfigMaps: sortedUnique(cmNames)}
	cms := make(map[string]*corev1.ConfigMap, len(cmNames))
	for _, n := range cmNames {
		cm := &corev1.ConfigMap{}
		err := r.reader.Get(ctx, types.NamespacedName{Namespace: api.Namespace, Name: n}, cm)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return resolved{}, fmt.Errorf("get configmap %s: %w", n, err)
		}
		cms[n] = cm
	}
	files, ref := definitionFiles(api, cms)
	if ref != nil {
		return resolved{refs: refs, refusal: ref}, nil
	}

	var eps v1alpha1.EndpointList
	var rls v1alpha1.RateLimitList
	var secs v1alpha1.SecurityList
	for _, l := range []client.ObjectList{&eps, &rls, &secs} {
		if err := r.client.List(ctx, l, client.InNamespace(api.Namespace), client.UnsafeDisableDeepCopy); err != nil {
			return resolved{}, fmt.Errorf("list %T: %w", l, err)
		}
	}
	kinds := compileKinds(api, eps.Items, rls.Items, secs.Items)

	// Compiling costs memory in proportion to the definition's size: refuse
	// what is over the limit, and compile the rest within the budget.
	size, exact := compile.InputSize(files, sizeCountLimit(r.cfg.MaxDefinitionBytes))
	if size > r.cfg.MaxDefinitionBytes {
		return resolved{refs: refs, refusal: tooLarge(size, exact, r.cfg.MaxDefinitionBytes)}, nil
	}
	release, err := r.compiles.acquire(ctx, size)
	if err != nil {
		return resolved{}, err
	}
	defer release()
	res, err := compile.Compile(compile.Input{Files: files, Kinds: kinds, Version: api.Spec.Version})
	if err != nil {
		var ps compile.Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			return resolved{refs: refs, refusal: &refusal{compile.CodeInvalidDefinition, err.Error()}}, nil
		}
		// The names the definition uses are still worth watching: compile
		// without the kinds to learn them, so that creating the missing
		// object brings this API back. It runs within the same share of the
		// budget, after the first compile's garbage is collectable.
		if alone, aerr := compile.Compile(compile.Input{Files: files, Version: api.Spec.Version}); aerr == nil {
			refs = references(api, cmNames, namesOf(alone), nil)
		}
		return resolved{refs: refs, refusal: &refusal{ps[0].Code, ps.Error()}}, nil
	}
	release()
	refs = references(api, cmNames, namesOf(res), res.SecretFiles)

	secrets := map[string]*corev1.Secret{}
	for _, sf := range res.SecretFiles {
		if _, done := secrets[sf.SecretName]; done {
			continue
		}
		s := &corev1.Secret{}
		err := r.reader.Get(ctx, types.NamespacedName{Namespace: api.Namespace, Name: sf.SecretName}, s)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return resolved{}, fmt.Errorf("get secret %s: %w", sf.SecretName, err)
		}
		secrets[sf.SecretName] = s
	}
	data, ref := bindingSecretData(res.SecretFiles, secrets)
	if ref != nil {
		return resolved{refs: refs, refusal: ref}, nil
	}
	var warnings []string
	for i, w := range res.Warnings {
		if i == maxWarnings {
			warnings = append(warnings, fmt.Sprintf("… and %d more", len(res.Warnings)-maxWarnings))
			break
		}
		warnings = append(warnings, truncate(w.Error(), 512))
	}
	return resolved{result: res, secretData: data, refs: refs, warnings: warnings}, nil
}

// maxWarnings bounds status.warnings; the CLI's compile lists them all.
const maxWarnings = 20

func namesOf(res *compile.Result) bundleNames {
	return bundleNames{
		Endpoints:  res.Bundle.EndpointNames(),
		RateLimits: res.Bundle.RateLimitNames(),
		Schemes:    res.Bundle.SchemeNames(),
	}
}

// image decides which image the API runs and builds it when needed. It
// returns the image to deploy, or "" while there is none yet. The status
// records image and inputs digest together only once the image is deployed,
// so the pair always says which inputs the running image was made from.
func (r *APIReconciler) image(ctx context.Context, api *v1alpha1.API, st *v1alpha1.APIStatus, rs resolved, digest string) (string, ctrl.Result, error) {
	gen := api.Generation
	req, ref, err := r.buildRequest(ctx, api, rs.result, digest)
	if err != nil {
		return "", ctrl.Result{}, err
	}
	if ref != nil {
		setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionFalse, ref.Reason, ref.Message)
		return "", ctrl.Result{}, nil
	}
	facts := &imageFacts{
		Prebuilt:     api.Spec.Image.Ref,
		InputsDigest: digest,
		Tag:          req.Tag.String(),
		ForceRebuild: api.Spec.Build.ForceRebuild,
		Status:       &api.Status,
		Lookup: func() (string, error) {
			return req.Remote.lookup(ctx, req.Tag, digest)
		},
	}
	d := decideImage(facts)
	switch {
	case d.Err != nil:
		r.warnOnce(api, st, d.Reason, d.Message)
		setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionFalse, d.Reason, d.Message)
		if d.Reason == ReasonTagCollision {
			// Only a change of inputs or tag can help; the API's watch brings that.
			return "", ctrl.Result{}, nil
		}
		return "", ctrl.Result{}, d.Err
	case !d.Build:
		if d.Reason == ReasonFoundInRegistry || d.Reason == ReasonPrebuilt {
			st.BuildJob = ""
		}
		setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionTrue, d.Reason, d.Message)
		return d.Image, ctrl.Result{}, nil
	}

	strategy := api.Spec.Build.Strategy
	if strategy == "" {
		strategy = r.cfg.DefaultStrategy
	}
	b, ok := r.builders[strategy]
	if !ok {
		msg := fmt.Sprintf("build strategy %s is not enabled in this operator", strategy)
		setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionFalse, ReasonBuildFailed, msg)
		return "", ctrl.Result{}, nil
	}
	out, err := b.build(ctx, req)
	if err != nil {
		return "", ctrl.Result{}, err
	}
	// No Job while a build waits for a slot (or runs in the operator): the
	// status must not name the Job of inputs the API has left.
	st.BuildJob = out.Job
	switch {
	case out.Failed:
		r.warnOnce(api, st, out.Reason, out.Message)
		setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionFalse, out.Reason, out.Message)
		if out.Reason == ReasonRegistryUnavailable {
			return "", ctrl.Result{}, errors.New(out.Message)
		}
		return "", ctrl.Result{}, nil
	case out.Pending:
		setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionUnknown, out.Reason, out.Message)
		if out.Requeue {
			return "", ctrl.Result{RequeueAfter: r.cfg.BuildQueuedRequeue}, nil
		}
		return "", ctrl.Result{}, nil
	}
	st.ForceRebuild = api.Spec.Build.ForceRebuild
	setCondition(&st.Conditions, gen, v1alpha1.ConditionBuilt, metav1.ConditionTrue, ReasonBuilt, out.Message)
	return out.Image, ctrl.Result{}, nil
}

// warnOnce records a Warning Event when a condition turns to this reason, not
// on every retry.
func (r *APIReconciler) warnOnce(api *v1alpha1.API, st *v1alpha1.APIStatus, reason, message string) {
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionBuilt); c != nil && c.Reason == reason && c.Message == message {
		return
	}
	r.events.Eventf(api, nil, corev1.EventTypeWarning, reason, "Build", "%s", truncate(message, 1000))
}

// buildRequest says what to build and where it goes: <registry>/<repository>
// :<version>-<digest12>. The repository defaults to the definition's title,
// not the API's name, so that two APIs (or two clusters) with the same inputs
// arrive at the same tag and build once.
func (r *APIReconciler) buildRequest(ctx context.Context, api *v1alpha1.API, res *compile.Result, digest string) (buildRequest, *refusal, error) {
	reg := api.Spec.Image.Registry
	if reg == "" {
		reg = r.cfg.Registry
	}
	repo := api.Spec.Image.Repository
	if repo == "" {
		repo = slug(res.Bundle.API.Title)
	}
	cfg := r.cfg.RegistryConfig
	var dockerConfig []byte
	var pushSecret string
	if ps := api.Spec.Image.PushSecretRef; ps != nil {
		if ps.Namespace != "" && ps.Namespace != api.Namespace {
			return buildRequest{}, &refusal{ReasonCrossNamespaceRef, fmt.Sprintf(
				"spec.image.pushSecretRef names Secret %s/%s: an API reads Secrets of its own namespace only", ps.Namespace, ps.Name)}, nil
		}
		s := &corev1.Secret{}
		if err := r.reader.Get(ctx, types.NamespacedName{Namespace: api.Namespace, Name: ps.Name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				return buildRequest{}, &refusal{ReasonSecretNotFound, fmt.Sprintf("push Secret %s not found", ps.Name)}, nil
			}
			return buildRequest{}, nil, fmt.Errorf("get secret %s: %w", ps.Name, err)
		}
		dc, err := registry.DockerConfigFromSecret(s)
		if err != nil {
			return buildRequest{}, &refusal{ReasonBuildFailed, fmt.Sprintf("push Secret %s: %v", ps.Name, err)}, nil
		}
		dockerConfig = dc
		pushSecret = s.Name + "/" + s.ResourceVersion
	}
	rs, err := r.remotes.get(dockerConfig)
	if err != nil {
		return buildRequest{}, nil, err
	}
	repository, err := cfg.ParseRepository(strings.TrimSuffix(reg, "/") + "/" + repo)
	if err != nil {
		return buildRequest{}, &refusal{ReasonBuildFailed, fmt.Sprintf("image repository: %v", err)}, nil
	}
	version := api.Spec.Version
	if version == "" {
		version = res.Bundle.API.Version
	}
	ireq := image.Request{
		Bundle:       res.BundleBytes,
		InputsDigest: digest,
		API:          res.Bundle.API.Title,
		Version:      version,
		Repository:   repository,
		Base:         r.base,
	}
	tag, err := ireq.Tag()
	if err != nil {
		return buildRequest{}, &refusal{ReasonBuildFailed, fmt.Sprintf("image tag: %v", err)}, nil
	}
	return buildRequest{API: api, Image: ireq, Tag: tag, ForceRebuild: api.Spec.Build.ForceRebuild,
		PushSecret: pushSecret, Remote: rs}, nil, nil
}

var notInRepo = regexp.MustCompile(`[^a-z0-9]+`)

// slug makes a repository path component of a title.
func slug(title string) string {
	s := strings.Trim(notInRepo.ReplaceAllString(strings.ToLower(title), "-"), "-")
	if len(s) > 100 {
		s = strings.TrimRight(s[:100], "-")
	}
	if s == "" {
		return "api"
	}
	return s
}

// deploy applies everything the API runs as, and deletes the optional
// objects it no longer asks for.
func (r *APIReconciler) deploy(ctx context.Context, api *v1alpha1.API, img string, rs resolved) error {
	bindingJSON, err := rs.result.Binding.Marshal()
	if err != nil {
		return fmt.Errorf("encode binding: %w", err)
	}
	type object struct {
		ac   runtime.ApplyConfiguration
		gvk  schema.GroupVersionKind
		name string
		want bool
	}
	name := render.ServiceName(api)
	objs := []object{
		{render.BindingConfigMap(api, bindingJSON), corev1.SchemeGroupVersion.WithKind("ConfigMap"), render.BindingName(api), true},
		{render.BindingSecret(api, rs.secretData), corev1.SchemeGroupVersion.WithKind("Secret"), render.BindingName(api), true},
		{render.Deployment(api, img, slices.Sorted(maps.Keys(rs.secretData))), appsv1.SchemeGroupVersion.WithKind("Deployment"), name, true},
		{render.Service(api), corev1.SchemeGroupVersion.WithKind("Service"), name, true},
		{gvk: autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"), name: name},
		{gvk: policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"), name: name},
	}
	if hpa := render.HPA(api); hpa != nil {
		objs[4].ac, objs[4].want = hpa, true
	}
	if pdb := render.PDB(api); pdb != nil {
		objs[5].ac, objs[5].want = pdb, true
	}
	served := r.kinds()
	if served.Ingress {
		o := object{gvk: networkingv1.SchemeGroupVersion.WithKind("Ingress"), name: name}
		if in := render.Ingress(api); in != nil {
			o.ac, o.want = in, true
		}
		objs = append(objs, o)
	}
	if served.HTTPRoute {
		o := object{gvk: render.HTTPRouteGVK, name: name}
		if hr := render.HTTPRoute(api); hr != nil {
			o.ac, o.want = client.ApplyConfigurationFromUnstructured(hr), true
		}
		objs = append(objs, o)
	}
	// Every object is checked before any is applied, so that a name taken
	// by someone else leaves nothing half applied.
	me := owner{kind: "API", name: api.Name, label: render.LabelAPI}
	for _, o := range objs {
		if !o.want {
			continue
		}
		if err := r.claim(ctx, o.gvk, types.NamespacedName{Namespace: api.Namespace, Name: o.name}, me); err != nil {
			return err
		}
	}
	for _, o := range objs {
		if o.want {
			if err := r.apply(ctx, o.ac); err != nil {
				return err
			}
			continue
		}
		if err := r.deleteOwned(ctx, api, o.gvk); err != nil {
			return err
		}
	}
	return nil
}

func (r *APIReconciler) apply(ctx context.Context, ac runtime.ApplyConfiguration) error {
	return apply(ctx, r.client, ac)
}

// apply is server-side apply under the operator's one field owner, taking
// over fields another manager set.
func apply(ctx context.Context, c client.Client, ac runtime.ApplyConfiguration) error {
	if err := c.Apply(ctx, ac, client.FieldOwner(render.FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s: %w", kindOf(ac), err)
	}
	return nil
}

// deleteOwned removes an optional object the API no longer asks for, found
// through the metadata cache so that an API without one costs no request.
func (r *APIReconciler) deleteOwned(ctx context.Context, api *v1alpha1.API, gvk schema.GroupVersionKind) error {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	err := r.client.Get(ctx, types.NamespacedName{Namespace: api.Namespace, Name: render.ServiceName(api)}, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", gvk.Kind, err)
	}
	if !metav1.IsControlledBy(m, api) {
		return nil
	}
	if err := r.client.Delete(ctx, m, client.Preconditions{UID: &m.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s: %w", gvk.Kind, err)
	}
	return nil
}

func kindOf(ac runtime.ApplyConfiguration) string {
	if k, ok := ac.(interface{ GetKind() *string }); ok && k.GetKind() != nil {
		return *k.GetKind()
	}
	return fmt.Sprintf("%T", ac)
}

// exposed reports whether the API asked for an exposure the cluster serves.
func (r *APIReconciler) exposed(api *v1alpha1.API) bool {
	ex := api.Spec.Exposure
	if ex == nil {
		return false
	}
	served := r.kinds()
	return (ex.Ingress != nil && served.Ingress) || (ex.HTTPRoute != nil && served.HTTPRoute)
}

func (r *APIReconciler) deployedMessage(api *v1alpha1.API) string {
	msg := "Deployment, Service and Binding applied"
	if ex := api.Spec.Exposure; ex != nil {
		served := r.kinds()
		switch {
		case ex.HTTPRoute != nil && !served.HTTPRoute:
			msg += "; spec.exposure.httpRoute not applied: this cluster does not serve gateway.networking.k8s.io/v1 HTTPRoute (it is applied once the Gateway API is installed)"
		case ex.Ingress != nil && !served.Ingress:
			msg += "; spec.exposure.ingress not applied: this cluster does not serve networking.k8s.io/v1 Ingress (it is applied once it does)"
		}
	}
	return msg
}
