package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/operator"
	"github.com/gatekiln/gatekiln/operator/render"
)

// TestKanikoSupersededBuild: a definition edited while its Kaniko Job runs
// starts a Job for the new inputs and deletes the old one, with an Event;
// a finished old Job (failed or succeeded) is left to its TTL.
func TestKanikoSupersededBuild(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		name string
		// finish ends the first Job before the edit (nil: it still runs).
		finish    func(t *testing.T, ns string, job *batchv1.Job)
		cancelled bool
	}{
		{name: "running", cancelled: true},
		{name: "failed", finish: func(t *testing.T, ns string, job *batchv1.Job) {
			f.finishJob(t, job, 1, "error pushing image: UNAUTHORIZED\n")
			f.waitCondition(t, ns, "api", v1alpha1.ConditionBuilt, metav1.ConditionFalse, operator.ReasonBuildFailed)
		}},
		{name: "succeeded", finish: func(t *testing.T, ns string, job *batchv1.Job) {
			f.finishJob(t, job, 0, "sha256:"+strings.Repeat("3d", 32)+"\n")
			f.waitCondition(t, ns, "api", v1alpha1.ConditionBuilt, metav1.ConditionTrue, operator.ReasonBuilt)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ns := f.env.Namespace(t, "supersede-"+tc.name)
			f.dropBuilds(t, ns)
			title := "supersede " + tc.name
			f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition(title, "/v1"))),
				newKanikoAPI(ns, "api", "def"))
			old := f.waitBuildJob(t, ns, "api", "")
			if tc.finish != nil {
				tc.finish(t, ns, old)
			}

			f.setDefinition(t, ns, "def", simpleDefinition(title, "/v2"))
			cur := f.waitBuildJob(t, ns, "api", old.Name)
			api := f.getAPI(t, ns, "api")
			if !ownedBy(cur, api) {
				t.Errorf("new Job %s owners %+v, want the API", cur.Name, cur.OwnerReferences)
			}
			// The reconcile that started the new Job cancelled the old one
			// first; quiesce lets any later one run too.
			f.quiesce(t)
			err := f.c.Get(ctx, client.ObjectKeyFromObject(old), &batchv1.Job{})
			switch {
			case tc.cancelled && !apierrors.IsNotFound(err):
				// envtest runs no garbage collector: a Job deleted other
				// than in the background (a Job's default is to orphan)
				// would stay, held by its finalizer.
				t.Errorf("superseded Job %s: get err %v, want it deleted", old.Name, err)
			case !tc.cancelled && err != nil:
				t.Errorf("finished Job %s: %v, want it kept", old.Name, err)
			}
			if !tc.cancelled {
				if n := f.supersededEvents(t, ns, "api", old.Name); n != 0 {
					t.Errorf("%d %s events for the finished Job %s", n, operator.ReasonBuildSuperseded, old.Name)
				}
				return
			}
			eventually(t, "an event naming the cancelled Job", func() error {
				if f.supersededEvents(t, ns, "api", old.Name) == 0 {
					return errorf("no %s event naming %s", operator.ReasonBuildSuperseded, old.Name)
				}
				return nil
			})
		})
	}
}

