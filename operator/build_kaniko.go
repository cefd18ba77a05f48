package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/kaniko"
	"github.com/gatekiln/gatekiln/operator/render"
)

// Labels and names of Kaniko builds.
const (
	// componentKaniko is the app.kubernetes.io/component of build Jobs; the
	// operator counts running builds by it.
	componentKaniko = "kaniko-build"
	// RegistryCASecretName is the Secret the operator writes into an API's
	// namespace with the registry CA (from its --registry-ca file) for Kaniko.
	RegistryCASecretName = "gatekiln-registry-ca"
	// jobNameLabel is the label the Job controller puts on a Job's Pods.
	jobNameLabel = "batch.kubernetes.io/job-name"
)

// ReasonBuildSuperseded is the reason of the Normal Event recorded when an
// API's unfinished Kaniko Job is deleted because its inputs changed (an
// Event reason only, never a condition's).
const ReasonBuildSuperseded = "BuildSuperseded"

// JobName names the Kaniko Job that builds these inputs to this destination
// with these push credentials: the same inputs never build twice, also across
// APIs of a namespace, and changing spec.build.forceRebuild or the push
// Secret (pushSecret is its name and resourceVersion, "" for none) gives a
// new Job. A failed Job stays until its TTL; without the Secret's version in
// its name, fixing the credentials would find the failed Job again and build
// nothing until then.
func JobName(inputsDigest, destination, forceRebuild, pushSecret string) string {
	h := sha256.New()
	for _, s := range []string{inputsDigest, destination, forceRebuild, pushSecret} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "gatekiln-build-" + hex.EncodeToString(h.Sum(nil))[:20]
}

// kanikoBuilder builds in the cluster: a Job running the Kaniko executor on
// a build context held in ConfigMaps. It never waits: it creates the Job,
// and the Job's events bring the API back until the Job has finished.
type kanikoBuilder struct {
	client client.Client
	reader client.Reader
	// cache holds every ConfigMap's metadata (the API controller watches them).
	cache  client.Reader
	events events.EventRecorder
	cfg    Config
}

func (k *kanikoBuilder) build(ctx context.Context, req buildRequest) (buildOutcome, error) {
	api := req.API
	name := JobName(req.Image.InputsDigest, req.Tag.String(), req.ForceRebuild, req.PushSecret)
	// Before start counts the running builds: the slots of the Jobs this one
	// supersedes are free for it.
	cancelled, err := k.cancelSuperseded(ctx, api, name)
	if err != nil {
		return buildOutcome{}, err
	}
	job := &batchv1.Job{}
	err = k.client.Get(ctx, types.NamespacedName{Namespace: api.Namespace, Name: name}, job)
	switch {
	case apierrors.IsNotFound(err):
		return k.start(ctx, req, name, cancelled)
	case err != nil:
		return buildOutcome{}, fmt.Errorf("get job: %w", err)
	}
	return k.progress(ctx, req, job)
}

// start creates the Job and its context ConfigMaps, unless the cluster
// already runs as many builds as allowed. cancelled are the Jobs this
// reconcile deleted, which the cache may still hold.
func (k *kanikoBuilder) start(ctx context.Context, req buildRequest, name string, cancelled []types.NamespacedName) (buildOutcome, error) {
	running, err := k.running(ctx, cancelled)
	if err != nil {
		return buildOutcome{}, err
	}
	if running >= k.cfg.MaxConcurrentBuilds {
		return buildOutcome{Pending: true, Requeue: true, Reason: ReasonBuildQueued, Message: fmt.Sprintf(
			"%d Kaniko builds running, the limit (--max-concurrent-builds)", running)}, nil
	}
	if len(k.cfg.RegistryConfig.CABundle) > 0 {
		if err := k.applyRegistryCA(ctx, req.API.Namespace); err != nil {
			return buildOutcome{}, err
		}
	}
	b, err := k.render(req, name)
	if err != nil {
		return buildOutcome{}, err
	}
	switch err := k.client.Create(ctx, b.Job); {
	case apierrors.IsAlreadyExists(err):
		// Another reconcile created it; progress completes its context.
	case err != nil:
		return buildOutcome{}, fmt.Errorf("create job: %w", err)
	default:
		if err := k.createContext(ctx, b, b.Job); err != nil {
			return buildOutcome{}, err
		}
	}
	return buildOutcome{Job: name, Pending: true, Reason: ReasonBuilding,
		Message: fmt.Sprintf("building %s in a Kaniko Job", req.Tag)}, nil
}

