package compile

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// Binding file layout: every secret value is a file under the Binding
// directory, at a path derived from the name the Bundle uses, so the same
// Bundle name always reads the same file.
const (
	fileServerCert    = "server/tls.crt"
	fileServerKey     = "server/tls.key"
	fileRedisPassword = "redis/password"
)

// ImageServiceName is the Service the operator creates for an Endpoint that
// runs an image; the Binding's URL for such an Endpoint points at it.
func ImageServiceName(endpointObject string) string { return endpointObject + "-upstream" }

// ImageEndpointURL is the in-cluster URL of an image Endpoint's Service.
func ImageEndpointURL(endpointObject, namespace string, port int32) string {
	if port == 0 {
		port = 8080
	}
	return "http://" + ImageServiceName(endpointObject) + "." + namespace + ".svc:" + strconv.Itoa(int(port))
}

// binder resolves the Bundle's names against the Kinds.
type binder struct {
	c       *compiler
	k       *Kinds
	binding *bundle.Binding
	secrets map[string]SecretFile
}

// bind fills res.Binding and res.SecretFiles from the Kinds. Without Kinds the
// Binding is empty: a standalone compile leaves names unresolved.
func (c *compiler) bind(res *Result) {
	res.Binding = &bundle.Binding{APIVersion: bundle.BindingAPIVersion}
	if c.in.Kinds == nil {
		return
	}
	bd := &binder{c: c, k: c.in.Kinds, binding: res.Binding, secrets: map[string]SecretFile{}}
	bd.endpoints()
	bd.security()
	bd.rateLimits()
	bd.server()
	for _, f := range sortedKeys(bd.secrets) {
		res.SecretFiles = append(res.SecretFiles, bd.secrets[f])
	}
}

func (bd *binder) object(kind, name string) string {
	if r := bd.k.Refs; r != nil {
		var m map[string]string
		switch kind {
		case "Endpoint":
			m = r.Endpoints
		case "RateLimit":
			m = r.RateLimits
		case "Security":
			m = r.Security
		}
		if o, ok := m[name]; ok && o != "" {
			return o
		}
	}
	return name
}

func (bd *binder) notFound(code, kind, name, object, ptr string) {
	reason := fmt.Sprintf("%s %q not found in namespace %q", kind, object, bd.k.Namespace)
	if object != name {
		reason += fmt.Sprintf(" (the definition's %q, mapped by spec.refs)", name)
	}
	bd.c.fail(bd.c.fs.root.file, ptr, code, reason)
}

// secret records a Secret key to project at file, refusing other namespaces.
func (bd *binder) secret(owner, field string, ref *v1alpha1.SecretKeyRef, defaultKey, file, format string) string {
	if ref.Namespace != "" && ref.Namespace != bd.k.Namespace {
		bd.c.fail("", "", CodeCrossNamespaceRef, fmt.Sprintf("%s: %s names Secret %s/%s; only Secrets of the namespace %q can be used",
			owner, field, ref.Namespace, ref.Name, bd.k.Namespace))
		return ""
	}
	key := ref.Key
	if key == "" {
		key = defaultKey
	}
	bd.secrets[file] = SecretFile{File: file, SecretName: ref.Name, Key: key, Format: format}
	return file
}

func dur(d *metav1.Duration) bundle.Duration {
	if d == nil {
		return 0
	}
	return bundle.Duration(d.Duration)
}

