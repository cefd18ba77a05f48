// Package render turns an API (or Endpoint) and what the operator has
// resolved for it into the Kubernetes objects that should exist. Every
// function is pure: same inputs, same apply configuration, no client. The
// reconciler applies the result with server-side apply under one field owner,
// so only the fields set here are claimed; everything else (defaults, status,
// fields other managers own) stays out of the comparison.
package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// FieldOwner is the server-side apply field manager of every object the
// operator writes.
const FieldOwner = "gatekiln"

// Ports and paths of the gateway runtime (cmd/gatekiln-gateway's defaults:
// --addr :8080, --admin-addr :9090 serving /healthz and /readyz; HTTPS only
// when --tls-addr is given).
const (
	HTTPPort    = 8080
	HTTPSPort   = 8443
	AdminPort   = 9090
	HealthzPath = "/healthz"
	ReadyzPath  = "/readyz"

	// DefaultServicePort is the Service port when spec.service.port is unset;
	// HTTPSServicePort serves TLS when spec.tlsSecretRef is set.
	DefaultServicePort = 80
	HTTPSServicePort   = 443

	// terminationGrace covers the gateway's shutdown delay (5s not ready)
	// and its longest drain of in-flight requests (30s).
	terminationGrace = 45

	// nonRoot is the runtime image's user and group.
	nonRoot = 65532
)

// Label keys on everything the operator creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelComponent = "app.kubernetes.io/component"
	// LabelAPI names the API an object belongs to.
	LabelAPI = "gatekiln.io/api"
	// LabelEndpoint names the Endpoint an object belongs to.
	LabelEndpoint = "gatekiln.io/endpoint"

	ManagedBy = "gatekiln"
)

// GatewayLabels are the labels of an API's objects; the selector is a stable
// subset of them (a Deployment's selector is immutable).
func GatewayLabels(api *v1alpha1.API) map[string]string {
	return map[string]string{
		LabelName:      "gatekiln-gateway",
		LabelInstance:  api.Name,
		LabelManagedBy: ManagedBy,
		LabelAPI:       api.Name,
	}
}

func gatewaySelector(api *v1alpha1.API) map[string]string {
	return map[string]string{LabelName: "gatekiln-gateway", LabelInstance: api.Name}
}

// BindingName is the name of the API's Binding ConfigMap and Secret.
func BindingName(api *v1alpha1.API) string { return api.Name + "-binding" }

// ServiceName is the name of the API's Service (and Deployment).
func ServiceName(api *v1alpha1.API) string { return api.Name }

// ServicePort is the port the API's Service listens on.
func ServicePort(api *v1alpha1.API) int32 {
	if api.Spec.Service.Port != 0 {
		return api.Spec.Service.Port
	}
	return DefaultServicePort
}

// APIOwner is the controller owner reference every object of an API carries,
// so deleting the API deletes them.
func APIOwner(api *v1alpha1.API) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).
		WithKind("API").
		WithName(api.Name).
		WithUID(api.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// BindingConfigMap holds binding.json, the Binding without secret values.
func BindingConfigMap(api *v1alpha1.API, bindingJSON []byte) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(BindingName(api), api.Namespace).
		WithLabels(GatewayLabels(api)).
		WithOwnerReferences(APIOwner(api)).
		WithData(map[string]string{bundle.BindingFile: string(bindingJSON)})
}

// BindingSecret holds the Binding's secret files, keyed by SecretKey of
// their path. It is the only place the operator ever copies a Secret's value to.
func BindingSecret(api *v1alpha1.API, files map[string][]byte) *corev1ac.SecretApplyConfiguration {
	s := corev1ac.Secret(BindingName(api), api.Namespace).
		WithLabels(GatewayLabels(api)).
		WithOwnerReferences(APIOwner(api)).
		WithType(corev1.SecretTypeOpaque)
	if len(files) > 0 {
		data := make(map[string][]byte, len(files))
		for f, v := range files {
			data[SecretKey(f)] = v
		}
		s.WithData(data)
	}
	return s
}

// SecretKey is the Binding Secret's key for a file path relative to the
// Binding directory: Secret keys cannot hold "/", so it becomes "__"; the
// projected volume puts each key back at its path.
func SecretKey(file string) string { return strings.ReplaceAll(file, "/", "__") }

// GatewayReplicas is the replica count the Deployment asks for, or nil when an
// HPA owns it (then the field is left out of the apply so the two never fight).
func GatewayReplicas(api *v1alpha1.API) *int32 {
	if api.Spec.Autoscaling != nil {
		return nil
	}
	if api.Spec.Replicas != nil {
		r := *api.Spec.Replicas
		return &r
	}
	one := int32(1)
	return &one
}