// render renders the Job named name and its build context ConfigMaps.
func (k *kanikoBuilder) render(req buildRequest, name string) (*kaniko.Build, error) {
	api := req.API
	opts := kaniko.Options{
		Name:          name,
		Namespace:     api.Namespace,
		Labels:        map[string]string{render.LabelComponent: componentKaniko, render.LabelManagedBy: render.ManagedBy},
		Owner:         ownerRef(api),
		ExecutorImage: k.cfg.KanikoImage,
		JoinImage:     k.cfg.KanikoJoinImage,
		Insecure:      k.cfg.RegistryConfig.Insecure,
		// Without them a namespace whose ResourceQuota covers CPU or memory
		// refuses the build's Pod, and the Job never starts.
		Resources: *k.cfg.KanikoResources.DeepCopy(),
	}
	if ps := api.Spec.Image.PushSecretRef; ps != nil {
		opts.DockerConfigSecret = ps.Name
	}
	if len(k.cfg.RegistryConfig.CABundle) > 0 {
		opts.RegistryCASecret = RegistryCASecretName
	}
	b, err := kaniko.Render(req.Image, opts)
	if err != nil {
		return nil, fmt.Errorf("render kaniko build: %w", err)
	}
	return b, nil
}

// createContext creates the build context ConfigMaps of job (those that
// exist are left as they are). They belong to the Job, so its TTL removes
// them too.
func (k *kanikoBuilder) createContext(ctx context.Context, b *kaniko.Build, job *batchv1.Job) error {
	jobOwner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID}
	for i := range b.ConfigMaps {
		cm := &b.ConfigMaps[i]
		cm.OwnerReferences = []metav1.OwnerReference{jobOwner}
		if err := k.client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create build context: %w", err)
		}
	}
	return nil
}

// contextMissing reports whether a ConfigMap the Job mounts is missing:
// creating it right after the Job failed (a quota, the operator stopping in
// between), and without it the Job's Pod waits until the Job's deadline.
func (k *kanikoBuilder) contextMissing(ctx context.Context, job *batchv1.Job) (bool, error) {
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
		err := k.cache.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: v.ConfigMap.Name}, m)
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("get build context %s: %w", v.ConfigMap.Name, err)
		}
	}
	return false, nil
}

// running counts unfinished Kaniko Jobs the operator created, but for those
// in gone (just deleted: the cache may not have seen that yet).
func (k *kanikoBuilder) running(ctx context.Context, gone []types.NamespacedName) (int, error) {
	var jobs batchv1.JobList
	if err := k.client.List(ctx, &jobs, client.MatchingLabels{render.LabelComponent: componentKaniko},
		client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("list build jobs: %w", err)
	}
	n := 0
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if done, _ := jobFinished(j); !done && !slices.Contains(gone, client.ObjectKeyFromObject(j)) {
			n++
		}
	}
	return n, nil
}

// cancelSuperseded deletes the API's unfinished Kaniko Jobs other than
// current: the API's inputs changed since they started, so nobody wants
// what they build, yet each holds a build slot (--max-concurrent-builds).
// A Job another API of the namespace waits for is kept (Jobs are shared by
// inputs); finished ones are left to their TTL (a failed one holds the
// error users read). It returns the Jobs it deleted.
func (k *kanikoBuilder) cancelSuperseded(ctx context.Context, api *v1alpha1.API, current string) ([]types.NamespacedName, error) {
	stale, err := k.superseded(ctx, api, current)
	if err != nil {
		return nil, err
	}
	var cancelled []types.NamespacedName
	for _, job := range stale {
		waited, err := k.waitedFor(ctx, api, job.Name)
		if err != nil {
			return cancelled, err
		}
		if waited {
			continue
		}
		deleted, err := k.cancel(ctx, job)
		if err != nil {
			return cancelled, err
		}
		if deleted {
			k.recordCancelled(ctx, api, job.Name, current)
			cancelled = append(cancelled, client.ObjectKeyFromObject(job))
		}
	}
	return cancelled, nil
}

// superseded lists, from the cache, the API's unfinished Kaniko Jobs other
// than current, leaving out those already being deleted.
func (k *kanikoBuilder) superseded(ctx context.Context, api *v1alpha1.API, current string) ([]*batchv1.Job, error) {
	var jobs batchv1.JobList
	if err := k.client.List(ctx, &jobs, client.InNamespace(api.Namespace),
		client.MatchingLabels{render.LabelComponent: componentKaniko}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list build jobs: %w", err)
	}
	var out []*batchv1.Job
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.Name == current || !j.DeletionTimestamp.IsZero() || !ownedBy(j, api) {
			continue
		}
		if done, _ := jobFinished(j); done {
			continue
		}
		// Only what Delete needs: the list's items belong to the cache.
		out = append(out, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: j.Namespace, Name: j.Name, UID: j.UID}})
	}
	return out, nil
}

func ownedBy(o metav1.Object, api *v1alpha1.API) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == api.UID {
			return true
		}
	}
	return false
}

// waitedFor reports whether an API of the namespace other than api builds
// in the Job named job (its status.buildJob names it).
func (k *kanikoBuilder) waitedFor(ctx context.Context, api *v1alpha1.API, job string) (bool, error) {
	var apis v1alpha1.APIList
	if err := k.client.List(ctx, &apis, client.InNamespace(api.Namespace),
		client.MatchingFields{indexBuildJob: job}, client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("list apis waiting for job %s: %w", job, err)
	}
	for i := range apis.Items {
		if apis.Items[i].UID != api.UID {
			return true, nil
		}
	}
	return false, nil
}

