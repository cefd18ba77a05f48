package registry_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/builder/registry"
)

// canary is a secret value no error may carry.
const canary = "s3cr3t-CANARY-registry"

// TestDockerConfigErrorsQuoteNoSecret: a push Secret's docker config reaches
// the API's status (a refusal) or the operator's log (an error) when it is
// wrong; neither may quote its credentials, however it is malformed.
func TestDockerConfigErrorsQuoteNoSecret(t *testing.T) {
	for _, tc := range []struct {
		name, config string
	}{
		{"auth not base64", `{"auths":{"reg.example":{"auth":"` + canary + `"}}}`},
		{"auth without a colon", `{"auths":{"reg.example":{"auth":"czNjcjN0LUNBTkFSWS1yZWdpc3RyeQ=="}}}`},
		{"password a number", `{"auths":{"reg.example":{"password":1234567890123}}}`},
		{"password an object", `{"auths":{"reg.example":{"password":{"v":"` + canary + `"}}}}`},
		{"auths a string", `{"auths":"` + canary + `"}`},
		{"not JSON", canary},
		{"cut short", `{"auths":{"reg.example":{"password":"` + canary},
		{"credential helpers", `{"auths":{},"credHelpers":{"reg.example":"` + canary + `"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.KeychainFromDockerConfig([]byte(tc.config))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "1234567890123") {
				t.Errorf("error quotes the secret: %v", err)
			}
		})
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "legacy"}, Type: corev1.SecretTypeDockercfg,
			Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"reg.example":{"password":` + canary + `}}`)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "opaque"}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"password": []byte(canary)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "no-key"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{"other": []byte(canary)}},
	} {
		if _, err := registry.DockerConfigFromSecret(s); err == nil || strings.Contains(err.Error(), canary) {
			t.Errorf("Secret %s: error %v, want one that does not quote the secret", s.Name, err)
		}
	}
}
