package addapi_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/kubectl-plugin/addapi"
)

func (e *env) sample() string { return filepath.Join(e.root, "samples", "petstore", "petstore.yaml") }

// corpus is a file of the shared corpus, which lives beside the repository.
func (e *env) corpus(t *testing.T, parts ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{filepath.Dir(e.root), "shared", "corpus"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("corpus file missing (the corpus is expected beside the repository): %v", err)
	}
	return p
}

// serverFields change from run to run; golden files hold the rest.
var serverFields = regexp.MustCompile(`(?m)^(\s*)(uid|resourceVersion|creationTimestamp): .*$`)

func scrub(s string) string { return serverFields.ReplaceAllString(s, "${1}${2}: SCRUBBED") }

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the output (go test -update rewrites it):\n%s", path, got)
	}
}

func (e *env) api(t *testing.T, ns, name string) *v1alpha1.API {
	t.Helper()
	u, err := e.dyn.Resource(addapi.APIResource).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get api %s/%s: %v", ns, name, err)
	}
	var api v1alpha1.API
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &api); err != nil {
		t.Fatal(err)
	}
	return &api
}

func (e *env) configMaps(t *testing.T, ns string) []corev1.ConfigMap {
	t.Helper()
	list, err := e.kube.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: addapi.LabelAPI})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// nothingWritten asserts a namespace holds no API, Endpoint or definition ConfigMap.
func (e *env) nothingWritten(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []struct {
		what string
		list func() (int, error)
	}{
		{"apis", func() (int, error) {
			l, err := e.dyn.Resource(addapi.APIResource).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			return len(l.Items), nil
		}},
		{"endpoints", func() (int, error) {
			l, err := e.dyn.Resource(addapi.EndpointResource).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			return len(l.Items), nil
		}},
		{"configmaps", func() (int, error) {
			l, err := e.kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			n := 0
			for _, cm := range l.Items {
				if cm.Name != "kube-root-ca.crt" {
					n++
				}
			}
			return n, nil
		}},
	} {
		n, err := r.list()
		if err != nil {
			t.Fatalf("list %s in %s: %v", r.what, ns, err)
		}
		if n != 0 {
			t.Errorf("namespace %s holds %d %s; nothing should have been written", ns, n, r.what)
		}
	}
}

func TestGoldenDryRunClient(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "dry-client")
	r := e.mustKubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(),
		"--endpoint", "petstore-backend=http://petstore-backend:8080", "--replicas", "2",
		"--build-strategy", "direct", "--pull-secret", "regcred", "--dry-run=client", "-o", "yaml")
	golden(t, "petstore-dry-run-client.yaml", r.stdout)
	e.nothingWritten(t, ns)
}

func TestDryRunServerWritesNothing(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "dry-server")
	r := e.mustKubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(),
		"--endpoint", "petstore-backend=http://petstore-backend:8080", "--dry-run=server")
	for _, want := range []string{"endpoint.gatekiln.io/petstore-backend serverside-applied (server dry run)",
		"api.gatekiln.io/petstore serverside-applied (server dry run)", "configmap/petstore-definition-"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	e.nothingWritten(t, ns)
}

// --pull-secret naming a Secret that is missing, or is not an image pull
// Secret, is warned about before anything is applied; a right one is not.
func TestPullSecretChecked(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "pull-secret")
	add := func() string {
		t.Helper()
		return e.mustKubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(),
			"--endpoint", "petstore-backend=http://petstore-backend:8080", "--pull-secret", "regcred", "--dry-run=server").stderr
	}
	create := func(typ corev1.SecretType, data map[string][]byte) {
		t.Helper()
		_ = e.kube.CoreV1().Secrets(ns).Delete(context.Background(), "regcred", metav1.DeleteOptions{})
		if _, err := e.kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: typ, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := add(); !strings.Contains(got, `warning: --pull-secret: there is no Secret "regcred" in namespace `+ns) {
		t.Errorf("missing Secret: stderr lacks the warning:\n%s", got)
	}
	create(corev1.SecretTypeOpaque, map[string][]byte{"password": []byte("s3cret-value")})
	got := add()
	if !strings.Contains(got, `has type "Opaque"`) {
		t.Errorf("Opaque Secret: stderr lacks the warning:\n%s", got)
	}
	if strings.Contains(got, "s3cret-value") {
		t.Errorf("the Secret's data was printed:\n%s", got)
	}
	create(corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)})
	if got := add(); strings.Contains(got, "--pull-secret") {
		t.Errorf("a dockerconfigjson Secret was warned about:\n%s", got)
	}
}

