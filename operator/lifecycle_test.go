package operator_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator"
)

// TestRepositoryChangeMovesImage: changing spec.image.repository (the inputs
// stay the same) puts the image into the new repository and deploys it from
// there, instead of keeping the image of the old one.
func TestRepositoryChangeMovesImage(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "repo-change")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("repo change", "/repo"))),
		newAPI(ns, "moving", "def", "openapi.yaml"))
	before := f.waitCondition(t, ns, "moving", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)

	api := f.getAPI(t, ns, "moving")
	api.Spec.Image.Repository = "moved/repo-change"
	if err := f.c.Update(ctx, api); err != nil {
		t.Fatal(err)
	}
	after := f.waitCondition(t, ns, "moving", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	wantRepo := f.reg.Host + "/gatekiln/moved/repo-change"
	if !strings.HasPrefix(after.Status.Image, wantRepo+"@") {
		t.Fatalf("status.image %s (before %s), want it in %s", after.Status.Image, before.Status.Image, wantRepo)
	}
	ref, err := name.NewDigest(after.Status.Image)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := f.reg.Config().Remote(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, opts...); err != nil {
		t.Errorf("image %s not in the registry: %v", ref, err)
	}
	dep := &appsv1.Deployment{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "moving"}, dep); err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != after.Status.Image {
		t.Errorf("Deployment runs %s, status.image %s", img, after.Status.Image)
	}
}

// TestNameConflictWithUserService: an API named like a Service the user runs
// (its backend, often) does not take that Service over: the API says so, and
// the Service keeps its selector and has no owner.
func TestNameConflictWithUserService(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "conflict-user")
	f.rollouts(t, ns)
	user := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "backend"},
			Ports:    []corev1.ServicePort{{Name: "web", Port: 8080, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	f.create(t, user,
		definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("conflict user", "/cu"))),
		newAPI(ns, "backend", "def", "openapi.yaml"))
	got := f.waitCondition(t, ns, "backend", v1alpha1.ConditionDeployed, metav1.ConditionFalse, operator.ReasonNameConflict)
	if msg := condition(got, v1alpha1.ConditionDeployed).Message; !strings.Contains(msg, "Service backend") {
		t.Errorf("Deployed message %q does not name the Service", msg)
	}
	f.quiesce(t)
	svc := &corev1.Service{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "backend"}, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Selector["app"] != "backend" || len(svc.Spec.Selector) != 1 {
		t.Errorf("the user's Service selector became %v", svc.Spec.Selector)
	}
	if len(svc.OwnerReferences) != 0 {
		t.Errorf("the user's Service got owners %+v", svc.OwnerReferences)
	}

	// Once the user's Service is gone, the API deploys by itself.
	if err := f.c.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	f.waitCondition(t, ns, "backend", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
}

