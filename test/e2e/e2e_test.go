//go:build e2e

// Package e2e runs the whole pipeline on the local cluster of hack/cluster:
// the operator installed from config/ as a Deployment running its own image,
// `kubectl add api` through kubectl with the plugin on PATH, the Direct build
// in the operator and the Kaniko build as a Job's Pod, the gateway Pods, and
// traffic through the gateway's Service. It runs only through
// `make test-e2e` (build tag e2e, root).
package e2e

import (
	"bytes"
	"context"
	cryptotls "crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
	"github.com/gatekiln/gatekiln/test/cluster"
	"github.com/gatekiln/gatekiln/test/redistest"
)

const (
	ns     = "shop"
	apiKey = "e2e-alice-key"
	// limit is the RateLimit's requests per minute for one consumer.
	limit = 5
	// globalLimit is the Redis RateLimit's requests per minute for the API
	// (GET /inventory) across its replicas.
	globalLimit = 5
)

// env is the running cluster plus what the scenario learned on the way.
type env struct {
	c  *cluster.Cluster
	ns string // where the APIs of the current step live
	// operator is the operator image by digest, for the production install.
	operator string
	path     string // PATH with bin/e2e (kubectl-add) and bin/k8s (kubectl) first
	http     *http.Client
	// def is the suite's definition: the sample plus GET /inventory, served
	// by an image Endpoint and limited by a Redis RateLimit.
	def   string
	redis *redistest.Server
	// qa and prod are the two environments' JWT issuers: QA's keys come
	// from its JWKS URL, production's from a certificate Secret.
	qa, prod *issuer
	// top is the whole test's T, for what outlives one step.
	top *testing.T
}

func TestPipeline(t *testing.T) {
	c := cluster.Start(t)
	e := &env{
		c:    c,
		ns:   ns,
		path: filepath.Join(c.Root, "bin", "e2e") + ":" + filepath.Join(c.Root, "bin", "k8s") + ":" + os.Getenv("PATH"),
		http: &http.Client{Timeout: 10 * time.Second},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t.Cleanup(func() { e.dumpOnFailure(t) })
	e.def = e.definition(t)
	// Long-lived servers belong to the whole test, not to the step that
	// needs them first.
	e.redis = redistest.Start(t, nodeIP)
	e.top = t
	e.qa = newIssuer(t, "https://issuer.qa.e2e", "qa-1")
	e.prod = newIssuer(t, "https://issuer.prod.e2e", "prod-1")

	steps := []struct {
		name string
		run  func(context.Context, *testing.T)
	}{
		{"install", e.install},
		{"upstreams", e.upstreams},
		{"direct", e.direct},
		{"traffic-direct", e.traffic("petstore")},
		{"kaniko", e.kaniko},
		{"traffic-kaniko", e.traffic("petstore-k")},
		{"change", e.change},
		{"promote", e.promote},
		{"faults", e.faults},
		{"redis-down", e.redisDown},
		{"registry-down", e.registryDown},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(ctx, t) }) {
			return
		}
	}
}

// install pushes the images to the cluster's registry and installs the
// operator from config/default with its image pinned by digest.
func (e *env) install(ctx context.Context, t *testing.T) {
	out, err := e.c.Make(ctx, "e2e-images", "REGISTRY="+e.c.Registry)
	if err != nil {
		t.Fatalf("push images: %v\n%s", err, out)
	}
	opRef := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, e.c.Registry+"/gatekiln/gatekiln-operator@sha256:") {
			opRef = strings.TrimSpace(l)
		}
	}
	if opRef == "" {
		t.Fatalf("no operator image by digest in the push output:\n%s", out)
	}
	e.operator = opRef
	repo, digest, _ := strings.Cut(opRef, "@")
	overlay := t.TempDir()
	// kustomize refuses absolute paths to a base, not relative ones.
	base, err := filepath.Rel(overlay, filepath.Join(e.c.Root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	kust := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
images:
  - name: %s/gatekiln/gatekiln-operator
    newName: %s
    digest: %s
# The production install (step promote) watches its own namespace.
patches:
  - target: {kind: Deployment, name: gatekiln-operator}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --namespaces=%s
`, base, e.c.Registry, repo, digest, ns)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.c.Kubectl(ctx, "apply", "--server-side", "-k", overlay); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	if out, err := e.c.Kubectl(ctx, "-n", "gatekiln-system", "rollout", "status", "deploy/gatekiln-operator", "--timeout=3m"); err != nil {
		t.Fatalf("operator not ready: %v\n%s", err, out)
	}
	img, err := e.c.Kubectl(ctx, "-n", "gatekiln-system", "get", "deploy/gatekiln-operator", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	if err != nil || img != opRef {
		t.Fatalf("operator runs %q (%v), want %q", img, err, opRef)
	}
}

// upstreams deploys two echo servers (a and b), QA's token issuer (an echo
// server serving its JWKS), a Redis on the node, and the kinds, with the
// Endpoint pointing at echo-a by its Service's cluster IP.
func (e *env) upstreams(ctx context.Context, t *testing.T) {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
	jwks, err := json.Marshal(e.qa.jwks(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"echo-a", "echo-b", "issuer"} {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
        - name: echo
          image: %[3]s/e2e/echo:latest
          env: [{name: ECHO_NAME, value: %[1]s}, {name: ECHO_JWKS, value: %[4]s}]
          ports: [{containerPort: 8080}]
          readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  selector: {app: %[1]s}
  ports: [{port: 8080, targetPort: 8080}]
`, name, ns, e.c.Registry, jwks)
	}
	if err := e.c.Apply(ctx, b.String()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"echo-a", "echo-b", "issuer"} {
		if out, err := e.c.Kubectl(ctx, "-n", ns, "rollout", "status", "deploy/"+name, "--timeout=2m"); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	if err := e.c.Apply(ctx, kinds(environment{
		namespace: ns, apiKey: apiKey, limit: limit, upstream: e.echoURL(ctx, t, "echo-a"),
		echoImage: e.c.Registry + "/e2e/echo:latest", globalStore: fmt.Sprintf("store: Redis, redis: {address: %q}", e.redis.Addr),
		jwt: fmt.Sprintf("issuer: %s\n    jwksURL: %s/.well-known/jwks.json", e.qa.name, e.echoURL(ctx, t, "issuer")),
	})); err != nil {
		t.Fatal(err)
	}
}

