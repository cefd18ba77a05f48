package operator_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/kaniko"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/operator"
	"github.com/gatekiln/gatekiln/operator/render"
)

// TestSameInputsReuseImage: a second API with the same definition finds the
// first one's image in the registry and pushes nothing.
func TestSameInputsReuseImage(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "reuse")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("reuse", "/reuse"))),
		newAPI(ns, "first", "def", "openapi.yaml"))
	first := f.waitCondition(t, ns, "first", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	if c := condition(first, v1alpha1.ConditionBuilt); c.Reason != operator.ReasonBuilt {
		t.Fatalf("first API: Built reason %s (%s), want %s", c.Reason, c.Message, operator.ReasonBuilt)
	}

	f.recorder.Reset()
	f.create(t, newAPI(ns, "second", "def", "openapi.yaml"))
	second := f.waitCondition(t, ns, "second", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	if c := condition(second, v1alpha1.ConditionBuilt); c.Reason != operator.ReasonFoundInRegistry {
		t.Errorf("second API: Built reason %s (%s), want %s", c.Reason, c.Message, operator.ReasonFoundInRegistry)
	}
	if second.Status.Image != first.Status.Image || second.Status.InputsDigest != first.Status.InputsDigest {
		t.Errorf("second API runs %s (%s), first %s (%s)", second.Status.Image, second.Status.InputsDigest,
			first.Status.Image, first.Status.InputsDigest)
	}
	if w := f.recorder.ManifestWrites(); len(w) != 0 {
		t.Errorf("second API pushed %d manifests, want none", len(w))
	}
	if u := f.recorder.Uploads(); len(u) != 0 {
		t.Errorf("second API uploaded %d blobs, want none", len(u))
	}
}

// TestBindingOnlyChange: a new Endpoint URL, a rotated API key and the API's
// trusted proxies reach the Binding ConfigMap and Secret, without a build, a
// push or a new Pod template.
func TestBindingOnlyChange(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "binding-only")
	f.rollouts(t, ns)
	f.create(t, f.petstore(t, ns, "petstore"))
	before := f.waitCondition(t, ns, "petstore", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	dep := &appsv1.Deployment{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "petstore"}, dep); err != nil {
		t.Fatal(err)
	}
	f.recorder.Reset()

	ep := &v1alpha1.Endpoint{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "petstore-backend"}, ep); err != nil {
		t.Fatal(err)
	}
	ep.Spec.URLs = []string{"http://petstore-backend-v2:8080"}
	if err := f.c.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	keys := &corev1.Secret{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "petstore-api-keys"}, keys); err != nil {
		t.Fatal(err)
	}
	keys.Data["alice"] = []byte("alice-key-2")
	if err := f.c.Update(ctx, keys); err != nil {
		t.Fatal(err)
	}
	api := f.getAPI(t, ns, "petstore")
	api.Spec.Forwarding = &v1alpha1.ForwardingSpec{TrustedProxies: []string{"10.0.0.0/8"}, ForwardedHeader: true}
	if err := f.c.Update(ctx, api); err != nil {
		t.Fatal(err)
	}

	eventually(t, "binding carries the new URL and key", func() error {
		cm := &corev1.ConfigMap{}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "petstore-binding"}, cm); err != nil {
			return err
		}
		b, err := bundle.ParseBinding([]byte(cm.Data[bundle.BindingFile]))
		if err != nil {
			return err
		}
		if got := b.Endpoints["petstore-backend"].URLs; len(got) != 1 || got[0] != "http://petstore-backend-v2:8080" {
			return errorf("binding endpoint URLs %v", got)
		}
		if b.Server == nil || !slices.Equal(b.Server.TrustedProxies, []string{"10.0.0.0/8"}) || !b.Server.ForwardedHeader {
			return errorf("binding server %+v", b.Server)
		}
		s := &corev1.Secret{}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "petstore-binding"}, s); err != nil {
			return err
		}
		// alice's line is the sha256 of her new key.
		if k := string(s.Data[render.SecretKey("security/petstore-api-key/keys")]); !strings.Contains(k, "alice:"+sha256hex("alice-key-2")) {
			return errorf("binding keys file %q", k)
		}
		return nil
	})
	f.quiesce(t)
	after := f.getAPI(t, ns, "petstore")
	if after.Status.Image != before.Status.Image {
		t.Errorf("image changed from %s to %s on a Binding-only change", before.Status.Image, after.Status.Image)
	}
	if w := f.recorder.ManifestWrites(); len(w) != 0 {
		t.Errorf("%d manifests pushed on a Binding-only change", len(w))
	}
	dep2 := &appsv1.Deployment{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "petstore"}, dep2); err != nil {
		t.Fatal(err)
	}
	if dep2.Generation != dep.Generation {
		t.Errorf("Deployment generation %d → %d: a Binding-only change must not roll the Pods", dep.Generation, dep2.Generation)
	}
}

