package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
)

// dockerHub is the registry name go-containerregistry gives Docker Hub
// references; config files spell it several ways.
const dockerHub = "index.docker.io"

// dockerConfig is the part of a docker config.json that carries credentials.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredHelpers map[string]string     `json:"credHelpers,omitempty"`
	CredsStore  string                `json:"credsStore,omitempty"`
}

type dockerAuth struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// KeychainFromDockerConfig parses a docker config.json (the `.dockerconfigjson`
// of a Secret) into a keychain. Registries it does not name get anonymous
// access. Credential helpers are refused: an explicit configuration that
// silently ignored them would push or pull with the wrong identity.
func KeychainFromDockerConfig(data []byte) (authn.Keychain, error) {
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if cfg.CredsStore != "" || len(cfg.CredHelpers) > 0 {
		return nil, errors.New("docker config: credsStore/credHelpers are not supported in an explicit config; use the default keychain or inline auths")
	}
	kc := staticKeychain{}
	for key, a := range cfg.Auths {
		host := normalizeRegistry(key)
		ac := authn.AuthConfig{
			Username:      a.Username,
			Password:      a.Password,
			IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken,
		}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config: auths[%q].auth: %w", key, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("docker config: auths[%q].auth: not user:password", key)
			}
			ac.Username, ac.Password = user, pass
		}
		if _, dup := kc[host]; dup {
			return nil, fmt.Errorf("docker config: registry %s is named twice in auths", host)
		}
		kc[host] = ac
	}
	return kc, nil
}

// DockerConfigFromSecret returns the docker config.json carried by a
// kubernetes.io/dockerconfigjson Secret, or by a legacy kubernetes.io/dockercfg
// one (converted).
func DockerConfigFromSecret(s *corev1.Secret) ([]byte, error) {
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		data, ok := s.Data[corev1.DockerConfigJsonKey]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s: no %s key", s.Namespace, s.Name, corev1.DockerConfigJsonKey)
		}
		return data, nil
	case corev1.SecretTypeDockercfg:
		data, ok := s.Data[corev1.DockerConfigKey]
		if !ok {
			return nil, fmt.Errorf("secret %s/%s: no %s key", s.Namespace, s.Name, corev1.DockerConfigKey)
		}
		var auths map[string]dockerAuth
		if err := json.Unmarshal(data, &auths); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		return json.Marshal(dockerConfig{Auths: auths})
	default:
		return nil, fmt.Errorf("secret %s/%s: type %q, want %s", s.Namespace, s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
	}
}

// DockerConfigFor renders a docker config.json holding one username/password
// pair per registry, sorted — what a pull or push Secret contains.
func DockerConfigFor(creds map[string]authn.Basic) ([]byte, error) {
	hosts := make([]string, 0, len(creds))
	for h := range creds {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	cfg := dockerConfig{Auths: map[string]dockerAuth{}}
	for _, h := range hosts {
		c := creds[h]
		cfg.Auths[h] = dockerAuth{Auth: base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))}
	}
	return json.Marshal(cfg)
}

// staticKeychain maps a registry host to its credentials.
type staticKeychain map[string]authn.AuthConfig

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if ac, ok := k[normalizeRegistry(r.RegistryStr())]; ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}

// normalizeRegistry reduces a config key ("https://host:5000/v1/", "host") to
// host[:port], and every spelling of Docker Hub to one name.
func normalizeRegistry(key string) string {
	h := key
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	h = strings.ToLower(h)
	switch h {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return dockerHub
	}
	return h
}
