package operator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
)

func TestDecideImage(t *testing.T) {
	const (
		digest = "sha256:aaaa"
		tag    = "reg/x:1.0-aaaa"
		built  = "reg/x@sha256:1111"
	)
	builtStatus := func(reason, force string) *v1alpha1.APIStatus {
		return &v1alpha1.APIStatus{Image: built, InputsDigest: digest, ForceRebuild: force,
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionBuilt, Status: metav1.ConditionTrue, Reason: reason, Message: "m"}}}
	}
	found := func() (string, error) { return "reg/x@sha256:2222", nil }
	absent := func() (string, error) { return "", nil }
	down := func() (string, error) { return "", errors.New("dial tcp: connection refused") }
	collide := func() (string, error) { return "", errTagCollision }
	mustNotAsk := func() (string, error) { return "", errors.New("the registry was asked") }

	cases := []struct {
		name       string
		facts      imageFacts
		wantImage  string
		wantBuild  bool
		wantReason string
		wantErr    bool
	}{
		{"prebuilt wins", imageFacts{Prebuilt: "r/y@sha256:9", Status: builtStatus(ReasonBuilt, ""), Lookup: mustNotAsk},
			"r/y@sha256:9", false, ReasonPrebuilt, false},
		{"status holds these inputs' image", imageFacts{Status: builtStatus(ReasonBuilt, ""), Lookup: mustNotAsk},
			built, false, ReasonBuilt, false},
		{"status image found in registry earlier", imageFacts{Status: builtStatus(ReasonFoundInRegistry, ""), Lookup: mustNotAsk},
			built, false, ReasonFoundInRegistry, false},
		{"prebuilt status is not a build", imageFacts{Status: builtStatus(ReasonPrebuilt, ""), Lookup: absent},
			"", true, ReasonBuilding, false},
		{"other inputs ask the registry", imageFacts{Status: &v1alpha1.APIStatus{Image: built, InputsDigest: "sha256:old"}, Lookup: found},
			"reg/x@sha256:2222", false, ReasonFoundInRegistry, false},
		{"absent builds", imageFacts{Status: &v1alpha1.APIStatus{}, Lookup: absent}, "", true, ReasonBuilding, false},
		{"registry down", imageFacts{Status: &v1alpha1.APIStatus{}, Lookup: down}, "", false, ReasonRegistryUnavailable, true},
		{"collision", imageFacts{Status: &v1alpha1.APIStatus{}, Lookup: collide}, "", false, ReasonTagCollision, true},
		{"repository changed asks the registry", imageFacts{Status: &v1alpha1.APIStatus{Image: "old/x@sha256:1111", InputsDigest: digest,
			Conditions: builtStatus(ReasonBuilt, "").Conditions}, Lookup: absent},
			"", true, ReasonBuilding, false},
		{"forceRebuild changed", imageFacts{ForceRebuild: "2", Status: builtStatus(ReasonBuilt, "1"), Lookup: mustNotAsk},
			"", true, ReasonBuilding, false},
		{"forceRebuild already honoured", imageFacts{ForceRebuild: "1", Status: builtStatus(ReasonBuilt, "1"), Lookup: mustNotAsk},
			built, false, ReasonBuilt, false},
		{"built but condition false", imageFacts{Status: &v1alpha1.APIStatus{Image: built, InputsDigest: digest,
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionBuilt, Status: metav1.ConditionFalse, Reason: ReasonBuildFailed}}}, Lookup: absent},
			"", true, ReasonBuilding, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.facts
			f.InputsDigest, f.Tag = digest, tag
			d := decideImage(&f)
			if d.Image != tc.wantImage || d.Build != tc.wantBuild || d.Reason != tc.wantReason || (d.Err != nil) != tc.wantErr {
				t.Errorf("decision %+v, want image %q build %v reason %s err %v", d, tc.wantImage, tc.wantBuild, tc.wantReason, tc.wantErr)
			}
		})
	}
}