// TestRegistryDown: an API whose registry is unreachable is Built=False with
// a reason saying so, and an Event; nothing is deployed.
func TestRegistryDown(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "registry-down")
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("down", "/down"))),
		newAPI(ns, "down", "def", "openapi.yaml", func(a *v1alpha1.API) { a.Spec.Image.Registry = f.down }))
	// It retries with back-off for as long as it exists: remove it after.
	t.Cleanup(func() {
		if err := f.c.Delete(context.Background(), &v1alpha1.API{ObjectMeta: metav1.ObjectMeta{Name: "down", Namespace: ns}}); err != nil {
			t.Errorf("delete api: %v", err)
		}
	})
	got := f.waitCondition(t, ns, "down", v1alpha1.ConditionBuilt, metav1.ConditionFalse, operator.ReasonRegistryUnavailable)
	if msg := condition(got, v1alpha1.ConditionBuilt).Message; !strings.Contains(msg, f.down) {
		t.Errorf("Built message %q does not name the registry %s", msg, f.down)
	}
	if c := condition(got, v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != operator.ReasonWaitingImage {
		t.Errorf("Ready = %s/%s, want False/%s", c.Status, c.Reason, operator.ReasonWaitingImage)
	}
	eventually(t, "a Warning event", func() error {
		for _, e := range f.events(t, ns, "down") {
			if e.Type == corev1.EventTypeWarning && e.Reason == operator.ReasonRegistryUnavailable {
				return nil
			}
		}
		return errorf("no %s event", operator.ReasonRegistryUnavailable)
	})
	dep := &appsv1.Deployment{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "down"}, dep); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment exists (err %v), want none", err)
	}
}

// TestResyncWritesNothing: a reconcile that finds the world as it left it
// writes no status (and so triggers nothing).
func TestResyncWritesNothing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "resync")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("resync", "/resync"))),
		newAPI(ns, "resync", "def", "openapi.yaml"))
	f.waitCondition(t, ns, "resync", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	f.quiesce(t)
	before := f.getAPI(t, ns, "resync")

	// Deleting an owned object forces a reconcile, which puts it back.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "resync-binding", Namespace: ns}}
	if err := f.c.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	eventually(t, "binding ConfigMap restored", func() error {
		return f.c.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{})
	})
	f.quiesce(t)
	after := f.getAPI(t, ns, "resync")
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("API written by a reconcile that changed nothing:\nbefore %+v\nafter  %+v", before.Status, after.Status)
	}
}