// TestNameConflictRecoversWithinInterval: a name conflict is looked at again
// every --name-conflict-requeue, however long it lasted: nothing watches the
// other object, and the controller's error back-off would by then wait many
// times longer (after 12 s of failures, its next retry is ~8 s away).
func TestNameConflictRecoversWithinInterval(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "conflict-prompt")
	f.rollouts(t, ns)
	user := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}},
	}
	f.create(t, user,
		definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("conflict prompt", "/cp"))),
		newAPI(ns, "orders", "def", "openapi.yaml"))
	f.waitCondition(t, ns, "orders", v1alpha1.ConditionDeployed, metav1.ConditionFalse, operator.ReasonNameConflict)
	// Long enough for an exponential back-off from 5 ms to pass 10 s.
	time.Sleep(12 * time.Second)
	if c := condition(f.getAPI(t, ns, "orders"), v1alpha1.ConditionDeployed); c.Reason != operator.ReasonNameConflict {
		t.Fatalf("Deployed %s/%s while the Service is still there", c.Status, c.Reason)
	}
	if err := f.c.Delete(ctx, user); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	limit := conflictRequeue + 3*time.Second // and a reconcile
	for {
		c := condition(f.getAPI(t, ns, "orders"), v1alpha1.ConditionDeployed)
		if c.Status == metav1.ConditionTrue {
			break
		}
		if time.Since(removed) > limit {
			t.Fatalf("not deployed %v after the Service went (the requeue interval is %v): %s %s", limit, conflictRequeue, c.Reason, c.Message)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("deployed %v after the conflicting Service was removed", time.Since(removed).Round(time.Millisecond))
}

// TestNameConflictWithUpstream: an API named like an image Endpoint's
// upstream (<endpoint>-upstream) does not fight the Endpoint reconciler
// over the same Deployment and Service.
func TestNameConflictWithUpstream(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "conflict-upstream")
	f.rollouts(t, ns)
	ep := &v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: v1alpha1.EndpointSpec{Image: &v1alpha1.EndpointImage{Image: "registry.example/web:1", Port: 9000}}}
	f.create(t, ep)
	eventually(t, "upstream Deployment", func() error {
		return f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web-upstream"}, &appsv1.Deployment{})
	})
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("conflict upstream", "/cup"))),
		newAPI(ns, "web-upstream", "def", "openapi.yaml"))
	f.waitCondition(t, ns, "web-upstream", v1alpha1.ConditionDeployed, metav1.ConditionFalse, operator.ReasonNameConflict)
	f.quiesce(t)
	dep := &appsv1.Deployment{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web-upstream"}, dep); err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.example/web:1" {
		t.Errorf("the Endpoint's upstream runs %s", img)
	}
	if c := metav1.GetControllerOf(dep); c == nil || c.Kind != "Endpoint" {
		t.Errorf("the Endpoint's upstream is controlled by %+v", c)
	}
}

// TestUpstreamNameTakenByAPI: an image Endpoint whose upstream name
// (<endpoint>-upstream) an API already uses says so, and leaves the API's
// Deployment and Service alone.
func TestUpstreamNameTakenByAPI(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "upstream-taken")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("upstream taken", "/ut"))),
		newAPI(ns, "api-upstream", "def", "openapi.yaml"))
	api := f.waitCondition(t, ns, "api-upstream", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	ep := &v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: v1alpha1.EndpointSpec{Image: &v1alpha1.EndpointImage{Image: "registry.example/api:1", Port: 9000}}}
	f.create(t, ep)
	eventually(t, "endpoint reports the conflict", func() error {
		got := &v1alpha1.Endpoint{}
		if err := f.c.Get(ctx, client.ObjectKeyFromObject(ep), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != operator.ReasonNameConflict {
			return errorf("conditions %+v", got.Status.Conditions)
		}
		return nil
	})
	f.quiesce(t)
	svc := &corev1.Service{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api-upstream"}, svc); err != nil {
		t.Fatal(err)
	}
	if c := metav1.GetControllerOf(svc); c == nil || c.Kind != "API" {
		t.Errorf("the API's Service is controlled by %+v", c)
	}
	if p := svc.Spec.Ports; len(p) != 1 || p[0].Port != 80 {
		t.Errorf("the API's Service ports became %+v", p)
	}
	dep := &appsv1.Deployment{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api-upstream"}, dep); err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != api.Status.Image {
		t.Errorf("the API's Deployment runs %s, want %s", img, api.Status.Image)
	}
}

