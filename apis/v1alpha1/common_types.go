package v1alpha1

// SecretKeyRef selects one key of a Secret in the referring object's namespace.
// Namespace exists only so that a cross-namespace reference can be refused with
// a clear reason instead of being silently ignored.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key in the Secret's data.
	// +optional
	Key string `json:"key,omitempty"`
	// Namespace must be empty or equal to the referring object's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// ConfigMapKeyRef selects one key of a ConfigMap (in data or gzip'd binaryData).
type ConfigMapKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key names the file; it is also the file's path for relative $refs.
	// Empty means every key of the ConfigMap.
	// +optional
	Key string `json:"key,omitempty"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Annotations on a definition ConfigMap (the kubectl plugin writes them).
const (
	// AnnotationRootKey names the root file's key when an API's first
	// definition reference takes every key of a ConfigMap.
	AnnotationRootKey = "gatekiln.io/root-key"
	// AnnotationFilePaths maps keys to file paths, as a JSON object, for a
	// definition whose files live in directories: ConfigMap keys cannot hold
	// "/", and relative $refs resolve by path.
	AnnotationFilePaths = "gatekiln.io/file-paths"
)