func (bd *binder) endpoints() {
	b := bd.c.b
	for _, name := range b.EndpointNames() {
		ptr := bd.c.names.endpointAt[name]
		if ns := bd.c.names.endpointNS[name]; ns != "" && ns != bd.k.Namespace {
			bd.c.fail(bd.c.fs.root.file, ptr, CodeCrossNamespaceRef,
				fmt.Sprintf("Endpoint %s.%s is in namespace %q; only Endpoints of the namespace %q can be used", name, ns, ns, bd.k.Namespace))
			continue
		}
		object := bd.object("Endpoint", name)
		spec, found := bd.k.Endpoints[object]
		if !found {
			if len(b.Endpoints[name].URLs) == 0 {
				bd.notFound(CodeEndpointNotFound, "Endpoint", name, object, ptr)
			}
			continue
		}
		eb := bundle.EndpointBinding{
			URLs:        spec.URLs,
			LoadBalance: spec.LoadBalance,
			Timeout:     dur(spec.Timeout),
		}
		if spec.Image != nil {
			eb.URLs = []string{ImageEndpointURL(object, bd.k.Namespace, spec.Image.Port)}
		}
		if len(eb.URLs) == 0 {
			bd.c.fail("", "", CodeInvalidKinds, fmt.Sprintf("Endpoint %q has neither urls nor image", object))
			continue
		}
		if i := slices.IndexFunc(eb.URLs, HasUserInfo); i >= 0 {
			// The Binding is a ConfigMap, and the gateway would refuse the
			// URL quoting it whole: refused here, the URL not quoted.
			bd.c.fail("", "", CodeInvalidKinds, fmt.Sprintf("Endpoint %q: urls[%d] holds user info (credentials before '@'): an upstream URL may not carry credentials", object, i))
			continue
		}
		if r := spec.Retries; r != nil {
			eb.Retries = &bundle.Retries{Attempts: r.Attempts, PerTry: dur(r.PerTryTimeout)}
		}
		if cb := spec.CircuitBreaker; cb != nil {
			eb.CircuitBreaker = &bundle.CircuitBreaker{ConsecutiveFailures: cb.ConsecutiveFailures, BaseEjection: dur(cb.BaseEjection)}
		}
		if t := spec.TLS; t != nil {
			eb.ServerName = t.ServerName
			if t.CASecretRef != nil {
				eb.CAFile = bd.secret("Endpoint "+strconv.Quote(object), "tls.caSecretRef", t.CASecretRef, "ca.crt",
					"endpoints/"+fileName(name)+"/ca.crt", SecretFormatRaw)
			}
		}
		if bd.binding.Endpoints == nil {
			bd.binding.Endpoints = map[string]bundle.EndpointBinding{}
		}
		bd.binding.Endpoints[name] = eb
	}
}

// schemeAccepts says which Security types can serve a Bundle scheme type.
var schemeAccepts = map[string][]string{
	bundle.SchemeJWT:    {v1alpha1.SecurityJWT},
	bundle.SchemeOAuth2: {v1alpha1.SecurityOAuth2, v1alpha1.SecurityJWT},
	bundle.SchemeAPIKey: {v1alpha1.SecurityAPIKey},
	bundle.SchemeBasic:  {v1alpha1.SecurityBasic},
	bundle.SchemeMTLS:   {v1alpha1.SecurityMTLS},
}

