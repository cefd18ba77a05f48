package operator

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/operator/render"
)

// refusal is a reason an API cannot be resolved that names what is wrong;
// it becomes the Resolved condition's reason and message.
type refusal struct {
	Reason  string
	Message string
}

// definitionConfigMaps lists the ConfigMaps the API's definition names, in
// order and without repeats, or refuses a reference to another namespace.
func definitionConfigMaps(api *v1alpha1.API) ([]string, *refusal) {
	var names []string
	for i, ref := range api.Spec.Definition {
		if ref.Namespace != "" && ref.Namespace != api.Namespace {
			return nil, &refusal{ReasonCrossNamespaceRef, fmt.Sprintf(
				"spec.definition[%d] names ConfigMap %s/%s: an API reads ConfigMaps of its own namespace only",
				i, ref.Namespace, ref.Name)}
		}
		if !slices.Contains(names, ref.Name) {
			names = append(names, ref.Name)
		}
	}
	return names, nil
}

// definitionFiles turns the API's definition references into compiler
// inputs, the root file first. A key is a file; an empty key is every key of
// the ConfigMap. ConfigMap keys cannot hold "/", so a definition spread over
// directories maps keys to paths with the v1alpha1.AnnotationFilePaths
// annotation. binaryData is passed as it is (the compiler gunzips it).
func definitionFiles(api *v1alpha1.API, cms map[string]*corev1.ConfigMap) ([]compile.File, *refusal) {
	var files []compile.File
	seen := map[string]bool{}
	for i, ref := range api.Spec.Definition {
		cm, ok := cms[ref.Name]
		if !ok {
			return nil, &refusal{ReasonDefinitionNotFound, fmt.Sprintf("ConfigMap %s (spec.definition[%d]) not found", ref.Name, i)}
		}
		paths, err := filePaths(cm)
		if err != nil {
			return nil, &refusal{ReasonDefinitionNotFound, fmt.Sprintf("ConfigMap %s (spec.definition[%d]): %v", ref.Name, i, err)}
		}
		keys := []string{ref.Key}
		if ref.Key == "" {
			keys = configMapKeys(cm, i == 0)
			if len(keys) == 0 {
				return nil, &refusal{ReasonDefinitionNotFound, fmt.Sprintf("ConfigMap %s (spec.definition[%d]) has no keys", ref.Name, i)}
			}
		}
		for _, key := range keys {
			data, ok := configMapValue(cm, key)
			if !ok {
				return nil, &refusal{ReasonDefinitionNotFound, fmt.Sprintf("ConfigMap %s (spec.definition[%d]) has no key %q", ref.Name, i, key)}
			}
			p := key
			if mapped, ok := paths[key]; ok {
				p = mapped
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			files = append(files, compile.File{Path: p, Data: data})
		}
	}
	return files, nil
}

// configMapKeys returns a ConfigMap's keys, sorted; for the root reference the
// root file (v1alpha1.AnnotationRootKey, else the only key) comes first.
func configMapKeys(cm *corev1.ConfigMap, root bool) []string {
	set := map[string]bool{}
	for k := range cm.Data {
		set[k] = true
	}
	for k := range cm.BinaryData {
		set[k] = true
	}
	keys := slices.Sorted(maps.Keys(set))
	if !root {
		return keys
	}
	if rk := cm.Annotations[v1alpha1.AnnotationRootKey]; rk != "" && set[rk] {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == rk })
		return append([]string{rk}, keys...)
	}
	return keys
}

func configMapValue(cm *corev1.ConfigMap, key string) ([]byte, bool) {
	if v, ok := cm.Data[key]; ok {
		return []byte(v), true
	}
	if v, ok := cm.BinaryData[key]; ok {
		return v, true
	}
	return nil, false
}

func filePaths(cm *corev1.ConfigMap) (map[string]string, error) {
	raw := cm.Annotations[v1alpha1.AnnotationFilePaths]
	if raw == "" {
		return nil, nil
	}
	var paths map[string]string
	if err := json.Unmarshal([]byte(raw), &paths); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", v1alpha1.AnnotationFilePaths, err)
	}
	return paths, nil
}