// TestKanikoSharedJobNotCancelled: two APIs with the same inputs build in
// one Job, owned by the first; editing the first API's definition leaves
// the Job to the second, which still waits for it.
func TestKanikoSharedJobNotCancelled(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	ns := f.env.Namespace(t, "supersede-shared")
	f.dropBuilds(t, ns)
	def := []byte(simpleDefinition("supersede shared", "/v1"))
	f.create(t, definition(ns, "def-a", "openapi.yaml", def), definition(ns, "def-b", "openapi.yaml", def),
		newKanikoAPI(ns, "a", "def-a"))
	shared := f.waitBuildJob(t, ns, "a", "")
	a := f.getAPI(t, ns, "a")
	if !ownedBy(shared, a) {
		t.Fatalf("Job %s owners %+v, want API a", shared.Name, shared.OwnerReferences)
	}
	f.create(t, newKanikoAPI(ns, "b", "def-b"))
	if got := f.waitBuildJob(t, ns, "b", ""); got.Name != shared.Name {
		t.Fatalf("API b builds in %s, want the shared %s", got.Name, shared.Name)
	}

	f.setDefinition(t, ns, "def-a", simpleDefinition("supersede shared", "/v2"))
	f.waitBuildJob(t, ns, "a", shared.Name)
	f.quiesce(t)
	got := &batchv1.Job{}
	if err := f.c.Get(ctx, client.ObjectKeyFromObject(shared), got); err != nil {
		t.Fatalf("the Job API b waits for: %v", err)
	}
	// Deleted, API b would start it again, under a new UID.
	if got.UID != shared.UID || !got.DeletionTimestamp.IsZero() {
		t.Errorf("the Job API b waits for was deleted (UID %s, was %s; deletionTimestamp %v)", got.UID, shared.UID, got.DeletionTimestamp)
	}
	if b := f.getAPI(t, ns, "b"); b.Status.BuildJob != shared.Name {
		t.Errorf("API b builds in %q, want %s", b.Status.BuildJob, shared.Name)
	}
	if n := f.supersededEvents(t, ns, "a", shared.Name); n != 0 {
		t.Errorf("%d %s events for the shared Job", n, operator.ReasonBuildSuperseded)
	}
}

// TestKanikoSupersededFreesSlot: with every build slot taken, the stale
// Job's among them, editing the definition starts the new build at once
// instead of queuing it behind a build nobody wants.
func TestKanikoSupersededFreesSlot(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "supersede-slot")
	f.dropBuilds(t, ns)
	f.create(t, definition(ns, "def", "openapi.yaml", []byte(simpleDefinition("supersede slot", "/v1"))),
		newKanikoAPI(ns, "api", "def"))
	old := f.waitBuildJob(t, ns, "api", "")
	// The limit counts the cluster's builds: take the other slots, so that
	// the stale Job holds the last one, as if --max-concurrent-builds were 1.
	for i := 0; f.unfinishedBuilds(t) < maxConcurrentBuilds; i++ {
		name := fmt.Sprintf("filler-%d", i)
		f.create(t, definition(ns, name, "openapi.yaml", []byte(simpleDefinition("supersede "+name, "/f"))),
			newKanikoAPI(ns, name, name))
		f.waitBuildJob(t, ns, name, "")
	}
	if n := f.unfinishedBuilds(t); n != maxConcurrentBuilds {
		t.Fatalf("%d unfinished Kaniko Jobs in the cluster, want %d: another test left builds running", n, maxConcurrentBuilds)
	}

	f.setDefinition(t, ns, "def", simpleDefinition("supersede slot", "/v2"))
	// Without the cancellation it stays BuildQueued.
	f.waitBuildJob(t, ns, "api", old.Name)
	if err := f.c.Get(context.Background(), client.ObjectKeyFromObject(old), &batchv1.Job{}); !apierrors.IsNotFound(err) {
		t.Errorf("superseded Job %s: get err %v, want it deleted", old.Name, err)
	}
}