// definition writes the suite's definition: the sample with GET /inventory,
// which proxies to the image Endpoint petstore-inventory and is limited per
// API by the Redis RateLimit petstore-global.
func (e *env) definition(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(e.c.Root, "samples", "petstore", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "petstore.yaml")
	if err := os.WriteFile(file, withOperation(t, src, `  /inventory:
    get:
      operationId: inventory
      summary: Stock levels, from the inventory service
      security: []
      x-gatekiln-endpoint: petstore-inventory
      x-gatekiln-ratelimit: petstore-global
      responses:
        "200":
          description: Stock levels
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// withOperation inserts a path item before the sample's /status.
func withOperation(t *testing.T, src []byte, item string) []byte {
	t.Helper()
	const anchor = "  /status:\n"
	if !bytes.Contains(src, []byte(anchor)) {
		t.Fatalf("the definition has no %q", anchor)
	}
	return bytes.Replace(src, []byte(anchor), []byte(item+anchor), 1)
}

// direct adds the sample API with the Direct strategy through the plugin.
func (e *env) direct(ctx context.Context, t *testing.T) {
	api := e.addAPI(ctx, t, "Direct", "petstore", e.def, "--build-strategy", "direct")
	if n := len(e.jobs(ctx, t)); n != 0 {
		t.Errorf("%d Jobs after a Direct build, want 0", n)
	}
	e.checkDeployed(ctx, t, api)
}

// traffic checks the answers of the API name's gateway through its Service:
// the same for the Direct and the Kaniko build.
func (e *env) traffic(name string) func(context.Context, *testing.T) {
	return func(ctx context.Context, t *testing.T) { e.trafficOf(ctx, t, name) }
}

func (e *env) trafficOf(ctx context.Context, t *testing.T, name string) {
	base := e.serviceBase(ctx, t, name)
	// The Service answers once the Pods are Ready; give kube-proxy a moment.
	e.waitServing(ctx, t, base)

	res := e.mustDo(ctx, t, "GET", base+"/v1/pets", nil, nil)
	if res.status != http.StatusUnauthorized {
		t.Errorf("no key: %d %s, want 401", res.status, res.body)
	}
	res = e.mustDo(ctx, t, "GET", base+"/v1/pets", map[string]string{"X-API-Key": "wrong"}, nil)
	if res.status != http.StatusUnauthorized {
		t.Errorf("wrong key: %d %s, want 401", res.status, res.body)
	}
	// Forwarding headers a client sends are not believed (no trusted proxies).
	res = e.mustDo(ctx, t, "GET", base+"/v1/pets?limit=3", map[string]string{"X-API-Key": apiKey,
		"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "spoofed.example", "Forwarded": "for=203.0.113.9;host=spoofed.example"}, nil)
	if res.status != http.StatusOK {
		t.Fatalf("with key: %d %s, want 200", res.status, res.body)
	}
	var seen struct {
		Name    string              `json:"name"`
		Path    string              `json:"path"`
		Query   string              `json:"query"`
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal(res.body, &seen); err != nil {
		t.Fatalf("upstream answer: %v: %s", err, res.body)
	}
	if seen.Name != "echo-a" || seen.Path != "/pets" && seen.Path != "/v1/pets" || seen.Query != "limit=3" {
		t.Errorf("upstream saw %s %s?%s, want echo-a /pets?limit=3", seen.Name, seen.Path, seen.Query)
	}
	host := strings.TrimPrefix(base, "http://")
	for h, want := range map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": host} {
		if got := strings.Join(seen.Headers[h], ","); got != want {
			t.Errorf("upstream saw %s %q, want %q", h, got, want)
		}
	}
	if xff := strings.Join(seen.Headers["X-Forwarded-For"], ","); xff == "" || strings.Contains(xff, "203.0.113.9") {
		t.Errorf("upstream saw X-Forwarded-For %q, want the client's address alone", xff)
	}
	if fwd := strings.Join(seen.Headers["Forwarded"], ","); strings.Contains(fwd, "spoofed") || strings.Contains(fwd, "203.0.113.9") {
		t.Errorf("upstream saw Forwarded %q: the client's own header passed", fwd)
	}
	if len(seen.Headers["X-Api-Key"]) != 0 {
		t.Errorf("the API key reached the upstream: %v (the gateway removes the credential it consumed)", seen.Headers["X-Api-Key"])
	}

	// GET /inventory goes to the upstream the operator runs for the image
	// Endpoint, and is limited per API in Redis.
	var up appsv1.Deployment
	e.getJSON(ctx, t, &up, "-n", ns, "get", "deploy", "petstore-inventory-upstream")
	if len(up.OwnerReferences) != 1 || up.OwnerReferences[0].Kind != "Endpoint" || up.OwnerReferences[0].Name != "petstore-inventory" {
		t.Errorf("upstream Deployment owners %+v, want the Endpoint petstore-inventory", up.OwnerReferences)
	}
	e.eventually(t, time.Minute, func() error {
		res, err := e.do(ctx, "GET", base+"/v1/inventory", nil, nil)
		if err != nil {
			return err
		}
		if res.status != http.StatusOK || !bytes.Contains(res.body, []byte(`"name":"inventory"`)) {
			return fmt.Errorf("GET /v1/inventory: %d %s, want 200 from the inventory upstream", res.status, res.body)
		}
		return nil
	})
	if n := e.globalLimited(ctx, t, base); n == 0 {
		t.Errorf("GET /v1/inventory: no 429 in %d requests, want one past the Redis limit of %d", 3*globalLimit, globalLimit)
	}
	if keys, err := e.redisKeys(ctx); err != nil || len(keys) == 0 {
		t.Errorf("Redis holds no rate-limit keys (%v, %v): the limit was not kept there", keys, err)
	}

	good := e.qa.token(t)
	tampered := good[:len(good)-2] + "xx"
	res = e.mustDo(ctx, t, "POST", base+"/v1/pets", map[string]string{"Authorization": "Bearer " + tampered, "Content-Type": "application/json"}, []byte(`{"name":"Rex"}`))
	if res.status != http.StatusUnauthorized {
		t.Errorf("tampered JWT: %d %s, want 401", res.status, res.body)
	}
	res = e.mustDo(ctx, t, "POST", base+"/v1/pets", map[string]string{"Authorization": "Bearer " + good, "Content-Type": "application/json"}, []byte(`{"name":5,"extra":true}`))
	if res.status != http.StatusBadRequest {
		t.Errorf("invalid body: %d %s, want 400", res.status, res.body)
	}
	res = e.mustDo(ctx, t, "POST", base+"/v1/pets", map[string]string{"Authorization": "Bearer " + good, "Content-Type": "application/json"}, []byte(`{"name":"Rex","tag":"dog"}`))
	if res.status != http.StatusCreated {
		t.Errorf("valid JWT and body: %d %s, want 201", res.status, res.body)
	}

	// alice has spent one request of her limit; the rest pass, then 429.
	got429 := 0
	for i := 0; i < limit+5 && got429 == 0; i++ {
		res = e.mustDo(ctx, t, "GET", base+"/v1/pets", map[string]string{"X-API-Key": apiKey}, nil)
		switch {
		case res.status == http.StatusTooManyRequests:
			got429 = i + 2
		case res.status != http.StatusOK:
			t.Fatalf("request %d with key: %d %s", i+2, res.status, res.body)
		}
	}
	if got429 == 0 || got429 <= limit {
		t.Errorf("429 came at request %d, want the first past the limit of %d", got429, limit)
	}
	if res := e.mustDo(ctx, t, "POST", base+"/v1/pets", map[string]string{"Authorization": "Bearer " + e.prod.token(t), "Content-Type": "application/json"}, []byte(`{"name":"Rex"}`)); res.status != http.StatusUnauthorized {
		t.Errorf("production's JWT in QA: %d %s, want 401", res.status, res.body)
	}
}

// globalLimited sends GET /inventory until the Redis limit answers 429, at
// most 3×globalLimit times, and returns the number of the request that got
// it (0 for none). Any other answer than 200 or 429 fails the test.
func (e *env) globalLimited(ctx context.Context, t *testing.T, base string) int {
	t.Helper()
	for i := 1; i <= 3*globalLimit; i++ {
		res := e.mustDo(ctx, t, "GET", base+"/v1/inventory", nil, nil)
		switch res.status {
		case http.StatusTooManyRequests:
			return i
		case http.StatusOK:
		default:
			t.Fatalf("GET /v1/inventory: %d %s", res.status, res.body)
		}
	}
	return 0
}

// kaniko adds the same definition as another API with another version (so
// another tag) with the Kaniko strategy: one Job, the executor in its Pod.
func (e *env) kaniko(ctx context.Context, t *testing.T) {
	api := e.addAPI(ctx, t, "Kaniko", "petstore-k", e.def, "--build-strategy", "kaniko", "--version", "1.0.0-k")
	jobs := e.jobs(ctx, t)
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs after a Kaniko build, want 1", len(jobs))
	}
	if img := jobs[0].Spec.Template.Spec.Containers[0].Image; !strings.HasPrefix(img, e.c.Registry+"/kaniko/executor") {
		t.Errorf("Job %s runs %s, want the Kaniko executor image", jobs[0].Name, img)
	}
	// The operator reads the digest from the terminated executor container;
	// the Job controller marks the Job succeeded a moment later.
	e.eventually(t, time.Minute, func() error {
		j := e.jobs(ctx, t)
		if len(j) != 1 {
			return fmt.Errorf("%d Jobs, want 1", len(j))
		}
		if j[0].Status.Succeeded != 1 {
			return fmt.Errorf("Job %s not succeeded: %+v", j[0].Name, j[0].Status)
		}
		return nil
	})
	e.checkDeployed(ctx, t, api)
	base := e.serviceBase(ctx, t, "petstore-k")
	e.waitServing(ctx, t, base)
}

// change edits the Kaniko API's definition (one more operation): exactly one
// more Job and the Deployment on the new digest. Then it moves the Endpoint
// to echo-b: no Job, and the running Pods serve the new upstream.
func (e *env) change(ctx context.Context, t *testing.T) {
	before := e.getAPI(ctx, t, "petstore-k")
	src, err := os.ReadFile(e.def)
	if err != nil {
		t.Fatal(err)
	}
	changed := withOperation(t, src, `  /hours:
    get:
      operationId: openingHours
      security: []
      x-gatekiln-ratelimit: []
      responses:
        "200":
          description: When the store is open
`)
	file := filepath.Join(t.TempDir(), "petstore.yaml")
	if err := os.WriteFile(file, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	// Steady load on the running gateway while it rolls to the new image.
	load := e.steadyLoad(ctx, e.serviceBase(ctx, t, "petstore-k")+"/v1/status")
	after := e.addAPI(ctx, t, "Kaniko (changed definition)", "petstore-k", file, "--build-strategy", "kaniko", "--version", "1.0.0-k")
	if after.Status.InputsDigest == before.Status.InputsDigest || after.Status.Image == before.Status.Image {
		t.Fatalf("definition changed but inputs digest %s and image %s did not", after.Status.InputsDigest, after.Status.Image)
	}
	if n := len(e.jobs(ctx, t)); n != 2 {
		t.Errorf("%d Jobs after the change, want 2 (one per definition)", n)
	}
	e.checkDeployed(ctx, t, after)
	sent, failed := load()
	t.Logf("during the roll: %d requests, %d failed", sent, len(failed))
	if sent == 0 || len(failed) > 0 {
		t.Errorf("steady load during the roll: %d sent, %d failed: %v", sent, len(failed), failed)
	}
	base := e.serviceBase(ctx, t, "petstore-k")
	e.eventually(t, 2*time.Minute, func() error {
		res, err := e.do(ctx, "GET", base+"/v1/hours", nil, nil)
		if err != nil {
			return err
		}
		if res.status != http.StatusOK {
			return fmt.Errorf("new operation: %d %s", res.status, res.body)
		}
		return nil
	})

	// Only the Endpoint's URL changes: no build, the Pods reload the Binding.
	pods := e.podNames(ctx, t, "petstore")
	jobs := len(e.jobs(ctx, t))
	if out, err := e.c.Kubectl(ctx, "-n", ns, "patch", "endpoints.gatekiln.io", "petstore-backend", "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"urls":[%q]}}`, e.echoURL(ctx, t, "echo-b"))); err != nil {
		t.Fatalf("patch Endpoint: %v\n%s", err, out)
	}
	direct := e.serviceBase(ctx, t, "petstore")
	patched := time.Now()
	defer func() { t.Logf("Endpoint change served after %s", time.Since(patched).Round(time.Second)) }()
	e.eventually(t, 3*time.Minute, func() error {
		res, err := e.do(ctx, "GET", direct+"/v1/status", nil, nil)
		if err != nil {
			return err
		}
		if !bytes.Contains(res.body, []byte(`"name":"echo-b"`)) {
			return fmt.Errorf("still %d %s", res.status, res.body)
		}
		return nil
	})
	if n := len(e.jobs(ctx, t)); n != jobs {
		t.Errorf("%d Jobs after an Endpoint change, want %d", n, jobs)
	}
	if now := e.podNames(ctx, t, "petstore"); strings.Join(now, ",") != strings.Join(pods, ",") {
		t.Errorf("gateway Pods %v replaced by %v on an Endpoint change, want a reload in place", pods, now)
	}
}

