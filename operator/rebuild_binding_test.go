package operator_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/operator"
)

// TestBindingAppliesWhileRebuilding: while a changed definition is being
// built (here a Kaniko Job that never runs: envtest has no kubelet), the
// deployed gateway keeps serving the old Bundle, and a change of what the
// Binding holds for the same names (an Endpoint's URLs; a key rotated or
// revoked) must reach it now, not once the build is done, which may be never.
// A Binding whose names differ from the deployed one's is held back.
func TestBindingAppliesWhileRebuilding(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "rebuild-binding")
	// Its Kaniko Job never finishes.
	f.dropBuilds(t, ns)
	f.rollouts(t, ns)
	def := func(path string) []byte {
		return []byte(`openapi: 3.0.3
info: {title: rebuild binding, version: "1.0"}
x-gatekiln-basepath: /rb
x-gatekiln-endpoint: backend
paths:
  ` + path + `:
    get: {responses: {"200": {description: ok}}}
`)
	}
	ep := &v1alpha1.Endpoint{ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: ns},
		Spec: v1alpha1.EndpointSpec{URLs: []string{"http://old.example:8080"}}}
	f.create(t, ep, definition(ns, "def", "openapi.yaml", def("/items")), newAPI(ns, "rb", "def", "openapi.yaml"))
	f.waitCondition(t, ns, "rb", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)

	// Kaniko builds from now on (the built image stays: same inputs), then
	// a new definition, whose Job stays pending.
	api := f.getAPI(t, ns, "rb")
	api.Spec.Build.Strategy = v1alpha1.BuildKaniko
	if err := f.c.Update(ctx, api); err != nil {
		t.Fatal(err)
	}
	f.waitCondition(t, ns, "rb", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
	cm := &corev1.ConfigMap{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "def"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["openapi.yaml"] = string(def("/things"))
	if err := f.c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	// Building, or queued behind other tests' Jobs (which never finish).
	eventually(t, "the new definition's build pending", func() error {
		if c := condition(f.getAPI(t, ns, "rb"), v1alpha1.ConditionBuilt); c.Status != metav1.ConditionUnknown {
			return errorf("Built %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})

	urls := func() ([]string, error) {
		cm := &corev1.ConfigMap{}
		if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "rb-binding"}, cm); err != nil {
			return nil, err
		}
		var b bundle.Binding
		if err := json.Unmarshal([]byte(cm.Data[bundle.BindingFile]), &b); err != nil {
			return nil, err
		}
		return b.Endpoints["backend"].URLs, nil
	}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "backend"}, ep); err != nil {
		t.Fatal(err)
	}
	ep.Spec.URLs = []string{"http://new.example:8080"}
	if err := f.c.Update(ctx, ep); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new URL in the Binding while the build is pending", func() error {
		got, err := urls()
		if err != nil {
			return err
		}
		if !slices.Equal(got, ep.Spec.URLs) {
			return errorf("binding urls %v, want %v", got, ep.Spec.URLs)
		}
		return nil
	})
	if c := condition(f.getAPI(t, ns, "rb"), v1alpha1.ConditionBuilt); c.Status != metav1.ConditionUnknown {
		t.Fatalf("Built %s %s: the build should still be pending", c.Reason, c.Message)
	}
}
