package addapi

import (
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// Resources the plugin writes besides ConfigMaps.
var (
	APIResource      = v1alpha1.GroupVersion.WithResource("apis")
	EndpointResource = v1alpha1.GroupVersion.WithResource("endpoints")
)

// Spec is what the command line says of the API object. Server-side apply
// makes it the whole of what kubectl-add owns: a field set by an earlier run
// and not given now is released (and so falls back to its default), while
// fields other managers own are left alone.
type Spec struct {
	Name, Namespace string
	Version         string
	// Replicas nil leaves spec.replicas to the default or another manager.
	Replicas *int32
	// Strategy is v1alpha1.BuildKaniko, v1alpha1.BuildDirect or empty.
	Strategy string
	// ForceRebuild is the spec.build.forceRebuild token, empty for none.
	ForceRebuild string
	// Image names a prebuilt image (no build).
	Image string
	// PullSecret names the dockerconfigjson Secret the gateway Pods pull
	// their image with (spec.image.pullSecretRef).
	PullSecret string
}

// RenderAPI returns the API object to apply: only the fields the command
// sets, so that applying it claims nothing else. It is pure.
func RenderAPI(s Spec, refs []v1alpha1.ConfigMapKeyRef) *unstructured.Unstructured {
	definition := make([]any, 0, len(refs))
	for _, r := range refs {
		m := map[string]any{"name": r.Name}
		if r.Key != "" {
			m["key"] = r.Key
		}
		definition = append(definition, m)
	}
	spec := map[string]any{"definition": definition}
	if s.Version != "" {
		spec["version"] = s.Version
	}
	if s.Replicas != nil {
		spec["replicas"] = int64(*s.Replicas)
	}
	build := map[string]any{}
	if s.Strategy != "" {
		build["strategy"] = s.Strategy
	}
	if s.ForceRebuild != "" {
		build["forceRebuild"] = s.ForceRebuild
	}
	if len(build) > 0 {
		spec["build"] = build
	}
	img := map[string]any{}
	if s.Image != "" {
		img["ref"] = s.Image
	}
	if s.PullSecret != "" {
		img["pullSecretRef"] = map[string]any{"name": s.PullSecret}
	}
	if len(img) > 0 {
		spec["image"] = img
	}
	return object(APIResource.GroupVersion(), "API", s.Namespace, s.Name, spec)
}

// EndpointURL is one --endpoint NAME=URL.
type EndpointURL struct {
	Name, URL string
}

// RenderEndpoints returns one Endpoint per name, its URLs in the order given.
// It is pure.
func RenderEndpoints(namespace string, eps []EndpointURL) []*unstructured.Unstructured {
	var names []string
	urls := map[string][]any{}
	for _, e := range eps {
		if _, ok := urls[e.Name]; !ok {
			names = append(names, e.Name)
		}
		if !slices.Contains(urls[e.Name], any(e.URL)) {
			urls[e.Name] = append(urls[e.Name], e.URL)
		}
	}
	out := make([]*unstructured.Unstructured, 0, len(names))
	for _, n := range names {
		out = append(out, object(EndpointResource.GroupVersion(), "Endpoint", namespace, n, map[string]any{"urls": urls[n]}))
	}
	return out
}

func object(gv schema.GroupVersion, kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(gv.String())
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}