// TestRegistryTemporarilyFailing: a registry that answers 503 while the
// image is pushed (restarting, behind a proxy) fails the Direct build with a
// reason saying the registry is unavailable; once it answers again the API
// builds and deploys by itself, with nothing changed.
func TestRegistryTemporarilyFailing(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "registry-503")
	f.rollouts(t, ns)
	target, err := url.Parse("http://" + f.reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(target)
	// The proxy listens where the fixture's stopped registry did: the
	// operator allows plain HTTP there.
	ln, err := net.Listen("tcp", f.down)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"errors":[{"code":"UNAVAILABLE","message":"the registry is restarting"}]}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	host := f.down
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("registry 503", "/r503"))),
		newAPI(ns, "r503", "def", "openapi.yaml", func(a *v1alpha1.API) { a.Spec.Image.Registry = host + "/gatekiln" }))
	t.Cleanup(func() {
		_ = f.c.Delete(context.Background(), &v1alpha1.API{ObjectMeta: metav1.ObjectMeta{Name: "r503", Namespace: ns}})
	})
	f.waitCondition(t, ns, "r503", v1alpha1.ConditionBuilt, metav1.ConditionFalse, operator.ReasonRegistryUnavailable)
	failing.Store(false)
	got := f.waitCondition(t, ns, "r503", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	if !strings.HasPrefix(got.Status.Image, host+"/gatekiln/registry-503@") {
		t.Errorf("status.image %s", got.Status.Image)
	}
}

// TestRecreateSameName: an API deleted and created again under the same name
// takes over the objects its predecessor left for the garbage collector
// (envtest runs none) and becomes Ready.
func TestRecreateSameName(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "recreate")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("recreate", "/re"))),
		newAPI(ns, "again", "def", "openapi.yaml"))
	old := f.waitCondition(t, ns, "again", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	if err := f.c.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	eventually(t, "API gone", func() error {
		err := f.c.Get(ctx, client.ObjectKeyFromObject(old), &v1alpha1.API{})
		if err == nil {
			return errorf("still there")
		}
		return client.IgnoreNotFound(err)
	})
	f.create(t, newAPI(ns, "again", "def", "openapi.yaml"))
	got := f.waitCondition(t, ns, "again", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ConfigMap{}, &corev1.Secret{}} {
		n := "again"
		switch o.(type) {
		case *corev1.ConfigMap, *corev1.Secret:
			n = "again-binding"
		}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: n}, o); err != nil {
			t.Fatal(err)
		}
		if c := metav1.GetControllerOf(o); c == nil || c.UID != got.UID || len(o.GetOwnerReferences()) != 1 {
			t.Errorf("%T %s owners %+v, want only the new API %s", o, n, o.GetOwnerReferences(), got.UID)
		}
	}
}

// TestKanikoContextCreatedLate: when the build context ConfigMap cannot be
// created right after its Job (a quota, an API server hiccup, the operator
// restarting in between), a later reconcile creates it, instead of leaving
// the Job waiting for a volume that never comes until its deadline.
func TestKanikoContextCreatedLate(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "kaniko-late-context")
	// Its Kaniko Job never finishes.
	f.dropBuilds(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("late context", "/late"))))
	// A quota that says the namespace has used up its ConfigMaps (envtest
	// runs no quota controller to correct it) refuses every new one.
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-configmaps", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/configmaps": resource.MustParse("1")}}}
	f.create(t, quota)
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: quota.Spec.Hard}
	if err := f.c.Status().Update(ctx, quota); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the quota refuses ConfigMaps", func() error {
		err := f.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}})
		if err == nil {
			return errorf("a ConfigMap was created")
		}
		if !apierrors.IsForbidden(err) {
			return err
		}
		return nil
	})
	f.create(t, newAPI(ns, "late", "def", "openapi.yaml", func(a *v1alpha1.API) { a.Spec.Build.Strategy = v1alpha1.BuildKaniko }))
	var job *batchv1.Job
	eventually(t, "a Kaniko Job", func() error {
		var jobs batchv1.JobList
		if err := f.c.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(jobs.Items) != 1 {
			return errorf("%d Jobs", len(jobs.Items))
		}
		job = &jobs.Items[0]
		return nil
	})

	if err := f.c.Delete(ctx, quota); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the build context ConfigMap", func() error {
		cm := &corev1.ConfigMap{}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: job.Name + "-context"}, cm); err != nil {
			return err
		}
		if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != job.UID {
			return errorf("owners %+v, want the Job", cm.OwnerReferences)
		}
		return nil
	})
	f.waitCondition(t, ns, "late", v1alpha1.ConditionBuilt, metav1.ConditionUnknown, operator.ReasonBuilding)
}
