package operator

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatekiln/gatekiln/builder/compile"
)

// TestBindingSecretDataQuotesNoSecret: a refusal becomes the API's Resolved
// condition, which anyone who may read APIs reads. However a Secret's value
// is wrong, the message names the Secret, key or consumer, never the value.
func TestBindingSecretDataQuotesNoSecret(t *testing.T) {
	const canary = "s3cr3t-CANARY-binding"
	keys := compile.SecretFile{File: "security/k/keys", SecretName: "keys", Format: compile.SecretFormatAPIKeys}
	for _, tc := range []struct {
		name string
		data map[string][]byte
		file compile.SecretFile
		want string
	}{
		{"a hash that is not one", map[string][]byte{"carol": []byte("sha256:" + canary)}, keys, `consumer "carol"`},
		{"a short hash", map[string][]byte{"carol": []byte("sha256:" + canary[:8])}, keys, `consumer "carol"`},
		{"an empty key beside a good one", map[string][]byte{"alice": []byte(canary), "carol": []byte(" \n")}, keys, `consumer "carol" is empty`},
		{"one consumer missing", map[string][]byte{"alice": []byte(canary)},
			compile.SecretFile{File: "security/k/keys", SecretName: "keys", Key: "bob", Format: compile.SecretFormatAPIKeys}, `no key "bob"`},
		{"a raw key missing", map[string][]byte{"password": []byte(canary)},
			compile.SecretFile{File: "redis/password", SecretName: "keys", Key: "pass"}, `no key "pass"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ref := bindingSecretData([]compile.SecretFile{tc.file}, map[string]*corev1.Secret{"keys": {Data: tc.data}})
			if ref == nil || !strings.Contains(ref.Message, tc.want) || !strings.Contains(ref.Message, "Secret keys") {
				t.Fatalf("refusal %+v, want one naming Secret keys and %s", ref, tc.want)
			}
			if strings.Contains(ref.Message, canary) || strings.Contains(ref.Message, canary[:8]) {
				t.Errorf("the refusal quotes the Secret's value: %s", ref.Message)
			}
		})
	}
}
