package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testImage = "registry.example/gatekiln/petstore@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func ptr[T any](v T) *T { return &v }

func testAPI(mutate func(*v1alpha1.API)) *v1alpha1.API {
	api := &v1alpha1.API{
		ObjectMeta: metav1.ObjectMeta{Name: "petstore", Namespace: "shop", UID: "0b5c2a4e-1111-4222-8333-944445555666"},
		Spec: v1alpha1.APISpec{
			Definition: []v1alpha1.ConfigMapKeyRef{{Name: "petstore-def", Key: "openapi.yaml"}},
			Replicas:   ptr(int32(1)),
		},
	}
	if mutate != nil {
		mutate(api)
	}
	return api
}

// gatewayObjects is everything the reconciler applies for an API, in apply order.
func gatewayObjects(api *v1alpha1.API) []any {
	objs := []any{
		BindingConfigMap(api, []byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoints":{"backend":{"urls":["http://pets.shop.svc:8080"]}}}`)),
		BindingSecret(api, map[string][]byte{"security/jwt-auth/certificate.pem": []byte("-----BEGIN CERTIFICATE-----\n")}),
		Deployment(api, testImage, []string{"security/jwt-auth/certificate.pem"}),
		Service(api),
	}
	if h := HPA(api); h != nil {
		objs = append(objs, h)
	}
	if p := PDB(api); p != nil {
		objs = append(objs, p)
	}
	if in := Ingress(api); in != nil {
		objs = append(objs, in)
	}
	if hr := HTTPRoute(api); hr != nil {
		objs = append(objs, hr.Object)
	}
	return objs
}

func TestGoldenRender(t *testing.T) {
	cases := []struct {
		name string
		objs []any
	}{
		{"api-minimal", gatewayObjects(testAPI(nil))},
		{"api-autoscaled-ingress", gatewayObjects(testAPI(func(a *v1alpha1.API) {
			a.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptr(int32(2)), MaxReplicas: 10, TargetCPUUtilization: ptr(int32(60))}
			a.Spec.Exposure = &v1alpha1.ExposureSpec{Ingress: &v1alpha1.IngressExposure{
				Host: "pets.example.com", Path: "/v1", ClassName: "nginx", TLSSecretName: "pets-tls"}}
		}))},
		{"api-replicas-httproute", gatewayObjects(testAPI(func(a *v1alpha1.API) {
			a.Spec.Replicas = ptr(int32(3))
			a.Spec.Service = v1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Port: 8443,
				Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}}
			a.Spec.Image.PullSecretRef = &v1alpha1.SecretKeyRef{Name: "regcred"}
			a.Spec.TLSSecretRef = &v1alpha1.SecretKeyRef{Name: "petstore-tls"}
			a.Spec.Resources = &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
			}
			a.Spec.Exposure = &v1alpha1.ExposureSpec{HTTPRoute: &v1alpha1.HTTPRouteExposure{
				Gateway: "infra/public", Hostnames: []string{"pets.example.com"}, Path: "/pets"}}
		}))},
		{"endpoint-image", endpointObjects(&v1alpha1.Endpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "pets", Namespace: "shop", UID: "7d1e0c2a-aaaa-4bbb-8ccc-9ddddeeeefff"},
			Spec: v1alpha1.EndpointSpec{Image: &v1alpha1.EndpointImage{
				Image: "registry.example/pets:1.2", Port: 9000, Replicas: ptr(int32(2)),
				Args: []string{"--listen=:9000"}, Env: map[string]string{"MODE": "demo", "A": "1"}}},
		})},
		{"endpoint-urls", endpointObjects(&v1alpha1.Endpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "pets", Namespace: "shop"},
			Spec:       v1alpha1.EndpointSpec{URLs: []string{"https://pets.example.com"}},
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			for _, o := range tc.objs {
				b, err := yaml.Marshal(o)
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				buf.WriteString("---\n")
				buf.Write(b)
			}
			golden(t, filepath.Join("testdata", tc.name+".yaml"), buf.Bytes())
		})
	}
}

