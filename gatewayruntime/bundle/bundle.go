// Package bundle holds the two documents that connect build and run: the Bundle,
// baked into the gateway image, and the Binding, mounted next to it at run time.
//
// The Bundle is a pure function of the API definition files (plus the compiler
// version and the runtime base image): it names endpoints, security schemes and
// rate-limit policies, but never says where an endpoint lives, which keys are valid
// or how many requests a policy allows. Those per-environment values are in the
// Binding. The gateway runtime owns both schemas; the builder writes them.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// APIVersion is the schema version written into every Bundle.
const APIVersion = "gatekiln.io/bundle/v1"

// Path is where the Bundle lives inside a gateway image.
const Path = "/etc/gatekiln/bundle.json"

// Bundle is the compiled, environment-independent description of one API.
type Bundle struct {
	APIVersion string `json:"apiVersion"`
	API        API    `json:"api"`
	// Source records the sha256 of each input document's canonical JSON form.
	Source Source `json:"source"`
	// OpenAPI is the resolved OpenAPI 3.x document (Swagger 2.0 converted),
	// in canonical JSON. The gateway uses it for request validation.
	OpenAPI json.RawMessage `json:"openapi"`
	// Routes has one entry per operation, sorted by path then method.
	Routes []Route `json:"routes"`
	// Endpoints maps an endpoint name to what the definition says of it.
	Endpoints map[string]Endpoint `json:"endpoints,omitempty"`
	// SecuritySchemes maps a scheme name to its type and definition-side settings.
	SecuritySchemes map[string]SecurityScheme `json:"securitySchemes,omitempty"`
	// RateLimits maps a policy name to the inline default the definition gives, if any.
	RateLimits map[string]RateLimit `json:"rateLimits,omitempty"`
	// CORS is the document-level CORS policy; a route's own CORS overrides it.
	CORS *CORS `json:"cors,omitempty"`
}

// API identifies the definition.
type API struct {
	Title    string `json:"title"`
	Version  string `json:"version"`
	BasePath string `json:"basePath"`
	// SpecVersion is the definition's own version line ("2.0", "3.0.3", "3.1.0").
	SpecVersion string `json:"specVersion"`
}

// Source fingerprints the inputs. The root document is keyed by "" so that the
// name the user gave the root file does not change the Bundle; other files are
// keyed by their path relative to the root.
type Source struct {
	Files map[string]string `json:"files"`
}

// Route is one operation the gateway serves.
type Route struct {
	Method string `json:"method"`
	// Path is the full path template with the base path applied, e.g. /v1/pets/{id}.
	Path        string `json:"path"`
	OperationID string `json:"operationId,omitempty"`
	// UpstreamPath is the template sent upstream (Path without the base path,
	// prefixed by the endpoint URL's own path at run time).
	UpstreamPath string `json:"upstreamPath"`
	// Endpoint names the entry of Endpoints (and of the Binding) this route proxies to.
	// Empty means no endpoint: the gateway answers 503 with a clear problem.
	Endpoint string `json:"endpoint,omitempty"`
	// Security lists alternatives; each alternative is an AND-set. Nil or empty: public.
	Security []SecurityRequirement `json:"security,omitempty"`
	// RateLimits names the policies that apply, all of which must admit the request.
	RateLimits []string   `json:"rateLimits,omitempty"`
	Validation Validation `json:"validation"`
	Timeout    Duration   `json:"timeout,omitempty"`
	Retries    *Retries   `json:"retries,omitempty"`
	CORS       *CORS      `json:"cors,omitempty"`
	Deprecated bool       `json:"deprecated,omitempty"`
}

// SecurityRequirement is one alternative: every scheme in it must pass.
type SecurityRequirement []SchemeRef

// SchemeRef names a security scheme and the scopes the operation requires of it.
type SchemeRef struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes,omitempty"`
}

// Validation switches request (and optionally response) validation for a route.
type Validation struct {
	Request  bool `json:"request"`
	Response bool `json:"response,omitempty"`
	// MaxBodyBytes bounds the request body; 0 means the gateway default.
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty"`
}

// Retries is a retry policy for idempotent requests.
type Retries struct {
	Attempts int      `json:"attempts"`
	PerTry   Duration `json:"perTryTimeout,omitempty"`
	// On lists upstream conditions that trigger a retry: "5xx", "connect-failure", "reset".
	On []string `json:"on,omitempty"`
}

// CircuitBreaker ejects an upstream URL after consecutive failures.
type CircuitBreaker struct {
	ConsecutiveFailures int      `json:"consecutiveFailures"`
	Interval            Duration `json:"interval,omitempty"`
	BaseEjection        Duration `json:"baseEjection,omitempty"`
	MaxRequests         int      `json:"maxRequests,omitempty"`
}

