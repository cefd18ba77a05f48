package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EndpointSpec describes a named upstream: URLs, or a container image the
// operator runs as its own Deployment and Service.
// +kubebuilder:validation:XValidation:rule="has(self.urls) != has(self.image)",message="exactly one of urls or image must be set"
type EndpointSpec struct {
	// URLs are load-balanced.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Pattern=`^https?://`
	URLs []string `json:"urls,omitempty"`
	// Image runs the upstream in the cluster.
	// +optional
	Image *EndpointImage `json:"image,omitempty"`
	// LoadBalance is round-robin (default) or least-request.
	// +optional
	// +kubebuilder:validation:Enum=round-robin;least-request
	LoadBalance string `json:"loadBalance,omitempty"`
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// +optional
	Retries *RetryPolicy `json:"retries,omitempty"`
	// +optional
	CircuitBreaker *CircuitBreakerPolicy `json:"circuitBreaker,omitempty"`
	// +optional
	TLS *UpstreamTLS `json:"tls,omitempty"`
}

// EndpointImage is an upstream the operator deploys.
type EndpointImage struct {
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
	// Port the container listens on.
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// +optional
	// +kubebuilder:default=1
	Replicas *int32 `json:"replicas,omitempty"`
	// +optional
	Args []string `json:"args,omitempty"`
	// +optional
	Env map[string]string `json:"env,omitempty"`
}

// RetryPolicy retries idempotent requests.
type RetryPolicy struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Attempts int `json:"attempts"`
	// +optional
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`
}

// CircuitBreakerPolicy ejects an upstream URL after consecutive failures.
type CircuitBreakerPolicy struct {
	// +kubebuilder:validation:Minimum=1
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// +optional
	BaseEjection *metav1.Duration `json:"baseEjection,omitempty"`
}

// UpstreamTLS configures TLS to the upstream.
type UpstreamTLS struct {
	// CASecretRef holds a PEM CA bundle (key defaults to ca.crt).
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
	// +optional
	ServerName string `json:"serverName,omitempty"`
}

// EndpointStatus reports where the endpoint is reachable.
type EndpointStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	URLs []string `json:"urls,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=gatekiln
// +kubebuilder:validation:XValidation:rule="!has(self.spec.image) || self.metadata.name.size() <= 54",message="an image Endpoint's Service is named <name>-upstream: the name may have at most 54 characters"
// +kubebuilder:printcolumn:name="READY",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URLS",type=string,JSONPath=`.status.urls`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`

// Endpoint is a named upstream that API definitions refer to.
type Endpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EndpointSpec   `json:"spec"`
	Status            EndpointStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// EndpointList is a list of Endpoints.
type EndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Endpoint `json:"items"`
}