func TestDefinitionFiles(t *testing.T) {
	cm := func(name string, data map[string]string, bin map[string][]byte, ann map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Data: data, BinaryData: bin}
	}
	api := func(refs ...v1alpha1.ConfigMapKeyRef) *v1alpha1.API {
		return &v1alpha1.API{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Spec: v1alpha1.APISpec{Definition: refs}}
	}
	cms := map[string]*corev1.ConfigMap{
		"one":      cm("one", map[string]string{"openapi.yaml": "root"}, nil, nil),
		"multi":    cm("multi", map[string]string{"b.yaml": "B", "a.yaml": "A"}, map[string][]byte{"z.yaml.gz": []byte("Z")}, map[string]string{v1alpha1.AnnotationRootKey: "b.yaml"}),
		"paths":    cm("paths", map[string]string{"schemas-pet.yaml": "P"}, nil, map[string]string{v1alpha1.AnnotationFilePaths: `{"schemas-pet.yaml":"schemas/pet.yaml"}`}),
		"badpaths": cm("badpaths", map[string]string{"x": "X"}, nil, map[string]string{v1alpha1.AnnotationFilePaths: `{`}),
	}
	cases := []struct {
		name       string
		api        *v1alpha1.API
		want       []string // path=data
		wantReason string
	}{
		{"one key", api(v1alpha1.ConfigMapKeyRef{Name: "one", Key: "openapi.yaml"}), []string{"openapi.yaml=root"}, ""},
		{"every key, root first", api(v1alpha1.ConfigMapKeyRef{Name: "multi"}), []string{"b.yaml=B", "a.yaml=A", "z.yaml.gz=Z"}, ""},
		{"root then a mapped path", api(v1alpha1.ConfigMapKeyRef{Name: "one", Key: "openapi.yaml"}, v1alpha1.ConfigMapKeyRef{Name: "paths"}),
			[]string{"openapi.yaml=root", "schemas/pet.yaml=P"}, ""},
		{"repeat skipped", api(v1alpha1.ConfigMapKeyRef{Name: "one", Key: "openapi.yaml"}, v1alpha1.ConfigMapKeyRef{Name: "one"}),
			[]string{"openapi.yaml=root"}, ""},
		{"missing ConfigMap", api(v1alpha1.ConfigMapKeyRef{Name: "nope", Key: "x"}), nil, ReasonDefinitionNotFound},
		{"missing key", api(v1alpha1.ConfigMapKeyRef{Name: "one", Key: "x"}), nil, ReasonDefinitionNotFound},
		{"bad annotation", api(v1alpha1.ConfigMapKeyRef{Name: "badpaths"}), nil, ReasonDefinitionNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files, ref := definitionFiles(tc.api, cms)
			if tc.wantReason != "" {
				if ref == nil || ref.Reason != tc.wantReason {
					t.Fatalf("refusal %+v, want reason %s", ref, tc.wantReason)
				}
				return
			}
			if ref != nil {
				t.Fatalf("refused: %+v", ref)
			}
			var got []string
			for _, f := range files {
				got = append(got, f.Path+"="+string(f.Data))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("files %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefinitionConfigMapsRefusesOtherNamespace(t *testing.T) {
	api := &v1alpha1.API{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}, Spec: v1alpha1.APISpec{
		Definition: []v1alpha1.ConfigMapKeyRef{{Name: "d", Namespace: "ns"}, {Name: "e", Namespace: "other"}}}}
	_, ref := definitionConfigMaps(api)
	if ref == nil || ref.Reason != ReasonCrossNamespaceRef || !strings.Contains(ref.Message, "other/e") {
		t.Fatalf("refusal %+v, want CrossNamespaceRef naming other/e", ref)
	}
}

func TestBindingSecretData(t *testing.T) {
	secrets := map[string]*corev1.Secret{
		"certs": {Data: map[string][]byte{"tls.crt": []byte("PEM")}},
		"keys":  {Data: map[string][]byte{"alice": []byte("k1")}},
	}
	cases := []struct {
		name       string
		files      []compile.SecretFile
		wantFiles  map[string]string
		wantReason string
	}{
		{"raw", []compile.SecretFile{{File: "security/j/certificate.pem", SecretName: "certs", Key: "tls.crt"}},
			map[string]string{"security/j/certificate.pem": "PEM"}, ""},
		{"api keys hashed", []compile.SecretFile{{File: "security/k/keys", SecretName: "keys", Format: compile.SecretFormatAPIKeys}},
			map[string]string{"security/k/keys": "alice:" + sha256Hex("k1") + "\n"}, ""},
		{"missing secret", []compile.SecretFile{{File: "f", SecretName: "nope", Key: "k"}}, nil, ReasonSecretNotFound},
		{"missing key", []compile.SecretFile{{File: "f", SecretName: "certs", Key: "ca.crt"}}, nil, ReasonSecretNotFound},
		{"key clash", []compile.SecretFile{{File: "a/b", SecretName: "certs", Key: "tls.crt"}, {File: "a__b", SecretName: "certs", Key: "tls.crt"}},
			nil, compile.CodeInvalidKinds},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ref := bindingSecretData(tc.files, secrets)
			if tc.wantReason != "" {
				if ref == nil || ref.Reason != tc.wantReason {
					t.Fatalf("refusal %+v, want %s", ref, tc.wantReason)
				}
				return
			}
			if ref != nil {
				t.Fatalf("refused: %+v", ref)
			}
			if len(got) != len(tc.wantFiles) {
				t.Fatalf("files %v, want %v", got, tc.wantFiles)
			}
			for f, v := range tc.wantFiles {
				if string(got[f]) != v {
					t.Errorf("%s = %q, want %q", f, got[f], v)
				}
			}
		})
	}
}

