package compile

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// nameUses records where each name is first used, for problems that name it.
type nameUses struct {
	endpointAt  map[string]string
	rateLimitAt map[string]string
	schemeAt    map[string]string
	// endpointNS holds the namespace a WSO2 "name.namespace" reference gives.
	endpointNS map[string]string
}

// declarations are what the definition itself says of names.
type declarations struct {
	endpoints  map[string]bundle.Endpoint
	endpointAt map[string]string
	rateLimits map[string]bundle.RateLimit
}

// build reads the resolved document into the Bundle: API identity, base path,
// one route per operation with the endpoint, security, rate limits and
// policies that apply to it, and the declarations the routes use.
func (c *compiler) build() {
	doc := c.doc
	c.names = nameUses{map[string]string{}, map[string]string{}, map[string]string{}, map[string]string{}}
	c.declared = declarations{map[string]bundle.Endpoint{}, map[string]string{}, map[string]bundle.RateLimit{}}

	b := &bundle.Bundle{APIVersion: bundle.APIVersion, Routes: []bundle.Route{}}
	c.b = b
	if doc.Info != nil {
		b.API.Title = doc.Info.Title
		b.API.Version = doc.Info.Version
	}
	if c.in.Version != "" {
		b.API.Version = c.in.Version
	}
	b.API.SpecVersion = c.specVersion
	b.Source.Files = make(map[string]string, len(c.order))
	for _, d := range c.order {
		b.Source.Files[c.sourceKey(d)] = sha256Hex(d.canonical)
	}

	c.declareEndpoints(doc.Extensions)
	b.API.BasePath = c.basePath()
	docLevel := c.readLevel(doc.Extensions, scope{kind: levelDoc})
	if !docLevel.securitySet && doc.Security != nil {
		docLevel.security, docLevel.securitySet = c.nativeSecurity(doc.Security, "/security"), true
	}
	b.CORS = docLevel.cors

	paths := doc.Paths.Map()
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		item := paths[p]
		if item == nil {
			continue
		}
		pathPtr := pointer("paths", p)
		pathLevel := c.readLevel(item.Extensions, scope{kind: levelPath, ptr: pathPtr, path: p})
		ops := item.Operations()
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, method := range methods {
			op := ops[method]
			opPtr := pathPtr + pointer(strings.ToLower(method))
			opLevel := c.readLevel(op.Extensions, scope{kind: levelOp, ptr: opPtr, method: method, path: p, opID: op.OperationID})
			if !opLevel.securitySet && op.Security != nil {
				opLevel.security, opLevel.securitySet = c.nativeSecurity(*op.Security, opPtr+"/security"), true
			}
			b.Routes = append(b.Routes, c.route(method, p, op, docLevel, pathLevel, opLevel))
		}
	}
	sort.SliceStable(b.Routes, func(i, j int) bool {
		if b.Routes[i].Path != b.Routes[j].Path {
			return b.Routes[i].Path < b.Routes[j].Path
		}
		return b.Routes[i].Method < b.Routes[j].Method
	})
	if len(b.Routes) == 0 {
		reason := "the definition has no operations; the gateway serves nothing"
		if len(doc.Webhooks) > 0 {
			reason += " (webhooks are calls the API makes, not requests it serves)"
		}
		c.warn(c.fs.root.file, "", CodeNoOperations, reason)
	}
	c.collectDeclarations()
}

// route combines the three levels; the most specific that says something wins.
func (c *compiler) route(method, p string, op *openapi3.Operation, levels ...level) bundle.Route {
	r := bundle.Route{
		Method:       method,
		Path:         joinPath(c.b.API.BasePath, p),
		OperationID:  op.OperationID,
		UpstreamPath: p,
		Validation:   bundle.Validation{Request: true},
		Deprecated:   op.Deprecated,
	}
	for _, l := range levels {
		if l.endpointSet {
			r.Endpoint = l.endpoint
		}
		if l.rateLimitsSet {
			r.RateLimits = l.rateLimits
		}
		if l.securitySet {
			r.Security = l.security
		}
		if l.timeoutSet {
			r.Timeout = l.timeout
		}
		if l.retries != nil {
			r.Retries = l.retries
		}
		if l.validation != nil {
			r.Validation = *l.validation
		}
	}
	// Document-level CORS is Bundle.CORS; a route carries only its own.
	for _, l := range levels[1:] {
		if l.cors != nil {
			r.CORS = l.cors
		}
	}
	if len(r.RateLimits) == 0 {
		r.RateLimits = nil
	}
	if len(r.Security) == 0 {
		r.Security = nil
	}
	return r
}

