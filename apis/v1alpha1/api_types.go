package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Build strategies.
const (
	BuildKaniko = "Kaniko"
	BuildDirect = "Direct"
)

// Condition types on an API.
const (
	ConditionResolved = "Resolved"
	ConditionBuilt    = "Built"
	ConditionDeployed = "Deployed"
	ConditionReady    = "Ready"
)

// APISpec asks for one API definition to be compiled, built and deployed.
// +kubebuilder:validation:XValidation:rule="!(has(self.tlsSecretRef) && has(self.service) && has(self.service.port) && self.service.port == 443)",message="with tlsSecretRef the Service serves HTTPS on 443: choose another service.port for plain HTTP"
type APISpec struct {
	// Definition lists the ConfigMap keys holding the OpenAPI/Swagger file(s);
	// the first is the root document.
	// +kubebuilder:validation:MinItems=1
	Definition []ConfigMapKeyRef `json:"definition"`
	// Version overrides the definition's info.version in the image tag.
	// +optional
	Version string `json:"version,omitempty"`
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
	// +optional
	Build BuildSpec `json:"build,omitempty"`
	// +optional
	Image ImageSpec `json:"image,omitempty"`
	// +optional
	Service ServiceSpec `json:"service,omitempty"`
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`
	// +optional
	Exposure *ExposureSpec `json:"exposure,omitempty"`
	// Refs maps names used in the definition to objects of this namespace when
	// they differ; by default a name refers to the object of the same name.
	// +optional
	Refs *ObjectRefs `json:"refs,omitempty"`
	// Redis locates the store for RateLimits with store Redis, unless the RateLimit names one.
	// +optional
	Redis *RedisRef `json:"redis,omitempty"`
	// TLSSecretRef names a kubernetes.io/tls Secret for the gateway's own listener.
	// +optional
	TLSSecretRef *SecretKeyRef `json:"tlsSecretRef,omitempty"`
	// Forwarding says which proxies in front of the gateway it believes about
	// the client, and which forwarding fields it sends to upstreams.
	// +optional
	Forwarding *ForwardingSpec `json:"forwarding,omitempty"`
}

// ForwardingSpec configures the X-Forwarded-* and Forwarded fields. Without
// trusted proxies a client cannot set them: the gateway drops what the client
// sent and tells the upstream what it saw itself.
type ForwardingSpec struct {
	// TrustedProxies are the addresses or CIDRs of the proxies in front of the
	// gateway (a load balancer, an ingress controller): their X-Forwarded-*
	// and Forwarded fields are kept and the gateway's hop appended, and client
	// IP rate limits count the client they name.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(p, isIP(p) || isCIDR(p))",message="trustedProxies: each entry must be an IP address (10.0.0.1) or a CIDR (10.0.0.0/8)"
	TrustedProxies []string `json:"trustedProxies,omitempty"`
	// ForwardedHeader also sends the RFC 7239 Forwarded field; X-Forwarded-For,
	// -Host and -Proto are always sent. A trusted proxy's Forwarded is passed
	// on (with the gateway's hop) either way.
	// +optional
	ForwardedHeader bool `json:"forwardedHeader,omitempty"`
}

// ObjectRefs maps definition-side names to object names.
type ObjectRefs struct {
	// +optional
	Endpoints map[string]string `json:"endpoints,omitempty"`
	// +optional
	RateLimits map[string]string `json:"rateLimits,omitempty"`
	// +optional
	Security map[string]string `json:"security,omitempty"`
}

// BuildSpec chooses how the image is built.
type BuildSpec struct {
	// Strategy is Kaniko (a Job in the cluster) or Direct (in the operator);
	// empty means the operator's default.
	// +optional
	// +kubebuilder:validation:Enum=Kaniko;Direct
	Strategy string `json:"strategy,omitempty"`
	// ForceRebuild: change this value to build again even if the image exists.
	// +optional
	ForceRebuild string `json:"forceRebuild,omitempty"`
}

// ImageSpec overrides where the image goes, or names a prebuilt one.
// +kubebuilder:validation:XValidation:rule="!has(self.ref) || !(has(self.registry) || has(self.repository) || has(self.pushSecretRef))",message="image.ref names a prebuilt image: registry, repository and pushSecretRef apply only to images the operator builds"
type ImageSpec struct {
	// Ref names a prebuilt image; no build happens.
	// +optional
	Ref string `json:"ref,omitempty"`
	// +optional
	Registry string `json:"registry,omitempty"`
	// +optional
	Repository string `json:"repository,omitempty"`
	// PushSecretRef names a kubernetes.io/dockerconfigjson Secret for pushing.
	// +optional
	PushSecretRef *SecretKeyRef `json:"pushSecretRef,omitempty"`
	// PullSecretRef names a kubernetes.io/dockerconfigjson Secret for pulling.
	// +optional
	PullSecretRef *SecretKeyRef `json:"pullSecretRef,omitempty"`
}

// ServiceSpec shapes the gateway's Service.
type ServiceSpec struct {
	// +optional
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AutoscalingSpec adds a HorizontalPodAutoscaler.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type AutoscalingSpec struct {
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// +kubebuilder:validation:Minimum=1
	MaxReplicas int32 `json:"maxReplicas"`
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`
}