func TestDeploymentReadiness(t *testing.T) {
	const img = "r/x@sha256:1"
	dep := func(mutate func(*appsv1.Deployment)) *appsv1.Deployment {
		replicas := int32(2)
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Generation: 3},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: img}}}}},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 3, UpdatedReplicas: 2, AvailableReplicas: 2,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
		}
		if mutate != nil {
			mutate(d)
		}
		return d
	}
	cases := []struct {
		name string
		dep  *appsv1.Deployment
		want metav1.ConditionStatus
	}{
		{"available", dep(nil), metav1.ConditionTrue},
		{"not observed", nil, metav1.ConditionFalse},
		{"old image", dep(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "r/x@sha256:0" }), metav1.ConditionFalse},
		{"old generation", dep(func(d *appsv1.Deployment) { d.Status.ObservedGeneration = 2 }), metav1.ConditionFalse},
		{"one of two", dep(func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 1 }), metav1.ConditionFalse},
		{"not available condition", dep(func(d *appsv1.Deployment) { d.Status.Conditions = nil }), metav1.ConditionFalse},
		{"scaled to zero", dep(func(d *appsv1.Deployment) { z := int32(0); d.Spec.Replicas = &z }), metav1.ConditionFalse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := deploymentReadiness(tc.dep, img); got.Status != tc.want {
				t.Errorf("readiness %+v, want %s", got, tc.want)
			}
		})
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	var conds []metav1.Condition
	setCondition(&conds, 1, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonProgressing, "0 of 1")
	first := conds[0].LastTransitionTime
	conds[0].LastTransitionTime = metav1.NewTime(first.Add(-3600e9))
	pinned := conds[0].LastTransitionTime
	setCondition(&conds, 2, v1alpha1.ConditionReady, metav1.ConditionFalse, ReasonProgressing, "0 of 1")
	if !conds[0].LastTransitionTime.Equal(&pinned) || conds[0].ObservedGeneration != 2 {
		t.Errorf("same status: transition time %v (want %v), generation %d", conds[0].LastTransitionTime, pinned, conds[0].ObservedGeneration)
	}
	setCondition(&conds, 2, v1alpha1.ConditionReady, metav1.ConditionTrue, ReasonAvailable, "1 of 1")
	if conds[0].LastTransitionTime.Equal(&pinned) {
		t.Error("status changed but transition time did not")
	}
	ensureCondition(&conds, 3, v1alpha1.ConditionReady, metav1.ConditionUnknown, "X", "y")
	if conds[0].Status != metav1.ConditionTrue {
		t.Error("ensureCondition overwrote an existing condition")
	}
	setCondition(&conds, 3, v1alpha1.ConditionResolved, metav1.ConditionTrue, ReasonResolved, "")
	sortConditions(conds)
	if conds[0].Type != v1alpha1.ConditionResolved || conds[1].Type != v1alpha1.ConditionReady {
		t.Errorf("order %s, %s", conds[0].Type, conds[1].Type)
	}
}

