package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestKeychainFromDockerConfig(t *testing.T) {
	tests := []struct {
		name     string
		config   string
		registry string
		want     authn.AuthConfig
		wantErr  string
	}{
		{
			name:     "auth field",
			config:   `{"auths":{"reg.example:5000":{"auth":"` + b64("alice:s3:cret") + `"}}}`,
			registry: "reg.example:5000",
			want:     authn.AuthConfig{Username: "alice", Password: "s3:cret"},
		},
		{
			name:     "username and password, key with scheme and path",
			config:   `{"auths":{"https://reg.example/v1/":{"username":"bob","password":"pw"}}}`,
			registry: "reg.example",
			want:     authn.AuthConfig{Username: "bob", Password: "pw"},
		},
		{
			name:     "docker hub spelled the legacy way",
			config:   `{"auths":{"https://index.docker.io/v1/":{"auth":"` + b64("u:p") + `"}}}`,
			registry: "index.docker.io",
			want:     authn.AuthConfig{Username: "u", Password: "p"},
		},
		{
			name:     "identity token",
			config:   `{"auths":{"reg.example":{"identitytoken":"tok"}}}`,
			registry: "reg.example",
			want:     authn.AuthConfig{IdentityToken: "tok"},
		},
		{
			name:     "registry not named is anonymous",
			config:   `{"auths":{"reg.example":{"auth":"` + b64("u:p") + `"}}}`,
			registry: "other.example",
			want:     authn.AuthConfig{},
		},
		{name: "bad base64", config: `{"auths":{"r":{"auth":"%%%"}}}`, wantErr: `auths["r"].auth`},
		{name: "auth without colon", config: `{"auths":{"r":{"auth":"` + b64("nocolon") + `"}}}`, wantErr: "not user:password"},
		{name: "credential helpers refused", config: `{"credsStore":"desktop"}`, wantErr: "credsStore/credHelpers"},
		{name: "same registry twice", config: `{"auths":{"r.example":{},"https://r.example":{}}}`, wantErr: "named twice"},
		{name: "not json", config: `{`, wantErr: "docker config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc, err := registry.KeychainFromDockerConfig([]byte(tt.config))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			reg, err := name.NewRegistry(tt.registry)
			if err != nil {
				t.Fatal(err)
			}
			auth, err := kc.Resolve(reg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := auth.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Fatalf("credentials = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestDockerConfigFromSecret(t *testing.T) {
	cfg := []byte(`{"auths":{"r.example":{"auth":"` + b64("u:p") + `"}}}`)
	tests := []struct {
		name    string
		secret  corev1.Secret
		want    string
		wantErr string
	}{
		{
			name:   "dockerconfigjson",
			secret: corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{".dockerconfigjson": cfg}},
			want:   string(cfg),
		},
		{
			name:   "legacy dockercfg is converted",
			secret: corev1.Secret{Type: corev1.SecretTypeDockercfg, Data: map[string][]byte{".dockercfg": []byte(`{"r.example":{"auth":"` + b64("u:p") + `"}}`)}},
			want:   `{"auths":{"r.example":{"auth":"` + b64("u:p") + `"}}}`,
		},
		{
			name:    "opaque refused",
			secret:  corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Type: corev1.SecretTypeOpaque},
			wantErr: `secret ns/s: type "Opaque"`,
		},
		{
			name:    "missing key",
			secret:  corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"}, Type: corev1.SecretTypeDockerConfigJson},
			wantErr: "no .dockerconfigjson key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.DockerConfigFromSecret(&tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("config = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCABundleRejectsGarbage(t *testing.T) {
	_, err := registry.Config{CABundle: []byte("not a pem")}.Transport()
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("error = %v, want no PEM certificate", err)
	}
}

// TestRealRegistries pushes and pulls against distribution itself: TLS with a
// private CA and htpasswd auth, and plain HTTP only when asked.
func TestRealRegistries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts docker-registry")
	}
	secure := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	plain := registrytest.Start(t, registrytest.Options{})

	withoutCA := secure.Config()
	withoutCA.CABundle = nil
	wrongPassword := secure.Config()
	cfg, err := registry.DockerConfigFor(map[string]authn.Basic{secure.Host: {Username: secure.Username, Password: "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword.DockerConfig = cfg
	plainNotAsked := plain.Config()
	plainNotAsked.Insecure = nil
	secretBytes, err := registry.DockerConfigFromSecret(&corev1.Secret{
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{".dockerconfigjson": secure.DockerConfig()},
	})
	if err != nil {
		t.Fatal(err)
	}
	fromSecret := registry.Config{DockerConfig: secretBytes, CABundle: secure.CACert}

	tests := []struct {
		name    string
		host    string
		config  registry.Config
		wantErr func(error) bool
	}{
		{name: "tls and auth with the CA", host: secure.Host, config: secure.Config()},
		{name: "credentials from a dockerconfigjson secret", host: secure.Host, config: fromSecret},
		{name: "tls without the CA", host: secure.Host, config: withoutCA, wantErr: func(err error) bool {
			return strings.Contains(err.Error(), "x509")
		}},
		{name: "wrong password", host: secure.Host, config: wrongPassword, wantErr: func(err error) bool {
			var te *transport.Error
			return errors.As(err, &te) && te.StatusCode == http.StatusUnauthorized
		}},
		{name: "plain http when asked", host: plain.Host, config: plain.Config()},
		{name: "plain http not asked", host: plain.Host, config: plainNotAsked, wantErr: func(err error) bool {
			return strings.Contains(err.Error(), "plain HTTP refused")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := tt.config.ParseReference(tt.host + "/probe/image:v1")
			if err != nil {
				t.Fatal(err)
			}
			opts, err := tt.config.Remote(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			img, err := random.Image(256, 1)
			if err != nil {
				t.Fatal(err)
			}
			err = remote.Write(ref, img, opts...)
			if tt.wantErr != nil {
				t.Logf("push error: %v", err)
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("push error = %v, want the expected failure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			got, err := remote.Image(ref, opts...)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			want, _ := img.Digest()
			if d, _ := got.Digest(); d != want {
				t.Fatalf("pulled %s, pushed %s", d, want)
			}
		})
	}
}

func TestIsNotFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"404", &transport.Error{StatusCode: http.StatusNotFound}, true},
		{"manifest unknown", &transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode}}}, true},
		{"blob unknown, wrapped", fmt.Errorf("copy: %w", &transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.BlobUnknownErrorCode}}}), true},
		{"unauthorized", &transport.Error{StatusCode: http.StatusUnauthorized, Errors: []transport.Diagnostic{{Code: transport.UnauthorizedErrorCode}}}, false},
		{"connection refused", errors.New("dial tcp: connection refused"), false},
	} {
		if got := registry.IsNotFound(tc.err); got != tc.want {
			t.Errorf("%s: IsNotFound = %v, want %v", tc.name, got, tc.want)
		}
	}
}
