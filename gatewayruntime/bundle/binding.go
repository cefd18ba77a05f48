package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// BindingAPIVersion is the schema version written into every Binding.
const BindingAPIVersion = "gatekiln.io/binding/v1"

// BindingDir is where the Binding is mounted in a gateway Pod; BindingFile is
// the document inside it. Secret values are separate files in the same
// directory, named by the *File fields (paths relative to the directory).
const (
	BindingDir  = "/etc/gatekiln/binding"
	BindingFile = "binding.json"
)

// Binding holds the per-environment values for the names a Bundle uses. Secret
// material never appears inline: only as file names next to binding.json.
type Binding struct {
	APIVersion string                      `json:"apiVersion"`
	Endpoints  map[string]EndpointBinding  `json:"endpoints,omitempty"`
	Security   map[string]SecurityBinding  `json:"security,omitempty"`
	RateLimits map[string]RateLimitBinding `json:"rateLimits,omitempty"`
	Server     *ServerBinding              `json:"server,omitempty"`
	Redis      *RedisBinding               `json:"redis,omitempty"`
}

// EndpointBinding says where an endpoint lives in this environment.
type EndpointBinding struct {
	URLs []string `json:"urls"`
	// CAFile verifies upstream TLS; empty means the system roots.
	CAFile string `json:"caFile,omitempty"`
	// ServerName overrides the TLS server name sent upstream.
	ServerName string `json:"serverName,omitempty"`
	// Policy from the Endpoint object; overrides what the definition states.
	Timeout        Duration        `json:"timeout,omitempty"`
	Retries        *Retries        `json:"retries,omitempty"`
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	LoadBalance    string          `json:"loadBalance,omitempty"`
}

// SecurityBinding holds a scheme's environment values; exactly one field is set,
// matching the Bundle scheme's type.
type SecurityBinding struct {
	JWT    *JWTBinding    `json:"jwt,omitempty"`
	OAuth2 *OAuth2Binding `json:"oauth2,omitempty"`
	APIKey *APIKeyBinding `json:"apiKey,omitempty"`
	Basic  *BasicBinding  `json:"basic,omitempty"`
	MTLS   *MTLSBinding   `json:"mtls,omitempty"`
}

// JWTBinding verifies bearer JWTs.
type JWTBinding struct {
	Issuer    string   `json:"issuer,omitempty"`
	Audiences []string `json:"audiences,omitempty"`
	JWKSURL   string   `json:"jwksUrl,omitempty"`
	// CAFile verifies the JWKS URL's TLS; empty means the system roots.
	CAFile string `json:"caFile,omitempty"`
	// CertificateFile holds PEM certificates or public keys.
	CertificateFile string `json:"certificateFile,omitempty"`
	// HMACSecretFile enables HS* algorithms; only set when the Security object asks.
	HMACSecretFile string `json:"hmacSecretFile,omitempty"`
	// Algorithms restricts accepted algorithms; empty means those the keys allow.
	Algorithms []string `json:"algorithms,omitempty"`
	Leeway     Duration `json:"leeway,omitempty"`
	// ClaimHeaders forwards claims upstream: claim name → request header.
	ClaimHeaders map[string]string `json:"claimHeaders,omitempty"`
}

// OAuth2Binding verifies opaque tokens by RFC 7662 introspection.
type OAuth2Binding struct {
	IntrospectionURL string `json:"introspectionUrl"`
	ClientIDFile     string `json:"clientIdFile,omitempty"`
	ClientSecretFile string `json:"clientSecretFile,omitempty"`
	CAFile           string `json:"caFile,omitempty"`
	// CacheTTL caps how long an introspection result is reused (never past token expiry).
	CacheTTL     Duration          `json:"cacheTtl,omitempty"`
	ClaimHeaders map[string]string `json:"claimHeaders,omitempty"`
}

// APIKeyBinding points at a file of "id:sha256hex" lines, one key per line.
type APIKeyBinding struct {
	KeysFile string `json:"keysFile"`
}

// BasicBinding points at an htpasswd file of bcrypt entries.
type BasicBinding struct {
	HtpasswdFile string `json:"htpasswdFile"`
	Realm        string `json:"realm,omitempty"`
}