// addAPI runs `kubectl add api NAME --from-file=FILE --wait` through kubectl
// and its plugin on PATH and prints how long add → Ready took.
func (e *env) addAPI(ctx context.Context, t *testing.T, label, name, file string, flags ...string) *v1alpha1.API {
	t.Helper()
	args := append([]string{"add", "api", name, "-n", e.ns, "--from-file=" + file, "--wait", "--timeout=8m"}, flags...)
	start := time.Now()
	out, err := e.plugin(ctx, args...)
	took := time.Since(start)
	t.Logf("kubectl add api %s:\n%s", name, out)
	if err != nil {
		t.Fatalf("kubectl add api %s: %v", name, err)
	}
	fmt.Printf("E2E TIME %s: add → Ready %s\n", label, took.Round(100*time.Millisecond))
	api := e.getAPI(ctx, t, name)
	if !ready(api) {
		t.Fatalf("API %s not Ready after --wait: %+v", name, api.Status.Conditions)
	}
	if api.Status.URL == "" || !strings.Contains(out, api.Status.URL) {
		t.Errorf("API %s: URL %q, not shown by --wait", name, api.Status.URL)
	}
	if !strings.Contains(api.Status.Image, "@sha256:") {
		t.Errorf("API %s: image %q is not by digest", name, api.Status.Image)
	}
	return api
}

