package operator_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator"
)

// petstore creates the sample definition, the kinds it names and the API-key
// Secret in ns, and returns the API (not yet created).
func (f *fixture) petstore(t *testing.T, ns, name string, mutate ...func(*v1alpha1.API)) *v1alpha1.API {
	t.Helper()
	ctx := context.Background()
	f.create(t, definition(ns, "petstore-def", "petstore.yaml", readFile(t, "samples/petstore/petstore.yaml")))
	kinds := readFile(t, "samples/petstore/kinds.yaml")
	for _, doc := range strings.Split(string(kinds), "\n---\n") {
		u := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &u); err != nil {
			t.Fatal(err)
		}
		var obj client.Object
		switch u["kind"] {
		case "Endpoint":
			obj = &v1alpha1.Endpoint{}
		case "RateLimit":
			obj = &v1alpha1.RateLimit{}
		case "Security":
			obj = &v1alpha1.Security{}
		default:
			t.Fatalf("kinds.yaml: unexpected kind %v", u["kind"])
		}
		if err := yaml.Unmarshal([]byte(doc), obj); err != nil {
			t.Fatal(err)
		}
		obj.SetNamespace(ns)
		if err := f.c.Create(ctx, obj); err != nil {
			t.Fatalf("create %s: %v", obj.GetName(), err)
		}
	}
	f.create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "petstore-api-keys", Namespace: ns},
		Data:       map[string][]byte{"alice": []byte("alice-key-1"), "bob": []byte("sha256:" + strings.Repeat("ab", 32))},
	})
	return newAPI(ns, name, "petstore-def", "petstore.yaml", mutate...)
}

// TestGoldenDeploy: definition ConfigMap → Direct build → image in the
// registry → Binding ConfigMap and Secret, Deployment and Service as golden
// YAML; Ready follows the Deployment's availability.
func TestGoldenDeploy(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "golden")
	api := f.petstore(t, ns, "petstore", func(a *v1alpha1.API) {
		// Its own repository: other tests build the same petstore image into
		// the default one, and this test checks a build (Built), whatever
		// ran before it.
		a.Spec.Image.Repository = "golden/swagger-petstore"
		a.Spec.Replicas = ptr(int32(2))
		a.Spec.Exposure = &v1alpha1.ExposureSpec{Ingress: &v1alpha1.IngressExposure{Host: "petstore.example.com", ClassName: "nginx"}}
	})
	f.create(t, api)

	// No kubelet yet: everything is applied, the Deployment is not available.
	got := f.waitCondition(t, ns, "petstore", v1alpha1.ConditionDeployed, metav1.ConditionTrue, operator.ReasonDeployed)
	if c := condition(got, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != operator.ReasonProgressing {
		t.Errorf("before rollout: Ready = %s/%s, want False/%s", c.Status, c.Reason, operator.ReasonProgressing)
	}
	if c := condition(got, v1alpha1.ConditionBuilt); c.Reason != operator.ReasonBuilt {
		t.Errorf("Built reason = %s (%s), want %s", c.Reason, c.Message, operator.ReasonBuilt)
	}
	f.rollouts(t, ns)
	got = f.waitCondition(t, ns, "petstore", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)

	// The image is in the registry, by the digest the status names, with the
	// content-addressed tag.
	ref, err := name.NewDigest(got.Status.Image)
	if err != nil {
		t.Fatalf("status.image %q: %v", got.Status.Image, err)
	}
	opts, err := f.reg.Config().Remote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, opts...); err != nil {
		t.Fatalf("image %s not in the registry: %v", ref, err)
	}
	tag := ref.Context().Tag("1.0.0-" + strings.TrimPrefix(got.Status.InputsDigest, "sha256:")[:12])
	desc, err := remote.Head(tag, opts...)
	if err != nil {
		t.Fatalf("tag %s: %v", tag, err)
	}
	if desc.Digest.String() != ref.DigestStr() {
		t.Errorf("tag %s is %s, status.image is %s", tag, desc.Digest, ref.DigestStr())
	}
	if got.Status.URL != "http://petstore.example.com" {
		t.Errorf("status.url = %q", got.Status.URL)
	}
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
	}

	var out bytes.Buffer
	for _, o := range []client.Object{&corev1.ConfigMap{}, &corev1.Secret{}, &appsv1.Deployment{}, &corev1.Service{},
		&policyv1.PodDisruptionBudget{}, &networkingv1.Ingress{}} {
		n := "petstore"
		if _, isCM := o.(*corev1.ConfigMap); isCM {
			n = "petstore-binding"
		}
		if _, isSecret := o.(*corev1.Secret); isSecret {
			n = "petstore-binding"
		}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: n}, o); err != nil {
			t.Fatalf("get %T %s: %v", o, n, err)
		}
		out.Write(normalize(t, o, got, f.reg.Host))
	}
	golden(t, filepath.Join("testdata", "deploy-petstore.yaml"), out.Bytes())
}