// MTLSBinding names the CA that client certificates must chain to.
type MTLSBinding struct {
	ClientCAFile string `json:"clientCaFile"`
}

// Rate-limit keys and stores.
const (
	KeyAPI       = "api"
	KeyOperation = "operation"
	KeyConsumer  = "consumer"
	KeyClientIP  = "clientIP"
	KeyHeader    = "header"

	StoreLocal = "local"
	StoreRedis = "redis"

	FailOpen   = "open"
	FailClosed = "closed"
)

// RateLimitBinding gives a policy its numbers in this environment.
type RateLimitBinding struct {
	Requests int64    `json:"requests"`
	Period   Duration `json:"period"`
	Burst    int64    `json:"burst,omitempty"`
	Key      string   `json:"key,omitempty"`
	Header   string   `json:"header,omitempty"`
	Store    string   `json:"store,omitempty"`
	// FailureMode applies when the store is unreachable: "open" (default) or "closed".
	FailureMode string `json:"failureMode,omitempty"`
}

// ServerBinding configures the gateway's own listener.
type ServerBinding struct {
	TLSCertFile  string `json:"tlsCertFile,omitempty"`
	TLSKeyFile   string `json:"tlsKeyFile,omitempty"`
	ClientCAFile string `json:"clientCaFile,omitempty"`
	// TrustedProxies lists CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `json:"trustedProxies,omitempty"`
	// ForwardedHeader: send the RFC 7239 Forwarded field to upstreams too
	// (X-Forwarded-For, -Host and -Proto are always sent).
	ForwardedHeader bool `json:"forwardedHeader,omitempty"`
}

// RedisBinding locates the store for global rate limits.
type RedisBinding struct {
	Address      string `json:"address"`
	PasswordFile string `json:"passwordFile,omitempty"`
	DB           int    `json:"db,omitempty"`
	// Cluster says Address is a node (or the configuration endpoint) of a
	// Redis Cluster: the gateway finds the other nodes from it, and keeps
	// each API's buckets in one hash slot.
	Cluster bool `json:"cluster,omitempty"`
	// KeyPrefix keeps this API's keys apart in a Redis other APIs share:
	// two APIs (or environments) built from the same definition have the
	// same Bundle, so the Bundle alone cannot tell their buckets apart. The
	// operator sets it to the API's namespace/name.
	KeyPrefix string `json:"keyPrefix,omitempty"`
}

// Marshal returns the Binding's canonical bytes.
func (b *Binding) Marshal() ([]byte, error) { return Canonical(b) }

// ParseBinding decodes Binding bytes.
func ParseBinding(data []byte) (*Binding, error) {
	var b Binding
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("decode binding: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		// Two objects, or one cut and pasted twice: not one Binding.
		return nil, errors.New("decode binding: data after the binding object")
	}
	if b.APIVersion != BindingAPIVersion {
		return nil, fmt.Errorf("binding apiVersion %q: want %q", b.APIVersion, BindingAPIVersion)
	}
	if r := b.Redis; r != nil && r.Cluster && r.DB != 0 {
		return nil, fmt.Errorf("binding redis: a Redis Cluster has only database 0, not db %d", r.DB)
	}
	return &b, nil
}

// LoadBinding reads dir/binding.json. A missing file is an empty Binding, so a
// Bundle that needs nothing from its environment runs without one.
func LoadBinding(dir string) (*Binding, error) {
	data, err := os.ReadFile(filepath.Join(dir, BindingFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Binding{APIVersion: BindingAPIVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read binding: %w", err)
	}
	b, err := ParseBinding(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, BindingFile), err)
	}
	return b, nil
}

