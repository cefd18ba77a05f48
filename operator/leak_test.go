package operator_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/inspect"
	"github.com/gatekiln/gatekiln/operator"
	"github.com/gatekiln/gatekiln/operator/render"
)

// canary is a secret value: it may be in the Secrets that hold it and in the
// Binding Secret, nowhere else.
const canary = "s3cr3t-CANARY-operator"

const leakDefinition = `openapi: 3.0.3
info: {title: secret leaks, version: "1.0"}
x-gatekiln-basepath: /leaks
x-gatekiln-endpoint: backend
x-gatekiln-ratelimit: [shared]
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    basic: {type: http, scheme: basic}
    jwt: {type: http, scheme: bearer, bearerFormat: JWT}
security: [{key: []}, {basic: []}, {jwt: []}]
paths:
  /things:
    get: {responses: {"200": {description: ok}}}
`

// TestSecretsStayOutOfOutput feeds a recognizable secret through every
// Secret the operator reads (API keys, a Basic htpasswd, a JWT HMAC secret,
// a Redis password, a TLS key, push credentials), well-formed or not, and
// through an Endpoint URL's user info, and looks for it wherever the
// operator writes: API status (conditions, warnings), Events, its log, the
// Binding ConfigMap, the Deployment, the image's Bundle, the Kaniko Job and
// its build context. Only the Binding Secret may hold it.
func TestSecretsStayOutOfOutput(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "secret-leaks")
	f.rollouts(t, ns)
	f.dropBuilds(t, ns)
	_, logStart := loggedSince(0)

	secret := func(name string, typ corev1.SecretType, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: typ, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	ref := func(name string) *v1alpha1.SecretKeyRef { return &v1alpha1.SecretKeyRef{Name: name} }
	pushAuth := base64.StdEncoding.EncodeToString([]byte("ci:" + canary))
	f.create(t,
		definition(ns, "def", "openapi.yaml", []byte(leakDefinition)),
		definition(ns, "simple", "openapi.yaml", []byte(simpleDefinition("secret leaks kaniko", "/lk"))),
		&v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: ns},
			Spec: v1alpha1.EndpointSpec{URLs: []string{"http://backend:8080"}}},
		&v1alpha1.RateLimit{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: ns},
			Spec: v1alpha1.RateLimitSpec{Requests: 10, Store: "Redis", Redis: &v1alpha1.RedisRef{Address: "redis:6379", PasswordSecretRef: ref("redis")}}},
		&v1alpha1.Security{ObjectMeta: metav1.ObjectMeta{Name: "key", Namespace: ns},
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityAPIKey, APIKey: &v1alpha1.APIKeySpec{KeysSecretRef: *ref("keys")}}},
		&v1alpha1.Security{ObjectMeta: metav1.ObjectMeta{Name: "basic", Namespace: ns},
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityBasic, Basic: &v1alpha1.BasicSpec{UsersSecretRef: *ref("users")}}},
		&v1alpha1.Security{ObjectMeta: metav1.ObjectMeta{Name: "jwt", Namespace: ns},
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{Issuer: "https://issuer.example", HMACSecretRef: ref("hmac")}}},
		secret("keys", corev1.SecretTypeOpaque, map[string]string{"alice": canary}),
		secret("users", corev1.SecretTypeOpaque, map[string]string{"htpasswd": "alice:" + canary + "\n"}),
		secret("hmac", corev1.SecretTypeOpaque, map[string]string{"secret": canary + canary}),
		secret("redis", corev1.SecretTypeOpaque, map[string]string{"password": canary}),
		secret("tls", corev1.SecretTypeOpaque, map[string]string{"tls.crt": "not a certificate", "tls.key": canary}),
		// What the operator cannot use, quoting nothing.
		secret("bad-keys", corev1.SecretTypeOpaque, map[string]string{"carol": "sha256:" + canary}),
		secret("push-opaque", corev1.SecretTypeOpaque, map[string]string{"password": canary}),
		secret("push-bad-auth", corev1.SecretTypeDockerConfigJson, map[string]string{
			corev1.DockerConfigJsonKey: `{"auths":{"` + f.reg.Host + `":{"auth":"` + canary + `"}}}`}),
		secret("push", corev1.SecretTypeDockerConfigJson, map[string]string{
			corev1.DockerConfigJsonKey: `{"auths":{"` + f.reg.Host + `":{"auth":"` + pushAuth + `"}}}`}),
		&v1alpha1.Security{ObjectMeta: metav1.ObjectMeta{Name: "bad-key", Namespace: ns},
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityAPIKey, APIKey: &v1alpha1.APIKeySpec{KeysSecretRef: *ref("bad-keys")}}},
		&v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "with-credentials", Namespace: ns},
			Spec: v1alpha1.EndpointSpec{URLs: []string{"https://user:" + canary + "@backend:8443"}}},
	)
	kaniko := func(push string) func(*v1alpha1.API) {
		return func(a *v1alpha1.API) {
			a.Spec.Build.Strategy = v1alpha1.BuildKaniko
			a.Spec.Image.PushSecretRef = ref(push)
		}
	}
	f.create(t,
		newAPI(ns, "deployed", "def", "openapi.yaml", func(a *v1alpha1.API) { a.Spec.TLSSecretRef = ref("tls") }),
		newAPI(ns, "bad-keys", "def", "openapi.yaml", func(a *v1alpha1.API) {
			a.Spec.Refs = &v1alpha1.ObjectRefs{Security: map[string]string{"key": "bad-key"}}
		}),
		newAPI(ns, "url-credentials", "def", "openapi.yaml", func(a *v1alpha1.API) {
			a.Spec.Refs = &v1alpha1.ObjectRefs{Endpoints: map[string]string{"backend": "with-credentials"}}
		}),
		newAPI(ns, "push-opaque", "simple", "openapi.yaml", kaniko("push-opaque")),
		newAPI(ns, "push-bad-auth", "simple", "openapi.yaml", kaniko("push-bad-auth")),
		newAPI(ns, "kaniko", "simple", "openapi.yaml", kaniko("push")),
	)

	deployed := f.waitCondition(t, ns, "deployed", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	badKeys := f.waitCondition(t, ns, "bad-keys", v1alpha1.ConditionResolved, metav1.ConditionFalse, operator.ReasonSecretNotFound)
	if msg := condition(badKeys, v1alpha1.ConditionResolved).Message; !strings.Contains(msg, `"carol"`) {
		t.Errorf("Resolved message %q does not name the consumer", msg)
	}
	urlCreds := f.waitCondition(t, ns, "url-credentials", v1alpha1.ConditionResolved, metav1.ConditionFalse, "InvalidKinds")
	if msg := condition(urlCreds, v1alpha1.ConditionResolved).Message; !strings.Contains(msg, `Endpoint "with-credentials": urls[0] holds user info`) {
		t.Errorf("Resolved message %q does not name the Endpoint's URL", msg)
	}
	f.waitCondition(t, ns, "push-opaque", v1alpha1.ConditionBuilt, metav1.ConditionFalse, operator.ReasonBuildFailed)
	f.waitCondition(t, ns, "kaniko", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	// Its docker config does not decode: retried, logged, never quoted.
	eventually(t, "the bad push Secret's error logged", func() error {
		lines, _ := loggedSince(logStart)
		for _, l := range lines {
			if strings.Contains(l, "push-bad-auth") && strings.Contains(l, "auth") && strings.Contains(l, "base64") {
				return nil
			}
		}
		return errorf("not logged yet")
	})
	f.quiesce(t)

	// leaks lists where the canary (or the push auth, its base64) is found.
	var leaks []string
	check := func(where string, data []byte) {
		for _, s := range []string{canary, pushAuth} {
			if bytes.Contains(data, []byte(s)) {
				leaks = append(leaks, where)
				return
			}
		}
	}
	checkJSON := func(where string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		check(where, data)
	}

	var apis v1alpha1.APIList
	if err := f.c.List(ctx, &apis, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, a := range apis.Items {
		checkJSON("status of API "+a.Name, a.Status)
	}
	var events corev1.EventList
	if err := f.c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	checkJSON("core Events", events.Items)
	for _, a := range apis.Items {
		checkJSON("Events of API "+a.Name, f.events(t, ns, a.Name))
	}
	var cms corev1.ConfigMapList
	if err := f.c.List(ctx, &cms, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		checkJSON("ConfigMap "+cm.Name, cm)
		for k, v := range cm.BinaryData {
			checkTarGz(t, "ConfigMap "+cm.Name+" "+k, v, check)
		}
	}
	var deps appsv1.DeploymentList
	if err := f.c.List(ctx, &deps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	checkJSON("Deployments", deps.Items)
	var jobs batchv1.JobList
	if err := f.c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) == 0 {
		t.Error("no Kaniko Job to look into")
	}
	for _, j := range jobs.Items {
		checkJSON("Job "+j.Name, j)
		// The push credentials reach the executor from the Secret, mounted.
		var mounted bool
		for _, v := range j.Spec.Template.Spec.Volumes {
			mounted = mounted || (v.Secret != nil && v.Secret.SecretName == "push")
		}
		if !mounted {
			t.Errorf("Job %s does not mount the push Secret", j.Name)
		}
	}
	loaded, err := inspect.Load(ctx, deployed.Status.Image, f.reg.Config())
	if err != nil {
		t.Fatal(err)
	}
	check("the image's Bundle", loaded.Bytes)
	checkJSON("the image's labels", loaded.Labels)
	lines, _ := loggedSince(logStart)
	for _, l := range lines {
		check("the operator's log: "+l, []byte(l))
	}
	for _, l := range leaks {
		t.Errorf("the secret is in %s", l)
	}

	// The Binding Secret holds the values (API keys as hashes only) and the
	// Binding ConfigMap of the refused API does not exist.
	bs := &corev1.Secret{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "deployed-binding"}, bs); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"redis/password", "server/tls.key", "security/jwt/hmac-secret", "security/basic/htpasswd"} {
		if v := bs.Data[render.SecretKey(file)]; !bytes.Contains(v, []byte(canary)) {
			t.Errorf("Binding Secret %s = %q, want the secret", file, v)
		}
	}
	if v := string(bs.Data[render.SecretKey("security/key/keys")]); v != "alice:"+sha256hex(canary)+"\n" {
		t.Errorf("Binding Secret keys file %q, want alice's hash", v)
	}
	err = f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "url-credentials-binding"}, &corev1.ConfigMap{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("Binding ConfigMap of the API whose Endpoint holds credentials: %v, want none", err)
	}
}

// checkTarGz looks into a build context (a tar.gz, or a part of one that
// does not decompress on its own, looked at as it is).
func checkTarGz(t *testing.T, where string, data []byte, check func(string, []byte)) {
	t.Helper()
	check(where, data)
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("%s: %v", where, err)
			}
			return
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		check(where+" "+hdr.Name, body)
	}
}
