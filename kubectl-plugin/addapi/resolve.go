package addapi

import (
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
)

var (
	secretResource    = corev1.SchemeGroupVersion.WithResource("secrets")
	rateLimitResource = v1alpha1.GroupVersion.WithResource("ratelimits")
	securityResource  = v1alpha1.GroupVersion.WithResource("securities")
)

// kinds gathers what the operator resolves the definition against: every
// Endpoint, RateLimit and Security of the namespace, with the Endpoints of
// this command line in place of the stored ones. An Endpoint that runs an
// image is given the URL of the Service the operator runs for it.
func (c *cluster) kinds(ctx context.Context, namespace string, eps []EndpointURL) (*compile.Kinds, error) {
	k := &compile.Kinds{
		Namespace:  namespace,
		Endpoints:  map[string]v1alpha1.EndpointSpec{},
		RateLimits: map[string]v1alpha1.RateLimitSpec{},
		Security:   map[string]v1alpha1.SecuritySpec{},
	}
	list := func(res string, each func(u *unstructured.Unstructured) error) error {
		gvr := v1alpha1.GroupVersion.WithResource(res)
		l, err := c.dyn.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list %s in %s: %w", res, namespace, err)
		}
		for i := range l.Items {
			if err := each(&l.Items[i]); err != nil {
				return err
			}
		}
		return nil
	}
	var errs []error
	errs = append(errs, list(EndpointResource.Resource, func(u *unstructured.Unstructured) error {
		var ep v1alpha1.Endpoint
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &ep); err != nil {
			return fmt.Errorf("endpoint %s: %w", u.GetName(), err)
		}
		spec := ep.Spec
		if spec.Image != nil {
			spec.URLs = []string{compile.ImageEndpointURL(ep.Name, namespace, spec.Image.Port)}
			spec.Image = nil
		}
		k.Endpoints[ep.Name] = spec
		return nil
	}))
	errs = append(errs, list(rateLimitResource.Resource, func(u *unstructured.Unstructured) error {
		var rl v1alpha1.RateLimit
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rl); err != nil {
			return fmt.Errorf("ratelimit %s: %w", u.GetName(), err)
		}
		k.RateLimits[rl.Name] = rl.Spec
		return nil
	}))
	errs = append(errs, list(securityResource.Resource, func(u *unstructured.Unstructured) error {
		var s v1alpha1.Security
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return fmt.Errorf("security %s: %w", u.GetName(), err)
		}
		k.Security[s.Name] = s.Spec
		return nil
	}))
	for name, urls := range endpointURLs(eps) {
		k.Endpoints[name] = v1alpha1.EndpointSpec{URLs: urls}
	}
	return k, errors.Join(errs...)
}

func endpointURLs(eps []EndpointURL) map[string][]string {
	out := map[string][]string{}
	for _, o := range RenderEndpoints("", eps) {
		urls, _, _ := unstructured.NestedStringSlice(o.Object, "spec", "urls")
		out[o.GetName()] = urls
	}
	return out
}

// preflight resolves the definition against the namespace as the operator
// will, and warns about what is not there yet (an Endpoint, a Security, a
// RateLimit the definition names). It refuses nothing: the objects may well
// be created after the API, and the operator resolves again when they are.
func (c *cluster) preflight(ctx context.Context, w io.Writer, plan *Plan, files []compile.File) {
	msg := c.pullSecretProblem(ctx, plan.Namespace, plan.Spec.PullSecret)
	k, err := c.kinds(ctx, plan.Namespace, plan.Endpoints)
	if ctx.Err() != nil {
		// Interrupted: Run says so; what could not be checked then is no
		// news, and a second compile would only delay the exit.
		return
	}
	if msg != "" {
		fmt.Fprintln(w, "warning:", msg)
	}
	if err != nil {
		fmt.Fprintf(w, "warning: cannot check what the definition names in namespace %s: %v\n", plan.Namespace, err)
		return
	}
	_, err = compile.Compile(compile.Input{Files: files, Kinds: k, Version: plan.Spec.Version})
	var ps compile.Problems
	if !errors.As(err, &ps) {
		return
	}
	for _, p := range ps {
		fmt.Fprintf(w, "warning: the operator will not resolve the API until this is fixed (%s): %s\n", p.Code, p.Error())
	}
}

// pullSecretProblem says why the gateway Pods could not pull with the
// --pull-secret Secret ("" when they can, or when none is named): the API is
// applied anyway, since the Secret may be created next, but its Pods would
// sit in ImagePullBackOff until then. Only the Secret's type is read.
func (c *cluster) pullSecretProblem(ctx context.Context, namespace, name string) string {
	if name == "" {
		return ""
	}
	u, err := c.dyn.Resource(secretResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("--pull-secret: there is no Secret %q in namespace %s; the gateway Pods cannot pull the image until it exists (kubectl create secret docker-registry %s ...)", name, namespace, name)
	case err != nil:
		return fmt.Sprintf("--pull-secret: cannot check Secret %q in namespace %s: %v", name, namespace, err)
	}
	if t, _, _ := unstructured.NestedString(u.Object, "type"); t != string(corev1.SecretTypeDockerConfigJson) {
		return fmt.Sprintf("--pull-secret: Secret %q in namespace %s has type %q; image pull secrets are %s (kubectl create secret docker-registry)", name, namespace, t, corev1.SecretTypeDockerConfigJson)
	}
	return ""
}