// checkDeployed asserts the API's Deployment runs its image by digest and has
// rolled out completely.
func (e *env) checkDeployed(ctx context.Context, t *testing.T, api *v1alpha1.API) {
	t.Helper()
	d := e.deployment(ctx, t, api.Name)
	var images []string
	for _, c := range d.Spec.Template.Spec.Containers {
		images = append(images, c.Image)
	}
	if !contains(images, api.Status.Image) {
		t.Errorf("Deployment %s runs %v, want %s", d.Name, images, api.Status.Image)
	}
	if out, err := e.c.Kubectl(ctx, "-n", e.ns, "rollout", "status", "deploy/"+d.Name, "--timeout=3m"); err != nil {
		t.Errorf("Deployment %s: %v\n%s", d.Name, err, out)
	}
}

func (e *env) getAPI(ctx context.Context, t *testing.T, name string) *v1alpha1.API {
	t.Helper()
	var api v1alpha1.API
	e.getJSON(ctx, t, &api, "-n", e.ns, "get", "apis.gatekiln.io", name)
	return &api
}

// jobs are every Job in the cluster: the build Jobs wherever the operator
// puts them.
func (e *env) jobs(ctx context.Context, t *testing.T) []batchv1.Job {
	t.Helper()
	var l batchv1.JobList
	e.getJSON(ctx, t, &l, "get", "jobs", "-A")
	return l.Items
}

// deployment is the Deployment owned by the API name.
func (e *env) deployment(ctx context.Context, t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	var l appsv1.DeploymentList
	e.getJSON(ctx, t, &l, "-n", e.ns, "get", "deployments")
	for i, d := range l.Items {
		for _, o := range d.OwnerReferences {
			if o.Kind == "API" && o.Name == name {
				return &l.Items[i]
			}
		}
	}
	t.Fatalf("no Deployment owned by API %s", name)
	return nil
}