// TestKanikoBuild: the Kaniko strategy renders the build context and a Job
// named by the inputs; a second API with the same inputs shares the Job; the
// digest comes from the executor's termination message; a failed Job is
// Built=False with the log tail and an Event.
func TestKanikoBuild(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "kaniko")
	f.rollouts(t, ns)
	kanikoAPI := func(name, cm string) *v1alpha1.API {
		return newAPI(ns, name, cm, "openapi.yaml", func(a *v1alpha1.API) { a.Spec.Build.Strategy = v1alpha1.BuildKaniko })
	}
	f.create(t, definition(ns, "ok", "openapi.yaml", []byte(simpleDefinition("kaniko ok", "/ok"))),
		definition(ns, "bad", "openapi.yaml", []byte(simpleDefinition("kaniko bad", "/bad"))),
		kanikoAPI("ok-a", "ok"))

	a := f.waitCondition(t, ns, "ok-a", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	if c := condition(a, v1alpha1.ConditionDeployed); c.Status != metav1.ConditionUnknown {
		t.Errorf("Deployed = %s while building, want Unknown", c.Status)
	}
	var jobs batchv1.JobList
	if err := f.c.List(ctx, &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 1 {
		t.Fatalf("%d Kaniko Jobs (err %v), want 1", len(jobs.Items), err)
	}
	job := &jobs.Items[0]
	digest := job.Annotations["gatekiln.io/inputs-digest"]
	tag := f.reg.Host + "/gatekiln/kaniko-ok:1.0-" + strings.TrimPrefix(digest, "sha256:")[:12]
	if got := job.Annotations["gatekiln.io/destination"]; got != tag {
		t.Errorf("Job destination %q, want %q", got, tag)
	}
	wantJob := operator.JobName(digest, tag, "", "")
	if job.Name != wantJob || a.Status.BuildJob != wantJob {
		t.Fatalf("Job %q, status.buildJob %q, want %q (named by the inputs)", job.Name, a.Status.BuildJob, wantJob)
	}
	args, err := kaniko.ExecutorArgs(job)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--destination=" + tag, "--digest-file=/dev/termination-log", "--reproducible", "--insecure"} {
		if !contains(args, want) {
			t.Errorf("executor args %v lack %s", args, want)
		}
	}
	if img := job.Spec.Template.Spec.Containers[0].Image; img != kanikoImage {
		t.Errorf("executor image %s, want %s", img, kanikoImage)
	}
	ctxCM := &corev1.ConfigMap{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: wantJob + "-context"}, ctxCM); err != nil {
		t.Fatalf("build context ConfigMap: %v", err)
	}
	if len(ctxCM.OwnerReferences) != 1 || ctxCM.OwnerReferences[0].UID != job.UID {
		t.Errorf("build context owners %+v, want the Job", ctxCM.OwnerReferences)
	}

	// A second API with the same inputs waits on the same Job.
	f.create(t, kanikoAPI("ok-b", "ok"))
	b := f.waitCondition(t, ns, "ok-b", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	if b.Status.BuildJob != wantJob {
		t.Errorf("second API builds in %q, want the shared %q", b.Status.BuildJob, wantJob)
	}
	if err := f.c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 {
		t.Errorf("%d Jobs for one set of inputs, want 1", len(jobs.Items))
	}

	imageDigest := "sha256:" + strings.Repeat("5e", 32)
	f.finishJob(t, job, 0, imageDigest+"\n")
	for _, n := range []string{"ok-a", "ok-b"} {
		got := f.waitCondition(t, ns, n, v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
		if want := f.reg.Host + "/gatekiln/kaniko-ok@" + imageDigest; got.Status.Image != want {
			t.Errorf("%s: status.image %s, want %s", n, got.Status.Image, want)
		}
		if c := condition(got, v1alpha1.ConditionBuilt); c.Status != metav1.ConditionTrue || c.Reason != operator.ReasonBuilt {
			t.Errorf("%s: Built %s/%s", n, c.Status, c.Reason)
		}
	}

	// Failure: the log tail is in the termination message.
	f.create(t, kanikoAPI("bad", "bad"))
	bad := f.waitCondition(t, ns, "bad", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	badJob := &batchv1.Job{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: bad.Status.BuildJob}, badJob); err != nil {
		t.Fatal(err)
	}
	logTail := "INFO Retrieving image manifest\nerror pushing image: UNAUTHORIZED: authentication required\n"
	f.finishJob(t, badJob, 1, logTail)
	bad = f.waitCondition(t, ns, "bad", v1alpha1.ConditionBuilt, metav1.ConditionFalse, operator.ReasonBuildFailed)
	msg := condition(bad, v1alpha1.ConditionBuilt).Message
	for _, want := range []string{"BackoffLimitExceeded", "UNAUTHORIZED: authentication required"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Built message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, badJob.Name) {
		t.Errorf("Built message %q carries the generated Job name", msg)
	}
	eventually(t, "a BuildFailed event", func() error {
		for _, e := range f.events(t, ns, "bad") {
			if e.Type == corev1.EventTypeWarning && e.Reason == operator.ReasonBuildFailed && strings.Contains(e.Note, "UNAUTHORIZED") {
				return nil
			}
		}
		return errorf("no BuildFailed event")
	})
}

// finishJob does what the Job controller and the kubelet would: a Pod whose
// executor container terminated with code and message, and the Job's
// terminal status.
func (f *fixture) finishJob(t *testing.T, job *batchv1.Job, code int32, message string) {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-x1", Namespace: job.Namespace,
			Labels: map[string]string{"batch.kubernetes.io/job-name": job.Name, "job-name": job.Name}},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := f.c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodSucceeded,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:  kaniko.ExecutorName,
			Image: job.Spec.Template.Spec.Containers[0].Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Message: message, StartedAt: now, FinishedAt: now,
				Reason: map[bool]string{true: "Completed", false: "Error"}[code == 0]}},
		}},
	}
	if code != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	if err := f.c.Status().Update(ctx, pod); err != nil {
		t.Fatalf("pod status: %v", err)
	}
	start := metav1.NewTime(now.Add(-time.Second))
	job.Status.StartTime = &start
	if code == 0 {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: now},
		}
	}
	if err := f.c.Status().Update(ctx, job); err != nil {
		t.Fatalf("job status: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestOptionalObjects: an HPA (then the Deployment leaves replicas to it), a
// PDB from two replicas up, and a Gateway API HTTPRoute exist while asked
// for, and go when no longer asked for. The Gateway API is installed while
// the operator runs, after the API asked for a route: the route is applied
// then, without a restart.
func TestOptionalObjects(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "optional")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("optional", "/opt"))),
		newAPI(ns, "opt", "def", "openapi.yaml", func(a *v1alpha1.API) {
			a.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{MinReplicas: ptr(int32(2)), MaxReplicas: 5}
			a.Spec.Exposure = &v1alpha1.ExposureSpec{HTTPRoute: &v1alpha1.HTTPRouteExposure{
				Gateway: "infra/public", Hostnames: []string{"opt.example.com"}, Path: "/opt"}}
		}))
	got := f.waitCondition(t, ns, "opt", v1alpha1.ConditionDeployed, metav1.ConditionTrue, operator.ReasonDeployed)
	if !f.servesHTTPRoute(t) {
		// Not installed yet (a second -count run finds it installed).
		if c := condition(got, v1alpha1.ConditionDeployed); !strings.Contains(c.Message, "httpRoute not applied") {
			t.Errorf("Deployed message %q, want the route named as not applied", c.Message)
		}
		if err := f.env.InstallHTTPRouteCRD(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the route's URL in status", func() error {
		got = f.getAPI(t, ns, "opt")
		if got.Status.URL != "http://opt.example.com/opt" {
			return errorf("status.url %q, want the route's host and path", got.Status.URL)
		}
		if c := condition(got, v1alpha1.ConditionDeployed); strings.Contains(c.Message, "not applied") {
			return errorf("Deployed message %q", c.Message)
		}
		return nil
	})
	key := types.NamespacedName{Namespace: ns, Name: "opt"}
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(render.HTTPRouteGVK)
	for _, o := range []client.Object{&autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}, route} {
		if err := f.c.Get(ctx, key, o); err != nil {
			t.Fatalf("%T: %v", o, err)
		}
	}
	parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
	if len(parents) != 1 || parents[0].(map[string]any)["namespace"] != "infra" || parents[0].(map[string]any)["name"] != "public" {
		t.Errorf("route parentRefs %v", parents)
	}
	dep := &appsv1.Deployment{}
	if err := f.c.Get(ctx, key, dep); err != nil {
		t.Fatal(err)
	}
	for _, mf := range dep.ManagedFields {
		if mf.Manager == render.FieldOwner && strings.Contains(mf.FieldsV1.GetRawString(), `"f:replicas"`) {
			t.Errorf("the operator owns spec.replicas while an HPA scales the Deployment")
		}
	}

	api := f.getAPI(t, ns, "opt")
	api.Spec.Autoscaling, api.Spec.Exposure = nil, nil
	if err := f.c.Update(ctx, api); err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{&autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}, route} {
		eventually(t, fmt.Sprintf("%T removed", o), func() error {
			err := f.c.Get(ctx, key, o)
			if err == nil {
				return errorf("still there")
			}
			return client.IgnoreNotFound(err)
		})
	}
	eventually(t, "one replica again", func() error {
		if err := f.c.Get(ctx, key, dep); err != nil {
			return err
		}
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
			return errorf("replicas %v", dep.Spec.Replicas)
		}
		return nil
	})
	got = f.waitCondition(t, ns, "opt", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	if got.Status.URL != "http://opt.optional.svc:80" {
		t.Errorf("status.url %q, want the Service's", got.Status.URL)
	}
}

