package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/compile"
)

// UpstreamName names the Deployment and Service of an image Endpoint; the
// suffix keeps them apart from an API of the same name.
// The compiler names the same Service in the Binding.
func UpstreamName(ep *v1alpha1.Endpoint) string { return compile.ImageServiceName(ep.Name) }

// EndpointURLs is where the Endpoint is reachable: its URLs, or the in-cluster
// address of the Service the operator runs for its image. It depends on the
// spec alone, so an API resolves the same URL before and after the upstream
// Deployment exists.
func EndpointURLs(ep *v1alpha1.Endpoint) []string {
	if ep.Spec.Image == nil {
		return append([]string(nil), ep.Spec.URLs...)
	}
	return []string{compile.ImageEndpointURL(ep.Name, ep.Namespace, upstreamPort(ep))}
}

func upstreamPort(ep *v1alpha1.Endpoint) int32 {
	if ep.Spec.Image.Port != 0 {
		return ep.Spec.Image.Port
	}
	return 8080
}

// EndpointLabels are the labels of an image Endpoint's objects.
func EndpointLabels(ep *v1alpha1.Endpoint) map[string]string {
	return map[string]string{
		LabelName:      "gatekiln-upstream",
		LabelInstance:  ep.Name,
		LabelManagedBy: ManagedBy,
		LabelEndpoint:  ep.Name,
	}
}

func endpointSelector(ep *v1alpha1.Endpoint) map[string]string {
	return map[string]string{LabelName: "gatekiln-upstream", LabelInstance: ep.Name}
}

func endpointOwner(ep *v1alpha1.Endpoint) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).
		WithKind("Endpoint").
		WithName(ep.Name).
		WithUID(ep.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// UpstreamDeployment runs an image Endpoint's container; nil in URL mode. The
// image is the user's, so the Pod is hardened only as far as any image allows
// (no privilege escalation, no capabilities, seccomp) and may run as root.
func UpstreamDeployment(ep *v1alpha1.Endpoint) *appsv1ac.DeploymentApplyConfiguration {
	img := ep.Spec.Image
	if img == nil {
		return nil
	}
	replicas := int32(1)
	if img.Replicas != nil {
		replicas = *img.Replicas
	}
	c := corev1ac.Container().
		WithName("upstream").
		WithImage(img.Image).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(upstreamPort(ep)).WithProtocol(corev1.ProtocolTCP)).
		WithReadinessProbe(corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromString("http")))).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))
	if len(img.Args) > 0 {
		c.WithArgs(img.Args...)
	}
	for _, k := range sortedKeys(img.Env) {
		c.WithEnv(corev1ac.EnvVar().WithName(k).WithValue(img.Env[k]))
	}
	labels := EndpointLabels(ep)
	return appsv1ac.Deployment(UpstreamName(ep), ep.Namespace).
		WithLabels(labels).
		WithOwnerReferences(endpointOwner(ep)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(replicas).
			WithRevisionHistoryLimit(3).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(endpointSelector(ep))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(labels).
				WithSpec(corev1ac.PodSpec().
					WithAutomountServiceAccountToken(false).
					WithEnableServiceLinks(false).
					WithContainers(c))))
}

// UpstreamService fronts an image Endpoint's Deployment; nil in URL mode.
func UpstreamService(ep *v1alpha1.Endpoint) *corev1ac.ServiceApplyConfiguration {
	if ep.Spec.Image == nil {
		return nil
	}
	return corev1ac.Service(UpstreamName(ep), ep.Namespace).
		WithLabels(EndpointLabels(ep)).
		WithOwnerReferences(endpointOwner(ep)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(endpointSelector(ep)).
			WithPorts(corev1ac.ServicePort().
				WithName("http").
				WithProtocol(corev1.ProtocolTCP).
				WithPort(upstreamPort(ep)).
				WithTargetPort(intstr.FromString("http"))))
}