func endpointObjects(ep *v1alpha1.Endpoint) []any {
	objs := []any{map[string]any{"urls": EndpointURLs(ep)}}
	if d := UpstreamDeployment(ep); d != nil {
		objs = append(objs, d)
	}
	if s := UpstreamService(ep); s != nil {
		objs = append(objs, s)
	}
	return objs
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output (run with -update to accept):\n%s", path, got)
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	api := testAPI(func(a *v1alpha1.API) {
		a.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 4}
		a.Spec.Service.Annotations = map[string]string{"b": "2", "a": "1", "c": "3"}
	})
	first, err := yaml.Marshal(gatewayObjects(api))
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := yaml.Marshal(gatewayObjects(api))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("render differs between calls:\n%s\n---\n%s", first, again)
		}
	}
}

func TestGatewayReplicas(t *testing.T) {
	cases := []struct {
		name    string
		api     *v1alpha1.API
		want    *int32
		wantPDB bool
	}{
		{"default one", testAPI(func(a *v1alpha1.API) { a.Spec.Replicas = nil }), ptr(int32(1)), false},
		{"explicit three", testAPI(func(a *v1alpha1.API) { a.Spec.Replicas = ptr(int32(3)) }), ptr(int32(3)), true},
		{"zero", testAPI(func(a *v1alpha1.API) { a.Spec.Replicas = ptr(int32(0)) }), ptr(int32(0)), false},
		{"hpa owns replicas", testAPI(func(a *v1alpha1.API) {
			a.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MaxReplicas: 5}
		}), nil, false},
		{"hpa min two", testAPI(func(a *v1alpha1.API) {
			a.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptr(int32(2)), MaxReplicas: 5}
		}), nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := GatewayReplicas(tc.api); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("GatewayReplicas = %v, want %v", deref(got), deref(tc.want))
			}
			if got := PDB(tc.api) != nil; got != tc.wantPDB {
				t.Errorf("PDB rendered = %v, want %v", got, tc.wantPDB)
			}
		})
	}
}

func deref(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestURL(t *testing.T) {
	cases := []struct {
		name    string
		api     *v1alpha1.API
		exposed bool
		want    string
	}{
		{"service", testAPI(nil), false, "http://petstore.shop.svc:80"},
		{"service port", testAPI(func(a *v1alpha1.API) { a.Spec.Service.Port = 8080 }), false, "http://petstore.shop.svc:8080"},
		{"ingress tls", testAPI(func(a *v1alpha1.API) {
			a.Spec.Exposure = &v1alpha1.ExposureSpec{Ingress: &v1alpha1.IngressExposure{Host: "h.example", Path: "/v1/", TLSSecretName: "t"}}
		}), true, "https://h.example/v1"},
		{"ingress kind not served", testAPI(func(a *v1alpha1.API) {
			a.Spec.Exposure = &v1alpha1.ExposureSpec{Ingress: &v1alpha1.IngressExposure{Host: "h.example"}}
		}), false, "http://petstore.shop.svc:80"},
		{"httproute", testAPI(func(a *v1alpha1.API) {
			a.Spec.Exposure = &v1alpha1.ExposureSpec{HTTPRoute: &v1alpha1.HTTPRouteExposure{Gateway: "gw", Hostnames: []string{"r.example"}}}
		}), true, "http://r.example"},
		{"ingress without host", testAPI(func(a *v1alpha1.API) {
			a.Spec.Exposure = &v1alpha1.ExposureSpec{Ingress: &v1alpha1.IngressExposure{Path: "/x"}}
		}), true, "http://petstore.shop.svc:80"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := URL(tc.api, tc.exposed); got != tc.want {
				t.Errorf("URL = %q, want %q", got, tc.want)
			}
		})
	}
}