// ExposureSpec exposes the gateway outside the cluster.
// +kubebuilder:validation:XValidation:rule="!(has(self.ingress) && has(self.httpRoute))",message="choose ingress or httpRoute, not both"
type ExposureSpec struct {
	// +optional
	Ingress *IngressExposure `json:"ingress,omitempty"`
	// +optional
	HTTPRoute *HTTPRouteExposure `json:"httpRoute,omitempty"`
}

// IngressExposure renders a networking.k8s.io/v1 Ingress.
type IngressExposure struct {
	// +optional
	Host string `json:"host,omitempty"`
	// +optional
	Path string `json:"path,omitempty"`
	// +optional
	ClassName string `json:"className,omitempty"`
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
}

// HTTPRouteExposure renders a Gateway API HTTPRoute.
type HTTPRouteExposure struct {
	// ParentRef names the Gateway (name or namespace/name).
	// +kubebuilder:validation:MinLength=1
	Gateway string `json:"gateway"`
	// +optional
	Hostnames []string `json:"hostnames,omitempty"`
	// +optional
	Path string `json:"path,omitempty"`
}

// APIStatus is the observed state of an API.
type APIStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// InputsDigest is sha256 over the Bundle, the runtime base image and the compiler version.
	// +optional
	InputsDigest string `json:"inputsDigest,omitempty"`
	// Image is the deployed image, by digest.
	// +optional
	Image string `json:"image,omitempty"`
	// ForceRebuild is the spec.build.forceRebuild value the image was built for.
	// +optional
	ForceRebuild string `json:"forceRebuild,omitempty"`
	// BuildJob names the Kaniko Job of the current build, if any.
	// +optional
	BuildJob string `json:"buildJob,omitempty"`
	// URL is where the API is served inside the cluster (or outside when exposed).
	// +optional
	URL string `json:"url,omitempty"`
	// Warnings lists what the compiler read but cannot honour.
	// +optional
	Warnings []string `json:"warnings,omitempty"`
	// References lists the objects of this namespace the API was last resolved
	// against, found or not, so that a change to any of them re-reconciles it.
	// +optional
	References *References `json:"references,omitempty"`
}

// References names objects of the API's namespace, each list sorted.
type References struct {
	// +optional
	ConfigMaps []string `json:"configMaps,omitempty"`
	// +optional
	Endpoints []string `json:"endpoints,omitempty"`
	// +optional
	RateLimits []string `json:"rateLimits,omitempty"`
	// +optional
	Securities []string `json:"securities,omitempty"`
	// +optional
	Secrets []string `json:"secrets,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gkapi,categories=gatekiln
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="an API's name is its Service's name: at most 63 characters"
// +kubebuilder:printcolumn:name="READY",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="IMAGE",type=string,JSONPath=`.status.image`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`

// API is one API definition compiled into a gateway image and deployed.
type API struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              APISpec   `json:"spec"`
	Status            APIStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// APIList is a list of APIs.
type APIList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []API `json:"items"`
}
