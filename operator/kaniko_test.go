package operator_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator"
)

// TestKanikoPodAdmittedUnderQuota: in a namespace whose ResourceQuota covers
// CPU and memory, requests and limits (a common setup for build
// namespaces), the Pod of the operator's Kaniko Job is admitted: every
// container states what the quota counts. The Job controller does not run
// on envtest, so the test creates the Pod from the Job's template as it
// would.
func TestKanikoPodAdmittedUnderQuota(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "kaniko-quota")
	hard := corev1.ResourceList{
		corev1.ResourceLimitsCPU: resource.MustParse("8"), corev1.ResourceLimitsMemory: resource.MustParse("8Gi"),
		corev1.ResourceRequestsCPU: resource.MustParse("8"), corev1.ResourceRequestsMemory: resource.MustParse("8Gi"),
	}
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "builds", Namespace: ns}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}
	f.create(t, q)
	// No quota controller runs here: state the usage it would compute.
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: corev1.ResourceList{
		corev1.ResourceLimitsCPU: resource.MustParse("0"), corev1.ResourceLimitsMemory: resource.MustParse("0"),
		corev1.ResourceRequestsCPU: resource.MustParse("0"), corev1.ResourceRequestsMemory: resource.MustParse("0"),
	}}
	if err := f.c.Status().Update(ctx, q); err != nil {
		t.Fatal(err)
	}
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("kaniko quota", "/kq"))),
		newAPI(ns, "quota", "def", "openapi.yaml", func(a *v1alpha1.API) { a.Spec.Build.Strategy = v1alpha1.BuildKaniko }))
	api := f.waitCondition(t, ns, "quota", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	job := &batchv1.Job{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: api.Status.BuildJob}, job); err != nil {
		t.Fatal(err)
	}
	want := operator.DefaultKanikoResources()
	for _, c := range append(job.Spec.Template.Spec.InitContainers, job.Spec.Template.Spec.Containers...) {
		for name, q := range want.Requests {
			if got := c.Resources.Requests[name]; got.Cmp(q) != 0 {
				t.Errorf("container %s requests %s %s, want %s", c.Name, name, got.String(), q.String())
			}
		}
		for name, q := range want.Limits {
			if got := c.Resources.Limits[name]; got.Cmp(q) != 0 {
				t.Errorf("container %s limits %s %s, want %s", c.Name, name, got.String(), q.String())
			}
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-q1", Namespace: ns, Labels: job.Spec.Template.Labels},
		Spec:       *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := f.c.Create(ctx, pod); err != nil {
		t.Fatalf("the quota refuses the build's Pod: %v", err)
	}
	// Finish the build: a running Job holds one of the fixture's build slots.
	f.finishJob(t, job, 0, "sha256:"+strings.Repeat("9c", 32)+"\n")
	f.waitCondition(t, ns, "quota", v1alpha1.ConditionBuilt, metav1.ConditionTrue, operator.ReasonBuilt)
}

// TestKanikoRetryAfterPushSecretFix: a Kaniko Job that failed to push says
// how to build again; updating the push Secret (the usual fix) starts a new
// Job at once instead of finding the failed one until its TTL removes it.
func TestKanikoRetryAfterPushSecretFix(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "kaniko-retry")
	f.rollouts(t, ns)
	dockerConfig := func(password string) map[string][]byte {
		auth := base64.StdEncoding.EncodeToString([]byte("ci:" + password))
		return map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + f.reg.Host + `":{"auth":"` + auth + `"}}}`)}
	}
	push := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "push", Namespace: ns},
		Type: corev1.SecretTypeDockerConfigJson, Data: dockerConfig("wrong")}
	f.create(t, push,
		definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("kaniko retry", "/kr"))),
		newAPI(ns, "retry", "def", "openapi.yaml", func(a *v1alpha1.API) {
			a.Spec.Build.Strategy = v1alpha1.BuildKaniko
			a.Spec.Image.PushSecretRef = &v1alpha1.SecretKeyRef{Name: "push"}
		}))
	api := f.waitCondition(t, ns, "retry", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	failed := &batchv1.Job{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: api.Status.BuildJob}, failed); err != nil {
		t.Fatal(err)
	}
	f.finishJob(t, failed, 1, "error pushing image: UNAUTHORIZED: authentication required\n")
	api = f.waitCondition(t, ns, "retry", v1alpha1.ConditionBuilt, metav1.ConditionFalse, operator.ReasonBuildFailed)
	msg := condition(api, v1alpha1.ConditionBuilt).Message
	for _, want := range []string{"UNAUTHORIZED", "spec.build.forceRebuild", "push Secret push"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Built message %q lacks %q", msg, want)
		}
	}

	if err := f.c.Get(ctx, client.ObjectKeyFromObject(push), push); err != nil {
		t.Fatal(err)
	}
	push.Data = dockerConfig("right")
	if err := f.c.Update(ctx, push); err != nil {
		t.Fatal(err)
	}
	api = f.waitCondition(t, ns, "retry", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
	if api.Status.BuildJob == failed.Name {
		t.Fatalf("still on the failed Job %s", failed.Name)
	}
	retry := &batchv1.Job{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: api.Status.BuildJob}, retry); err != nil {
		t.Fatal(err)
	}
	imageDigest := "sha256:" + strings.Repeat("7a", 32)
	f.finishJob(t, retry, 0, imageDigest+"\n")
	got := f.waitCondition(t, ns, "retry", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	if want := f.reg.Host + "/gatekiln/kaniko-retry@" + imageDigest; got.Status.Image != want {
		t.Errorf("status.image %s, want %s", got.Status.Image, want)
	}
}