// CORS is a CORS policy answered by the gateway.
type CORS struct {
	AllowOrigins     []string `json:"allowOrigins,omitempty"`
	AllowMethods     []string `json:"allowMethods,omitempty"`
	AllowHeaders     []string `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string `json:"exposeHeaders,omitempty"`
	AllowCredentials bool     `json:"allowCredentials,omitempty"`
	MaxAge           Duration `json:"maxAge,omitempty"`
}

// Endpoint is what the definition says about an upstream. URLs given here are
// defaults; the Binding's URLs win.
type Endpoint struct {
	URLs []string `json:"urls,omitempty"`
	// LoadBalance is "round-robin" (default) or "least-request".
	LoadBalance    string          `json:"loadBalance,omitempty"`
	Timeout        Duration        `json:"timeout,omitempty"`
	Retries        *Retries        `json:"retries,omitempty"`
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
}

// Security scheme types.
const (
	SchemeJWT    = "jwt"
	SchemeOAuth2 = "oauth2"
	SchemeAPIKey = "apiKey"
	SchemeBasic  = "basic"
	SchemeMTLS   = "mtls"
)

// SecurityScheme is a scheme as the definition states it.
type SecurityScheme struct {
	Type string `json:"type"`
	// In and Name locate an API key: in "header", "query" or "cookie".
	In   string `json:"in,omitempty"`
	Name string `json:"name,omitempty"`
	// BearerFormat is informative ("JWT").
	BearerFormat string `json:"bearerFormat,omitempty"`
	// Flows lists the OAuth2 flows with their scopes.
	Flows map[string]OAuthFlow `json:"flows,omitempty"`
	// OpenIDConnectURL is kept for openIdConnect schemes (verified as JWT).
	OpenIDConnectURL string `json:"openIdConnectUrl,omitempty"`
}

// OAuthFlow is one OAuth2 flow from the definition.
type OAuthFlow struct {
	AuthorizationURL string            `json:"authorizationUrl,omitempty"`
	TokenURL         string            `json:"tokenUrl,omitempty"`
	Scopes           map[string]string `json:"scopes,omitempty"`
}

// RateLimit is a policy named by the definition, with an optional inline default.
type RateLimit struct {
	Default *Rate `json:"default,omitempty"`
}

// Rate is requests per period with a burst allowance.
type Rate struct {
	Requests int64    `json:"requests"`
	Period   Duration `json:"period"`
	Burst    int64    `json:"burst,omitempty"`
}

// Validate reports every structural problem of the Bundle at once.
func (b *Bundle) Validate() error {
	var errs []error
	if b.APIVersion != APIVersion {
		errs = append(errs, fmt.Errorf("apiVersion %q: want %q", b.APIVersion, APIVersion))
	}
	if !strings.HasPrefix(b.API.BasePath, "/") {
		errs = append(errs, fmt.Errorf("api.basePath %q: must start with /", b.API.BasePath))
	}
	if len(b.OpenAPI) == 0 {
		errs = append(errs, errors.New("openapi: missing"))
	}
	seen := map[string]bool{}
	for i, r := range b.Routes {
		key := r.Method + " " + r.Path
		if seen[key] {
			errs = append(errs, fmt.Errorf("routes[%d]: duplicate %s", i, key))
		}
		seen[key] = true
		if r.Endpoint != "" {
			if _, ok := b.Endpoints[r.Endpoint]; !ok {
				errs = append(errs, fmt.Errorf("routes[%d] %s: endpoint %q not declared", i, key, r.Endpoint))
			}
		}
		for _, alt := range r.Security {
			for _, s := range alt {
				if _, ok := b.SecuritySchemes[s.Name]; !ok {
					errs = append(errs, fmt.Errorf("routes[%d] %s: security scheme %q not declared", i, key, s.Name))
				}
			}
		}
		for _, rl := range r.RateLimits {
			if _, ok := b.RateLimits[rl]; !ok {
				errs = append(errs, fmt.Errorf("routes[%d] %s: rate limit %q not declared", i, key, rl))
			}
		}
	}
	for name, s := range b.SecuritySchemes {
		switch s.Type {
		case SchemeJWT, SchemeOAuth2, SchemeBasic, SchemeMTLS:
		case SchemeAPIKey:
			if s.Name == "" || (s.In != "header" && s.In != "query" && s.In != "cookie") {
				errs = append(errs, fmt.Errorf("securitySchemes.%s: apiKey needs in (header|query|cookie) and name", name))
			}
		default:
			errs = append(errs, fmt.Errorf("securitySchemes.%s: unknown type %q", name, s.Type))
		}
	}
	return errors.Join(errs...)
}

// SchemeNames returns the sorted names of the security schemes routes use.
func (b *Bundle) SchemeNames() []string { return sortedKeys(b.SecuritySchemes) }

// EndpointNames returns the sorted endpoint names.
func (b *Bundle) EndpointNames() []string { return sortedKeys(b.Endpoints) }

// RateLimitNames returns the sorted rate-limit policy names.
func (b *Bundle) RateLimitNames() []string { return sortedKeys(b.RateLimits) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