// nativeSecurity converts OpenAPI security requirements, keeping their order;
// scheme names within one requirement are sorted.
func (c *compiler) nativeSecurity(reqs openapi3.SecurityRequirements, ptr string) []bundle.SecurityRequirement {
	out := make([]bundle.SecurityRequirement, 0, len(reqs))
	for i, req := range reqs {
		alt := bundle.SecurityRequirement{}
		for _, name := range sortedKeys(req) {
			scopes := req[name]
			if len(scopes) == 0 {
				scopes = nil
			}
			at := fmt.Sprintf("%s/%d%s", ptr, i, pointer(name))
			if kind := c.roleless(name); kind != "" && scopes != nil {
				// OpenAPI 3.1 lets any scheme list roles, but the gateway checks
				// scopes only for OAuth2 and bearer tokens: roles on another
				// scheme would read as enforced and not be.
				c.fail(c.fs.root.file, at, CodeUnsupportedFeature, fmt.Sprintf(
					"security scheme %q is %s, for which the gateway cannot check the roles %s; remove them, or require an oauth2 or bearer scheme with those scopes",
					name, kind, strings.Join(scopes, ", ")))
			}
			alt = append(alt, bundle.SchemeRef{Name: name, Scopes: scopes})
			c.useScheme(name, at)
		}
		out = append(out, alt)
	}
	return out
}

// roleless names the kind of a declared scheme that carries no scopes or
// roles the gateway could check (apiKey, basic, mutualTLS), or "".
func (c *compiler) roleless(name string) string {
	if c.doc.Components == nil {
		return ""
	}
	ref := c.doc.Components.SecuritySchemes[name]
	if ref == nil || ref.Value == nil {
		return ""
	}
	switch s := ref.Value; {
	case s.Type == "apiKey":
		return "an API key"
	case s.Type == "http" && strings.EqualFold(s.Scheme, "basic"):
		return "HTTP basic"
	case s.Type == "mutualTLS":
		return "mutual TLS"
	}
	return ""
}

// checkRoutes refuses operations whose path templates match the same
// requests (/pets/{id} and /pets/{name}): a router could not tell them apart.
// It runs before the library's validation, whose report of the same conflict
// is less precise.
func (c *compiler) checkRoutes() bool {
	paths := c.doc.Paths.Map()
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	seen := map[string]string{} // method + template shape → path
	ok := true
	for _, p := range keys {
		if paths[p] == nil {
			continue
		}
		ops := paths[p].Operations()
		for _, method := range sortedKeys(ops) {
			key := method + " " + templateShape(p)
			if prev, dup := seen[key]; dup {
				c.fail(c.fs.root.file, pointer("paths", p, strings.ToLower(method)), CodeDuplicateRoute,
					fmt.Sprintf("%s %s and %s %s match the same requests; the gateway could not tell them apart", method, prev, method, p))
				ok = false
				continue
			}
			seen[key] = p
		}
	}
	return ok
}

var templateParam = regexp.MustCompile(`\{[^{}]*\}`)

// templateShape is a path template with its parameter names erased, so that
// /pets/{id} and /pets/{name}, which match the same requests, compare equal.
func templateShape(p string) string {
	return templateParam.ReplaceAllString(p, "{}")
}

func joinPath(base, p string) string {
	if base == "/" || base == "" {
		return p
	}
	if p == "/" {
		return base
	}
	return base + p
}

var serverVar = regexp.MustCompile(`\{([^{}]*)\}`)

// basePath is, in order: x-gatekiln-basepath, x-wso2-basePath (with {version}
// replaced), the path of the first server URL (variables set to their
// defaults), or "/".
func (c *compiler) basePath() string {
	doc := c.doc
	file := c.fs.root.file
	raw, from := "", ""
	if v, has := doc.Extensions[extBasePath]; has {
		s, ok := asString(v)
		if !ok {
			c.fail(file, pointer(extBasePath), CodeInvalidDefinition, extBasePath+": want a path like /v1")
			return "/"
		}
		raw, from = s, pointer(extBasePath)
	} else if v, has := doc.Extensions[wso2BasePath]; has {
		s, ok := asString(v)
		if !ok {
			c.fail(file, pointer(wso2BasePath), CodeInvalidDefinition, wso2BasePath+": want a path like /petstore/{version}")
			return "/"
		}
		version := c.b.API.Version
		raw, from = strings.ReplaceAll(s, "{version}", version), pointer(wso2BasePath)
	} else if len(doc.Servers) > 0 && doc.Servers[0] != nil {
		srv := doc.Servers[0]
		expanded := serverVar.ReplaceAllStringFunc(srv.URL, func(m string) string {
			name := m[1 : len(m)-1]
			if v, ok := srv.Variables[name]; ok && v != nil {
				return v.Default
			}
			return m
		})
		u, err := url.Parse(expanded)
		if err != nil {
			// url.Parse's error quotes the URL whole, user info included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			c.warn(file, "/servers/0/url", CodeInvalidDefinition, fmt.Sprintf("server URL %q cannot be parsed (%v); the base path is /", bundle.RedactURL(srv.URL), err))
			return "/"
		}
		raw, from = u.Path, "/servers/0/url"
	}
	bp := normalizeBasePath(raw)
	if strings.ContainsAny(bp, "{}") {
		c.fail(file, from, CodeUnsupportedFeature, fmt.Sprintf("base path %q has a template the gateway cannot route on; set %s", bp, extBasePath))
		return "/"
	}
	return bp
}