func TestJobName(t *testing.T) {
	a := JobName("sha256:1", "r/x:1", "", "")
	if a != JobName("sha256:1", "r/x:1", "", "") {
		t.Error("JobName is not a function of its inputs")
	}
	for _, other := range []string{
		JobName("sha256:2", "r/x:1", "", ""),
		JobName("sha256:1", "r/y:1", "", ""),
		JobName("sha256:1", "r/x:1", "again", ""),
		JobName("sha256:1", "r/x:1", "", "push/41"),
		// Fields do not run into each other.
		JobName("sha256:1", "r/x:1", "push/41", ""),
	} {
		if other == a {
			t.Errorf("different inputs share the Job name %s", a)
		}
	}
	if len(a) > 63 || !strings.HasPrefix(a, "gatekiln-build-") {
		t.Errorf("JobName %q", a)
	}
}

func TestSlugAndLogTail(t *testing.T) {
	for in, want := range map[string]string{"Swagger Petstore": "swagger-petstore", "  ": "api", "Ünïcode API v2!": "n-code-api-v2"} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
	var lines []string
	for i := range 30 {
		lines = append(lines, "line "+strings.Repeat("x", i%3)+string(rune('a'+i%26)))
	}
	tail := logTail(strings.Join(lines, "\n") + "\n")
	if got := strings.Count(tail, "\n") + 1; got != 10 || !strings.HasSuffix(tail, lines[29]) {
		t.Errorf("logTail kept %d lines ending %q", got, tail[len(tail)-10:])
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", 5000)
	got := truncate(long, maxMessage)
	if len(got) > maxMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "(truncated)") {
		t.Errorf("truncate: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if truncate("short", 10) != "short" {
		t.Error("truncate changed a short string")
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Registry: "r:5000/g", RuntimeImage: "r:5000/g/runtime:latest", KanikoImage: "r:5000/kaniko/executor:v1.24.0"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultStrategy != v1alpha1.BuildKaniko || c.KanikoJoinImage != "r:5000/kaniko/executor:v1.24.0-debug" {
		t.Errorf("defaults %+v", c)
	}
	_, err = Config{DefaultStrategy: "Docker"}.withDefaults()
	for _, want := range []string{"default strategy", "runtime image", "registry"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestConfigNewDefaults(t *testing.T) {
	base := Config{Registry: "r:5000/g", RuntimeImage: "r:5000/g/runtime:latest", KanikoImage: "r:5000/kaniko/executor:v1.24.0"}
	c, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.CompileBudget != DefaultCompileBudget || c.MaxDefinitionBytes != DefaultMaxDefinitionBytes ||
		c.NameConflictRequeue != DefaultNameConflictRequeue || c.KanikoResources == nil ||
		!equality.Semantic.DeepEqual(*c.KanikoResources, DefaultKanikoResources()) {
		t.Errorf("defaults %+v", c)
	}

	// A request over its limit would have every Job refused: refuse it at start.
	over := DefaultKanikoResources()
	over.Requests[corev1.ResourceMemory] = resource.MustParse("2Gi")
	base.KanikoResources = &over
	if _, err := base.withDefaults(); err == nil || !strings.Contains(err.Error(), "kaniko memory request 2Gi is over its limit 1Gi") {
		t.Errorf("request over limit: %v", err)
	}
	// No limits at all is the user's choice.
	none := corev1.ResourceRequirements{}
	base.KanikoResources = &none
	if c, err := base.withDefaults(); err != nil || len(c.KanikoResources.Limits) != 0 {
		t.Errorf("no resources: %v, %+v", err, c.KanikoResources)
	}
}