// Missing lists, by name, every value the Bundle needs that the Binding lacks.
// The gateway refuses readiness while this is non-empty. An endpoint with
// default URLs in the Bundle needs nothing from the Binding; a rate-limit policy
// with an inline default neither.
func (b *Binding) Missing(bd *Bundle) []string {
	var missing []string
	used := usedNames(bd)
	for _, name := range bd.EndpointNames() {
		if !used.endpoints[name] {
			continue
		}
		if eb, ok := b.Endpoints[name]; ok && len(eb.URLs) > 0 {
			continue
		}
		if len(bd.Endpoints[name].URLs) > 0 {
			continue
		}
		missing = append(missing, "endpoint "+name+": no URLs")
	}
	for _, name := range bd.SchemeNames() {
		if !used.schemes[name] {
			continue
		}
		s := bd.SecuritySchemes[name]
		sb, ok := b.Security[name]
		if !ok {
			missing = append(missing, "security "+name+": no values")
			continue
		}
		if msg := sb.lacks(s.Type); msg != "" {
			missing = append(missing, "security "+name+": "+msg)
		}
	}
	for _, name := range bd.RateLimitNames() {
		if !used.rateLimits[name] {
			continue
		}
		if rb, ok := b.RateLimits[name]; ok && rb.Requests > 0 && rb.Period > 0 {
			continue
		}
		if bd.RateLimits[name].Default != nil {
			continue
		}
		missing = append(missing, "rate limit "+name+": no rate")
	}
	for name, rb := range b.RateLimits {
		if rb.Store == StoreRedis && (b.Redis == nil || b.Redis.Address == "") {
			missing = append(missing, "rate limit "+name+": store redis but no redis address")
		}
	}
	return missing
}

func (sb SecurityBinding) lacks(typ string) string {
	switch typ {
	case SchemeJWT:
		if sb.JWT == nil {
			return "needs jwt values"
		}
		if sb.JWT.JWKSURL == "" && sb.JWT.CertificateFile == "" && sb.JWT.HMACSecretFile == "" {
			return "jwt needs a JWKS URL, a certificate or an HMAC secret"
		}
	case SchemeOAuth2:
		// An OAuth2 scheme is served either by introspection or as JWT.
		if sb.OAuth2 == nil && sb.JWT == nil {
			return "needs oauth2 introspection or jwt values"
		}
	case SchemeAPIKey:
		if sb.APIKey == nil || sb.APIKey.KeysFile == "" {
			return "needs an API key file"
		}
	case SchemeBasic:
		if sb.Basic == nil || sb.Basic.HtpasswdFile == "" {
			return "needs an htpasswd file"
		}
	case SchemeMTLS:
		if sb.MTLS == nil || sb.MTLS.ClientCAFile == "" {
			return "needs a client CA"
		}
	}
	return ""
}

type names struct{ endpoints, schemes, rateLimits map[string]bool }

func usedNames(bd *Bundle) names {
	n := names{map[string]bool{}, map[string]bool{}, map[string]bool{}}
	for _, r := range bd.Routes {
		if r.Endpoint != "" {
			n.endpoints[r.Endpoint] = true
		}
		for _, alt := range r.Security {
			for _, s := range alt {
				n.schemes[s.Name] = true
			}
		}
		for _, rl := range r.RateLimits {
			n.rateLimits[rl] = true
		}
	}
	return n
}

// SecretFiles lists every file name the Binding refers to, for the operator to
// project from Secrets. Names are sorted and unique.
func (b *Binding) SecretFiles() []string {
	set := map[string]bool{}
	add := func(s string) {
		if s != "" {
			set[strings.TrimPrefix(s, "./")] = true
		}
	}
	for _, e := range b.Endpoints {
		add(e.CAFile)
	}
	for _, s := range b.Security {
		if s.JWT != nil {
			add(s.JWT.CertificateFile)
			add(s.JWT.HMACSecretFile)
			add(s.JWT.CAFile)
		}
		if s.OAuth2 != nil {
			add(s.OAuth2.ClientIDFile)
			add(s.OAuth2.ClientSecretFile)
			add(s.OAuth2.CAFile)
		}
		if s.APIKey != nil {
			add(s.APIKey.KeysFile)
		}
		if s.Basic != nil {
			add(s.Basic.HtpasswdFile)
		}
		if s.MTLS != nil {
			add(s.MTLS.ClientCAFile)
		}
	}
	if b.Server != nil {
		add(b.Server.TLSCertFile)
		add(b.Server.TLSKeyFile)
		add(b.Server.ClientCAFile)
	}
	if b.Redis != nil {
		add(b.Redis.PasswordFile)
	}
	return sortedKeys(set)
}
