package operator

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// readiness is the Ready condition's verdict.
type readiness struct {
	Status  metav1.ConditionStatus
	Reason  string
	Message string
}

// deploymentReadiness says whether a Deployment serves image with every
// replica it wants. It reads only the Deployment's spec and status, so Ready
// follows whatever runs the Pods (kubelet, or a test writing the status).
func deploymentReadiness(dep *appsv1.Deployment, image string) readiness {
	if dep == nil {
		return readiness{metav1.ConditionFalse, ReasonProgressing, "the Deployment is not observed yet"}
	}
	if !runsImage(dep, image) {
		return readiness{metav1.ConditionFalse, ReasonProgressing, "the Deployment is being updated to the new image"}
	}
	if dep.Status.ObservedGeneration < dep.Generation {
		return readiness{metav1.ConditionFalse, ReasonProgressing, "the Deployment's latest spec is not rolled out yet"}
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	available := false
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			available = true
		}
	}
	switch {
	case want == 0:
		return readiness{metav1.ConditionFalse, ReasonProgressing, "scaled to zero replicas"}
	case dep.Status.UpdatedReplicas < want || dep.Status.AvailableReplicas < want || !available:
		return readiness{metav1.ConditionFalse, ReasonProgressing, fmt.Sprintf(
			"%d of %d replicas updated and available", min(dep.Status.UpdatedReplicas, dep.Status.AvailableReplicas), want)}
	}
	return readiness{metav1.ConditionTrue, ReasonAvailable, fmt.Sprintf("%d of %d replicas available", want, want)}
}

func runsImage(dep *appsv1.Deployment, image string) bool {
	cs := dep.Spec.Template.Spec.Containers
	return len(cs) > 0 && cs[0].Image == image
}
