package operator_test

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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
		// Compiles are CPU bursts: see config/manager/manager.yaml.
		"cpu limit": {c.Resources.Limits["cpu"], resource.MustParse("1")},
		// Room for the compile budget: see config/manager/manager.yaml.
		"memory limit": {c.Resources.Limits["memory"], resource.MustParse("320Mi")},
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

// TestRegistryComponents: an overlay of config/default with the
// registry-credentials and registry-ca components (their Secret and
// ConfigMap generated as a user's overlay would) builds, is accepted by the
// API server, and gives the operator both files and both flags.
func TestRegistryComponents(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	overlay := t.TempDir()
	cfg, err := filepath.Rel(overlay, filepath.Join(operatortest.RepoRoot(), "config"))
	if err != nil {
		t.Fatal(err)
	}
	ns := f.env.Namespace(t, "components")
	files := map[string]string{
		"config.json": `{"auths":{"registry.example.com":{"auth":"dTpw"}}}`,
		"ca.crt":      "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ` + ns + `
resources:
  - ` + cfg + `/rbac
  - ` + cfg + `/manager
components:
  - ` + cfg + `/components/registry-credentials
  - ` + cfg + `/components/registry-ca
secretGenerator:
  - name: gatekiln-registry-credentials
    type: kubernetes.io/dockerconfigjson
    files: [.dockerconfigjson=config.json]
configMapGenerator:
  - name: gatekiln-registry-ca
    files: [ca.crt]
`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(overlay, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), overlay)
	if err != nil {
		t.Fatalf("kustomize the overlay: %v", err)
	}
	var dep *appsv1.Deployment
	names := map[string]string{} // kind → generated name
	for _, res := range rm.Resources() {
		m, err := res.Map()
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		switch u.GetKind() {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
			continue // the install test covers the cluster-scoped objects
		case "Deployment":
			dep = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, dep); err != nil {
				t.Fatal(err)
			}
		case "Secret", "ConfigMap":
			names[u.GetKind()] = u.GetName()
		}
		if err := f.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
			t.Errorf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if dep == nil {
		t.Fatal("the overlay has no Deployment")
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	for _, arg := range []string{"--registry-config=/etc/gatekiln/registry-credentials/config.json", "--registry-ca=/etc/gatekiln/registry-ca/ca.crt"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %q lack %s", c.Args, arg)
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	if v := vols["registry-credentials"]; v.Secret == nil || v.Secret.SecretName != names["Secret"] ||
		len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != ".dockerconfigjson" || v.Secret.Items[0].Path != "config.json" {
		t.Errorf("registry-credentials volume %+v, want the generated Secret %s's .dockerconfigjson as config.json", v, names["Secret"])
	}
	if v := vols["registry-ca"]; v.ConfigMap == nil || v.ConfigMap.Name != names["ConfigMap"] {
		t.Errorf("registry-ca volume %+v, want the generated ConfigMap %s", v, names["ConfigMap"])
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["registry-credentials"] != "/etc/gatekiln/registry-credentials" || mounts["registry-ca"] != "/etc/gatekiln/registry-ca" {
		t.Errorf("mounts %v", mounts)
	}
}