// Deployment runs the gateway image, by digest, with the Binding mounted from
// a projected volume of the Binding ConfigMap and Secret: kubelet updates such
// a volume by swapping a symlink, which the gateway watches and reloads, so a
// Binding change never restarts a Pod. secretFiles are the Binding's secret
// file paths; only a change to that list (not to a value) changes the Pod.
func Deployment(api *v1alpha1.API, image string, secretFiles []string) *appsv1ac.DeploymentApplyConfiguration {
	labels := GatewayLabels(api)
	admin := intstr.FromString("admin")
	container := corev1ac.Container().
		WithName("gateway").
		WithImage(image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithPorts(
			corev1ac.ContainerPort().WithName("http").WithContainerPort(HTTPPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("admin").WithContainerPort(AdminPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithReadinessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(ReadyzPath).WithPort(admin)).
			WithPeriodSeconds(5).WithFailureThreshold(3)).
		WithLivenessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(HealthzPath).WithPort(admin)).
			WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithResources(gatewayResources(api)).
		WithSecurityContext(restrictedContainer().WithRunAsUser(nonRoot).WithRunAsGroup(nonRoot)).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("binding").WithMountPath(bundle.BindingDir).WithReadOnly(true),
			corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
		).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError)
	if api.Spec.TLSSecretRef != nil {
		container.
			WithArgs(fmt.Sprintf("--tls-addr=:%d", HTTPSPort)).
			WithPorts(corev1ac.ContainerPort().WithName("https").WithContainerPort(HTTPSPort).WithProtocol(corev1.ProtocolTCP))
	}

	pod := corev1ac.PodSpec().
		WithTerminationGracePeriodSeconds(terminationGrace).
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(nonRoot).
			WithRunAsGroup(nonRoot).
			WithFSGroup(nonRoot).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithContainers(container).
		WithVolumes(
			corev1ac.Volume().WithName("binding").WithProjected(corev1ac.ProjectedVolumeSource().
				WithDefaultMode(0o440).
				WithSources(
					corev1ac.VolumeProjection().WithConfigMap(corev1ac.ConfigMapProjection().WithName(BindingName(api))),
					corev1ac.VolumeProjection().WithSecret(bindingSecretProjection(api, secretFiles)),
				)),
			corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().
				WithSizeLimit(resource.MustParse("16Mi"))),
		)
	if ref := api.Spec.Image.PullSecretRef; ref != nil {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(ref.Name))
	}

	maxUnavailable := intstr.FromInt32(0)
	maxSurge := intstr.FromInt32(1)
	spec := appsv1ac.DeploymentSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(gatewaySelector(api))).
		WithRevisionHistoryLimit(3).
		WithStrategy(appsv1ac.DeploymentStrategy().
			WithType("RollingUpdate").
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
				WithMaxUnavailable(maxUnavailable).WithMaxSurge(maxSurge))).
		WithTemplate(corev1ac.PodTemplateSpec().
			WithLabels(labels).
			WithSpec(pod))
	if r := GatewayReplicas(api); r != nil {
		spec.WithReplicas(*r)
	}
	return appsv1ac.Deployment(ServiceName(api), api.Namespace).
		WithLabels(labels).
		WithOwnerReferences(APIOwner(api)).
		WithSpec(spec)
}

func bindingSecretProjection(api *v1alpha1.API, files []string) *corev1ac.SecretProjectionApplyConfiguration {
	p := corev1ac.SecretProjection().WithName(BindingName(api))
	for _, f := range slices.Sorted(slices.Values(files)) {
		p.WithItems(corev1ac.KeyToPath().WithKey(SecretKey(f)).WithPath(f))
	}
	return p
}

// restrictedContainer is the container security context of the "restricted"
// Pod Security Standard: no privilege escalation, no capabilities, read-only root.
func restrictedContainer() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// gatewayResources is spec.resources, or a small default envelope (the
// gateway is a single static binary; limits keep a runaway from a node).
func gatewayResources(api *v1alpha1.API) *corev1ac.ResourceRequirementsApplyConfiguration {
	r := corev1ac.ResourceRequirements()
	if api.Spec.Resources == nil {
		return r.
			WithRequests(corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")})
	}
	if len(api.Spec.Resources.Requests) > 0 {
		r.WithRequests(api.Spec.Resources.Requests.DeepCopy())
	}
	if len(api.Spec.Resources.Limits) > 0 {
		r.WithLimits(api.Spec.Resources.Limits.DeepCopy())
	}
	return r
}

// Service exposes the gateway's HTTP port inside the cluster.
func Service(api *v1alpha1.API) *corev1ac.ServiceApplyConfiguration {
	typ := api.Spec.Service.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	svc := corev1ac.Service(ServiceName(api), api.Namespace).
		WithLabels(GatewayLabels(api)).
		WithOwnerReferences(APIOwner(api)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(typ).
			WithSelector(gatewaySelector(api)).
			WithPorts(corev1ac.ServicePort().
				WithName("http").
				WithProtocol(corev1.ProtocolTCP).
				WithPort(ServicePort(api)).
				WithTargetPort(intstr.FromString("http"))))
	if api.Spec.TLSSecretRef != nil {
		svc.Spec.WithPorts(corev1ac.ServicePort().
			WithName("https").
			WithProtocol(corev1.ProtocolTCP).
			WithPort(HTTPSServicePort).
			WithTargetPort(intstr.FromString("https")))
	}
	if len(api.Spec.Service.Annotations) > 0 {
		svc.WithAnnotations(maps.Clone(api.Spec.Service.Annotations))
	}
	return svc
}

// sortedKeys returns m's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