// TestLargeDefinition: box's 1.7 MB definition, stored gzip'd in binaryData
// (a ConfigMap holds at most 1 MiB), compiles in the operator and gets a
// Kaniko Job whose build context ConfigMaps each stay under the limit.
func TestLargeDefinition(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "large")
	// Its Kaniko Job never finishes.
	f.dropBuilds(t, ns)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(readFile(t, "../shared/corpus/box/openapi.json")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.create(t,
		// The definition's security scheme, mapped by spec.refs (object names
		// are lower case); its upstream comes from its servers.
		&v1alpha1.Security{ObjectMeta: metav1.ObjectMeta{Name: "box-oauth2", Namespace: ns},
			Spec: v1alpha1.SecuritySpec{Type: v1alpha1.SecurityOAuth2, JWT: &v1alpha1.JWTSpec{JWKSURL: "https://account.box.example/jwks"}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "box", Namespace: ns},
			BinaryData: map[string][]byte{"openapi.json.gz": buf.Bytes()}},
		newAPI(ns, "box", "box", "openapi.json.gz", func(a *v1alpha1.API) {
			a.Spec.Build.Strategy = v1alpha1.BuildKaniko
			a.Spec.Refs = &v1alpha1.ObjectRefs{Security: map[string]string{"OAuth2Security": "box-oauth2"}}
		}))
	got := f.waitCondition(t, ns, "box", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	if c := condition(got, v1alpha1.ConditionResolved); c.Status != metav1.ConditionTrue {
		t.Fatalf("Resolved %s: %s", c.Status, c.Message)
	}
	var cms corev1.ConfigMapList
	if err := f.c.List(ctx, &cms, client.InNamespace(ns), client.MatchingLabels{render.LabelComponent: "kaniko-build"}); err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) == 0 {
		t.Fatal("no build context ConfigMaps")
	}
	for _, cm := range cms.Items {
		size := 0
		for _, v := range cm.BinaryData {
			size += len(v)
		}
		if size > kaniko.MaxConfigMapBytes {
			t.Errorf("build context %s holds %d bytes, over %d", cm.Name, size, kaniko.MaxConfigMapBytes)
		}
		if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Kind != "Job" {
			t.Errorf("build context %s owners %+v, want its Job", cm.Name, cm.OwnerReferences)
		}
	}
}