func (bd *binder) security() {
	b := bd.c.b
	for _, name := range b.SchemeNames() {
		scheme := b.SecuritySchemes[name]
		ptr := bd.c.names.schemeAt[name]
		object := bd.object("Security", name)
		spec, found := bd.k.Security[object]
		if !found {
			bd.notFound(CodeSecurityNotFound, "Security", name, object, ptr)
			continue
		}
		if !contains(schemeAccepts[scheme.Type], spec.Type) {
			bd.c.fail(bd.c.fs.root.file, ptr, CodeSecurityMismatch, fmt.Sprintf("security scheme %q is %s in the definition but Security %q has type %s (want %s)",
				name, scheme.Type, object, spec.Type, quoteList(schemeAccepts[scheme.Type])))
			continue
		}
		owner := "Security " + strconv.Quote(object)
		dir := "security/" + fileName(name) + "/"
		if j := spec.JWT; j != nil && j.CASecretRef != nil && j.JWKSURL == "" {
			// The CRD refuses this too; Kinds read from files skip admission.
			bd.c.fail("", "", CodeInvalidKinds, fmt.Sprintf("%s: jwt.caSecretRef verifies the TLS of jwt.jwksURL, which is not set", owner))
			continue
		}
		var sb bundle.SecurityBinding
		if j := spec.JWT; j != nil && (spec.Type == v1alpha1.SecurityJWT || spec.Type == v1alpha1.SecurityOAuth2) {
			jb := &bundle.JWTBinding{Issuer: j.Issuer, Audiences: j.Audiences, JWKSURL: j.JWKSURL,
				Algorithms: j.Algorithms, Leeway: dur(j.Leeway), ClaimHeaders: j.ClaimHeaders}
			if j.CertificateSecretRef != nil {
				jb.CertificateFile = bd.secret(owner, "jwt.certificateSecretRef", j.CertificateSecretRef, "tls.crt", dir+"certificate.pem", SecretFormatRaw)
			}
			if j.HMACSecretRef != nil {
				jb.HMACSecretFile = bd.secret(owner, "jwt.hmacSecretRef", j.HMACSecretRef, "secret", dir+"hmac-secret", SecretFormatRaw)
			}
			// Its own file: an OAuth2 Security may carry oauth2.caSecretRef too,
			// which is dir+"ca.crt".
			if j.CASecretRef != nil {
				jb.CAFile = bd.secret(owner, "jwt.caSecretRef", j.CASecretRef, "ca.crt", dir+"jwks-ca.crt", SecretFormatRaw)
			}
			sb.JWT = jb
		}
		switch spec.Type {
		case v1alpha1.SecurityOAuth2:
			if o := spec.OAuth2; o != nil {
				ob := &bundle.OAuth2Binding{IntrospectionURL: o.IntrospectionURL, CacheTTL: dur(o.CacheTTL), ClaimHeaders: o.ClaimHeaders}
				if o.ClientSecretRef != nil {
					id := *o.ClientSecretRef
					id.Key = "clientId"
					sec := *o.ClientSecretRef
					sec.Key = "clientSecret"
					ob.ClientIDFile = bd.secret(owner, "oauth2.clientSecretRef", &id, "", dir+"client-id", SecretFormatRaw)
					ob.ClientSecretFile = bd.secret(owner, "oauth2.clientSecretRef", &sec, "", dir+"client-secret", SecretFormatRaw)
				}
				if o.CASecretRef != nil {
					ob.CAFile = bd.secret(owner, "oauth2.caSecretRef", o.CASecretRef, "ca.crt", dir+"ca.crt", SecretFormatRaw)
				}
				sb.OAuth2 = ob
			}
		case v1alpha1.SecurityAPIKey:
			if a := spec.APIKey; a != nil {
				ref := a.KeysSecretRef
				if ref.Namespace != "" && ref.Namespace != bd.k.Namespace {
					bd.secret(owner, "apiKey.keysSecretRef", &ref, "", "", SecretFormatAPIKeys)
					continue
				}
				// Key empty means every key of the Secret; RenderAPIKeys reads it so.
				file := dir + "keys"
				bd.secrets[file] = SecretFile{File: file, SecretName: ref.Name, Key: ref.Key, Format: SecretFormatAPIKeys}
				sb.APIKey = &bundle.APIKeyBinding{KeysFile: file}
			}
		case v1alpha1.SecurityBasic:
			if bs := spec.Basic; bs != nil {
				ref := bs.UsersSecretRef
				sb.Basic = &bundle.BasicBinding{Realm: bs.Realm,
					HtpasswdFile: bd.secret(owner, "basic.usersSecretRef", &ref, "htpasswd", dir+"htpasswd", SecretFormatRaw)}
			}
		case v1alpha1.SecurityMTLS:
			if m := spec.MTLS; m != nil {
				ref := m.ClientCASecretRef
				sb.MTLS = &bundle.MTLSBinding{ClientCAFile: bd.secret(owner, "mtls.clientCASecretRef", &ref, "ca.crt", dir+"ca.crt", SecretFormatRaw)}
			}
		}
		if bd.binding.Security == nil {
			bd.binding.Security = map[string]bundle.SecurityBinding{}
		}
		bd.binding.Security[name] = sb
	}
}

var (
	unitPeriod  = map[string]time.Duration{"": time.Minute, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour, "Day": 24 * time.Hour}
	keyNames    = map[string]string{"": bundle.KeyAPI, "API": bundle.KeyAPI, "Operation": bundle.KeyOperation, "Consumer": bundle.KeyConsumer, "ClientIP": bundle.KeyClientIP, "Header": bundle.KeyHeader}
	storeNames  = map[string]string{"": bundle.StoreLocal, "Local": bundle.StoreLocal, "Redis": bundle.StoreRedis}
	failureMode = map[string]string{"": bundle.FailOpen, "Open": bundle.FailOpen, "Closed": bundle.FailClosed}
)

