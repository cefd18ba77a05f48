package addapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

var configMapResource = corev1.SchemeGroupVersion.WithResource("configmaps")

// cluster is the edge: every read and write of the API server goes through it.
type cluster struct {
	host string
	dyn  dynamic.Interface
	disc discovery.ServerResourcesInterfaceWithContext
}

func newCluster(getter genericclioptions.RESTClientGetter) (*cluster, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return &cluster{host: cfg.Host, dyn: dyn, disc: disc}, nil
}

// written is what apply wrote, in order, and what it removed.
type written struct {
	Objects []*unstructured.Unstructured
	Deleted []string
	// API is the API object as the server returned it.
	API *unstructured.Unstructured
}

// checkInstalled gives a missing CRD a clear error rather than a bare 404.
func (c *cluster) checkInstalled(ctx context.Context) error {
	list, err := c.disc.ServerResourcesForGroupVersionWithContext(ctx, v1alpha1.GroupVersion.String())
	if err := stopped(ctx, "before writing to the cluster; nothing was written"); err != nil {
		return err
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("cannot reach the cluster at %s (check --kubeconfig and --context): %w", c.host, err)
	}
	if list != nil {
		for _, r := range list.APIResources {
			if r.Name == APIResource.Resource {
				return nil
			}
		}
	}
	return fmt.Errorf("the API kind (apis.%s) is not installed in this cluster: apply the CRDs in config/crd first", v1alpha1.GroupVersion.Group)
}

// cleanupTimeout bounds the removal of what an interrupted or refused run
// created: it runs after Ctrl-C, so it cannot use the command's context, and
// must not hang on a cluster that stopped answering.
const cleanupTimeout = 30 * time.Second

// apply writes the plan with server-side apply, in an order that never
// leaves the API naming a ConfigMap that is not there: Endpoints, the
// definition ConfigMaps, the API, then ConfigMaps of earlier runs that the
// API no longer names are deleted. ConfigMaps carry an owner reference to the
// API (added in a second apply when the API is new and its uid unknown), so
// deleting the API deletes them.
//
// If the writes stop short (the server refuses one, or Ctrl-C), what this
// run created is removed again, with a fresh bounded context, and the error
// says what was removed or could not be: Endpoints that did not exist
// before, and for an API that did not exist before, its ConfigMaps and the
// API itself. An existing API keeps its objects: they may be in use.
func (c *cluster) apply(ctx context.Context, plan *Plan, dryRun bool) (*written, error) {
	var created []createdObject
	w, err := c.write(ctx, plan, dryRun, &created)
	if err == nil {
		return w, nil
	}
	if ctx.Err() != nil {
		// The client's own error reads "context canceled" at best: say it
		// was the interrupt, and keep its cause for errors.Is.
		err = fmt.Errorf("interrupted while writing to the cluster (%w): %w", context.Cause(ctx), err)
	}
	if len(created) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		err = fmt.Errorf("%w; %s", err, c.remove(cctx, plan.Namespace, created))
	}
	return w, err
}

// createdObject is an object a run wrote that was not there before it.
type createdObject struct {
	resource schema.GroupVersionResource
	kind     string // as printed: "configmap", "endpoint.gatekiln.io"
	name     string
}

// remove deletes objects in the reverse order of their writing and says
// which it removed and which it could not.
func (c *cluster) remove(ctx context.Context, ns string, objs []createdObject) string {
	var removed, failed []string
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		err := c.dyn.Resource(o.resource).Namespace(ns).Delete(ctx, o.name, metav1.DeleteOptions{})
		switch {
		case err == nil:
			removed = append(removed, o.kind+"/"+o.name)
		case apierrors.IsNotFound(err):
			// The write never reached the server: nothing to remove.
		default:
			failed = append(failed, fmt.Sprintf("%s/%s (%v)", o.kind, o.name, err))
		}
	}
	msg := "nothing was left behind"
	if len(removed) > 0 {
		msg = "removed what this run created: " + strings.Join(removed, ", ")
	}
	if len(failed) > 0 {
		msg += fmt.Sprintf("; could not remove, delete by hand in namespace %s: %s", ns, strings.Join(failed, ", "))
	}
	return msg
}

