package operator

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// Field indexes on APIs: each maps an API to the names of the objects of one
// kind it depends on, so that an event on such an object re-reconciles
// exactly the APIs that use it.
const (
	indexConfigMaps = "gatekiln.io/configmaps"
	indexEndpoints  = "gatekiln.io/endpoints"
	indexRateLimits = "gatekiln.io/ratelimits"
	indexSecurities = "gatekiln.io/securities"
	indexSecrets    = "gatekiln.io/secrets"
	indexBuildJob   = "gatekiln.io/build-job"
)

// apiIndexes are the index functions, by index name.
var apiIndexes = map[string]func(*v1alpha1.API) []string{
	indexConfigMaps: func(a *v1alpha1.API) []string {
		var out []string
		for _, d := range a.Spec.Definition {
			out = append(out, d.Name)
		}
		if r := a.Status.References; r != nil {
			out = append(out, r.ConfigMaps...)
		}
		return sortedUnique(out)
	},
	indexEndpoints: func(a *v1alpha1.API) []string {
		if r := a.Status.References; r != nil {
			return r.Endpoints
		}
		return nil
	},
	indexRateLimits: func(a *v1alpha1.API) []string {
		if r := a.Status.References; r != nil {
			return r.RateLimits
		}
		return nil
	},
	indexSecurities: func(a *v1alpha1.API) []string {
		if r := a.Status.References; r != nil {
			return r.Securities
		}
		return nil
	},
	indexSecrets: func(a *v1alpha1.API) []string {
		var out []string
		if r := a.Status.References; r != nil {
			out = append(out, r.Secrets...)
		}
		if ps := a.Spec.Image.PushSecretRef; ps != nil {
			out = append(out, ps.Name)
		}
		return sortedUnique(out)
	},
	indexBuildJob: func(a *v1alpha1.API) []string {
		if a.Status.BuildJob != "" {
			return []string{a.Status.BuildJob}
		}
		return nil
	},
}

func registerIndexes(ctx context.Context, mgr ctrl.Manager) error {
	for name, fn := range apiIndexes {
		extract := func(o client.Object) []string {
			api, ok := o.(*v1alpha1.API)
			if !ok {
				return nil
			}
			return fn(api)
		}
		if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.API{}, name, extract); err != nil {
			return err
		}
	}
	return nil
}

// apisUsing maps an object to the APIs of its namespace whose index holds
// its name.
func apisUsing(c client.Reader, index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.APIList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace()),
			client.MatchingFields{index: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "list apis by index", "index", index, "object", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{
				Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}})
		}
		return reqs
	}
}
