package compile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

const bindDoc = `openapi: 3.1.0
info: {title: t, version: "1"}
x-gatekiln-endpoint: backend
x-gatekiln-ratelimit: [standard, {name: inline, requests: 5}]
security: [{key: []}, {jwt: []}, {oauth: [read]}, {basic: []}, {mtls: []}]
paths:
  /a:
    get: {responses: {"200": {description: ok}}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    jwt: {type: http, scheme: bearer}
    oauth: {type: oauth2, flows: {clientCredentials: {tokenUrl: "https://id/token", scopes: {read: r}}}}
    basic: {type: http, scheme: basic}
    mtls: {type: mutualTLS}
`

func fullKinds() *Kinds {
	ref := func(name, key string) *v1alpha1.SecretKeyRef { return &v1alpha1.SecretKeyRef{Name: name, Key: key} }
	return &Kinds{
		Namespace: "shop",
		Name:      "petstore",
		Endpoints: map[string]v1alpha1.EndpointSpec{
			"backend": {Image: &v1alpha1.EndpointImage{Image: "ghcr.io/x/backend:1", Port: 9000},
				LoadBalance: "least-request", Retries: &v1alpha1.RetryPolicy{Attempts: 2},
				CircuitBreaker: &v1alpha1.CircuitBreakerPolicy{ConsecutiveFailures: 3},
				TLS:            &v1alpha1.UpstreamTLS{CASecretRef: ref("backend-ca", ""), ServerName: "backend.internal"}},
		},
		RateLimits: map[string]v1alpha1.RateLimitSpec{
			"standard": {Requests: 10, Unit: "Second", Key: "Header", Header: "X-Tenant", Store: "Redis", FailureMode: "Closed"},
		},
		Security: map[string]v1alpha1.SecuritySpec{
			"key": {Type: v1alpha1.SecurityAPIKey, APIKey: &v1alpha1.APIKeySpec{KeysSecretRef: v1alpha1.SecretKeyRef{Name: "keys", Key: "alice"}}},
			"jwt": {Type: v1alpha1.SecurityJWT, JWT: &v1alpha1.JWTSpec{Issuer: "https://iss", CertificateSecretRef: ref("jwt-cert", ""),
				HMACSecretRef: ref("jwt-hmac", "k"), Leeway: &metav1.Duration{Duration: time.Minute}, ClaimHeaders: map[string]string{"sub": "X-Sub"}}},
			// Both blocks, each with its own CA: the files must not collide.
			"oauth": {Type: v1alpha1.SecurityOAuth2, OAuth2: &v1alpha1.OAuth2Spec{IntrospectionURL: "https://id/introspect",
				ClientSecretRef: ref("oauth-client", ""), CASecretRef: ref("id-ca", "ca.pem")},
				JWT: &v1alpha1.JWTSpec{JWKSURL: "https://id/jwks", CASecretRef: ref("jwks-ca", "")}},
			"basic": {Type: v1alpha1.SecurityBasic, Basic: &v1alpha1.BasicSpec{UsersSecretRef: v1alpha1.SecretKeyRef{Name: "users"}, Realm: "shop"}},
			"mtls":  {Type: v1alpha1.SecurityMTLS, MTLS: &v1alpha1.MTLSSpec{ClientCASecretRef: v1alpha1.SecretKeyRef{Name: "client-ca"}}},
		},
		Redis:        &v1alpha1.RedisRef{Address: "redis:6379", PasswordSecretRef: ref("redis", ""), Cluster: true},
		TLSSecretRef: &v1alpha1.SecretKeyRef{Name: "gw-tls"},
	}
}

