// Package operatortest runs a real kube-apiserver and etcd (envtest, binaries
// built by `make envtest-bins`) with the gatekiln.io CRDs installed, and
// stands in for what envtest lacks: no kubelet runs Pods, so Rollouts marks
// the operator's Deployments available by writing their status through the
// API server, which is the state of the world the reconcilers read.
package operatortest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/gatekiln/gatekiln/operator"
	"github.com/gatekiln/gatekiln/operator/render"
)

// Env is a running API server with the CRDs installed.
type Env struct {
	Config *rest.Config
	Client client.WithWatch
	// Kubeconfig is a kubeconfig file for the API server (for binaries).
	Kubeconfig string
	env        *envtest.Environment
}

// Start runs the API server for the duration of the test, failing it with a
// clear message when the binaries are missing.
func Start(tb testing.TB) *Env {
	tb.Helper()
	e, err := Launch(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Stop(); err != nil {
			tb.Errorf("stop envtest: %v", err)
		}
	})
	return e
}

// Launch starts the API server; dir receives the kubeconfig. Stop it with Stop.
func Launch(dir string) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(RepoRoot(), "bin", "envtest")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("envtest binary %s missing in %s: run `make envtest-bins` (or set KUBEBUILDER_ASSETS): %w", b, assets, err)
		}
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	// The default range (a /24) has room for 256 Services; benchmarks run
	// a thousand APIs, each with its own.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest: %w", err)
	}
	// Many objects are written at once in benchmarks; the default client
	// rate limit (5 qps) would measure the limiter, not the operator.
	cfg.QPS, cfg.Burst = 500, 1000
	scheme, err := operator.Scheme()
	if err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, env.KubeConfig, 0o600); err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	return &Env{Config: cfg, Client: c, Kubeconfig: kc, env: env}, nil
}

// OperatorUser is the user RestrictedConfig authenticates as.
const OperatorUser = "gatekiln-operator"

// RestrictedConfig returns a rest.Config for a user holding only the
// ClusterRole generated into config/rbac from the operator's RBAC markers, so
// that a manager run with it proves those permissions are enough.
func (e *Env) RestrictedConfig(ctx context.Context) (*rest.Config, error) {
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(data, role); err != nil {
		return nil, fmt.Errorf("config/rbac/role.yaml: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name + "-envtest"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: OperatorUser}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := e.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	u, err := e.env.AddUser(envtest.User{Name: OperatorUser}, e.Config)
	if err != nil {
		return nil, fmt.Errorf("add user: %w", err)
	}
	return u.Config(), nil
}

// InstallHTTPRouteCRD installs a minimal gateway.networking.k8s.io/v1
// HTTPRoute CRD (its spec unvalidated), so that the operator discovers the
// Gateway API and renders routes; envtest has none of its own.
func (e *Env) InstallHTTPRouteCRD(ctx context.Context) error {
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "httproutes.gateway.networking.k8s.io",
			// The group is protected; the Gateway API's own CRDs carry this.
			Annotations: map[string]string{"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/891"}},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "gateway.networking.k8s.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "httproutes", Singular: "httproute", Kind: "HTTPRoute", ListKind: "HTTPRouteList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec":   {Type: "object", XPreserveUnknownFields: ptrTo(true)},
						"status": {Type: "object", XPreserveUnknownFields: ptrTo(true)},
					},
				}},
			}},
		},
	}
	_, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
	return err
}

func ptrTo[T any](v T) *T { return &v }

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.env.Stop() }

// RepoRoot is the module root (where go.mod is), found from this file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Namespace creates a namespace for one test.
func (e *Env) Namespace(tb testing.TB, name string) string {
	tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		tb.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// Rollouts stands in for the Deployment controller and the kubelet until ctx
// ends: every Deployment the operator manages in namespace ("" for all) is
// reported rolled out and available, as a cluster whose Pods start would.
// Paused Deployments (spec.paused) are left alone, so a test can hold one
// back.
func (e *Env) Rollouts(ctx context.Context, namespace string) error {
	for ctx.Err() == nil {
		w, err := e.Client.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(namespace),
			client.MatchingLabels{render.LabelManagedBy: render.ManagedBy})
		if err != nil {
			return fmt.Errorf("watch deployments: %w", err)
		}
		if err := e.rollout(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) rollout(ctx context.Context, w watch.Interface) error {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil // the server closed the watch; start another
			}
			dep, isDep := ev.Object.(*appsv1.Deployment)
			if !isDep || ev.Type == watch.Deleted || dep.Spec.Paused || Available(dep) {
				continue
			}
			if err := MarkAvailable(ctx, e.Client, dep); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
}

// Available reports whether dep's status says its current spec is rolled out.
func Available(dep *appsv1.Deployment) bool {
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	return dep.Status.ObservedGeneration == dep.Generation && dep.Status.AvailableReplicas == want &&
		dep.Status.UpdatedReplicas == want
}

// MarkAvailable writes dep's status as a rolled-out Deployment's.
func MarkAvailable(ctx context.Context, c client.Client, dep *appsv1.Deployment) error {
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	d := dep.DeepCopy()
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           want,
		UpdatedReplicas:    want,
		ReadyReplicas:      want,
		AvailableReplicas:  want,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
				LastUpdateTime: now, LastTransitionTime: now},
		},
	}
	return c.Status().Update(ctx, d)
}