// podNames are the running Pods of the API's Deployment.
func (e *env) podNames(ctx context.Context, t *testing.T, api string) []string {
	t.Helper()
	d := e.deployment(ctx, t, api)
	var sel []string
	for k, v := range d.Spec.Selector.MatchLabels {
		sel = append(sel, k+"="+v)
	}
	out, err := e.c.Kubectl(ctx, "-n", e.ns, "get", "pods", "-l", strings.Join(sel, ","), "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

func (e *env) getJSON(ctx context.Context, t *testing.T, into any, args ...string) {
	t.Helper()
	out, err := e.c.Kubectl(ctx, append(args, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("kubectl %v: %v", args, err)
	}
}

// echoURL is the echo Service's URL by cluster IP.
func (e *env) echoURL(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	ip, err := e.c.Kubectl(ctx, "-n", ns, "get", "svc", name, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || ip == "" {
		t.Fatalf("Service %s: %q %v", name, ip, err)
	}
	return "http://" + ip + ":8080"
}

// serviceBase turns the API's status.url (http://svc.ns.svc:port) into the
// Service's cluster IP and port: the test runs on the node, where kube-proxy
// routes cluster IPs, and the local cluster has no DNS.
func (e *env) serviceBase(ctx context.Context, t *testing.T, api string) string {
	t.Helper()
	a := e.getAPI(ctx, t, api)
	u, err := url.Parse(a.Status.URL)
	if err != nil {
		t.Fatalf("API %s URL %q: %v", api, a.Status.URL, err)
	}
	svc, svcNS, _ := strings.Cut(u.Hostname(), ".")
	svcNS, _, _ = strings.Cut(svcNS, ".")
	ip, err := e.c.Kubectl(ctx, "-n", svcNS, "get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || ip == "" {
		t.Fatalf("Service %s/%s of %s: %q %v", svcNS, svc, a.Status.URL, ip, err)
	}
	return "http://" + ip + ":" + u.Port()
}

type response struct {
	status int
	body   []byte
}

func (e *env) do(ctx context.Context, method, u string, headers map[string]string, body []byte) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := e.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{status: res.StatusCode, body: b}, err
}

func (e *env) mustDo(ctx context.Context, t *testing.T, method, u string, headers map[string]string, body []byte) response {
	t.Helper()
	res, err := e.do(ctx, method, u, headers, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return res
}

// waitServing waits until the gateway at base answers GET /v1/status with
// 200: its Pods are Ready and kube-proxy routes the Service to them.
func (e *env) waitServing(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	e.eventually(t, time.Minute, func() error {
		res, err := e.do(ctx, "GET", base+"/v1/status", nil, nil)
		if err != nil {
			return err
		}
		if res.status != http.StatusOK {
			return fmt.Errorf("status %d: %s", res.status, res.body)
		}
		return nil
	})
}

// eventually polls f once a second until it succeeds or d passes.
func (e *env) eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Second) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("after %s: %v", d, err)
}

// dumpOnFailure logs what the cluster looks like, for the reader of a failed run.
func (e *env) dumpOnFailure(t *testing.T) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "pods,jobs,deploy,svc,apis.gatekiln.io", "-A", "-o", "wide"},
		{"-n", ns, "get", "apis.gatekiln.io", "-o", "yaml"},
		{"-n", "gatekiln-system", "logs", "deploy/gatekiln-operator", "--tail=80"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		out, err := e.c.Kubectl(ctx, args...)
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func ready(api *v1alpha1.API) bool {
	for _, c := range api.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True" && c.ObservedGeneration == api.Generation
		}
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// environment is what differs between QA and production: keys, limits,
// upstreams, the JWT issuer and where the global limit is kept.
type environment struct {
	namespace, apiKey string
	limit             int
	upstream          string
	// echoImage runs the inventory upstream (the image Endpoint).
	echoImage string
	// globalStore is the store of the RateLimit petstore-global, as YAML
	// flow fields.
	globalStore string
	// jwt is the body of the Security petstore-jwt's jwt: block, after its
	// audiences and algorithms.
	jwt string
	// extra are more objects (a certificate Secret).
	extra string
}

// kinds are the Secrets, Endpoints, RateLimits and Securities the suite's
// definition names, for one environment.
func kinds(v environment) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: petstore-api-keys, namespace: %[1]s}
stringData: {alice: %[2]s}
---
apiVersion: gatekiln.io/v1alpha1
kind: Endpoint
metadata: {name: petstore-backend, namespace: %[1]s}
spec:
  urls: [%[3]q]
  timeout: 5s
---
apiVersion: gatekiln.io/v1alpha1
kind: Endpoint
metadata: {name: petstore-inventory, namespace: %[1]s}
spec:
  image:
    image: %[4]s
    port: 8080
    env: {ECHO_NAME: inventory}
---
apiVersion: gatekiln.io/v1alpha1
kind: RateLimit
metadata: {name: petstore-standard, namespace: %[1]s}
spec: {requests: %[5]d, unit: Minute, key: Consumer, store: Local}
---
apiVersion: gatekiln.io/v1alpha1
kind: RateLimit
metadata: {name: petstore-global, namespace: %[1]s}
spec: {requests: %[6]d, unit: Minute, key: API, %[7]s}
---
apiVersion: gatekiln.io/v1alpha1
kind: Security
metadata: {name: petstore-api-key, namespace: %[1]s}
spec:
  type: APIKey
  apiKey: {keysSecretRef: {name: petstore-api-keys}}
---
apiVersion: gatekiln.io/v1alpha1
kind: Security
metadata: {name: petstore-jwt, namespace: %[1]s}
spec:
  type: JWT
  jwt:
    audiences: [petstore]
    algorithms: [RS256]
    %[8]s
%[9]s`, v.namespace, v.apiKey, v.upstream, v.echoImage, v.limit, globalLimit, v.globalStore, v.jwt, v.extra)
}

const (
	prodNS       = "prod"
	prodSystemNS = "gatekiln-prod"
	prodKey      = "e2e-prod-key"
	prodLimit    = 3
)

// promote copies the QA image by digest into the production registry (TLS
// with its own CA, htpasswd auth, on the node). A second operator install,
// watching only the prod namespace and pointed at that registry with its
// credentials, is given the same definition with its own keys, limits,
// upstream and JWT issuer: it runs zero Jobs, uploads nothing, and its gateway
// Pods pull the promoted digest from the production registry.
func (e *env) promote(ctx context.Context, t *testing.T) {
	qa := e.getAPI(ctx, t, "petstore")
	_, digest, ok := strings.Cut(qa.Status.Image, "@")
	if !ok {
		t.Fatalf("QA image %q not by digest", qa.Status.Image)
	}
	tag, err := image.TagFor("1.0.0", qa.Status.InputsDigest)
	if err != nil {
		t.Fatal(err)
	}
	repoName := strings.TrimPrefix(strings.SplitN(qa.Status.Image, "@", 2)[0], e.c.Registry+"/gatekiln/")

	reg := startProdRegistry(e.top, e.c.Root)
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), reg.DockerConfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := reg.Host + "/gatekiln/" + repoName + ":" + tag
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(e.c.Root, "bin", "e2e", "gatekiln"), "promote", qa.Status.Image, dst,
		"--insecure-registry", e.c.Registry, "--registry-ca", reg.CACertFile, "--docker-config", filepath.Join(cfgDir, "config.json"))
	out, err := cmd.CombinedOutput()
	t.Logf("gatekiln promote %s %s (%s):\n%s", qa.Status.Image, dst, time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if got := e.headDigest(ctx, t, dst, reg); got != digest {
		t.Fatalf("%s is %s, want the QA digest %s", dst, got, digest)
	}

	e.installProd(ctx, t, reg)
	pullSecret, err := json.Marshal(string(reg.DockerConfig()))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := json.Marshal(e.prod.publicPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	objects := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Secret
metadata: {name: prod-registry, namespace: %[1]s}
type: kubernetes.io/dockerconfigjson
stringData: {.dockerconfigjson: %[2]s}
---
`, prodNS, pullSecret) + kinds(environment{
		namespace: prodNS, apiKey: prodKey, limit: prodLimit, upstream: e.echoURL(ctx, t, "echo-b"),
		echoImage: e.c.Registry + "/e2e/echo:latest", globalStore: "store: Local",
		jwt:   fmt.Sprintf("issuer: %s\n    certificateSecretRef: {name: petstore-jwt-keys}", e.prod.name),
		extra: fmt.Sprintf("---\napiVersion: v1\nkind: Secret\nmetadata: {name: petstore-jwt-keys, namespace: %s}\nstringData: {tls.crt: %s}\n", prodNS, certPEM),
	})
	if err := e.c.Apply(ctx, objects); err != nil {
		t.Fatal(err)
	}
	jobs := len(e.jobs(ctx, t))
	stored := storage(t, reg)
	prod := *e
	prod.ns = prodNS
	api := prod.addAPI(ctx, t, "Kaniko (promoted, production)", "petstore", e.def, "--build-strategy", "kaniko", "--pull-secret", "prod-registry")
	if n := len(e.jobs(ctx, t)); n != jobs {
		t.Errorf("%d Jobs after the production add, want %d (no build)", n, jobs)
	}
	want := reg.Host + "/gatekiln/" + repoName + "@" + digest
	if api.Status.Image != want || api.Status.InputsDigest != qa.Status.InputsDigest {
		t.Errorf("production runs %s (inputs %s), want %s (inputs %s)", api.Status.Image, api.Status.InputsDigest, want, qa.Status.InputsDigest)
	}
	prod.checkDeployed(ctx, t, api)
	if now := storage(t, reg); now != stored {
		t.Errorf("the production install wrote to its registry; before:\n%s\nafter:\n%s", stored, now)
	}
	// The node pulled the promoted digest from the production registry.
	ids, err := e.c.Kubectl(ctx, "-n", prodNS, "get", "pods", "-l", "gatekiln.io/api=petstore", "-o", "jsonpath={.items[*].status.containerStatuses[*].imageID}")
	if err != nil || !strings.Contains(ids, reg.Host+"/gatekiln/"+repoName+"@"+digest) {
		t.Errorf("production gateway Pods run image IDs %q (%v), want %s", ids, err, want)
	}

	base := prod.serviceBase(ctx, t, "petstore")
	e.waitServing(ctx, t, base)
	if res := e.mustDo(ctx, t, "GET", base+"/v1/pets", map[string]string{"X-API-Key": apiKey}, nil); res.status != http.StatusUnauthorized {
		t.Errorf("QA key in production: %d %s, want 401", res.status, res.body)
	}
	post := func(token string) response {
		return e.mustDo(ctx, t, "POST", base+"/v1/pets", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}, []byte(`{"name":"Rex"}`))
	}
	if res := post(e.qa.token(t)); res.status != http.StatusUnauthorized {
		t.Errorf("QA JWT in production: %d %s, want 401", res.status, res.body)
	}
	if res := post(e.prod.token(t)); res.status != http.StatusCreated {
		t.Errorf("production JWT in production: %d %s, want 201", res.status, res.body)
	}
	got429 := 0
	for i := 0; i < prodLimit+3 && got429 == 0; i++ {
		res := e.mustDo(ctx, t, "GET", base+"/v1/pets", map[string]string{"X-API-Key": prodKey}, nil)
		switch {
		case res.status == http.StatusTooManyRequests:
			got429 = i + 1
		case res.status != http.StatusOK:
			t.Fatalf("production key: %d %s", res.status, res.body)
		case !bytes.Contains(res.body, []byte(`"name":"echo-b"`)):
			t.Errorf("production upstream answered %s, want echo-b", res.body)
		}
	}
	if got429 != prodLimit+1 {
		t.Errorf("429 came at request %d, want %d (production limit %d)", got429, prodLimit+1, prodLimit)
	}
}