func normalizeBasePath(p string) string {
	p = "/" + strings.Trim(p, "/")
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

// collectDeclarations fills the Bundle's endpoints, schemes and rate limits
// with the names the routes use.
func (c *compiler) collectDeclarations() {
	b := c.b
	missingEndpoint := false
	usedEndpoints := map[string]bool{}
	usedSchemes := map[string]bool{}
	usedRates := map[string]bool{}
	for _, r := range b.Routes {
		if r.Endpoint == "" {
			missingEndpoint = true
		} else {
			usedEndpoints[r.Endpoint] = true
		}
		for _, alt := range r.Security {
			for _, s := range alt {
				usedSchemes[s.Name] = true
			}
		}
		for _, rl := range r.RateLimits {
			usedRates[rl] = true
		}
	}
	if missingEndpoint {
		c.warn(c.fs.root.file, "", CodeNoEndpoint, "some operations name no endpoint ("+extEndpoint+" or "+wso2Prod+"); the gateway answers them 503")
	}
	if len(usedEndpoints) > 0 {
		b.Endpoints = map[string]bundle.Endpoint{}
		for name := range usedEndpoints {
			b.Endpoints[name] = c.declared.endpoints[name]
		}
	}
	if len(usedRates) > 0 {
		b.RateLimits = map[string]bundle.RateLimit{}
		for name := range usedRates {
			b.RateLimits[name] = c.declared.rateLimits[name]
		}
	}
	if len(usedSchemes) > 0 {
		b.SecuritySchemes = map[string]bundle.SecurityScheme{}
		for _, name := range sortedKeys(usedSchemes) {
			if s, ok := c.scheme(name); ok {
				b.SecuritySchemes[name] = s
			}
		}
	}
}

// scheme converts a declared security scheme to the gateway's types.
func (c *compiler) scheme(name string) (bundle.SecurityScheme, bool) {
	file := c.fs.root.file
	var ref *openapi3.SecuritySchemeRef
	if c.doc.Components != nil {
		ref = c.doc.Components.SecuritySchemes[name]
	}
	if ref == nil || ref.Value == nil {
		c.fail(file, c.names.schemeAt[name], CodeInvalidDefinition, fmt.Sprintf("security scheme %q is not declared in components.securitySchemes", name))
		return bundle.SecurityScheme{}, false
	}
	ptr := pointer("components", "securitySchemes", name)
	if c.specVersion == "2.0" {
		ptr = pointer("securityDefinitions", name)
	}
	s := ref.Value
	switch s.Type {
	case "apiKey":
		if s.In != "header" && s.In != "query" && s.In != "cookie" {
			c.fail(file, ptr+"/in", CodeInvalidDefinition, fmt.Sprintf("security scheme %q: apiKey needs in: header, query or cookie", name))
			return bundle.SecurityScheme{}, false
		}
		return bundle.SecurityScheme{Type: bundle.SchemeAPIKey, In: s.In, Name: s.Name}, true
	case "http":
		switch strings.ToLower(s.Scheme) {
		case "bearer":
			return bundle.SecurityScheme{Type: bundle.SchemeJWT, BearerFormat: s.BearerFormat}, true
		case "basic":
			return bundle.SecurityScheme{Type: bundle.SchemeBasic}, true
		}
		c.fail(file, ptr+"/scheme", CodeUnsupportedFeature, fmt.Sprintf("security scheme %q: HTTP authentication scheme %q is not supported by the gateway (supported: bearer, basic)", name, s.Scheme))
		return bundle.SecurityScheme{}, false
	case "oauth2":
		out := bundle.SecurityScheme{Type: bundle.SchemeOAuth2}
		if f := s.Flows; f != nil {
			out.Flows = map[string]bundle.OAuthFlow{}
			for kind, flow := range map[string]*openapi3.OAuthFlow{
				"implicit": f.Implicit, "password": f.Password,
				"clientCredentials": f.ClientCredentials, "authorizationCode": f.AuthorizationCode,
			} {
				if flow != nil {
					out.Flows[kind] = bundle.OAuthFlow{AuthorizationURL: flow.AuthorizationURL, TokenURL: flow.TokenURL, Scopes: flow.Scopes}
				}
			}
			if len(out.Flows) == 0 {
				out.Flows = nil
			}
		}
		return out, true
	case "openIdConnect":
		return bundle.SecurityScheme{Type: bundle.SchemeJWT, OpenIDConnectURL: s.OpenIdConnectUrl}, true
	case "mutualTLS":
		return bundle.SecurityScheme{Type: bundle.SchemeMTLS}, true
	}
	c.fail(file, ptr+"/type", CodeUnsupportedFeature, fmt.Sprintf("security scheme %q: type %q is not supported by the gateway", name, s.Type))
	return bundle.SecurityScheme{}, false
}