// cancel deletes a superseded Job; its Pod and build context go with it
// (they are the Job's). The UID precondition spares a Job of the same name
// created since (by another API, for the same inputs). It reports whether
// this call deleted it.
func (k *kanikoBuilder) cancel(ctx context.Context, job *batchv1.Job) (bool, error) {
	err := k.client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &job.UID})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete superseded job %s: %w", job.Name, err)
	}
	return true, nil
}

// recordCancelled tells the API's users (an Event) and the operator's log that
// a build was cancelled, so that a Job vanishing is not a mystery.
func (k *kanikoBuilder) recordCancelled(ctx context.Context, api *v1alpha1.API, old, current string) {
	log.FromContext(ctx).Info("cancelled a superseded Kaniko build", "job", old, "current", current)
	k.events.Eventf(api, nil, corev1.EventTypeNormal, ReasonBuildSuperseded, "Build",
		"cancelled the Kaniko Job %s: the API's inputs changed, it builds in Job %s now", old, current)
}

// progress reads a Job's state: running, succeeded with a digest in the
// executor's termination message, or failed with the tail of its log (the
// container's termination message policy falls back to the log on error).
func (k *kanikoBuilder) progress(ctx context.Context, req buildRequest, job *batchv1.Job) (buildOutcome, error) {
	done, failed := jobFinished(job)
	if !done {
		missing, err := k.contextMissing(ctx, job)
		if err != nil {
			return buildOutcome{}, err
		}
		if missing {
			b, err := k.render(req, job.Name)
			if err != nil {
				return buildOutcome{}, err
			}
			if err := k.createContext(ctx, b, job); err != nil {
				return buildOutcome{}, err
			}
		}
		return buildOutcome{Job: job.Name, Pending: true, Reason: ReasonBuilding,
			Message: fmt.Sprintf("building %s in a Kaniko Job", req.Tag)}, nil
	}
	msg, err := k.terminationMessage(ctx, job)
	if err != nil {
		return buildOutcome{}, err
	}
	if failed {
		why := "the Kaniko Job failed"
		if c := jobCondition(job, batchv1.JobFailed); c != nil && c.Reason != "" {
			why += " (" + c.Reason + ")"
		}
		if tail := logTail(msg); tail != "" {
			why += ": " + tail
		}
		return buildOutcome{Job: job.Name, Failed: true, Reason: ReasonBuildFailed, Message: why + retryHint(req)}, nil
	}
	img, err := kaniko.ImageFromTermination(req.Image, msg)
	if err != nil {
		return buildOutcome{Job: job.Name, Failed: true, Reason: ReasonBuildFailed, Message: fmt.Sprintf(
			"the Kaniko Job succeeded but its executor reported no image digest: %v%s", err, retryHint(req))}, nil
	}
	return buildOutcome{Job: job.Name, Image: img, Reason: ReasonBuilt,
		Message: fmt.Sprintf("built %s (Kaniko)", req.Tag)}, nil
}

// retryHint says how to build again after a failed Job: the same inputs
// find the same failed Job until its TTL removes it.
func retryHint(req buildRequest) string {
	how := "set spec.build.forceRebuild to a new value"
	if ps := req.API.Spec.Image.PushSecretRef; ps != nil {
		how += " or update the push Secret " + ps.Name
	}
	return "\n(to build again once the cause is fixed, " + how + ")"
}

// terminationMessage is the executor container's message from the Job's
// newest terminated Pod.
func (k *kanikoBuilder) terminationMessage(ctx context.Context, job *batchv1.Job) (string, error) {
	var pods corev1.PodList
	if err := k.reader.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{jobNameLabel: job.Name}); err != nil {
		return "", fmt.Errorf("list pods of job: %w", err)
	}
	var msg string
	var newest metav1.Time
	for i := range pods.Items {
		for _, cs := range pods.Items[i].Status.ContainerStatuses {
			t := cs.State.Terminated
			if cs.Name != kaniko.ExecutorName || t == nil {
				continue
			}
			if msg == "" || newest.Before(&t.FinishedAt) {
				msg, newest = t.Message, t.FinishedAt
			}
		}
	}
	return msg, nil
}

// logTail keeps the last lines of an executor log, enough to see the error.
func logTail(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return truncate(strings.Join(lines, "\n"), 2000)
}

func jobFinished(job *batchv1.Job) (done, failed bool) {
	if c := jobCondition(job, batchv1.JobComplete); c != nil {
		return true, false
	}
	if c := jobCondition(job, batchv1.JobFailed); c != nil {
		return true, true
	}
	return false, false
}

func jobCondition(job *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// applyRegistryCA writes the registry CA the operator was given into the
// namespace, for the executor to trust.
func (k *kanikoBuilder) applyRegistryCA(ctx context.Context, namespace string) error {
	s := corev1ac.Secret(RegistryCASecretName, namespace).
		WithLabels(map[string]string{render.LabelManagedBy: render.ManagedBy}).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{kaniko.RegistryCAFile: k.cfg.RegistryConfig.CABundle})
	return apply(ctx, k.client, s)
}

func ownerRef(api *v1alpha1.API) *metav1.OwnerReference {
	return &metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(),
		Kind:       "API",
		Name:       api.Name,
		UID:        api.UID,
	}
}
