// Package v1alpha1 holds the gatekiln.io/v1alpha1 kinds: API, Endpoint,
// RateLimit and Security.
//
// +kubebuilder:object:generate=true
// +groupName=gatekiln.io
package v1alpha1
