package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator/render"
)

// Endpoint condition reasons.
const (
	ReasonURLs            = "URLs"
	ReasonUpstreamReady   = "UpstreamAvailable"
	ReasonUpstreamWaiting = "UpstreamProgressing"
)

// EndpointReconciler runs image Endpoints and reports where every Endpoint
// is reachable. APIs that use an Endpoint are re-reconciled by their own
// watch on it.
type EndpointReconciler struct {
	client client.Client
	// conflictRequeue is how soon a name conflict is looked at again.
	conflictRequeue time.Duration
	// claimer keeps applies off objects of the same name that are not the Endpoint's.
	claimer
}

// Reconcile follows the same skeleton as the API reconciler.
func (r *EndpointReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ep := &v1alpha1.Endpoint{}
	if err := r.client.Get(ctx, req.NamespacedName, ep); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ep.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	st := ep.Status.DeepCopy()
	res, err := r.reconcile(ctx, ep, st)
	if equality.Semantic.DeepEqual(&ep.Status, st) {
		return res, err
	}
	orig := ep.DeepCopy()
	ep.Status = *st
	if werr := r.client.Status().Patch(ctx, ep, client.MergeFrom(orig)); werr != nil {
		return ctrl.Result{}, errors.Join(err, fmt.Errorf("status of endpoint %s/%s: %w", ep.Namespace, ep.Name, werr))
	}
	return res, err
}

func (r *EndpointReconciler) reconcile(ctx context.Context, ep *v1alpha1.Endpoint, st *v1alpha1.EndpointStatus) (ctrl.Result, error) {
	gen := ep.Generation
	st.URLs = render.EndpointURLs(ep)
	dep := render.UpstreamDeployment(ep)
	if dep == nil {
		for _, gvk := range []schema.GroupVersionKind{appsv1.SchemeGroupVersion.WithKind("Deployment"), {Version: "v1", Kind: "Service"}} {
			if err := r.deleteOwned(ctx, ep, gvk); err != nil {
				return ctrl.Result{}, err
			}
		}
		st.ObservedGeneration = gen
		setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonURLs,
			fmt.Sprintf("%d URLs", len(st.URLs)))
		return ctrl.Result{}, nil
	}
	key := types.NamespacedName{Namespace: ep.Namespace, Name: render.UpstreamName(ep)}
	me := owner{kind: "Endpoint", name: ep.Name, label: render.LabelEndpoint}
	for _, gvk := range []schema.GroupVersionKind{appsv1.SchemeGroupVersion.WithKind("Deployment"), corev1.SchemeGroupVersion.WithKind("Service")} {
		if err := r.claim(ctx, gvk, key, me); err != nil {
			var nc *nameConflict
			if !errors.As(err, &nc) {
				return ctrl.Result{}, err
			}
			// Nothing watches the other object: look again at a fixed
			// interval rather than after a back-off of many minutes.
			setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonNameConflict, err.Error())
			return ctrl.Result{RequeueAfter: r.conflictRequeue}, nil
		}
	}
	for _, ac := range []runtime.ApplyConfiguration{dep, render.UpstreamService(ep)} {
		if err := apply(ctx, r.client, ac); err != nil {
			setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonApplyFailed, err.Error())
			return ctrl.Result{}, err
		}
	}
	st.ObservedGeneration = gen
	cur := &appsv1.Deployment{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: ep.Namespace, Name: render.UpstreamName(ep)}, cur)
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get deployment: %w", err)
	}
	rd := deploymentReadiness(cur, ep.Spec.Image.Image)
	reason := ReasonUpstreamWaiting
	if rd.Status == metav1.ConditionTrue {
		reason = ReasonUpstreamReady
	}
	setCondition(&st.Conditions, gen, v1alpha1.ConditionReady, rd.Status, reason, rd.Message)
	return ctrl.Result{}, nil
}

func (r *EndpointReconciler) deleteOwned(ctx context.Context, ep *v1alpha1.Endpoint, gvk schema.GroupVersionKind) error {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	err := r.client.Get(ctx, types.NamespacedName{Namespace: ep.Namespace, Name: render.UpstreamName(ep)}, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", gvk.Kind, err)
	}
	if !slices.ContainsFunc(m.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == ep.UID }) {
		return nil
	}
	if err := r.client.Delete(ctx, m); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s: %w", gvk.Kind, err)
	}
	return nil
}
