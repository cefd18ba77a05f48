package operator_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/operator"
)

// TestAdmission: what the CRDs' schemas and CEL rules can check is refused by
// the API server itself, with a message saying what to change.
func TestAdmission(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "admission")
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	def := []v1alpha1.ConfigMapKeyRef{{Name: "def", Key: "openapi.yaml"}}
	cases := []struct {
		name string
		obj  client.Object
		// want is part of the refusal; empty means the object is accepted.
		want string
	}{
		{"ratelimit zero requests", &v1alpha1.RateLimit{ObjectMeta: meta("zero"),
			Spec: v1alpha1.RateLimitSpec{Requests: 0}}, "spec.requests"},
		{"ratelimit header key without header", &v1alpha1.RateLimit{ObjectMeta: meta("hdr"),
			Spec: v1alpha1.RateLimitSpec{Requests: 5, Key: "Header"}}, "key Header needs header"},
		{"ratelimit ok", &v1alpha1.RateLimit{ObjectMeta: meta("ok"),
			Spec: v1alpha1.RateLimitSpec{Requests: 5, Key: "Header", Header: "X-Tenant"}}, ""},
		{"jwt without keys", &v1alpha1.Security{ObjectMeta: meta("jwt"),
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{Issuer: "https://i.example"}}},
			"jwt.jwksURL, jwt.certificateSecretRef or jwt.hmacSecretRef"},
		{"jwt without jwt", &v1alpha1.Security{ObjectMeta: meta("jwt2"),
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT}}, "a JWT Security needs"},
		{"jwt with jwks", &v1alpha1.Security{ObjectMeta: meta("jwt3"),
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{JWKSURL: "https://i.example/jwks"}}}, ""},
		{"jwks CA without jwks", &v1alpha1.Security{ObjectMeta: meta("jwt4"),
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{HMACSecretRef: &v1alpha1.SecretKeyRef{Name: "h"},
				CASecretRef: &v1alpha1.SecretKeyRef{Name: "ca"}}}}, "jwt.caSecretRef verifies the TLS of jwt.jwksURL"},
		{"jwks with its CA", &v1alpha1.Security{ObjectMeta: meta("jwt5"),
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{JWKSURL: "https://i.example/jwks",
				CASecretRef: &v1alpha1.SecretKeyRef{Name: "ca"}}}}, ""},
		{"apikey without secret", &v1alpha1.Security{ObjectMeta: meta("key"),
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityAPIKey}}, "apiKey.keysSecretRef"},
		{"endpoint with urls and image", &v1alpha1.Endpoint{ObjectMeta: meta("both"),
			Spec: v1alpha1.EndpointSpec{URLs: []string{"http://a"}, Image: &v1alpha1.EndpointImage{Image: "b"}}}, "exactly one of urls or image"},
		{"endpoint with neither", &v1alpha1.Endpoint{ObjectMeta: meta("neither"),
			Spec: v1alpha1.EndpointSpec{}}, "exactly one of urls or image"},
		{"endpoint with a non-http url", &v1alpha1.Endpoint{ObjectMeta: meta("ftp"),
			Spec: v1alpha1.EndpointSpec{URLs: []string{"ftp://a"}}}, "spec.urls[0]"},
		{"image endpoint name too long", &v1alpha1.Endpoint{ObjectMeta: meta(strings.Repeat("e", 55)),
			Spec: v1alpha1.EndpointSpec{Image: &v1alpha1.EndpointImage{Image: "b"}}}, "at most 54 characters"},
		{"api without definition", &v1alpha1.API{ObjectMeta: meta("nodef")}, "spec.definition"},
		{"api name too long", &v1alpha1.API{ObjectMeta: meta(strings.Repeat("a", 64)),
			Spec: v1alpha1.APISpec{Definition: def}}, "at most 63 characters"},
		{"api unknown strategy", &v1alpha1.API{ObjectMeta: meta("strategy"),
			Spec: v1alpha1.APISpec{Definition: def, Build: v1alpha1.BuildSpec{Strategy: "Docker"}}}, "spec.build.strategy"},
		{"api image ref with repository", &v1alpha1.API{ObjectMeta: meta("ref"),
			Spec: v1alpha1.APISpec{Definition: def, Image: v1alpha1.ImageSpec{Ref: "r/x@sha256:" + strings.Repeat("0", 64), Repository: "x"}}},
			"image.ref names a prebuilt image"},
		{"api ingress and httproute", &v1alpha1.API{ObjectMeta: meta("expose"),
			Spec: v1alpha1.APISpec{Definition: def, Exposure: &v1alpha1.ExposureSpec{
				Ingress: &v1alpha1.IngressExposure{}, HTTPRoute: &v1alpha1.HTTPRouteExposure{Gateway: "g"}}}},
			"choose ingress or httpRoute"},
		{"api autoscaling min over max", &v1alpha1.API{ObjectMeta: meta("hpa"),
			Spec: v1alpha1.APISpec{Definition: def, Autoscaling: &v1alpha1.AutoscalingSpec{MinReplicas: ptr(int32(5)), MaxReplicas: 2}}},
			"minReplicas must not exceed maxReplicas"},
		{"api https port clash", &v1alpha1.API{ObjectMeta: meta("tls"),
			Spec: v1alpha1.APISpec{Definition: def, TLSSecretRef: &v1alpha1.SecretKeyRef{Name: "t"},
				Service: v1alpha1.ServiceSpec{Port: 443}}}, "serves HTTPS on 443"},
		{"api trusted proxies", &v1alpha1.API{ObjectMeta: meta("fwd"),
			Spec: v1alpha1.APISpec{Definition: def, Forwarding: &v1alpha1.ForwardingSpec{
				TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}, ForwardedHeader: true}}}, ""},
		{"api trusted proxy by name", &v1alpha1.API{ObjectMeta: meta("fwd-name"),
			Spec: v1alpha1.APISpec{Definition: def, Forwarding: &v1alpha1.ForwardingSpec{
				TrustedProxies: []string{"10.0.0.0/8", "lb.internal"}}}}, "each entry must be an IP address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.c.Create(context.Background(), tc.obj)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want a refusal mentioning %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("refusal %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestImageEndpoint: an Endpoint that runs an image gets a Deployment and a
// Service; its status and the Binding of an API using it carry the Service's
// URL; turning it into a URL Endpoint removes them.
func TestImageEndpoint(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "image-endpoint")
	f.rollouts(t, ns)
	ep := &v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: ns},
		Spec: v1alpha1.EndpointSpec{Image: &v1alpha1.EndpointImage{Image: "registry.example/mock:1", Port: 9000}}}
	f.create(t, ep)
	want := compile.ImageEndpointURL("mock", ns, 9000)
	eventually(t, "endpoint ready", func() error {
		got := &v1alpha1.Endpoint{}
		if err := f.c.Get(ctx, client.ObjectKeyFromObject(ep), got); err != nil {
			return err
		}
		if len(got.Status.URLs) != 1 || got.Status.URLs[0] != want {
			return errorf("status.urls %v, want [%s]", got.Status.URLs, want)
		}
		for _, c := range got.Status.Conditions {
			if c.Type == v1alpha1.ConditionReady && c.Status == metav1.ConditionTrue && c.Reason == operator.ReasonUpstreamReady {
				return nil
			}
		}
		return errorf("conditions %+v", got.Status.Conditions)
	})
	svc := &corev1.Service{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mock-upstream"}, svc); err != nil {
		t.Fatalf("upstream Service: %v", err)
	}
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Port != 9000 {
		t.Errorf("upstream Service ports %+v", p)
	}

	f.create(t, definition(ns, "def", "openapi.yaml", []byte(strings.ReplaceAll(jwtlessDefinition, "BACKEND", "mock"))),
		newAPI(ns, "uses-mock", "def", "openapi.yaml"))
	f.waitCondition(t, ns, "uses-mock", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	cm := &corev1.ConfigMap{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "uses-mock-binding"}, cm); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.ParseBinding([]byte(cm.Data[bundle.BindingFile]))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Endpoints["mock"].URLs; len(got) != 1 || got[0] != want {
		t.Errorf("binding URLs %v, want [%s]", got, want)
	}

	// URL mode: the upstream objects go.
	if err := f.c.Get(ctx, client.ObjectKeyFromObject(ep), ep); err != nil {
		t.Fatal(err)
	}
	ep.Spec.Image, ep.Spec.URLs = nil, []string{"http://mock.example:9000"}
	if err := f.c.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	eventually(t, "upstream Deployment removed", func() error {
		d := &appsv1.Deployment{}
		err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mock-upstream"}, d)
		if err == nil {
			return errorf("still there")
		}
		return client.IgnoreNotFound(err)
	})
	eventually(t, "binding follows the URL", func() error {
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "uses-mock-binding"}, cm); err != nil {
			return err
		}
		if !strings.Contains(cm.Data[bundle.BindingFile], "http://mock.example:9000") {
			return errorf("binding %s", cm.Data[bundle.BindingFile])
		}
		return nil
	})
}

const jwtlessDefinition = `openapi: 3.0.3
info: {title: uses an image endpoint, version: "1.0"}
x-gatekiln-endpoint: BACKEND
paths:
  /hello:
    get: {responses: {"200": {description: ok}}}
`
