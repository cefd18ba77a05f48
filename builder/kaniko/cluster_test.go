package kaniko_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/kaniko"
)

// apiServer starts a real kube-apiserver and etcd (bin/envtest) for the test.
func apiServer(t *testing.T) kubernetes.Interface {
	t.Helper()
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	_, file, _, _ := runtime.Caller(0)
	te := &envtest.Environment{BinaryAssetsDirectory: filepath.Join(filepath.Dir(file), "..", "..", "bin", "envtest")}
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("start envtest (make envtest-bins): %v", err)
	}
	t.Cleanup(func() { _ = te.Stop() })
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

// TestRenderedObjectsAdmitted creates what Render returns on a real API
// server: the Job, and the Pod its controller would create from the
// template, in a namespace whose ResourceQuota makes every container state
// its CPU and memory (a common setup for build namespaces). A split context
// adds the join init container; it must be admitted too.
func TestRenderedObjectsAdmitted(t *testing.T) {
	kube := apiServer(t)
	ctx := context.Background()
	ns := "builds"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hard := corev1.ResourceList{
		corev1.ResourceLimitsCPU: resource.MustParse("8"), corev1.ResourceLimitsMemory: resource.MustParse("8Gi"),
		corev1.ResourceRequestsCPU: resource.MustParse("8"), corev1.ResourceRequestsMemory: resource.MustParse("8Gi"),
	}
	q, err := kube.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "builds"}, Spec: corev1.ResourceQuotaSpec{Hard: hard},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No quota controller runs here: state the usage it would compute.
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: corev1.ResourceList{
		corev1.ResourceLimitsCPU: resource.MustParse("0"), corev1.ResourceLimitsMemory: resource.MustParse("0"),
		corev1.ResourceRequestsCPU: resource.MustParse("0"), corev1.ResourceRequestsMemory: resource.MustParse("0"),
	}}
	if _, err := kube.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	resources := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	for i, c := range []struct {
		name string
		opts kaniko.Options
	}{
		{"one configmap", kaniko.Options{Name: "single", Resources: resources}},
		{"split context", kaniko.Options{Name: "split", Resources: resources, MaxPartBytes: 1024}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Namespace = ns
			b, err := kaniko.Render(request(t, "registry.example", imagetest.Bundle(t, "Swagger Petstore", "1.0.0", noise(4096))), c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if c.opts.MaxPartBytes != 0 && len(b.ConfigMaps) < 2 {
				t.Fatalf("%d configmaps, want a split context", len(b.ConfigMaps))
			}
			if _, err := kube.BatchV1().Jobs(ns).Create(ctx, b.Job, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create job: %v", err)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pod-" + string(rune('a'+i)), Labels: b.Job.Spec.Template.Labels},
				Spec: *b.Job.Spec.Template.Spec.DeepCopy()}
			if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create the job's pod: %v", err)
			}
		})
	}
}

// TestRenderRefusesJobNameTheServerRefuses: a name Render accepts must be
// one the API server takes for a Job. The Job controller labels the Pods
// with the Job's name, so a Job name is at most 63 characters.
func TestRenderRefusesJobNameTheServerRefuses(t *testing.T) {
	kube := apiServer(t)
	ctx := context.Background()
	for _, n := range []int{63, 64} {
		name := strings.Repeat("b", n)
		b, err := kaniko.Render(request(t, "registry.example", imagetest.Petstore(t)), kaniko.Options{Name: name, Namespace: "default"})
		if err != nil {
			t.Logf("Render refuses a %d-character name: %v", n, err)
			if n <= 63 {
				t.Errorf("Render refused a %d-character name: %v", n, err)
			}
			continue
		}
		if _, err := kube.BatchV1().Jobs("default").Create(ctx, b.Job, metav1.CreateOptions{}); err != nil {
			t.Errorf("Render accepted a %d-character name the API server refuses: %v", n, err)
		}
	}
}