// normalize renders an object as the test compares it: without what the
// server generates (uid, resourceVersion, timestamps, cluster IPs, status).
func normalize(t *testing.T, o client.Object, api *v1alpha1.API, registryHost string) []byte {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		t.Fatal(err)
	}
	md := u["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "annotations"} {
		delete(md, k)
	}
	if refs, ok := md["ownerReferences"].([]any); ok {
		for _, r := range refs {
			r.(map[string]any)["uid"] = "<api uid>"
		}
	}
	delete(u, "status")
	if spec, ok := u["spec"].(map[string]any); ok {
		delete(spec, "clusterIP")
		delete(spec, "clusterIPs")
	}
	gvk, err := apiutil.GVKForObject(o, scheme(t))
	if err != nil {
		t.Fatal(err)
	}
	u["apiVersion"], u["kind"] = gvk.GroupVersion().String(), gvk.Kind
	b, err := yaml.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(registryHost), []byte("<registry>"))
	b = bytes.ReplaceAll(b, []byte(api.Status.Image[strings.Index(api.Status.Image, "@"):]), []byte("@<digest>"))
	return append([]byte("---\n"), b...)
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
		t.Errorf("%s differs (run with -update to accept):\n%s", path, got)
	}
}

func scheme(t *testing.T) *runtime.Scheme {
	s, err := operator.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

// TestMissingEndpoint: the corpus definition naming an Endpoint that does not
// exist is Resolved=False with a reason naming it; creating the Endpoint
// brings the API back through the watch, without touching the API.
func TestMissingEndpoint(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "missing-endpoint")
	f.create(t,
		definition(ns, "def", "missing-endpoint.yaml", readFile(t, "../shared/corpus/bad/missing-endpoint.yaml")),
		newAPI(ns, "missing", "def", "missing-endpoint.yaml"))
	got := f.waitCondition(t, ns, "missing", v1alpha1.ConditionResolved, metav1.ConditionFalse, "EndpointNotFound")
	msg := condition(got, v1alpha1.ConditionResolved).Message
	if !strings.Contains(msg, "no-such-endpoint") {
		t.Errorf("Resolved message %q does not name the Endpoint", msg)
	}
	if c := condition(got, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %s, want False", c.Status)
	}
	if refs := got.Status.References; refs == nil || len(refs.Endpoints) != 1 || refs.Endpoints[0] != "no-such-endpoint" {
		t.Errorf("status.references = %+v, want the missing Endpoint listed", refs)
	}

	f.rollouts(t, ns)
	f.create(t, &v1alpha1.Endpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "no-such-endpoint", Namespace: ns},
		Spec:       v1alpha1.EndpointSpec{URLs: []string{"http://backend.example:8080"}},
	})
	f.waitCondition(t, ns, "missing", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
}

