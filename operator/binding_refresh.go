package operator

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/operator/render"
)

// refreshBinding applies the new Binding to the gateway that runs while its
// new image is not there (building, failed, the registry down). That gateway
// keeps serving the Bundle it was deployed with, and a Binding with the same
// shape (the same endpoint, scheme and limit names, the same kinds of
// scheme, the same secret files) fits that Bundle as well: an Endpoint's
// URLs, a rotated or revoked key, a changed limit take effect now, not once
// the build succeeds, which may be never. A Binding of another shape belongs
// to the new Bundle and waits for its image.
func (r *APIReconciler) refreshBinding(ctx context.Context, api *v1alpha1.API, rs resolved) error {
	key := types.NamespacedName{Namespace: api.Namespace, Name: render.BindingName(api)}
	cm := &corev1.ConfigMap{}
	if err := r.reader.Get(ctx, key, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get binding configmap %s: %w", key.Name, err)
	}
	if !sameShape(cm.Data[bundle.BindingFile], rs.result.Binding) {
		return nil
	}
	// The Deployment projects the Binding Secret's keys one by one: a new
	// key would not reach the gateway, a missing one would hold up its Pods.
	sec := &corev1.Secret{}
	if err := r.reader.Get(ctx, key, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get binding secret %s: %w", key.Name, err)
	}
	want := make([]string, 0, len(rs.secretData))
	for f := range rs.secretData {
		want = append(want, render.SecretKey(f))
	}
	if !slices.Equal(slices.Sorted(maps.Keys(sec.Data)), slices.Sorted(slices.Values(want))) {
		return nil
	}
	bindingJSON, err := rs.result.Binding.Marshal()
	if err != nil {
		return fmt.Errorf("encode binding: %w", err)
	}
	if cm.Data[bundle.BindingFile] == string(bindingJSON) && sameData(sec.Data, rs.secretData) {
		return nil // as deployed: a build that waits requeues often
	}
	if err := r.apply(ctx, render.BindingConfigMap(api, bindingJSON)); err != nil {
		return err
	}
	if err := r.apply(ctx, render.BindingSecret(api, rs.secretData)); err != nil {
		return err
	}
	return nil
}

// sameData reports whether the Binding Secret's data holds files.
func sameData(data map[string][]byte, files map[string][]byte) bool {
	for f, v := range files {
		if !bytes.Equal(data[render.SecretKey(f)], v) {
			return false
		}
	}
	return len(data) == len(files)
}

// sameShape reports whether the deployed binding.json parses and has b's
// shape.
func sameShape(deployed string, b *bundle.Binding) bool {
	d, err := bundle.ParseBinding([]byte(deployed))
	return err == nil && bindingShape(d) == bindingShape(b)
}

// bindingShape is what a Binding names, without the values: two Bindings
// of one shape fit the same Bundles.
func bindingShape(b *bundle.Binding) string {
	var parts []string
	for name := range b.Endpoints {
		parts = append(parts, "endpoint "+name)
	}
	for name, s := range b.Security {
		parts = append(parts, fmt.Sprintf("scheme %s %t%t%t%t%t", name, s.JWT != nil, s.OAuth2 != nil, s.APIKey != nil, s.Basic != nil, s.MTLS != nil))
	}
	for name := range b.RateLimits {
		parts = append(parts, "limit "+name)
	}
	parts = append(parts, fmt.Sprintf("server %t redis %t", b.Server != nil, b.Redis != nil))
	slices.Sort(parts)
	return strings.Join(parts, "\n")
}
