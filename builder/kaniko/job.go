package kaniko

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gatekiln/gatekiln/builder/image"
)

// Defaults. The executor is pinned; the join image needs only a POSIX shell
// and cat, which Kaniko's debug image has under /busybox.
const (
	DefaultExecutorImage = "gcr.io/kaniko-project/executor:v1.24.0"
	DefaultJoinImage     = "gcr.io/kaniko-project/executor:v1.24.0-debug"

	DefaultBackoffLimit            int32 = 1
	DefaultActiveDeadlineSeconds   int64 = 600
	DefaultTTLSecondsAfterFinished int32 = 3600
)

// DefaultJoinCommand concatenates its arguments after the first into the
// first: `sh -c 'cat "$@" > "$0"' OUT PART...`.
var DefaultJoinCommand = []string{"/busybox/sh", "-c", `cat "$@" > "$0"`}

// Paths inside the build pod.
const (
	WorkspaceDir     = "/workspace"
	ContextFile      = "context.tar.gz"
	PartsDir         = "/parts"
	DockerConfigDir  = "/kaniko/.docker"
	RegistryCADir    = "/kaniko/registry-ca"
	RegistryCAFile   = "ca.crt"
	TerminationLog   = "/dev/termination-log"
	ExecutorName     = "executor"
	JoinName         = "join-context"
	dockerConfigFile = "config.json"
)

// Options are the per-cluster and per-build settings of a Kaniko build.
type Options struct {
	// Name names the Job; ConfigMaps are <Name>-context[-<i>].
	Name, Namespace string
	// Labels go on the Job, its Pod and the ConfigMaps.
	Labels map[string]string
	// Owner, when set, owns the Job and the ConfigMaps (normally the API).
	Owner *metav1.OwnerReference

	// ExecutorImage defaults to DefaultExecutorImage.
	ExecutorImage string
	// JoinImage and JoinCommand join a split context; they default to
	// DefaultJoinImage and DefaultJoinCommand. Unused when the context fits
	// one ConfigMap.
	JoinImage   string
	JoinCommand []string

	// DockerConfigSecret names a kubernetes.io/dockerconfigjson Secret with
	// the credentials to pull the base and push the image.
	DockerConfigSecret string
	// RegistryCASecret names a Secret whose key RegistryCAKey (default
	// "ca.crt") holds the PEM CA of the base's and the destination's registries.
	RegistryCASecret string
	RegistryCAKey    string
	// Insecure lists registries reached over plain HTTP.
	Insecure []string

	Resources               corev1.ResourceRequirements
	BackoffLimit            *int32
	ActiveDeadlineSeconds   *int64
	TTLSecondsAfterFinished *int32
	ServiceAccountName      string

	// MaxPartBytes bounds one ConfigMap's share of the context; default
	// MaxConfigMapBytes.
	MaxPartBytes int
}

// Build is what the operator creates for one Kaniko build.
type Build struct {
	// Context is the tar.gz the parts join into.
	Context    []byte
	ConfigMaps []corev1.ConfigMap
	Job        *batchv1.Job
}