// compileKinds is what the compiler resolves names against: every Endpoint,
// RateLimit and Security of the namespace (the compiler picks the ones the
// definition names, and points an image Endpoint at the Service the
// Endpoint reconciler runs for it).
func compileKinds(api *v1alpha1.API, endpoints []v1alpha1.Endpoint, rateLimits []v1alpha1.RateLimit, securities []v1alpha1.Security) *compile.Kinds {
	k := &compile.Kinds{
		Namespace:    api.Namespace,
		Name:         api.Name,
		Endpoints:    make(map[string]v1alpha1.EndpointSpec, len(endpoints)),
		RateLimits:   make(map[string]v1alpha1.RateLimitSpec, len(rateLimits)),
		Security:     make(map[string]v1alpha1.SecuritySpec, len(securities)),
		Refs:         api.Spec.Refs,
		Redis:        api.Spec.Redis,
		TLSSecretRef: api.Spec.TLSSecretRef,
		Forwarding:   api.Spec.Forwarding,
	}
	for i := range endpoints {
		k.Endpoints[endpoints[i].Name] = endpoints[i].Spec
	}
	for i := range rateLimits {
		k.RateLimits[rateLimits[i].Name] = rateLimits[i].Spec
	}
	for i := range securities {
		k.Security[securities[i].Name] = securities[i].Spec
	}
	return k
}

// objectName maps a name the definition uses to the object it refers to.
func objectName(refs map[string]string, name string) string {
	if o, ok := refs[name]; ok && o != "" {
		return o
	}
	return name
}

// references lists the objects an API depends on: its definition ConfigMaps,
// the objects its Bundle names (found or not, so creating a missing one
// re-reconciles the API) and the Secrets its Binding projects.
func references(api *v1alpha1.API, cmNames []string, names bundleNames, secrets []compile.SecretFile) *v1alpha1.References {
	var refs v1alpha1.ObjectRefs
	if api.Spec.Refs != nil {
		refs = *api.Spec.Refs
	}
	out := &v1alpha1.References{ConfigMaps: sortedUnique(cmNames)}
	for _, n := range names.Endpoints {
		out.Endpoints = append(out.Endpoints, objectName(refs.Endpoints, n))
	}
	for _, n := range names.RateLimits {
		out.RateLimits = append(out.RateLimits, objectName(refs.RateLimits, n))
	}
	for _, n := range names.Schemes {
		out.Securities = append(out.Securities, objectName(refs.Security, n))
	}
	for _, s := range secrets {
		out.Secrets = append(out.Secrets, s.SecretName)
	}
	out.Endpoints = sortedUnique(out.Endpoints)
	out.RateLimits = sortedUnique(out.RateLimits)
	out.Securities = sortedUnique(out.Securities)
	out.Secrets = sortedUnique(out.Secrets)
	return out
}

// bundleNames are the names a Bundle uses, as the definition writes them.
type bundleNames struct {
	Endpoints, RateLimits, Schemes []string
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// bindingSecretData resolves the Binding's secret files from the Secrets
// they name. secrets holds what was found; a missing Secret or key refuses.
func bindingSecretData(files []compile.SecretFile, secrets map[string]*corev1.Secret) (map[string][]byte, *refusal) {
	out := make(map[string][]byte, len(files))
	keys := map[string]string{}
	for _, f := range files {
		k := render.SecretKey(f.File)
		if other, dup := keys[k]; dup && other != f.File {
			return nil, &refusal{compile.CodeInvalidKinds, fmt.Sprintf("binding files %q and %q map to the same Secret key %q", other, f.File, k)}
		}
		keys[k] = f.File
		s, ok := secrets[f.SecretName]
		if !ok {
			return nil, &refusal{ReasonSecretNotFound, fmt.Sprintf("Secret %s not found", f.SecretName)}
		}
		switch f.Format {
		case compile.SecretFormatAPIKeys:
			data, err := compile.RenderAPIKeys(s.Data, f.Key)
			if err != nil {
				return nil, &refusal{ReasonSecretNotFound, fmt.Sprintf("Secret %s: %v", f.SecretName, err)}
			}
			out[f.File] = data
		default:
			v, ok := s.Data[f.Key]
			if !ok {
				return nil, &refusal{ReasonSecretNotFound, fmt.Sprintf("Secret %s has no key %q", f.SecretName, f.Key)}
			}
			out[f.File] = v
		}
	}
	return out, nil
}
