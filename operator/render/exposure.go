package render

import (
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// HTTPRouteGVK is the Gateway API kind rendered for spec.exposure.httpRoute.
var HTTPRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// defaultCPUUtilization is the HPA target when the API names none.
const defaultCPUUtilization = 80

// HPA scales the gateway Deployment on CPU; nil when spec.autoscaling is unset.
func HPA(api *v1alpha1.API) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	as := api.Spec.Autoscaling
	if as == nil {
		return nil
	}
	target := int32(defaultCPUUtilization)
	if as.TargetCPUUtilization != nil {
		target = *as.TargetCPUUtilization
	}
	spec := autoscalingv2ac.HorizontalPodAutoscalerSpec().
		WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
			WithAPIVersion("apps/v1").WithKind("Deployment").WithName(ServiceName(api))).
		WithMaxReplicas(as.MaxReplicas).
		WithMetrics(autoscalingv2ac.MetricSpec().
			WithType(autoscalingv2.ResourceMetricSourceType).
			WithResource(autoscalingv2ac.ResourceMetricSource().
				WithName("cpu").
				WithTarget(autoscalingv2ac.MetricTarget().
					WithType(autoscalingv2.UtilizationMetricType).
					WithAverageUtilization(target))))
	if as.MinReplicas != nil {
		spec.WithMinReplicas(*as.MinReplicas)
	}
	return autoscalingv2ac.HorizontalPodAutoscaler(ServiceName(api), api.Namespace).
		WithLabels(GatewayLabels(api)).
		WithOwnerReferences(APIOwner(api)).
		WithSpec(spec)
}

// PDB keeps all but one gateway Pod through voluntary disruptions. It exists
// only when the API runs at least two replicas: with one, a PDB would block
// every node drain.
func PDB(api *v1alpha1.API) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	if minReplicas(api) < 2 {
		return nil
	}
	return policyv1ac.PodDisruptionBudget(ServiceName(api), api.Namespace).
		WithLabels(GatewayLabels(api)).
		WithOwnerReferences(APIOwner(api)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(gatewaySelector(api))))
}

func minReplicas(api *v1alpha1.API) int32 {
	if as := api.Spec.Autoscaling; as != nil {
		if as.MinReplicas != nil {
			return *as.MinReplicas
		}
		return 1
	}
	if r := GatewayReplicas(api); r != nil {
		return *r
	}
	return 1
}

// Ingress routes spec.exposure.ingress to the Service; nil when not asked.
func Ingress(api *v1alpha1.API) *networkingv1ac.IngressApplyConfiguration {
	if api.Spec.Exposure == nil || api.Spec.Exposure.Ingress == nil {
		return nil
	}
	in := api.Spec.Exposure.Ingress
	rule := networkingv1ac.IngressRule().
		WithHTTP(networkingv1ac.HTTPIngressRuleValue().
			WithPaths(networkingv1ac.HTTPIngressPath().
				WithPath(exposurePath(in.Path)).
				WithPathType(networkingv1.PathTypePrefix).
				WithBackend(networkingv1ac.IngressBackend().
					WithService(networkingv1ac.IngressServiceBackend().
						WithName(ServiceName(api)).
						WithPort(networkingv1ac.ServiceBackendPort().WithName("http"))))))
	if in.Host != "" {
		rule.WithHost(in.Host)
	}
	spec := networkingv1ac.IngressSpec().WithRules(rule)
	if in.ClassName != "" {
		spec.WithIngressClassName(in.ClassName)
	}
	if in.TLSSecretName != "" {
		tls := networkingv1ac.IngressTLS().WithSecretName(in.TLSSecretName)
		if in.Host != "" {
			tls.WithHosts(in.Host)
		}
		spec.WithTLS(tls)
	}
	return networkingv1ac.Ingress(ServiceName(api), api.Namespace).
		WithLabels(GatewayLabels(api)).
		WithOwnerReferences(APIOwner(api)).
		WithSpec(spec)
}

// HTTPRoute attaches the Service to a Gateway API Gateway; nil when not
// asked. It is unstructured: the operator does not link Gateway API types and
// renders the route only when the cluster serves the kind.
func HTTPRoute(api *v1alpha1.API) *unstructured.Unstructured {
	if api.Spec.Exposure == nil || api.Spec.Exposure.HTTPRoute == nil {
		return nil
	}
	hr := api.Spec.Exposure.HTTPRoute
	parent := map[string]any{"name": hr.Gateway}
	if ns, name, ok := strings.Cut(hr.Gateway, "/"); ok {
		parent = map[string]any{"namespace": ns, "name": name}
	}
	spec := map[string]any{
		"parentRefs": []any{parent},
		"rules": []any{map[string]any{
			"matches": []any{map[string]any{
				"path": map[string]any{"type": "PathPrefix", "value": exposurePath(hr.Path)},
			}},
			"backendRefs": []any{map[string]any{
				"name": ServiceName(api),
				"port": int64(ServicePort(api)),
			}},
		}},
	}
	if len(hr.Hostnames) > 0 {
		hosts := make([]any, len(hr.Hostnames))
		for i, h := range hr.Hostnames {
			hosts[i] = h
		}
		spec["hostnames"] = hosts
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(HTTPRouteGVK)
	u.SetName(ServiceName(api))
	u.SetNamespace(api.Namespace)
	u.SetLabels(GatewayLabels(api))
	owner := APIOwner(api)
	u.Object["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{
		"apiVersion":         *owner.APIVersion,
		"kind":               *owner.Kind,
		"name":               *owner.Name,
		"uid":                string(*owner.UID),
		"controller":         true,
		"blockOwnerDeletion": true,
	}}
	return u
}

func exposurePath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// URL is where the API is served: its Ingress host or first HTTPRoute
// hostname when exposed (and the cluster serves that kind), else the Service's
// in-cluster address. It holds no generated names, so it is stable.
func URL(api *v1alpha1.API, exposed bool) string {
	if exposed && api.Spec.Exposure != nil {
		if in := api.Spec.Exposure.Ingress; in != nil && in.Host != "" {
			scheme := "http"
			if in.TLSSecretName != "" {
				scheme = "https"
			}
			return scheme + "://" + in.Host + strings.TrimSuffix(exposurePath(in.Path), "/")
		}
		if hr := api.Spec.Exposure.HTTPRoute; hr != nil && len(hr.Hostnames) > 0 {
			return "http://" + hr.Hostnames[0] + strings.TrimSuffix(exposurePath(hr.Path), "/")
		}
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", ServiceName(api), api.Namespace, ServicePort(api))
}
