package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator/render"
)

// servedKinds records which optional kinds the cluster serves.
type servedKinds struct {
	Ingress, HTTPRoute bool
}

// optionalKind is an exposure kind the cluster may serve or not.
type optionalKind struct {
	gvk schema.GroupVersionKind
	// served reads and sets its flag in servedKinds.
	served func(*servedKinds) *bool
	// wants says whether an API asks for this exposure.
	wants func(*v1alpha1.API) bool
}

var optionalKinds = []optionalKind{
	{
		gvk:    networkingv1.SchemeGroupVersion.WithKind("Ingress"),
		served: func(s *servedKinds) *bool { return &s.Ingress },
		wants:  func(a *v1alpha1.API) bool { return a.Spec.Exposure != nil && a.Spec.Exposure.Ingress != nil },
	},
	{
		gvk:    render.HTTPRouteGVK,
		served: func(s *servedKinds) *bool { return &s.HTTPRoute },
		wants:  func(a *v1alpha1.API) bool { return a.Spec.Exposure != nil && a.Spec.Exposure.HTTPRoute != nil },
	},
}

// discover finds which optional kinds the cluster serves now.
func discover(m meta.RESTMapper) (servedKinds, error) {
	var s servedKinds
	for _, k := range optionalKinds {
		ok, err := serves(m, k.gvk)
		if err != nil {
			return s, err
		}
		*k.served(&s) = ok
	}
	return s, nil
}

func serves(m meta.RESTMapper, gvk schema.GroupVersionKind) (bool, error) {
	_, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("discover %s: %w", gvk, err)
}

// ownedWatch is the watch Owns would set up for an optional kind: metadata
// only, changes and deletions of objects an API controls.
func ownedWatch(mgr manager.Manager, gvk schema.GroupVersionKind) source.Source {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gvk)
	return source.Kind[client.Object](mgr.GetCache(), obj,
		handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &v1alpha1.API{}, handler.OnlyControllerOwner()),
		predicate.Funcs{CreateFunc: func(event.CreateEvent) bool { return false }})
}

// lateKinds picks up optional kinds the cluster starts serving after the
// operator started: the Gateway API is often installed after it. Every
// interval it looks again for the kinds not served yet; when one appears it
// adds the watch Owns would have set up, marks the kind served, and
// reconciles the APIs that ask for it (their Deployed condition said the
// exposure was ignored). A kind that stops being served is not noticed
// until the operator restarts.
type lateKinds struct {
	r        *APIReconciler
	ctl      controller.Controller
	mgr      manager.Manager
	enqueue  chan<- event.GenericEvent
	interval time.Duration
	log      logr.Logger
}

// Start looks until every optional kind is served or ctx ends.
func (l *lateKinds) Start(ctx context.Context) error {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	var failing string // the error last reported, reported once
	for !l.allServed() {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Discovery can fail for a while (an aggregated API down); the next
		// tick tries again.
		switch err := l.look(ctx); {
		case err != nil && err.Error() != failing:
			failing = err.Error()
			l.log.Error(err, "discovering exposure kinds; trying again every interval", "interval", l.interval.String())
		case err == nil && failing != "":
			failing = ""
			l.log.Info("discovering exposure kinds works again")
		}
	}
	return nil
}

func (l *lateKinds) allServed() bool {
	s := l.r.kinds()
	for _, k := range optionalKinds {
		if !*k.served(&s) {
			return false
		}
	}
	return true
}

// look adds what newly appeared, one kind at a time.
func (l *lateKinds) look(ctx context.Context) error {
	for _, k := range optionalKinds {
		s := l.r.kinds()
		if *k.served(&s) {
			continue
		}
		ok, err := serves(l.mgr.GetRESTMapper(), k.gvk)
		if err != nil || !ok {
			return err
		}
		// The watch first, so that the objects the reconciles below create
		// are watched.
		if err := l.ctl.Watch(ownedWatch(l.mgr, k.gvk)); err != nil {
			return fmt.Errorf("watch %s: %w", k.gvk.Kind, err)
		}
		*k.served(&s) = true
		l.r.setKinds(s)
		l.log.Info("the cluster now serves an exposure kind", "kind", k.gvk.String())
		var apis v1alpha1.APIList
		if err := l.mgr.GetClient().List(ctx, &apis); err != nil {
			return fmt.Errorf("list APIs: %w", err)
		}
		for i := range apis.Items {
			if !k.wants(&apis.Items[i]) {
				continue
			}
			select {
			case l.enqueue <- event.GenericEvent{Object: &apis.Items[i]}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}
