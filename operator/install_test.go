package operator_test

import (
	"cmp"
	"context"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gatekiln/gatekiln/operator/operatortest"
)

// TestInstallManifests: config/default builds with kustomize (what `kubectl
// apply -k config/default` does) and every object it holds is accepted by the
// API server; the operator's Deployment has the agreed resource envelope.
func TestInstallManifests(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(operatortest.RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatalf("kustomize config/default: %v", err)
	}
	var dep *appsv1.Deployment
	var objs []map[string]any
	for _, res := range rm.Resources() {
		m, err := res.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, m)
	}
	// Namespaces first, as kubectl does.
	slices.SortStableFunc(objs, func(a, b map[string]any) int {
		return cmp.Compare(rankNamespace(a), rankNamespace(b))
	})
	for _, m := range objs {
		u := &unstructured.Unstructured{Object: m}
		// Server-side apply, as `kubectl apply --server-side -k` would; the
		// CRDs are already installed by envtest and are applied over.
		if err := f.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
			t.Errorf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == "Deployment" {
			dep = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep == nil {
		t.Fatal("config/default has no Deployment")
	}
	c := dep.Spec.Template.Spec.Containers[0]
	for name, want := range map[string]struct{ got, want resource.Quantity }{
		"cpu request":    {c.Resources.Requests["cpu"], resource.MustParse("10m")},
		"memory request": {c.Resources.Requests["memory"], resource.MustParse("64Mi")},
		"cpu limit":      {c.Resources.Limits["cpu"], resource.MustParse("100m")},
		"memory limit":   {c.Resources.Limits["memory"], resource.MustParse("128Mi")},
	} {
		if want.got.Cmp(want.want) != 0 {
			t.Errorf("%s = %s, want %s", name, want.got.String(), want.want.String())
		}
	}
	if sa := dep.Spec.Template.Spec.ServiceAccountName; sa != "gatekiln-operator" {
		t.Errorf("service account %q", sa)
	}
}

func rankNamespace(m map[string]any) int {
	if m["kind"] == "Namespace" {
		return 0
	}
	return 1
}