// installProd installs a second operator from config/ (RBAC and manager, the
// CRDs are shared) in its own namespace, watching prodNS, pushing to (and
// checking) the production registry with its CA and credentials.
func (e *env) installProd(ctx context.Context, t *testing.T, reg *registrytest.Registry) {
	overlay := t.TempDir()
	base, err := filepath.Rel(overlay, filepath.Join(e.c.Root, "config"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"config.json": reg.DockerConfig(), "ca.crt": reg.CACert} {
		if err := os.WriteFile(filepath.Join(overlay, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	repo, digest, _ := strings.Cut(e.operator, "@")
	kust := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %[1]s
namePrefix: prod-
resources:
  - %[2]s/rbac
  - %[2]s/manager
images:
  - name: %[3]s/gatekiln/gatekiln-operator
    newName: %[4]s
    digest: %[5]s
configMapGenerator:
  - name: gatekiln-operator-params
    namespace: gatekiln-system
    behavior: merge
    literals: [REGISTRY=%[7]s/gatekiln]
  - name: gatekiln-registry-ca
    namespace: gatekiln-system
    files: [ca.crt]
components:
  - %[2]s/components/registry-credentials
  - %[2]s/components/registry-ca
secretGenerator:
  - name: gatekiln-registry-credentials
    namespace: gatekiln-system
    type: kubernetes.io/dockerconfigjson
    files: [.dockerconfigjson=config.json]
patches:
  - target: {kind: Deployment, name: gatekiln-operator}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --namespaces=%[6]s
`, prodSystemNS, base, e.c.Registry, repo, digest, prodNS, reg.Host)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.c.Kubectl(ctx, "apply", "--server-side", "-k", overlay); err != nil {
		t.Fatalf("production install: %v\n%s", err, out)
	}
	if out, err := e.c.Kubectl(ctx, "-n", prodSystemNS, "rollout", "status", "deploy/prod-gatekiln-operator", "--timeout=3m"); err != nil {
		t.Fatalf("production operator not ready: %v\n%s", err, out)
	}
}

// headDigest is the digest ref points at, asked of the registry itself.
func (e *env) headDigest(ctx context.Context, t *testing.T, ref string, tls *registrytest.Registry) string {
	t.Helper()
	opts := []name.Option{}
	if strings.HasPrefix(ref, e.c.Registry+"/") {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(tls.CACert)
	tr := &http.Transport{TLSClientConfig: &cryptotls.Config{RootCAs: pool, MinVersion: cryptotls.VersionTLS12}}
	desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithTransport(tr),
		remote.WithAuth(&authn.Basic{Username: tls.Username, Password: tls.Password}))
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

// faults: a bad definition through the plugin writes nothing; the operator
// Pod deleted while a Kaniko Job runs still ends with exactly one Job and a
// Ready API; a Security naming another namespace's Secret is refused.
func (e *env) faults(ctx context.Context, t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("openapi: 3.0.3\ninfo: {title: Bad, version: 1.0.0}\npaths:\n  /x:\n    get:\n      responses: {\"200\": {$ref: '#/components/responses/Missing'}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.plugin(ctx, "add", "api", "bad", "-n", e.ns, "--from-file="+bad)
	if err == nil {
		t.Errorf("kubectl add api with a bad definition succeeded:\n%s", out)
	}
	if got, _ := e.c.Kubectl(ctx, "-n", e.ns, "get", "apis.gatekiln.io,configmaps", "-o", "name"); strings.Contains(got, "/bad") {
		t.Errorf("a bad definition left objects behind:\n%s", got)
	}

	// A new version is a new tag: a Kaniko build. Delete the operator Pod as
	// soon as the Job exists.
	jobsBefore := len(e.jobs(ctx, t))
	if out, err := e.plugin(ctx, "add", "api", "petstore-f", "-n", e.ns, "--from-file="+e.def,
		"--build-strategy", "kaniko", "--version", "1.0.0-f"); err != nil {
		t.Fatalf("kubectl add api petstore-f: %v\n%s", err, out)
	}
	e.eventually(t, time.Minute, func() error {
		if n := len(e.jobs(ctx, t)); n == jobsBefore {
			return errors.New("no build Job yet")
		}
		return nil
	})
	oldPod, err := e.c.Kubectl(ctx, "-n", "gatekiln-system", "get", "pods", "-l", "app.kubernetes.io/name=gatekiln-operator", "-o", "jsonpath={.items[*].metadata.name}")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.c.Kubectl(ctx, "-n", "gatekiln-system", "delete", "pod", "-l", "app.kubernetes.io/name=gatekiln-operator", "--wait=false"); err != nil {
		t.Fatalf("delete the operator Pod: %v\n%s", err, out)
	}
	if out, err := e.c.Kubectl(ctx, "-n", e.ns, "wait", "apis.gatekiln.io/petstore-f", "--for=condition=Ready", "--timeout=5m"); err != nil {
		t.Fatalf("petstore-f after the operator restart: %v\n%s", err, out)
	}
	if n := len(e.jobs(ctx, t)); n != jobsBefore+1 {
		t.Errorf("%d Jobs after the operator restart, want %d (exactly one build)", n, jobsBefore+1)
	}
	if now, _ := e.c.Kubectl(ctx, "-n", "gatekiln-system", "get", "pods", "-l", "app.kubernetes.io/name=gatekiln-operator", "-o", "jsonpath={.items[*].metadata.name}"); strings.Contains(now, oldPod) || now == "" {
		t.Errorf("operator Pods %q, want a new one in place of %q", now, oldPod)
	}
	api := e.getAPI(ctx, t, "petstore-f")
	if !ready(api) {
		t.Fatalf("petstore-f not Ready: %+v", api.Status.Conditions)
	}
	e.checkDeployed(ctx, t, api)
	// One image: the registry holds one tag of this version.
	repo, err := name.NewRepository(strings.SplitN(api.Status.Image, "@", 2)[0], name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("list %s: %v", repo, err)
	}
	var versionTags []string
	for _, tag := range tags {
		if strings.HasPrefix(tag, "1.0.0-f-") {
			versionTags = append(versionTags, tag)
		}
	}
	if len(versionTags) != 1 {
		t.Errorf("%s holds tags %v of version 1.0.0-f, want exactly one", repo, versionTags)
	}

	// A Security in prod naming shop's keys Secret: the operator refuses to
	// resolve, and the production gateway stays on what it ran.
	prod := *e
	prod.ns = prodNS
	before := prod.getAPI(ctx, t, "petstore")
	if out, err := e.c.Kubectl(ctx, "-n", prodNS, "patch", "securities.gatekiln.io", "petstore-api-key", "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"apiKey":{"keysSecretRef":{"name":"petstore-api-keys","namespace":%q}}}}`, ns)); err != nil {
		t.Fatalf("patch Security: %v\n%s", err, out)
	}
	e.eventually(t, 2*time.Minute, func() error {
		a := prod.getAPI(ctx, t, "petstore")
		for _, c := range a.Status.Conditions {
			if c.Type == "Resolved" && c.Status == "False" && strings.Contains(c.Message, ns+"/petstore-api-keys") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", a.Status.Conditions)
	})
	if d := prod.deployment(ctx, t, "petstore"); d.Spec.Template.Spec.Containers[0].Image != before.Status.Image {
		t.Errorf("production Deployment moved to %s after a refused change, want %s", d.Spec.Template.Spec.Containers[0].Image, before.Status.Image)
	}
}

// redisDown stops the Redis the global limit lives in: GET /inventory keeps
// answering (fail open, the default) well past the limit, without waiting on
// the dead store for each request; Redis back (empty), the limit holds again.
func (e *env) redisDown(ctx context.Context, t *testing.T) {
	base := e.serviceBase(ctx, t, "petstore")
	e.redis.Stop()
	defer e.redis.Restart(t)
	start := time.Now()
	n := 3 * globalLimit
	for i := 0; i < n; i++ {
		if res := e.mustDo(ctx, t, "GET", base+"/v1/inventory", nil, nil); res.status != http.StatusOK {
			t.Errorf("Redis down, request %d: %d %s, want 200 (fail open)", i+1, res.status, res.body)
		}
	}
	t.Logf("Redis down: %d requests past a limit of %d answered in %s", n, globalLimit, time.Since(start).Round(time.Millisecond))
	e.redis.Restart(t)
	e.eventually(t, 2*time.Minute, func() error {
		if i := e.globalLimited(ctx, t, base); i == 0 {
			return fmt.Errorf("no 429 in %d requests since Redis came back", 3*globalLimit)
		}
		return nil
	})
	if keys, err := e.redisKeys(ctx); err != nil || len(keys) == 0 {
		t.Errorf("Redis back: no rate-limit keys in it (%v, %v)", keys, err)
	}
}

// redisKeys are the rate-limit keys the gateways keep in the suite's Redis.
func (e *env) redisKeys(ctx context.Context) ([]string, error) {
	c := e.redis.Client()
	defer c.Close()
	return c.Keys(ctx, "gatekiln:*").Result()
}

// plugin runs kubectl with the plugin on PATH.
func (e *env) plugin(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	// kubectl takes no flags before a plugin's name: the kubeconfig comes
	// from the environment.
	cmd.Env = append(os.Environ(), "PATH="+e.path, "KUBECONFIG="+e.c.Kubeconfig)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// steadyLoad sends GET u every 20 ms until the returned stop is called, which
// reports how many requests went out and the ones that did not answer 200.
func (e *env) steadyLoad(ctx context.Context, u string) (stop func() (int, []string)) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var sent int
	var failed []string
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			res, err := e.do(ctx, "GET", u, nil, nil)
			if ctx.Err() != nil {
				return
			}
			sent++
			switch {
			case err != nil:
				failed = append(failed, err.Error())
			case res.status != http.StatusOK:
				failed = append(failed, fmt.Sprintf("%d %s", res.status, res.body))
			}
		}
	}()
	return func() (int, []string) {
		cancel()
		<-done
		return sent, failed
	}
}

// registryDown stops the cluster's registry while an API needs a build:
// Built=False with a reason; restarted, the API gets Ready on its own.
func (e *env) registryDown(ctx context.Context, t *testing.T) {
	pidFile := filepath.Join(e.c.Root, "bin", "cluster", "pids", "registry.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.eventually(t, 30*time.Second, func() error {
		if err := syscall.Kill(pid, 0); err == nil {
			return errors.New("registry still running")
		}
		return nil
	})
	restarted := false
	restart := func() {
		if restarted {
			return
		}
		restarted = true
		logf, err := os.OpenFile(filepath.Join(e.c.Root, "bin", "cluster", "logs", "registry.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("restart the registry: %v", err)
		}
		// cluster-down stops it by this file, as up.sh's own.
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Process.Release()
	}
	defer restart()

	if out, err := e.plugin(ctx, "add", "api", "petstore-r", "-n", e.ns, "--from-file="+e.def,
		"--build-strategy", "direct", "--version", "1.0.0-r"); err != nil {
		t.Fatalf("kubectl add api petstore-r: %v\n%s", err, out)
	}
	e.eventually(t, 2*time.Minute, func() error {
		a := e.getAPI(ctx, t, "petstore-r")
		for _, c := range a.Status.Conditions {
			if c.Type == "Built" && c.Status == "False" && c.Message != "" {
				t.Logf("registry down: Built=False %s: %s", c.Reason, c.Message)
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", a.Status.Conditions)
	})
	restart()
	start := time.Now()
	if out, err := e.c.Kubectl(ctx, "-n", e.ns, "wait", "apis.gatekiln.io/petstore-r", "--for=condition=Ready", "--timeout=5m"); err != nil {
		t.Fatalf("petstore-r after the registry came back: %v\n%s", err, out)
	}
	t.Logf("Ready %s after the registry came back", time.Since(start).Round(time.Second))
	e.checkDeployed(ctx, t, e.getAPI(ctx, t, "petstore-r"))
}