// write is apply without the cleanup; created collects what it wrote that
// was not there before (never on a dry run).
func (c *cluster) write(ctx context.Context, plan *Plan, dryRun bool, created *[]createdObject) (*written, error) {
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	ns, name := plan.Namespace, plan.Spec.Name
	apis := c.dyn.Resource(APIResource).Namespace(ns)

	var uid types.UID
	spec := plan.Spec
	current, err := apis.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get api %s/%s: %w", ns, name, err)
	default:
		uid = current.GetUID()
		// Keep the last --force-rebuild token: dropping it would change
		// spec.build.forceRebuild and so rebuild for nothing.
		if spec.ForceRebuild == "" {
			spec.ForceRebuild, _, _ = unstructured.NestedString(current.Object, "spec", "build", "forceRebuild")
		}
	}
	isNew := uid == "" && !dryRun

	w := &written{}
	eps := c.dyn.Resource(EndpointResource).Namespace(ns)
	for _, ep := range RenderEndpoints(ns, plan.Endpoints) {
		// Endpoints are shared: only one this run creates is its to remove.
		if !dryRun {
			if _, err := eps.Get(ctx, ep.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
				*created = append(*created, createdObject{EndpointResource, resourceName(ep), ep.GetName()})
			}
		}
		out, err := eps.Apply(ctx, ep.GetName(), ep, opts)
		if err != nil {
			return w, fmt.Errorf("apply endpoint %s/%s: %w", ns, ep.GetName(), err)
		}
		w.Objects = append(w.Objects, out)
	}
	if isNew {
		// Listed before they are written: an interrupted write may still
		// have reached the server.
		for _, cm := range plan.Definition.ConfigMaps {
			*created = append(*created, createdObject{configMapResource, "configmap", cm.Name})
		}
	}
	cms, err := c.applyConfigMaps(ctx, plan.Definition, name, uid, opts)
	if err != nil {
		return w, err
	}
	if isNew {
		*created = append(*created, createdObject{APIResource, resourceName(RenderAPI(spec, nil)), name})
	}
	api, err := apis.Apply(ctx, name, RenderAPI(spec, plan.Definition.Refs), opts)
	if err != nil {
		return w, fmt.Errorf("apply api %s/%s: %w", ns, name, err)
	}
	if isNew {
		if cms, err = c.applyConfigMaps(ctx, plan.Definition, name, api.GetUID(), opts); err != nil {
			return w, err
		}
	}
	w.Objects = append(w.Objects, cms...)
	w.Objects = append(w.Objects, api)
	w.API = api
	// Everything the plan names is written: nothing of it is undone now.
	*created = nil

	keep := map[string]bool{}
	for _, cm := range plan.Definition.ConfigMaps {
		keep[cm.Name] = true
	}
	cmClient := c.dyn.Resource(configMapResource).Namespace(ns)
	old, err := cmClient.List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(labels.Set{LabelAPI: name, LabelManagedBy: FieldManager}).String()})
	if err != nil {
		return w, fmt.Errorf("list definition configmaps of api %s/%s: %w", ns, name, err)
	}
	del := metav1.DeleteOptions{}
	if dryRun {
		del.DryRun = []string{metav1.DryRunAll}
	}
	for _, cm := range old.Items {
		if keep[cm.GetName()] {
			continue
		}
		if err := cmClient.Delete(ctx, cm.GetName(), del); err != nil && !apierrors.IsNotFound(err) {
			return w, fmt.Errorf("delete old definition configmap %s/%s: %w", ns, cm.GetName(), err)
		}
		w.Deleted = append(w.Deleted, "configmap/"+cm.GetName())
	}
	return w, nil
}

