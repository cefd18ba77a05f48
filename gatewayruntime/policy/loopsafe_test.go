package policy

import (
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// TestLoopSafe: which routes' policies may run on the gateway's event loop
// (they only compute) and which must leave it (they wait on the network or
// burn milliseconds of CPU).
func TestLoopSafe(t *testing.T) {
	api := &bundle.Bundle{SecuritySchemes: map[string]bundle.SecurityScheme{
		"key": {Type: bundle.SchemeAPIKey}, "jwt": {Type: bundle.SchemeJWT},
		"oauth": {Type: bundle.SchemeOAuth2}, "basic": {Type: bundle.SchemeBasic},
	}}
	req := func(names ...string) []bundle.SecurityRequirement {
		var alt bundle.SecurityRequirement
		for _, n := range names {
			alt = append(alt, bundle.SchemeRef{Name: n})
		}
		return []bundle.SecurityRequirement{alt}
	}
	static := &bundle.JWTBinding{Issuer: "i", CertificateFile: "k.pem"}
	b := &bundle.Binding{
		Security: map[string]bundle.SecurityBinding{
			"key": {APIKey: &bundle.APIKeyBinding{KeysFile: "keys"}}, "jwt": {JWT: static},
			"oauth": {OAuth2: &bundle.OAuth2Binding{IntrospectionURL: "https://idp/introspect"}},
			"basic": {Basic: &bundle.BasicBinding{}},
		},
		RateLimits: map[string]bundle.RateLimitBinding{"local": {Requests: 1, Period: 1}, "global": {Requests: 1, Period: 1, Store: bundle.StoreRedis}},
	}
	jwks := &bundle.Binding{Security: map[string]bundle.SecurityBinding{"jwt": {JWT: &bundle.JWTBinding{Issuer: "i", JWKSURL: "https://idp/jwks"}}}}
	for _, tc := range []struct {
		name    string
		factory string
		route   bundle.Route
		binding *bundle.Binding
		want    bool
	}{
		{"api key", "security", bundle.Route{Security: req("key")}, b, true},
		{"jwt with the binding's keys", "security", bundle.Route{Security: req("jwt", "key")}, b, true},
		{"jwt from a jwks url", "security", bundle.Route{Security: req("jwt")}, jwks, false},
		{"oauth2 introspection", "security", bundle.Route{Security: req("oauth")}, b, false},
		{"basic (bcrypt)", "security", bundle.Route{Security: append(req("key"), req("basic")...)}, b, false},
		{"local rate limit", "ratelimit", bundle.Route{RateLimits: []string{"local"}}, b, true},
		{"redis rate limit", "ratelimit", bundle.Route{RateLimits: []string{"local", "global"}}, b, false},
		{"cors", "cors", bundle.Route{}, b, true},
		{"validation", "validation", bundle.Route{}, b, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range Factories() {
				if f.Name() != tc.factory {
					continue
				}
				ls, ok := f.(filter.LoopSafe)
				if !ok {
					t.Fatalf("%s does not say whether it is loop-safe", f.Name())
				}
				if got := ls.LoopSafe(api, &tc.route, tc.binding); got != tc.want {
					t.Fatalf("LoopSafe = %v, want %v", got, tc.want)
				}
				return
			}
			t.Fatalf("no %s factory", tc.factory)
		})
	}
}