// Render returns the ConfigMaps holding r's build context and the Job that
// builds and pushes r's image to r.Tag().
func Render(r image.Request, o Options) (*Build, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("kaniko job %s/%s: %w", o.Namespace, o.Name, err)
	}
	tag, err := r.Tag()
	if err != nil {
		return nil, err
	}
	ctxBytes, err := Context(r)
	if err != nil {
		return nil, err
	}
	maxPart := o.MaxPartBytes
	if maxPart == 0 {
		maxPart = MaxConfigMapBytes
	}
	parts, err := Split(ctxBytes, maxPart)
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"app.kubernetes.io/name":       "gatekiln",
		"app.kubernetes.io/component":  "kaniko-build",
		"app.kubernetes.io/managed-by": "gatekiln",
	}
	maps.Copy(labels, o.Labels)
	meta := func(name string) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: maps.Clone(labels)}
		if o.Owner != nil {
			m.OwnerReferences = []metav1.OwnerReference{*o.Owner}
		}
		return m
	}

	b := &Build{Context: ctxBytes}
	var volumes []corev1.Volume
	var initContainers []corev1.Container
	executorMounts := []corev1.VolumeMount{{Name: "workspace", MountPath: WorkspaceDir, ReadOnly: len(parts) == 1}}
	if len(parts) == 1 {
		name := o.Name + "-context"
		cm := corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta(name),
			BinaryData: map[string][]byte{ContextFile: parts[0]},
		}
		b.ConfigMaps = append(b.ConfigMaps, cm)
		volumes = append(volumes, configMapVolume("workspace", name))
	} else {
		volumes = append(volumes, corev1.Volume{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		join := corev1.Container{
			Name:    JoinName,
			Image:   or(o.JoinImage, DefaultJoinImage),
			Command: slices.Clone(or(o.JoinCommand, DefaultJoinCommand)),
			Args:    []string{WorkspaceDir + "/" + ContextFile},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "workspace", MountPath: WorkspaceDir},
			},
			// The executor's own: a namespace whose ResourceQuota covers CPU
			// or memory refuses a Pod with any container that states none,
			// and an init container's share never adds to the Pod's total.
			Resources:                o.Resources,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}
		for i, p := range parts {
			name := fmt.Sprintf("%s-context-%d", o.Name, i)
			key := fmt.Sprintf("%s.%03d", ContextFile, i)
			vol := fmt.Sprintf("context-%d", i)
			b.ConfigMaps = append(b.ConfigMaps, corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
				ObjectMeta: meta(name),
				BinaryData: map[string][]byte{key: p},
			})
			volumes = append(volumes, configMapVolume(vol, name))
			dir := fmt.Sprintf("%s/%d", PartsDir, i)
			join.VolumeMounts = append(join.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: dir, ReadOnly: true})
			join.Args = append(join.Args, dir+"/"+key)
		}
		initContainers = append(initContainers, join)
	}

	args := []string{
		"--context=tar://" + WorkspaceDir + "/" + ContextFile,
		"--dockerfile=" + DockerfileName,
		"--destination=" + tag.String(),
		"--reproducible",
		"--digest-file=" + TerminationLog,
		"--push-retry=2",
		"--verbosity=info",
	}
	if o.DockerConfigSecret != "" {
		volumes = append(volumes, corev1.Volume{Name: "docker-config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: o.DockerConfigSecret,
			Items:      []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: dockerConfigFile}},
		}}})
		executorMounts = append(executorMounts, corev1.VolumeMount{Name: "docker-config", MountPath: DockerConfigDir, ReadOnly: true})
	}
	registries := []string{r.Base.RegistryStr(), tag.RegistryStr()}
	if r.Base.RegistryStr() == tag.RegistryStr() {
		registries = registries[1:]
	}
	if o.RegistryCASecret != "" {
		volumes = append(volumes, corev1.Volume{Name: "registry-ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: o.RegistryCASecret,
			Items:      []corev1.KeyToPath{{Key: or(o.RegistryCAKey, RegistryCAFile), Path: RegistryCAFile}},
		}}})
		executorMounts = append(executorMounts, corev1.VolumeMount{Name: "registry-ca", MountPath: RegistryCADir, ReadOnly: true})
		for _, reg := range registries {
			args = append(args, "--registry-certificate="+reg+"="+RegistryCADir+"/"+RegistryCAFile)
		}
	}
	if slices.Contains(o.Insecure, tag.RegistryStr()) {
		args = append(args, "--insecure")
	}
	if slices.Contains(o.Insecure, r.Base.RegistryStr()) {
		args = append(args, "--insecure-pull")
	}

	executor := corev1.Container{
		Name:                     ExecutorName,
		Image:                    or(o.ExecutorImage, DefaultExecutorImage),
		Args:                     args,
		Env:                      []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: DockerConfigDir + "/"}},
		Resources:                o.Resources,
		VolumeMounts:             executorMounts,
		TerminationMessagePath:   TerminationLog,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	jobMeta := meta(o.Name)
	jobMeta.Annotations = map[string]string{
		image.LabelInputsDigest:   r.InputsDigest,
		"gatekiln.io/destination": tag.String(),
	}
	b.Job = &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: jobMeta,
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptrOr(o.BackoffLimit, DefaultBackoffLimit),
			ActiveDeadlineSeconds:   ptrOr(o.ActiveDeadlineSeconds, DefaultActiveDeadlineSeconds),
			TTLSecondsAfterFinished: ptrOr(o.TTLSecondsAfterFinished, DefaultTTLSecondsAfterFinished),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(labels)},
				Spec: corev1.PodSpec{
					RestartPolicy:                corev1.RestartPolicyNever,
					ServiceAccountName:           o.ServiceAccountName,
					AutomountServiceAccountToken: new(false),
					EnableServiceLinks:           new(false),
					InitContainers:               initContainers,
					Containers:                   []corev1.Container{executor},
					Volumes:                      volumes,
				},
			},
		},
	}
	return b, nil
}

