package addapi

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

func cond(typ string, status metav1.ConditionStatus, reason, msg string, gen int64) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen}
}

func TestObserve(t *testing.T) {
	const gen = 3
	T, F := metav1.ConditionTrue, metav1.ConditionFalse
	for _, c := range []struct {
		name   string
		conds  []metav1.Condition
		job    string
		url    string
		phase  string
		reason string
		line   string
	}{
		{name: "no status yet", phase: PhaseResolving, line: "Resolving"},
		{name: "status of an older generation says nothing",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", 2), cond(v1alpha1.ConditionReady, T, "Available", "", 2)},
			phase: PhaseResolving},
		{name: "resolution refused is final",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, F, "EndpointNotFound", `Endpoint "petstore-backend" not found`, gen)},
			phase: PhaseFailed, reason: "EndpointNotFound", line: `Failed: EndpointNotFound: Endpoint "petstore-backend" not found`},
		{name: "resolved, build not reported yet",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen)},
			phase: PhaseBuilding, line: "Building (1s)"},
		{name: "building in a job",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, F, "Building", "kaniko is building", gen)},
			job:   "petstore-build-x1", phase: PhaseBuilding, reason: "Building", line: "Building (job petstore-build-x1, 1s): Building: kaniko is building"},
		{name: "build failed is final",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, F, "BuildFailed", "exit 1", gen)},
			phase: PhaseFailed, reason: "BuildFailed"},
		{name: "tag collision is final",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, F, "TagCollision", "tag holds another image", gen)},
			phase: PhaseFailed, reason: "TagCollision"},
		{name: "registry unavailable is retried, not final",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, F, "RegistryUnavailable", "dial tcp", gen)},
			phase: PhaseBuilding, reason: "RegistryUnavailable"},
		{name: "built, rolling out",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, T, "Built", "", gen),
				cond(v1alpha1.ConditionDeployed, T, "Deployed", "", gen), cond(v1alpha1.ConditionReady, F, "Progressing", "0 of 1 replicas updated and available", gen)},
			phase: PhaseDeploying, reason: "Progressing", line: "Deploying: Progressing: 0 of 1 replicas updated and available"},
		{name: "apply failed is final",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, T, "Built", "", gen),
				cond(v1alpha1.ConditionDeployed, F, "ApplyFailed", "forbidden", gen)},
			phase: PhaseFailed, reason: "ApplyFailed"},
		{name: "ready",
			conds: []metav1.Condition{cond(v1alpha1.ConditionResolved, T, "Resolved", "", gen), cond(v1alpha1.ConditionBuilt, T, "Built", "", gen),
				cond(v1alpha1.ConditionDeployed, T, "Deployed", "", gen), cond(v1alpha1.ConditionReady, T, "Available", "1 of 1 replicas available", gen+1)},
			url: "http://petstore.shop.svc:8080", phase: PhaseReady, line: "Ready: http://petstore.shop.svc:8080"},
	} {
		t.Run(c.name, func(t *testing.T) {
			api := &v1alpha1.API{Status: v1alpha1.APIStatus{Conditions: c.conds, BuildJob: c.job, URL: c.url}}
			p := Observe(api, gen)
			if p.Phase != c.phase || (c.reason != "" && p.Reason != c.reason) {
				t.Errorf("Observe = %+v, want phase %s reason %s", p, c.phase, c.reason)
			}
			if c.line != "" {
				if got := p.Line("1s"); got != c.line {
					t.Errorf("line = %q, want %q", got, c.line)
				}
			}
			if p.Done() != (c.phase == PhaseReady || c.phase == PhaseFailed) {
				t.Errorf("Done = %v", p.Done())
			}
		})
	}
}

func TestParseEndpoints(t *testing.T) {
	got, err := ParseEndpoints([]string{"backend=http://a:8080", "backend=https://b", "other=http://c/base"})
	if err != nil {
		t.Fatal(err)
	}
	objs := RenderEndpoints("shop", got)
	if len(objs) != 2 || objs[0].GetName() != "backend" || objs[1].GetName() != "other" {
		t.Fatalf("endpoints %v", objs)
	}
	if urls := objs[0].Object["spec"].(map[string]any)["urls"].([]any); len(urls) != 2 || urls[1] != "https://b" {
		t.Errorf("backend urls = %v", urls)
	}
	for _, bad := range []string{"noequals", "Bad_Name=http://x", "x=ftp://y", "x=http://", "x=not a url"} {
		if _, err := ParseEndpoints([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseEndpoints(%q) = %v, want an error naming it", bad, err)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := func() Options { return Options{Name: "petstore", Files: []string{"x.yaml"}} }
	for _, c := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"valid", func(*Options) {}, ""},
		{"name not a DNS label", func(o *Options) { o.Name = "Pet_Store" }, `api name "Pet_Store"`},
		{"name starting with a digit", func(o *Options) { o.Name = "1pet" }, `api name "1pet": must start with a lowercase letter`},
		{"no files", func(o *Options) { o.Files = nil }, "--from-file"},
		{"strategy", func(o *Options) { o.Strategy = "docker" }, `--build-strategy "docker"`},
		{"strategy any case", func(o *Options) { o.Strategy = "Direct" }, ""},
		{"dry run", func(o *Options) { o.DryRun = "maybe" }, `--dry-run "maybe"`},
		{"output", func(o *Options) { o.Output = "wide" }, `-o "wide"`},
		{"wait with dry run", func(o *Options) { o.Wait, o.DryRun = true, DryRunClient }, "--wait"},
		{"image with strategy", func(o *Options) { o.Image, o.Strategy = "r/x@sha256:"+strings.Repeat("a", 64), "direct" }, "--image names a prebuilt image"},
		{"image", func(o *Options) { o.Image = "registry.example:5000/gw/petstore:1.0" }, ""},
		{"image by digest", func(o *Options) { o.Image = "r/x@sha256:" + strings.Repeat("a", 64) }, ""},
		{"image not a reference", func(o *Options) { o.Image = "NOT A REF" }, `--image "NOT A REF": not an image reference`},
		{"image with a bad digest", func(o *Options) { o.Image = "r/x@sha256:abc" }, `--image "r/x@sha256:abc": not an image reference`},
		{"wait", func(o *Options) { o.Wait, o.Timeout = true, time.Minute }, ""},
		{"wait with a negative timeout", func(o *Options) { o.Wait, o.Timeout = true, -5*time.Second }, "--timeout -5s: --wait needs a timeout above 0"},
		{"wait with no timeout", func(o *Options) { o.Wait, o.Timeout = true, 0 }, "--timeout 0s"},
		{"negative timeout without wait", func(o *Options) { o.Timeout = -5 * time.Second }, ""},
		{"pull secret", func(o *Options) { o.PullSecret = "regcred" }, ""},
		{"pull secret not a name", func(o *Options) { o.PullSecret = "Reg Cred" }, `--pull-secret "Reg Cred"`},
		{"negative replicas", func(o *Options) { r := int32(-1); o.Replicas = &r }, "--replicas -1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok()
			c.mod(&o)
			err := o.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate = %v, want an error naming %q", err, c.want)
			}
		})
	}
}