// TestKanikoQueuedBuildNamesNoJob: an API whose new build waits for a slot
// builds in no Job yet, and its status says so rather than naming the Job of
// its previous inputs (here one another API still waits for).
func TestKanikoQueuedBuildNamesNoJob(t *testing.T) {
	f := setup(t)
	ns := f.env.Namespace(t, "supersede-queued")
	f.dropBuilds(t, ns)
	def := []byte(simpleDefinition("supersede queued", "/v1"))
	f.create(t, definition(ns, "def-a", "openapi.yaml", def), definition(ns, "def-b", "openapi.yaml", def),
		newKanikoAPI(ns, "a", "def-a"))
	shared := f.waitBuildJob(t, ns, "a", "")
	f.create(t, newKanikoAPI(ns, "b", "def-b"))
	f.waitBuildJob(t, ns, "b", "")
	for i := 0; f.unfinishedBuilds(t) < maxConcurrentBuilds; i++ {
		name := fmt.Sprintf("filler-%d", i)
		f.create(t, definition(ns, name, "openapi.yaml", []byte(simpleDefinition("supersede queued "+name, "/f"))),
			newKanikoAPI(ns, name, name))
		f.waitBuildJob(t, ns, name, "")
	}

	f.setDefinition(t, ns, "def-a", simpleDefinition("supersede queued", "/v2"))
	eventually(t, "API a's new build queued", func() error {
		a := f.getAPI(t, ns, "a")
		if c := condition(a, v1alpha1.ConditionBuilt); c.Reason != operator.ReasonBuildQueued {
			return errorf("Built %s/%s: %s", c.Status, c.Reason, c.Message)
		}
		if a.Status.BuildJob != "" {
			return errorf("queued, status.buildJob %q, want none (the shared Job is %s)", a.Status.BuildJob, shared.Name)
		}
		return nil
	})
}

// newKanikoAPI is an API building the definition in ConfigMap cm with Kaniko.
func newKanikoAPI(ns, name, cm string) *v1alpha1.API {
	return newAPI(ns, name, cm, "openapi.yaml", func(a *v1alpha1.API) { a.Spec.Build.Strategy = v1alpha1.BuildKaniko })
}

// ownedBy: the operator makes the API that starts a Job its owner (not its
// controller: Jobs are shared by inputs).
func ownedBy(job *batchv1.Job, api *v1alpha1.API) bool {
	for _, ref := range job.OwnerReferences {
		if ref.UID == api.UID {
			return true
		}
	}
	return false
}

// waitBuildJob waits until the API is Building in a Kaniko Job other than
// not, and returns that Job.
func (f *fixture) waitBuildJob(t *testing.T, ns, name, not string) *batchv1.Job {
	t.Helper()
	job := &batchv1.Job{}
	eventually(t, fmt.Sprintf("api %s/%s building in a Job other than %q", ns, name, not), func() error {
		api := f.getAPI(t, ns, name)
		c := condition(api, v1alpha1.ConditionBuilt)
		if c.Reason != operator.ReasonBuilding || api.Status.BuildJob == "" || api.Status.BuildJob == not {
			return errorf("status.buildJob %q, Built %s/%s: %s", api.Status.BuildJob, c.Status, c.Reason, c.Message)
		}
		return f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: api.Status.BuildJob}, job)
	})
	return job
}

// setDefinition replaces the definition file in ConfigMap cm, as a user
// editing the API does.
func (f *fixture) setDefinition(t *testing.T, ns, cm, data string) {
	t.Helper()
	m := &corev1.ConfigMap{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: cm}, m); err != nil {
		t.Fatal(err)
	}
	m.Data = map[string]string{"openapi.yaml": data}
	if err := f.c.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// unfinishedBuilds counts the cluster's unfinished Kaniko Jobs, what
// --max-concurrent-builds bounds.
func (f *fixture) unfinishedBuilds(t *testing.T) int {
	t.Helper()
	var jobs batchv1.JobList
	if err := f.c.List(context.Background(), &jobs, client.MatchingLabels{render.LabelComponent: "kaniko-build"}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, j := range jobs.Items {
		finished := false
		for _, c := range j.Status.Conditions {
			if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
				finished = true
			}
		}
		if !finished {
			n++
		}
	}
	return n
}

// supersededEvents counts the Normal BuildSuperseded Events on the API that
// name job.
func (f *fixture) supersededEvents(t *testing.T, ns, api, job string) int {
	t.Helper()
	n := 0
	for _, e := range f.events(t, ns, api) {
		if e.Type == corev1.EventTypeNormal && e.Reason == operator.ReasonBuildSuperseded && strings.Contains(e.Note, job) {
			n++
		}
	}
	return n
}