func TestGoldenApply(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "shop")
	r := e.mustKubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(),
		"--endpoint", "petstore-backend=http://petstore-backend:8080", "--replicas", "2", "-o", "yaml")
	golden(t, "petstore-apply.yaml", scrub(r.stdout))
	// The definition is resolved against the namespace as the operator will:
	// the Securities it names are not there, the Endpoint given is.
	for _, want := range []string{`SecurityNotFound`, `Security "petstore-api-key" not found in namespace "shop"`, `RateLimit "petstore-standard"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "EndpointNotFound") {
		t.Errorf("the Endpoint given with --endpoint was reported missing:\n%s", r.stderr)
	}

	api := e.api(t, ns, "petstore")
	if len(api.Spec.Definition) != 1 || api.Spec.Replicas == nil || *api.Spec.Replicas != 2 {
		t.Fatalf("api spec = %+v", api.Spec)
	}
	cms := e.configMaps(t, ns)
	if len(cms) != 1 || cms[0].Name != api.Spec.Definition[0].Name {
		t.Fatalf("configmaps = %v, api names %v", names(cms), api.Spec.Definition)
	}
	cm := cms[0]
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != api.UID || cm.OwnerReferences[0].Kind != "API" {
		t.Errorf("configmap %s owner references = %+v, want the API (uid %s)", cm.Name, cm.OwnerReferences, api.UID)
	}
	if want, _ := os.ReadFile(e.sample()); cm.Data["petstore.yaml"] != string(want) {
		t.Errorf("configmap %s does not hold petstore.yaml as plain data: keys %v", cm.Name, keys(cm))
	}
	if cm.Annotations[v1alpha1.AnnotationRootKey] != "petstore.yaml" {
		t.Errorf("root-key annotation = %q", cm.Annotations[v1alpha1.AnnotationRootKey])
	}
	ep, err := e.dyn.Resource(addapi.EndpointResource).Namespace(ns).Get(context.Background(), "petstore-backend", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("endpoint: %v", err)
	}
	if urls, _, _ := unstructured.NestedStringSlice(ep.Object, "spec", "urls"); !slices.Equal(urls, []string{"http://petstore-backend:8080"}) {
		t.Errorf("endpoint urls = %v", urls)
	}

	// kubectl get apis shows the CRD's printer columns.
	g := e.mustKubectl(t, "get", "apis", "-n", ns)
	if !regexp.MustCompile(`(?m)^NAME\s+READY\s+IMAGE\s+URL\s+AGE$`).MatchString(g.stdout) || !strings.Contains(g.stdout, "petstore") {
		t.Errorf("kubectl get apis:\n%s", g.stdout)
	}

	// Deleting the API deletes its ConfigMaps (the garbage collector follows
	// the owner references); the Endpoint is shared and stays.
	e.mustKubectl(t, "delete", "api", "petstore", "-n", ns, "--wait=true")
	deadline := time.Now().Add(60 * time.Second)
	for len(e.configMaps(t, ns)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("definition configmaps still there a minute after the API was deleted: %v", names(e.configMaps(t, ns)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := e.dyn.Resource(addapi.EndpointResource).Namespace(ns).Get(context.Background(), "petstore-backend", metav1.GetOptions{}); err != nil {
		t.Errorf("endpoint should stay after the API is deleted: %v", err)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	e := needCluster(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte("# " + strings.Repeat("x", 1021) + "\n")
	for range 40 << 10 { // 40 MiB
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	for i, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing file", []string{"--from-file=" + filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml", "no such file"}},
		{"not yaml", []string{"--from-file=" + e.corpus(t, "bad", "not-yaml.yaml")}, []string{"not-yaml.yaml", "line", "not valid YAML"}},
		{"duplicate route", []string{"--from-file=" + e.corpus(t, "bad", "duplicate-route.yaml")}, []string{"duplicate-route.yaml", "/pets/{id}", "/pets/{name}"}},
		{"40 MiB file", []string{"--from-file=" + big}, []string{"big.yaml", "32 MiB"}},
		{"unknown endpoint", []string{"--from-file=" + e.sample(), "--endpoint", "nope=http://x:1"}, []string{"--endpoint nope", "petstore-backend"}},
		{"bad endpoint url", []string{"--from-file=" + e.sample(), "--endpoint", "petstore-backend=ftp://x"}, []string{"--endpoint", "ftp://x"}},
		{"no file", nil, []string{"--from-file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := e.namespace(t, "bad-"+strings.ReplaceAll(strings.ToLower(c.name), " ", "-")+"-"+string(rune('a'+i)))
			r := e.kubectl(t, append([]string{"add", "api", "petstore", "-n", ns}, c.args...)...)
			if r.code == 0 {
				t.Fatalf("exit 0, want failure; stdout:\n%s", r.stdout)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			e.nothingWritten(t, ns)
		})
	}
}

// TestRefusedByServerLeavesNothing has the API server refuse the API (a
// quota of zero APIs): the ConfigMaps written just before are removed again.
func TestRefusedByServerLeavesNothing(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "quota")
	_, err := e.kube.CoreV1().ResourceQuotas(ns).Create(context.Background(), &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-apis"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/apis.gatekiln.io": resource.MustParse("0")}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Admission enforces a quota once the controller has computed its usage.
	deadline := time.Now().Add(60 * time.Second)
	for {
		q, err := e.kube.CoreV1().ResourceQuotas(ns).Get(context.Background(), "no-apis", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := q.Status.Hard["count/apis.gatekiln.io"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the quota controller did not compute the quota within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := e.kubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample())
	if r.code == 0 || !strings.Contains(r.stderr, "apply api "+ns+"/petstore") {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	e.nothingWritten(t, ns)
}

// cancelOnWrite cancels a context at the first line written to it: Run
// prints the objects once they are written, so Ctrl-C lands after the writes.
type cancelOnWrite struct {
	bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return w.Buffer.Write(p)
}

// TestInterruptAfterWriting: a Ctrl-C that comes once the objects are
// written still ends the run as interrupted (exit 130), never as a success.
func TestInterruptAfterWriting(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "interrupt-late")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	config := genericclioptions.NewConfigFlags(false)
	config.KubeConfig, config.Namespace = &e.kubeconfig, &ns
	out := &cancelOnWrite{cancel: cancel}
	o := &addapi.Options{Name: "petstore", Files: []string{e.sample()}, Config: config,
		IOStreams: genericiooptions.IOStreams{Out: out, ErrOut: io.Discard}}
	err := o.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "interrupted after writing") {
		t.Errorf("Run = %v, want an error saying it was interrupted after writing", err)
	}
	if code := addapi.ExitCode(ctx, err); code != 130 {
		t.Errorf("exit code %d, want 130", code)
	}
	if !strings.Contains(out.String(), "api.gatekiln.io/petstore serverside-applied") {
		t.Errorf("the objects written are not listed:\n%s", out.String())
	}
	e.api(t, ns, "petstore")
}

func names(cms []corev1.ConfigMap) []string {
	var out []string
	for _, cm := range cms {
		out = append(out, cm.Name)
	}
	return out
}

func keys(cm corev1.ConfigMap) []string {
	var out []string
	for k := range cm.Data {
		out = append(out, k)
	}
	for k := range cm.BinaryData {
		out = append(out, k+" (binary)")
	}
	slices.Sort(out)
	return out
}