// TestResolveRefusals: each input problem is Resolved=False with a reason and
// a message naming what is wrong, and nothing is built or deployed.
func TestResolveRefusals(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "refusals")
	other := f.env.Namespace(t, "refusals-other")
	f.create(t,
		definition(ns, "not-yaml", "not-yaml.yaml", readFile(t, "../shared/corpus/bad/not-yaml.yaml")),
		definition(ns, "dup", "duplicate-route.yaml", readFile(t, "../shared/corpus/bad/duplicate-route.yaml")),
		definition(ns, "remote", "remote-ref.yaml", readFile(t, "../shared/corpus/bad/remote-ref.yaml")),
		definition(other, "petstore-def", "petstore.yaml", readFile(t, "samples/petstore/petstore.yaml")),
	)
	// A JWT Security whose certificate Secret is in another namespace.
	f.create(t,
		definition(ns, "jwt-def", "jwt.yaml", []byte(jwtDefinition)),
		&v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: ns},
			Spec: v1alpha1.EndpointSpec{URLs: []string{"http://backend:8080"}}},
		&v1alpha1.Security{ObjectMeta: metav1.ObjectMeta{Name: "jwt", Namespace: ns},
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{
				Issuer: "https://issuer.example", CertificateSecretRef: &v1alpha1.SecretKeyRef{Name: "certs", Namespace: other}}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: other},
			Data: map[string][]byte{"tls.crt": []byte("not used")}},
	)
	cases := []struct {
		api     *v1alpha1.API
		reason  string
		mention []string
	}{
		{newAPI(ns, "not-yaml", "not-yaml", "not-yaml.yaml"), "ParseError", []string{"not-yaml.yaml", "line"}},
		{newAPI(ns, "dup", "dup", "duplicate-route.yaml"), "DuplicateRoute", []string{"duplicate-route.yaml"}},
		{newAPI(ns, "remote", "remote", "remote-ref.yaml"), "RemoteRef", []string{"remote-ref.yaml"}},
		{newAPI(ns, "no-cm", "does-not-exist", "x.yaml"), operator.ReasonDefinitionNotFound, []string{"does-not-exist"}},
		{newAPI(ns, "no-key", "dup", "other.yaml"), operator.ReasonDefinitionNotFound, []string{"other.yaml"}},
		{newAPI(ns, "cross-cm", "petstore-def", "petstore.yaml", func(a *v1alpha1.API) {
			a.Spec.Definition[0].Namespace = other
		}), operator.ReasonCrossNamespaceRef, []string{other}},
		{newAPI(ns, "cross-secret", "jwt-def", "jwt.yaml"), operator.ReasonCrossNamespaceRef, []string{other, "certs"}},
	}
	for _, tc := range cases {
		f.create(t, tc.api)
	}
	for _, tc := range cases {
		t.Run(tc.api.Name, func(t *testing.T) {
			got := f.waitCondition(t, ns, tc.api.Name, v1alpha1.ConditionResolved, metav1.ConditionFalse, tc.reason)
			c := condition(got, v1alpha1.ConditionResolved)
			for _, m := range tc.mention {
				if !strings.Contains(c.Message, m) {
					t.Errorf("message %q does not mention %q", c.Message, m)
				}
			}
			if b := condition(got, v1alpha1.ConditionBuilt); b.Status != metav1.ConditionUnknown || b.Reason != operator.ReasonNotResolved {
				t.Errorf("Built = %s/%s, want Unknown/%s", b.Status, b.Reason, operator.ReasonNotResolved)
			}
			if got.Status.Image != "" {
				t.Errorf("status.image = %q, want none", got.Status.Image)
			}
		})
	}
	// Nothing was deployed for any of them.
	var deps appsv1.DeploymentList
	if err := f.c.List(context.Background(), &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 0 {
		t.Errorf("%d Deployments in %s, want none", len(deps.Items), ns)
	}
}

const jwtDefinition = `openapi: 3.0.3
info: {title: jwt protected, version: "2.0"}
x-gatekiln-endpoint: backend
components:
  securitySchemes:
    jwt: {type: http, scheme: bearer, bearerFormat: JWT}
security: [{jwt: []}]
paths:
  /things:
    get: {responses: {"200": {description: ok}}}
`

// TestGzipDefinition: a definition in gzip'd binaryData (how large ones are
// stored) compiles like plain data.
func TestGzipDefinition(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "gzip")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(simpleDefinition("gzip", "/gz"))); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.create(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "def", Namespace: ns},
			BinaryData: map[string][]byte{"openapi.yaml.gz": buf.Bytes()}},
		&v1alpha1.API{ObjectMeta: metav1.ObjectMeta{Name: "gz", Namespace: ns},
			Spec: v1alpha1.APISpec{Definition: []v1alpha1.ConfigMapKeyRef{{Name: "def"}}}},
	)
	f.waitCondition(t, ns, "gz", v1alpha1.ConditionDeployed, metav1.ConditionTrue, operator.ReasonDeployed)
}

// simpleDefinition is a definition with inline upstream URLs, so it needs no
// Endpoint object; title and base path make variants distinct.
func simpleDefinition(title, basePath string) string {
	return fmt.Sprintf(`openapi: 3.0.3
info: {title: %q, version: "1.0"}
x-gatekiln-basepath: %s
x-wso2-production-endpoints:
  urls: ["http://upstream.example:8080"]
paths:
  /items:
    get: {responses: {"200": {description: ok}}}
`, title, basePath)
}
