package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RateLimitSpec is a named policy: Requests per Unit, with a burst.
// +kubebuilder:validation:XValidation:rule="!has(self.key) || self.key != 'Header' || (has(self.header) && self.header.size() > 0)",message="key Header needs header: the request header to group by"
type RateLimitSpec struct {
	// +kubebuilder:validation:Minimum=1
	Requests int64 `json:"requests"`
	// +kubebuilder:validation:Enum=Second;Minute;Hour;Day
	// +kubebuilder:default=Minute
	Unit string `json:"unit,omitempty"`
	// Burst is the bucket size; 0 means Requests.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Burst int64 `json:"burst,omitempty"`
	// Key groups requests: API (default), Operation, Consumer, ClientIP or Header.
	// +optional
	// +kubebuilder:validation:Enum=API;Operation;Consumer;ClientIP;Header
	Key string `json:"key,omitempty"`
	// Header names the request header when Key is Header.
	// +optional
	Header string `json:"header,omitempty"`
	// Store is Local (per replica) or Redis (shared by all replicas).
	// +optional
	// +kubebuilder:validation:Enum=Local;Redis
	Store string `json:"store,omitempty"`
	// Redis locates the shared store when Store is Redis.
	// +optional
	Redis *RedisRef `json:"redis,omitempty"`
	// FailureMode applies when the store is unreachable: Open (default) or Closed.
	// +optional
	// +kubebuilder:validation:Enum=Open;Closed
	FailureMode string `json:"failureMode,omitempty"`
}

// RedisRef locates a Redis server.
type RedisRef struct {
	// Address is host:port.
	// +kubebuilder:validation:MinLength=1
	Address string `json:"address"`
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// Cluster says Address is a node (or the configuration endpoint) of a
	// Redis Cluster; the gateway finds the other nodes from it.
	// +optional
	Cluster bool `json:"cluster,omitempty"`
}

// RateLimitStatus is the observed state of a RateLimit.
type RateLimitStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=gatekiln
// +kubebuilder:printcolumn:name="REQUESTS",type=integer,JSONPath=`.spec.requests`
// +kubebuilder:printcolumn:name="UNIT",type=string,JSONPath=`.spec.unit`
// +kubebuilder:printcolumn:name="STORE",type=string,JSONPath=`.spec.store`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`

// RateLimit is a named rate-limit policy that API definitions refer to.
type RateLimit struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RateLimitSpec   `json:"spec"`
	Status            RateLimitStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// RateLimitList is a list of RateLimits.
type RateLimitList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RateLimit `json:"items"`
}