func (bd *binder) rateLimits() {
	b := bd.c.b
	for _, name := range b.RateLimitNames() {
		ptr := bd.c.names.rateLimitAt[name]
		object := bd.object("RateLimit", name)
		spec, found := bd.k.RateLimits[object]
		if !found {
			if b.RateLimits[name].Default == nil {
				bd.notFound(CodeRateLimitNotFound, "RateLimit", name, object, ptr)
			}
			continue
		}
		period, okU := unitPeriod[spec.Unit]
		key, okK := keyNames[spec.Key]
		store, okS := storeNames[spec.Store]
		fm, okF := failureMode[spec.FailureMode]
		if !okU || !okK || !okS || !okF || spec.Requests < 1 {
			bd.c.fail("", "", CodeInvalidKinds, fmt.Sprintf("RateLimit %q: requests must be at least 1 and unit, key, store and failureMode take the documented values", object))
			continue
		}
		rb := bundle.RateLimitBinding{Requests: spec.Requests, Period: bundle.Duration(period), Burst: spec.Burst,
			Key: key, Header: spec.Header, Store: store, FailureMode: fm}
		if store == bundle.StoreRedis {
			redis := spec.Redis
			if redis == nil {
				redis = bd.k.Redis
			}
			if redis == nil {
				bd.c.fail("", "", CodeInvalidKinds, fmt.Sprintf("RateLimit %q has store Redis, but neither it nor the API names a Redis", object))
				continue
			}
			bd.redis(object, redis)
		}
		if bd.binding.RateLimits == nil {
			bd.binding.RateLimits = map[string]bundle.RateLimitBinding{}
		}
		bd.binding.RateLimits[name] = rb
	}
}

// redis sets the Binding's one Redis; RateLimits that name different ones
// cannot be served by one gateway.
func (bd *binder) redis(object string, r *v1alpha1.RedisRef) {
	rb := &bundle.RedisBinding{Address: r.Address, Cluster: r.Cluster}
	if bd.k.Name != "" {
		rb.KeyPrefix = bd.k.Namespace + "/" + bd.k.Name
	}
	if r.PasswordSecretRef != nil {
		rb.PasswordFile = bd.secret("RateLimit "+strconv.Quote(object), "redis.passwordSecretRef", r.PasswordSecretRef, "password", fileRedisPassword, SecretFormatRaw)
	}
	if prev := bd.binding.Redis; prev != nil {
		if *prev != *rb {
			bd.c.fail("", "", CodeInvalidKinds, fmt.Sprintf("RateLimit %q names Redis %s, but another RateLimit of this API names %s; one gateway uses one Redis", object, r.Address, prev.Address))
		}
		return
	}
	bd.binding.Redis = rb
}

func (bd *binder) server() {
	sb := &bundle.ServerBinding{}
	if ref := bd.k.TLSSecretRef; ref != nil {
		cert, key := *ref, *ref
		cert.Key, key.Key = "tls.crt", "tls.key"
		sb.TLSCertFile = bd.secret("API", "tlsSecretRef", &cert, "", fileServerCert, SecretFormatRaw)
		sb.TLSKeyFile = bd.secret("API", "tlsSecretRef", &key, "", fileServerKey, SecretFormatRaw)
	}
	if f := bd.k.Forwarding; f != nil {
		// The gateway parses them too; here a bad entry fails the compile
		// (kubectl add api, CI) rather than the gateway's start.
		if _, err := filter.ParseTrustedProxies(f.TrustedProxies); err != nil {
			bd.c.fail("", "", CodeInvalidKinds, "API forwarding.trustedProxies: "+err.Error())
		}
		sb.TrustedProxies = slices.Clone(f.TrustedProxies)
		sb.ForwardedHeader = f.ForwardedHeader
	}
	if sb.TLSCertFile != "" || len(sb.TrustedProxies) > 0 || sb.ForwardedHeader {
		bd.binding.Server = sb
	}
}