func (c *cluster) applyConfigMaps(ctx context.Context, def *Definition, api string, uid types.UID, opts metav1.ApplyOptions) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, cm := range def.ConfigMaps {
		cm = cm.DeepCopy()
		if uid != "" {
			cm.OwnerReferences = []metav1.OwnerReference{ownerRef(api, uid)}
		}
		u, err := toUnstructured(cm)
		if err != nil {
			return nil, err
		}
		got, err := c.dyn.Resource(configMapResource).Namespace(cm.Namespace).Apply(ctx, cm.Name, u, opts)
		if err != nil {
			return nil, fmt.Errorf("apply definition configmap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
		out = append(out, got)
	}
	return out, nil
}

// ownerRef makes the API the owner of its definition ConfigMaps, so that
// `kubectl delete api NAME` lets the garbage collector remove them.
func ownerRef(api string, uid types.UID) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "API", Name: api, UID: uid}
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", obj, err)
	}
	// A zero creationTimestamp converts to null, which is not ours to apply.
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}

// buildingTick is how often --wait repeats the Building line with the time
// elapsed; it prints from what the watch last delivered and asks the server
// nothing.
const buildingTick = 15 * time.Second

// wait follows the API with a watch until Observe says it is Ready or
// failed, printing a line whenever its phase, reason, message or job changes.
func (c *cluster) wait(ctx context.Context, out io.Writer, spec Spec, generation int64, timeout time.Duration) error {
	// A Ctrl-C cancels the caller's ctx, the timeout only this one: they end
	// the wait with different errors.
	interrupt := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	client := c.dyn.Resource(APIResource).Namespace(spec.Namespace)
	selector := fields.OneTermEqualSelector("metadata.name", spec.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return client.Watch(ctx, o)
		},
	}

	var (
		mu    sync.Mutex
		last  Progress
		since = time.Now()
		seen  bool
	)
	elapsed := func() string { return time.Since(since).Round(time.Second).String() }
	report := func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if seen && p == last {
			return
		}
		if !seen || p.Phase != last.Phase {
			since = time.Now()
		}
		seen, last = true, p
		e := ""
		if p.Phase == PhaseBuilding {
			e = elapsed()
		}
		fmt.Fprintln(out, p.Line(e))
	}
	tickDone := make(chan struct{})
	defer close(tickDone)
	go func() {
		t := time.NewTicker(buildingTick)
		defer t.Stop()
		for {
			select {
			case <-tickDone:
				return
			case <-t.C:
				mu.Lock()
				if seen && last.Phase == PhaseBuilding {
					fmt.Fprintln(out, last.Line(elapsed()))
				}
				mu.Unlock()
			}
		}
	}()

	var final Progress
	_, err := watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("api %s/%s was deleted while waiting", spec.Namespace, spec.Name)
		}
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		var api v1alpha1.API
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &api); err != nil {
			return false, fmt.Errorf("decode api %s/%s: %w", spec.Namespace, spec.Name, err)
		}
		p := Observe(&api, generation)
		report(p)
		final = p
		return p.Done(), nil
	})
	switch {
	case err == nil && final.Phase == PhaseFailed:
		return &FailedError{API: spec.Namespace + "/" + spec.Name, Progress: final}
	case err == nil:
		return nil
	case interrupt.Err() != nil:
		mu.Lock()
		p := last
		mu.Unlock()
		return fmt.Errorf("interrupted while waiting for api %s/%s, which was written and is left to the operator; last: %s: %w",
			spec.Namespace, spec.Name, p.Line(""), context.Cause(interrupt))
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) || ctx.Err() != nil:
		mu.Lock()
		p := last
		mu.Unlock()
		hint := ""
		if p.Phase == PhaseResolving && p.Reason == "" {
			hint = " (no status for this generation yet: is the gatekiln operator running?)"
		}
		return fmt.Errorf("api %s/%s not ready after %s; last: %s%s", spec.Namespace, spec.Name, timeout, p.Line(""), hint)
	default:
		return fmt.Errorf("wait for api %s/%s: %w", spec.Namespace, spec.Name, err)
	}
}