func TestBindingFromKinds(t *testing.T) {
	res, ps := compileString(t, bindDoc, fullKinds())
	if ps != nil {
		t.Fatal(ps)
	}
	b := res.Binding
	if m := b.Missing(res.Bundle); len(m) != 0 {
		t.Errorf("missing: %v", m)
	}
	wantEndpoint := bundle.EndpointBinding{URLs: []string{"http://backend-upstream.shop.svc:9000"}, CAFile: "endpoints/backend/ca.crt",
		ServerName: "backend.internal", LoadBalance: "least-request", Retries: &bundle.Retries{Attempts: 2},
		CircuitBreaker: &bundle.CircuitBreaker{ConsecutiveFailures: 3}}
	if !reflect.DeepEqual(b.Endpoints["backend"], wantEndpoint) {
		t.Errorf("endpoint %+v", b.Endpoints["backend"])
	}
	wantRate := bundle.RateLimitBinding{Requests: 10, Period: bundle.Duration(time.Second), Key: bundle.KeyHeader, Header: "X-Tenant",
		Store: bundle.StoreRedis, FailureMode: bundle.FailClosed}
	if !reflect.DeepEqual(b.RateLimits, map[string]bundle.RateLimitBinding{"standard": wantRate}) {
		t.Errorf("rate limits %+v", b.RateLimits)
	}
	if !reflect.DeepEqual(b.Redis, &bundle.RedisBinding{Address: "redis:6379", PasswordFile: "redis/password", KeyPrefix: "shop/petstore", Cluster: true}) {
		t.Errorf("redis %+v", b.Redis)
	}
	wantSecurity := map[string]bundle.SecurityBinding{
		"key": {APIKey: &bundle.APIKeyBinding{KeysFile: "security/key/keys"}},
		"jwt": {JWT: &bundle.JWTBinding{Issuer: "https://iss", CertificateFile: "security/jwt/certificate.pem", HMACSecretFile: "security/jwt/hmac-secret",
			Leeway: bundle.Duration(time.Minute), ClaimHeaders: map[string]string{"sub": "X-Sub"}}},
		"oauth": {OAuth2: &bundle.OAuth2Binding{IntrospectionURL: "https://id/introspect", ClientIDFile: "security/oauth/client-id",
			ClientSecretFile: "security/oauth/client-secret", CAFile: "security/oauth/ca.crt"},
			JWT: &bundle.JWTBinding{JWKSURL: "https://id/jwks", CAFile: "security/oauth/jwks-ca.crt"}},
		"basic": {Basic: &bundle.BasicBinding{HtpasswdFile: "security/basic/htpasswd", Realm: "shop"}},
		"mtls":  {MTLS: &bundle.MTLSBinding{ClientCAFile: "security/mtls/ca.crt"}},
	}
	if !reflect.DeepEqual(b.Security, wantSecurity) {
		t.Errorf("security:\n got %+v\nwant %+v", b.Security, wantSecurity)
	}
	if !reflect.DeepEqual(b.Server, &bundle.ServerBinding{TLSCertFile: "server/tls.crt", TLSKeyFile: "server/tls.key"}) {
		t.Errorf("server %+v", b.Server)
	}
	wantFiles := []SecretFile{
		{File: "endpoints/backend/ca.crt", SecretName: "backend-ca", Key: "ca.crt"},
		{File: "redis/password", SecretName: "redis", Key: "password"},
		{File: "security/basic/htpasswd", SecretName: "users", Key: "htpasswd"},
		{File: "security/jwt/certificate.pem", SecretName: "jwt-cert", Key: "tls.crt"},
		{File: "security/jwt/hmac-secret", SecretName: "jwt-hmac", Key: "k"},
		{File: "security/key/keys", SecretName: "keys", Key: "alice", Format: SecretFormatAPIKeys},
		{File: "security/mtls/ca.crt", SecretName: "client-ca", Key: "ca.crt"},
		{File: "security/oauth/ca.crt", SecretName: "id-ca", Key: "ca.pem"},
		{File: "security/oauth/client-id", SecretName: "oauth-client", Key: "clientId"},
		{File: "security/oauth/client-secret", SecretName: "oauth-client", Key: "clientSecret"},
		{File: "security/oauth/jwks-ca.crt", SecretName: "jwks-ca", Key: "ca.crt"},
		{File: "server/tls.crt", SecretName: "gw-tls", Key: "tls.crt"},
		{File: "server/tls.key", SecretName: "gw-tls", Key: "tls.key"},
	}
	if !reflect.DeepEqual(res.SecretFiles, wantFiles) {
		t.Errorf("secret files:\n got %+v\nwant %+v", res.SecretFiles, wantFiles)
	}
	// Every file the Binding names is projected from a Secret.
	var files []string
	for _, f := range res.SecretFiles {
		files = append(files, f.File)
	}
	if !reflect.DeepEqual(b.SecretFiles(), files) {
		t.Errorf("binding names %v, secret files %v", b.SecretFiles(), files)
	}
}

func TestBindingProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		edit func(k *Kinds)
		want Problem
	}{
		{name: "endpoint missing", src: bindDoc, edit: func(k *Kinds) { delete(k.Endpoints, "backend") },
			want: Problem{File: "api.yaml", Pointer: "/x-gatekiln-endpoint", Line: 3, Code: CodeEndpointNotFound,
				Reason: `Endpoint "backend" not found in namespace "shop"`}},
		{name: "renamed by refs", src: bindDoc, edit: func(k *Kinds) { k.Refs = &v1alpha1.ObjectRefs{Endpoints: map[string]string{"backend": "other"}} },
			want: Problem{File: "api.yaml", Pointer: "/x-gatekiln-endpoint", Line: 3, Code: CodeEndpointNotFound,
				Reason: `Endpoint "other" not found in namespace "shop" (the definition's "backend", mapped by spec.refs)`}},
		{name: "rate limit missing", src: bindDoc, edit: func(k *Kinds) { delete(k.RateLimits, "standard") },
			want: Problem{File: "api.yaml", Pointer: "/x-gatekiln-ratelimit/0", Line: 4, Code: CodeRateLimitNotFound,
				Reason: `RateLimit "standard" not found in namespace "shop"`}},
		{name: "security missing", src: bindDoc, edit: func(k *Kinds) { delete(k.Security, "mtls") },
			want: Problem{File: "api.yaml", Pointer: "/security/4/mtls", Line: 5, Code: CodeSecurityNotFound,
				Reason: `Security "mtls" not found in namespace "shop"`}},
		{name: "security of another type", src: bindDoc, edit: func(k *Kinds) { k.Security["key"] = k.Security["basic"] },
			want: Problem{File: "api.yaml", Pointer: "/security/0/key", Line: 5, Code: CodeSecurityMismatch,
				Reason: `security scheme "key" is apiKey in the definition but Security "key" has type Basic (want "APIKey")`}},
		{name: "secret in another namespace", src: bindDoc, edit: func(k *Kinds) { k.TLSSecretRef.Namespace = "kube-system" },
			want: Problem{Code: CodeCrossNamespaceRef,
				Reason: `API: tlsSecretRef names Secret kube-system/gw-tls; only Secrets of the namespace "shop" can be used`}},
		{name: "api keys in another namespace", src: bindDoc, edit: func(k *Kinds) {
			s := k.Security["key"]
			s.APIKey.KeysSecretRef.Namespace = "other"
		}, want: Problem{Code: CodeCrossNamespaceRef, Reason: `Security "key": apiKey.keysSecretRef names Secret other/keys`}},
		{name: "jwks CA in another namespace", src: bindDoc, edit: func(k *Kinds) {
			k.Security["oauth"].JWT.CASecretRef.Namespace = "other"
		}, want: Problem{Code: CodeCrossNamespaceRef,
			Reason: `Security "oauth": jwt.caSecretRef names Secret other/jwks-ca; only Secrets of the namespace "shop" can be used`}},
		{name: "jwks CA without a jwks url", src: bindDoc, edit: func(k *Kinds) {
			s := k.Security["jwt"]
			s.JWT.CASecretRef = &v1alpha1.SecretKeyRef{Name: "jwks-ca"}
		}, want: Problem{Code: CodeInvalidKinds,
			Reason: `Security "jwt": jwt.caSecretRef verifies the TLS of jwt.jwksURL, which is not set`}},
		{name: "wso2 endpoint in another namespace", src: strings.Replace(bindDoc, "x-gatekiln-endpoint: backend", "x-wso2-production-endpoints: backend.elsewhere", 1),
			want: Problem{File: "api.yaml", Pointer: "/x-wso2-production-endpoints", Line: 3, Code: CodeCrossNamespaceRef,
				Reason: `Endpoint backend.elsewhere is in namespace "elsewhere"`}},
		{name: "redis store without a redis", src: bindDoc, edit: func(k *Kinds) { k.Redis = nil },
			want: Problem{Code: CodeInvalidKinds, Reason: `RateLimit "standard" has store Redis, but neither it nor the API names a Redis`}},
		{name: "trusted proxy not an address", src: bindDoc, edit: func(k *Kinds) {
			k.Forwarding = &v1alpha1.ForwardingSpec{TrustedProxies: []string{"10.0.0.0/8", "lb.internal"}}
		}, want: Problem{Code: CodeInvalidKinds, Reason: `API forwarding.trustedProxies: trusted proxy "lb.internal"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := fullKinds()
			if tc.edit != nil {
				tc.edit(k)
			}
			_, err := Compile(Input{Files: []File{{Path: "api.yaml", Data: []byte(tc.src)}}, Kinds: k})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want a problem, got %v", err)
			}
			got := ps[0]
			if got.Code != tc.want.Code || got.File != tc.want.File || got.Pointer != tc.want.Pointer || got.Line != tc.want.Line ||
				!strings.HasPrefix(got.Reason, tc.want.Reason) {
				t.Errorf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestBindingServer(t *testing.T) {
	tlsRef := &v1alpha1.SecretKeyRef{Name: "gw-tls"}
	tests := []struct {
		name string
		tls  *v1alpha1.SecretKeyRef
		fwd  *v1alpha1.ForwardingSpec
		want *bundle.ServerBinding
	}{
		{"nothing", nil, nil, nil},
		{"empty forwarding", nil, &v1alpha1.ForwardingSpec{}, nil},
		{"tls", tlsRef, nil, &bundle.ServerBinding{TLSCertFile: "server/tls.crt", TLSKeyFile: "server/tls.key"}},
		{"trusted proxies", nil, &v1alpha1.ForwardingSpec{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}},
			&bundle.ServerBinding{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"}}},
		{"forwarded header with tls", tlsRef, &v1alpha1.ForwardingSpec{ForwardedHeader: true},
			&bundle.ServerBinding{TLSCertFile: "server/tls.crt", TLSKeyFile: "server/tls.key", ForwardedHeader: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, ps := compileString(t, bindDoc, &Kinds{Namespace: "shop", TLSSecretRef: tc.tls, Forwarding: tc.fwd,
				Endpoints: fullKinds().Endpoints, RateLimits: fullKinds().RateLimits, Security: fullKinds().Security, Redis: fullKinds().Redis})
			if ps != nil {
				t.Fatal(ps)
			}
			if !reflect.DeepEqual(res.Binding.Server, tc.want) {
				t.Errorf("server %+v, want %+v", res.Binding.Server, tc.want)
			}
		})
	}
}

// A name the definition gives a default for needs no object.
func TestBindingDefaultsNeedNoObject(t *testing.T) {
	src := `openapi: 3.0.3
info: {title: t, version: "1"}
x-gatekiln-endpoint: {urls: [http://inline:80]}
x-gatekiln-ratelimit: {requests: 5}
paths:
  /a:
    get: {responses: {"200": {description: ok}}}
`
	res, ps := compileString(t, src, &Kinds{Namespace: "shop"})
	if ps != nil {
		t.Fatal(ps)
	}
	if res.Binding.Endpoints != nil || res.Binding.RateLimits != nil {
		t.Errorf("binding %+v", res.Binding)
	}
	if m := res.Binding.Missing(res.Bundle); len(m) != 0 {
		t.Errorf("missing %v", m)
	}
}

func TestRenderAPIKeys(t *testing.T) {
	data := map[string][]byte{
		"bob":   []byte("sha256:" + strings.Repeat("AB", 32)),
		"alice": []byte("s3cret\n"),
	}
	got, err := RenderAPIKeys(data, "")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "alice:") || lines[1] != "bob:"+strings.Repeat("ab", 32) {
		t.Fatalf("rendered %q", got)
	}
	if lines[0] != "alice:"+strings.TrimPrefix(sha256Hex([]byte("s3cret")), "sha256:") {
		t.Errorf("alice's line %q does not hash the key without its newline", lines[0])
	}
	one, err := RenderAPIKeys(data, "bob")
	if err != nil || string(one) != "bob:"+strings.Repeat("ab", 32)+"\n" {
		t.Errorf("one key: %q %v", one, err)
	}
	for name, bad := range map[string]map[string][]byte{
		"empty value":  {"a": []byte(" \n")},
		"bad hash":     {"a": []byte("sha256:xyz")},
		"colon in id":  {"a:b": []byte("k")},
		"missing key2": {},
	} {
		key := ""
		if name == "missing key2" {
			key = "nope"
		}
		if _, err := RenderAPIKeys(bad, key); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The error ends up in the API's status, readable by anyone who may
	// read APIs: it names the consumer, never the Secret's value.
	secret := "sha256:my-real-key-not-a-hash"
	_, err = RenderAPIKeys(map[string][]byte{"carol": []byte(secret)}, "")
	if err == nil || !strings.Contains(err.Error(), `"carol"`) || strings.Contains(err.Error(), "my-real-key") {
		t.Errorf("bad hash error %v: want the consumer named and the value left out", err)
	}
}