// ExecutorArgs returns the executor container's arguments of a rendered Job.
func ExecutorArgs(job *batchv1.Job) ([]string, error) {
	for _, c := range job.Spec.Template.Spec.Containers {
		if c.Name == ExecutorName {
			return slices.Clone(c.Args), nil
		}
	}
	return nil, fmt.Errorf("job %s: no %s container", job.Name, ExecutorName)
}

func (o Options) validate() error {
	var errs []error
	// The Job controller labels the Job's Pods with its name, so the API
	// server takes a Job name only as long as a label value (63); the
	// ConfigMap names (<Name>-context-<i>) then fit as well.
	for _, e := range validation.IsDNS1123Subdomain(o.Name) {
		errs = append(errs, fmt.Errorf("name %q: %s", o.Name, e))
	}
	if len(o.Name) > validation.LabelValueMaxLength {
		errs = append(errs, fmt.Errorf("name %q: longer than %d characters (a Job's name is its Pods' job-name label)", o.Name, validation.LabelValueMaxLength))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("namespace: empty"))
	}
	if o.MaxPartBytes < 0 || o.MaxPartBytes > MaxConfigMapBytes {
		errs = append(errs, fmt.Errorf("maxPartBytes %d: want 1..%d", o.MaxPartBytes, MaxConfigMapBytes))
	}
	if o.RegistryCAKey != "" && o.RegistryCASecret == "" {
		errs = append(errs, errors.New("registryCAKey without registryCASecret"))
	}
	if o.Owner != nil && (o.Owner.UID == "" || o.Owner.Name == "" || o.Owner.Kind == "") {
		errs = append(errs, errors.New("owner: needs kind, name and uid"))
	}
	for k, v := range o.Labels {
		for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			errs = append(errs, fmt.Errorf("label %s=%s: %s", k, v, strings.TrimSpace(e)))
		}
	}
	return errors.Join(errs...)
}

func configMapVolume(vol, configMap string) corev1.Volume {
	return corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: configMap},
	}}}
}

func or[T string | []string](v, def T) T {
	if len(v) == 0 {
		return def
	}
	return v
}

func ptrOr[T any](p *T, def T) *T {
	if p != nil {
		v := *p
		return &v
	}
	return &def
}

// ImageFromTermination turns the executor's termination message (the digest
// it pushed, written to /dev/termination-log) into r's image by digest. On
// failure the message holds the end of the log instead, which is returned in
// the error.
func ImageFromTermination(r image.Request, message string) (string, error) {
	msg := strings.TrimSpace(message)
	h, err := v1.NewHash(msg)
	if err != nil {
		if len(msg) > 512 {
			msg = "…" + msg[len(msg)-512:]
		}
		return "", fmt.Errorf("kaniko build of %s: no digest in the termination message: %q", r.API, msg)
	}
	return r.Repository.Digest(h.String()).String(), nil
}
