package operator_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator"
)

// TestDefinitionTooLarge: a definition over --max-definition-size (here 9 MiB
// once decompressed, stored gzip'd in a few KiB as kubectl add api does) is
// not compiled: the API says how large it is and which flag bounds it, and
// the gateway already deployed keeps running the image it ran. Shrinking the
// definition again resolves it.
func TestDefinitionTooLarge(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "too-large")
	f.rollouts(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("too large", "/tl"))),
		newAPI(ns, "big", "def", "openapi.yaml"))
	before := f.waitCondition(t, ns, "big", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)

	huge := simpleDefinition("too large", "/tl2") + "# " + strings.Repeat("x", 9<<20) + "\n"
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(huge)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "def"}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data, cm.BinaryData = nil, map[string][]byte{"openapi.yaml": buf.Bytes()}
	if err := f.c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	got := f.waitCondition(t, ns, "big", v1alpha1.ConditionResolved, metav1.ConditionFalse, operator.ReasonDefinitionTooLarge)
	msg := condition(got, v1alpha1.ConditionResolved).Message
	for _, want := range []string{"9.0 MiB", "--max-definition-size", "8.0 MiB"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Resolved message %q lacks %q", msg, want)
		}
	}
	if got.Status.Image != before.Status.Image {
		t.Errorf("status.image became %s, was %s", got.Status.Image, before.Status.Image)
	}
	f.quiesce(t)
	dep := &appsv1.Deployment{}
	if err := f.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "big"}, dep); err != nil {
		t.Fatalf("the deployed gateway: %v", err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != before.Status.Image {
		t.Errorf("the Deployment runs %s, was %s", img, before.Status.Image)
	}

	cm.Data, cm.BinaryData = map[string]string{"openapi.yaml": simpleDefinition("too large", "/tl2")}, nil
	if err := f.c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	f.waitCondition(t, ns, "big", v1alpha1.ConditionResolved, metav1.ConditionTrue, operator.ReasonResolved)
	f.waitCondition(t, ns, "big", v1alpha1.ConditionReady, metav1.ConditionTrue, operator.ReasonAvailable)
}
