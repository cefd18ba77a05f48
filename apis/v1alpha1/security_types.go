package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Security types.
const (
	SecurityJWT    = "JWT"
	SecurityOAuth2 = "OAuth2"
	SecurityAPIKey = "APIKey"
	SecurityBasic  = "Basic"
	SecurityMTLS   = "MTLS"
)

// SecuritySpec is a named security scheme's environment values.
// +kubebuilder:validation:XValidation:rule="self.type != 'JWT' || (has(self.jwt) && (has(self.jwt.jwksURL) || has(self.jwt.certificateSecretRef) || has(self.jwt.hmacSecretRef)))",message="a JWT Security needs jwt.jwksURL, jwt.certificateSecretRef or jwt.hmacSecretRef"
// +kubebuilder:validation:XValidation:rule="self.type != 'OAuth2' || has(self.oauth2) || has(self.jwt)",message="an OAuth2 Security needs oauth2 (introspection) or jwt"
// +kubebuilder:validation:XValidation:rule="self.type != 'APIKey' || has(self.apiKey)",message="an APIKey Security needs apiKey.keysSecretRef"
// +kubebuilder:validation:XValidation:rule="self.type != 'Basic' || has(self.basic)",message="a Basic Security needs basic.usersSecretRef"
// +kubebuilder:validation:XValidation:rule="self.type != 'MTLS' || has(self.mtls)",message="an MTLS Security needs mtls.clientCASecretRef"
type SecuritySpec struct {
	// +kubebuilder:validation:Enum=JWT;OAuth2;APIKey;Basic;MTLS
	Type string `json:"type"`
	// +optional
	JWT *JWTSpec `json:"jwt,omitempty"`
	// +optional
	OAuth2 *OAuth2Spec `json:"oauth2,omitempty"`
	// +optional
	APIKey *APIKeySpec `json:"apiKey,omitempty"`
	// +optional
	Basic *BasicSpec `json:"basic,omitempty"`
	// +optional
	MTLS *MTLSSpec `json:"mtls,omitempty"`
}

// JWTSpec verifies bearer JWTs.
// +kubebuilder:validation:XValidation:rule="!has(self.caSecretRef) || has(self.jwksURL)",message="jwt.caSecretRef verifies the TLS of jwt.jwksURL; set jwksURL or remove caSecretRef"
type JWTSpec struct {
	// +optional
	Issuer string `json:"issuer,omitempty"`
	// +optional
	Audiences []string `json:"audiences,omitempty"`
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://`
	JWKSURL string `json:"jwksURL,omitempty"`
	// CASecretRef holds the PEM CA that verifies the JWKS URL's TLS, for an
	// issuer behind a private CA (key defaults to ca.crt); without it the
	// system roots are used. It only matters with jwksURL.
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
	// CertificateSecretRef holds PEM certificates or public keys (key defaults to tls.crt).
	// +optional
	CertificateSecretRef *SecretKeyRef `json:"certificateSecretRef,omitempty"`
	// HMACSecretRef enables HS256/384/512 with a shared secret; off unless set.
	// +optional
	HMACSecretRef *SecretKeyRef `json:"hmacSecretRef,omitempty"`
	// +optional
	Algorithms []string `json:"algorithms,omitempty"`
	// +optional
	Leeway *metav1.Duration `json:"leeway,omitempty"`
	// ClaimHeaders forwards claims upstream: claim name → header name.
	// +optional
	ClaimHeaders map[string]string `json:"claimHeaders,omitempty"`
}

// OAuth2Spec verifies opaque tokens by RFC 7662 introspection.
type OAuth2Spec struct {
	// +kubebuilder:validation:Pattern=`^https?://`
	IntrospectionURL string `json:"introspectionURL"`
	// ClientSecretRef names a Secret with keys clientId and clientSecret.
	// +optional
	ClientSecretRef *SecretKeyRef `json:"clientSecretRef,omitempty"`
	// +optional
	CASecretRef *SecretKeyRef `json:"caSecretRef,omitempty"`
	// +optional
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
	// +optional
	ClaimHeaders map[string]string `json:"claimHeaders,omitempty"`
}

// APIKeySpec checks API keys against hashes in a Secret.
type APIKeySpec struct {
	// KeysSecretRef names a Secret whose every key is a consumer id and whose
	// value is the API key, or "sha256:<hex>" of it (key empty: all keys).
	KeysSecretRef SecretKeyRef `json:"keysSecretRef"`
}

// BasicSpec checks users against an htpasswd file of bcrypt entries.
type BasicSpec struct {
	// UsersSecretRef names the htpasswd file (key defaults to htpasswd).
	UsersSecretRef SecretKeyRef `json:"usersSecretRef"`
	// +optional
	Realm string `json:"realm,omitempty"`
}

// MTLSSpec requires a client certificate chaining to a CA.
type MTLSSpec struct {
	// ClientCASecretRef holds the PEM CA (key defaults to ca.crt).
	ClientCASecretRef SecretKeyRef `json:"clientCASecretRef"`
}

// SecurityStatus is the observed state of a Security.
type SecurityStatus struct {
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
// +kubebuilder:printcolumn:name="TYPE",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`

// Security is a named security scheme that API definitions refer to.
type Security struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SecuritySpec   `json:"spec"`
	Status            SecurityStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// SecurityList is a list of Securities.
type SecurityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Security `json:"items"`
}
