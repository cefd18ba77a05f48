package compile

import (
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Extensions the compiler reads. x-gatekiln-* are ours; x-wso2-* are the WSO2
// API operator's, read so its users' definitions compile unchanged. Where an
// extension may appear at the document, a path item and an operation, the most
// specific one that is present wins (lists are replaced, not merged).
//
//	x-gatekiln-basepath   "/v1" (document; else x-wso2-basePath, else the first server URL's path)
//	x-gatekiln-endpoint   an Endpoint name, or {name?, urls, loadBalance, timeout, retries, circuitBreaker}
//	x-gatekiln-endpoints  {name: {urls, ...}} declarations (document)
//	x-gatekiln-ratelimit  a RateLimit name, {name?, requests, unit|period, burst}, or a list; [] is none
//	x-gatekiln-security   a scheme name, a list of names (alternatives) or [{scheme: [scopes]}]; [] is public
//	x-gatekiln-cors       {allowOrigins, allowMethods, allowHeaders, exposeHeaders, allowCredentials, maxAge}
//	x-gatekiln-timeout    "5s" or seconds
//	x-gatekiln-retries    attempts, or {attempts, perTryTimeout, on: [5xx, connect-failure, reset]}
//	x-gatekiln-validate   true/false (requests), or {request, response, maxBodyBytes}; requests are validated by default
//
// An inline declaration without a name is called "default" at the document,
// after the path at a path item, after the operationId (else method and path)
// at an operation.
const (
	extBasePath   = "x-gatekiln-basepath"
	extEndpoint   = "x-gatekiln-endpoint"
	extEndpoints  = "x-gatekiln-endpoints"
	extRateLimit  = "x-gatekiln-ratelimit"
	extSecurity   = "x-gatekiln-security"
	extCORS       = "x-gatekiln-cors"
	extTimeout    = "x-gatekiln-timeout"
	extRetries    = "x-gatekiln-retries"
	extValidate   = "x-gatekiln-validate"
	wso2BasePath  = "x-wso2-basePath"
	wso2Prod      = "x-wso2-production-endpoints"
	wso2Endpoints = "x-wso2-endpoints"
	wso2Sandbox   = "x-wso2-sandbox-endpoints"
	wso2Tier      = "x-wso2-throttling-tier"
	wso2CORS      = "x-wso2-cors"
	wso2NoSec     = "x-wso2-disable-security"
)

type levelKind int

const (
	levelDoc levelKind = iota
	levelPath
	levelOp
)

// extensionLevels says where each extension is read.
var extensionLevels = map[string][]levelKind{
	extBasePath:   {levelDoc},
	extEndpoint:   {levelDoc, levelPath, levelOp},
	extEndpoints:  {levelDoc},
	extRateLimit:  {levelDoc, levelPath, levelOp},
	extSecurity:   {levelDoc, levelPath, levelOp},
	extCORS:       {levelDoc, levelPath, levelOp},
	extTimeout:    {levelDoc, levelPath, levelOp},
	extRetries:    {levelDoc, levelPath, levelOp},
	extValidate:   {levelDoc, levelPath, levelOp},
	wso2BasePath:  {levelDoc},
	wso2Prod:      {levelDoc, levelPath, levelOp},
	wso2Endpoints: {levelDoc},
	wso2Tier:      {levelDoc, levelPath, levelOp},
	wso2CORS:      {levelDoc, levelPath, levelOp},
	wso2NoSec:     {levelOp},
}

// level is what one place (the document, a path item, an operation) says.
// Nil pointers and false flags mean "not said here": the most specific level
// that says something wins.
type level struct {
	endpoint      string
	endpointSet   bool
	rateLimits    []string
	rateLimitsSet bool
	security      []bundle.SecurityRequirement
	securitySet   bool
	cors          *bundle.CORS
	timeout       bundle.Duration
	timeoutSet    bool
	retries       *bundle.Retries
	validation    *bundle.Validation
}

// scope names the place a level is read from, for problems and derived names.
type scope struct {
	kind   levelKind
	ptr    string // JSON pointer of the object holding the extensions
	method string
	path   string
	opID   string
}

// derived is the name given to an inline declaration without one: "default"
// for the document, else from the operationId or the path.
func (s scope) derived() string {
	switch s.kind {
	case levelPath:
		return derivedName(s.path)
	case levelOp:
		if s.opID != "" {
			return derivedName(s.opID)
		}
		return derivedName(strings.ToLower(s.method), s.path)
	}
	return "default"
}

// readLevel reads the extensions at one scope. It declares inline endpoints
// and rate limits as it meets them.
func (c *compiler) readLevel(ext map[string]any, sc scope) level {
	var l level
	file := c.fs.root.file
	keys := make([]string, 0, len(ext))
	for k := range ext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := ext[k]
		ptr := sc.ptr + pointer(k)
		levels, known := extensionLevels[k]
		if !known {
			switch {
			case k == wso2Sandbox:
				c.warn(file, ptr, CodeIgnoredExtension, k+" is read but not honoured: the gateway serves production endpoints only")
			case strings.HasPrefix(k, "x-wso2-"):
				c.warn(file, ptr, CodeIgnoredExtension, k+" is a WSO2 extension the gateway cannot honour; it is ignored")
			case strings.HasPrefix(k, "x-gatekiln-"):
				c.warn(file, ptr, CodeIgnoredExtension, k+" is not a Gatekiln extension (known: "+strings.Join(knownGatekiln(), ", ")+"); it is ignored")
			}
			continue
		}
		if !hasLevel(levels, sc.kind) {
			c.warn(file, ptr, CodeIgnoredExtension, k+" is not read here ("+levelNames(levels)+" only); it is ignored")
			continue
		}
		switch k {
		case extBasePath, wso2BasePath, extEndpoints, wso2Endpoints:
			// Read by the document-wide passes.
		case extEndpoint:
			if name, ok := c.gatekilnEndpoint(v, sc, ptr); ok {
				l.endpoint, l.endpointSet = name, true
			}
		case wso2Prod:
			if _, has := ext[extEndpoint]; has {
				c.warn(file, ptr, CodeIgnoredExtension, k+" is ignored: "+extEndpoint+" is set at the same place and wins")
				continue
			}
			if name, ok := c.wso2Endpoint(v, sc, ptr); ok {
				l.endpoint, l.endpointSet = name, true
			}
		case extRateLimit:
			if names, ok := c.gatekilnRateLimits(v, sc, ptr); ok {
				l.rateLimits, l.rateLimitsSet = names, true
			}
		case wso2Tier:
			if _, has := ext[extRateLimit]; has {
				c.warn(file, ptr, CodeIgnoredExtension, k+" is ignored: "+extRateLimit+" is set at the same place and wins")
				continue
			}
			tier, ok := asString(v)
			if !ok || tier == "" {
				c.fail(file, ptr, CodeInvalidDefinition, k+": want a RateLimit name, got "+describe(v))
				continue
			}
			l.rateLimitsSet = true
			// WSO2's built-in "Unlimited" tier means no limit at all.
			if !strings.EqualFold(tier, "Unlimited") {
				l.rateLimits = []string{tier}
				c.useRateLimit(tier, nil, ptr)
			}
		case extSecurity:
			if reqs, ok := c.gatekilnSecurity(v, ptr); ok {
				l.security, l.securitySet = reqs, true
			}
		case wso2NoSec:
			if b, ok := asBool(v); !ok {
				c.fail(file, ptr, CodeInvalidDefinition, k+": want true or false, got "+describe(v))
			} else if b {
				l.security, l.securitySet = []bundle.SecurityRequirement{}, true
			}
		case extCORS:
			if cors, ok := c.gatekilnCORS(v, ptr); ok {
				l.cors = cors
			}
		case wso2CORS:
			if _, has := ext[extCORS]; has {
				c.warn(file, ptr, CodeIgnoredExtension, k+" is ignored: "+extCORS+" is set at the same place and wins")
				continue
			}
			if cors, ok := c.wso2CORS(v, ptr); ok {
				l.cors = cors
			}
		case extTimeout:
			d, err := asDuration(v)
			if err != nil {
				c.fail(file, ptr, CodeInvalidDefinition, k+": "+err.Error())
				continue
			}
			l.timeout, l.timeoutSet = d, true
		case extRetries:
			if r, ok := c.retries(v, ptr, k); ok {
				l.retries = r
			}
		case extValidate:
			if val, ok := c.validation(v, ptr); ok {
				l.validation = val
			}
		}
	}
	return l
}

func hasLevel(levels []levelKind, k levelKind) bool {
	for _, l := range levels {
		if l == k {
			return true
		}
	}
	return false
}

func levelNames(levels []levelKind) string {
	names := []string{"document", "path item", "operation"}
	out := make([]string, len(levels))
	for i, l := range levels {
		out[i] = names[l]
	}
	return strings.Join(out, ", ")
}

func knownGatekiln() []string {
	var out []string
	for k := range extensionLevels {
		if strings.HasPrefix(k, "x-gatekiln-") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Endpoints.

// gatekilnEndpoint reads x-gatekiln-endpoint: a name (of an Endpoint object or
// of an x-gatekiln-endpoints / x-wso2-endpoints entry), or an inline
// declaration {name?, urls, loadBalance, timeout, retries, circuitBreaker}.
func (c *compiler) gatekilnEndpoint(v any, sc scope, ptr string) (string, bool) {
	switch t := v.(type) {
	case string:
		if t == "" {
			c.fail(c.fs.root.file, ptr, CodeInvalidDefinition, extEndpoint+": the name is empty")
			return "", false
		}
		c.useEndpoint(t, ptr)
		return t, true
	case map[string]any:
		name := sc.derived()
		if n, ok := t["name"]; ok {
			s, ok := asString(n)
			if !ok || s == "" {
				c.fail(c.fs.root.file, ptr+"/name", CodeInvalidDefinition, extEndpoint+".name: want a non-empty string")
				return "", false
			}
			name = s
		}
		ep, ok := c.endpointDecl(t, ptr, extEndpoint, "name")
		if !ok {
			return "", false
		}
		c.declareEndpoint(name, ep, ptr)
		c.useEndpoint(name, ptr)
		return name, true
	}
	c.fail(c.fs.root.file, ptr, CodeInvalidDefinition, extEndpoint+": want an endpoint name or a mapping with urls, got "+describe(v))
	return "", false
}

// endpointDecl reads {urls, loadBalance, timeout, retries, circuitBreaker}.
func (c *compiler) endpointDecl(m map[string]any, ptr, what string, extra ...string) (bundle.Endpoint, bool) {
	var ep bundle.Endpoint
	file := c.fs.root.file
	ok := true
	for _, f := range unknownFields(m, append([]string{"urls", "loadBalance", "timeout", "retries", "circuitBreaker"}, extra...)...) {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, what+"."+f+" is not a known field; it is ignored")
	}
	if u, has := m["urls"]; has {
		urls, good := c.urls(u, ptr+"/urls", what)
		ok = ok && good
		ep.URLs = urls
	}
	if lb, has := m["loadBalance"]; has {
		s, _ := asString(lb)
		if s != "round-robin" && s != "least-request" {
			c.fail(file, ptr+"/loadBalance", CodeInvalidDefinition, what+".loadBalance: want round-robin or least-request")
			ok = false
		}
		ep.LoadBalance = s
	}
	if t, has := m["timeout"]; has {
		d, err := asDuration(t)
		if err != nil {
			c.fail(file, ptr+"/timeout", CodeInvalidDefinition, what+".timeout: "+err.Error())
			ok = false
		}
		ep.Timeout = d
	}
	if r, has := m["retries"]; has {
		rr, good := c.retries(r, ptr+"/retries", what+".retries")
		ok = ok && good
		ep.Retries = rr
	}
	if cb, has := m["circuitBreaker"]; has {
		b, good := c.circuitBreaker(cb, ptr+"/circuitBreaker", what+".circuitBreaker")
		ok = ok && good
		ep.CircuitBreaker = b
	}
	return ep, ok
}

func (c *compiler) urls(v any, ptr, what string) ([]string, bool) {
	list, ok := asStrings(v)
	if !ok || len(list) == 0 {
		c.fail(c.fs.root.file, ptr, CodeInvalidDefinition, what+".urls: want a URL or a list of URLs")
		return nil, false
	}
	for i, s := range list {
		u, err := url.Parse(s)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			c.fail(c.fs.root.file, fmt.Sprintf("%s/%d", ptr, i), CodeInvalidDefinition,
				fmt.Sprintf("%s.urls: %q is not an absolute http(s) URL", what, bundle.RedactURL(s)))
			ok = false
		case u.User != nil:
			// The URL would go into the Bundle, so into the image.
			c.fail(c.fs.root.file, fmt.Sprintf("%s/%d", ptr, i), CodeInvalidDefinition,
				fmt.Sprintf("%s.urls: %q holds user info (credentials before '@'): an upstream URL may not carry credentials", what, bundle.RedactURL(s)))
			ok = false
		}
	}
	return list, ok
}

func (c *compiler) retries(v any, ptr, what string) (*bundle.Retries, bool) {
	file := c.fs.root.file
	if n, ok := asInt(v); ok {
		if n < 0 || n > 10 {
			c.fail(file, ptr, CodeInvalidDefinition, what+": attempts must be between 0 and 10")
			return nil, false
		}
		return &bundle.Retries{Attempts: int(n)}, true
	}
	m, ok := asMap(v)
	if !ok {
		c.fail(file, ptr, CodeInvalidDefinition, what+": want a number of attempts or {attempts, perTryTimeout, on}, got "+describe(v))
		return nil, false
	}
	for _, f := range unknownFields(m, "attempts", "perTryTimeout", "on") {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, what+"."+f+" is not a known field; it is ignored")
	}
	var r bundle.Retries
	n, ok := asInt(m["attempts"])
	if !ok || n < 0 || n > 10 {
		c.fail(file, ptr+"/attempts", CodeInvalidDefinition, what+".attempts: want a number between 0 and 10")
		return nil, false
	}
	r.Attempts = int(n)
	if t, has := m["perTryTimeout"]; has {
		d, err := asDuration(t)
		if err != nil {
			c.fail(file, ptr+"/perTryTimeout", CodeInvalidDefinition, what+".perTryTimeout: "+err.Error())
			return nil, false
		}
		r.PerTry = d
	}
	if on, has := m["on"]; has {
		list, ok := asStrings(on)
		if !ok {
			c.fail(file, ptr+"/on", CodeInvalidDefinition, what+".on: want a list of 5xx, connect-failure, reset")
			return nil, false
		}
		for _, s := range list {
			if s != "5xx" && s != "connect-failure" && s != "reset" {
				c.fail(file, ptr+"/on", CodeInvalidDefinition, fmt.Sprintf("%s.on: %q is not one of 5xx, connect-failure, reset", what, s))
				return nil, false
			}
		}
		r.On = list
	}
	return &r, true
}

func (c *compiler) circuitBreaker(v any, ptr, what string) (*bundle.CircuitBreaker, bool) {
	file := c.fs.root.file
	m, ok := asMap(v)
	if !ok {
		c.fail(file, ptr, CodeInvalidDefinition, what+": want {consecutiveFailures, interval, baseEjection, maxRequests}")
		return nil, false
	}
	for _, f := range unknownFields(m, "consecutiveFailures", "interval", "baseEjection", "maxRequests") {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, what+"."+f+" is not a known field; it is ignored")
	}
	var cb bundle.CircuitBreaker
	n, ok := asInt(m["consecutiveFailures"])
	if !ok || n < 1 {
		c.fail(file, ptr+"/consecutiveFailures", CodeInvalidDefinition, what+".consecutiveFailures: want a number of at least 1")
		return nil, false
	}
	cb.ConsecutiveFailures = int(n)
	for _, f := range []struct {
		key string
		dst *bundle.Duration
	}{{"interval", &cb.Interval}, {"baseEjection", &cb.BaseEjection}} {
		if t, has := m[f.key]; has {
			d, err := asDuration(t)
			if err != nil {
				c.fail(file, ptr+"/"+f.key, CodeInvalidDefinition, what+"."+f.key+": "+err.Error())
				return nil, false
			}
			*f.dst = d
		}
	}
	if mr, has := m["maxRequests"]; has {
		n, ok := asInt(mr)
		if !ok || n < 0 {
			c.fail(file, ptr+"/maxRequests", CodeInvalidDefinition, what+".maxRequests: want a non-negative number")
			return nil, false
		}
		cb.MaxRequests = int(n)
	}
	return &cb, true
}

// wso2Endpoint reads x-wso2-production-endpoints: {urls, type}, a reference
// "#/x-wso2-endpoints/<name>" (as a string or a $ref), or a bare name
// "name[.namespace]" meaning an Endpoint object.
func (c *compiler) wso2Endpoint(v any, sc scope, ptr string) (string, bool) {
	file := c.fs.root.file
	if m, ok := asMap(v); ok {
		if ref, ok := m["$ref"].(string); ok {
			v = ref
		} else {
			ep, ok := c.wso2EndpointDecl(m, ptr, wso2Prod)
			if !ok {
				return "", false
			}
			name := sc.derived()
			c.declareEndpoint(name, ep, ptr)
			c.useEndpoint(name, ptr)
			return name, true
		}
	}
	s, ok := asString(v)
	if !ok || s == "" {
		c.fail(file, ptr, CodeInvalidDefinition, wso2Prod+": want {urls: [...]}, \"#/"+wso2Endpoints+"/<name>\" or an Endpoint name, got "+describe(v))
		return "", false
	}
	if strings.HasPrefix(s, "#") {
		name, found := strings.CutPrefix(s, "#/"+wso2Endpoints+"/")
		if !found || name == "" {
			c.fail(file, ptr, CodeInvalidDefinition, fmt.Sprintf("%s: %q must have the form #/%s/<name>", wso2Prod, s, wso2Endpoints))
			return "", false
		}
		name = unescapeToken(name)
		if _, declared := c.declared.endpoints[name]; !declared {
			c.fail(file, ptr, CodeUnresolvedRef, fmt.Sprintf("%s: %q names no entry of %s", wso2Prod, s, wso2Endpoints))
			return "", false
		}
		c.useEndpoint(name, ptr)
		return name, true
	}
	name, ns, _ := strings.Cut(s, ".")
	if name == "" {
		c.fail(file, ptr, CodeInvalidDefinition, fmt.Sprintf("%s: %q has no name before the namespace", wso2Prod, s))
		return "", false
	}
	c.useEndpoint(name, ptr)
	if ns != "" {
		c.names.endpointNS[name] = ns
	}
	return name, true
}

func (c *compiler) wso2EndpointDecl(m map[string]any, ptr, what string) (bundle.Endpoint, bool) {
	file := c.fs.root.file
	var ep bundle.Endpoint
	for _, f := range unknownFields(m, "urls", "type") {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, what+"."+f+" is read but not honoured; it is ignored")
	}
	urls, ok := c.urls(m["urls"], ptr+"/urls", what)
	if !ok {
		return ep, false
	}
	ep.URLs = urls
	if t, has := m["type"]; has {
		switch s, _ := asString(t); s {
		case "load_balance", "":
			ep.LoadBalance = "round-robin"
		case "failover":
			c.warn(file, ptr+"/type", CodeIgnoredExtension, what+".type failover is not honoured: the URLs are load-balanced round-robin, and a failing one is ejected")
		default:
			c.fail(file, ptr+"/type", CodeInvalidDefinition, fmt.Sprintf("%s.type: %q is not load_balance or failover", what, s))
			return ep, false
		}
	}
	return ep, true
}

// declareEndpoints reads the document's named endpoint declarations.
func (c *compiler) declareEndpoints(ext map[string]any) {
	file := c.fs.root.file
	if v, has := ext[extEndpoints]; has {
		ptr := pointer(extEndpoints)
		m, ok := asMap(v)
		if !ok {
			c.fail(file, ptr, CodeInvalidDefinition, extEndpoints+": want a mapping of name to {urls, ...}")
		}
		for _, name := range sortedKeys(m) {
			decl, ok := asMap(m[name])
			if !ok {
				c.fail(file, ptr+pointer(name), CodeInvalidDefinition, extEndpoints+"."+name+": want {urls, ...}")
				continue
			}
			if ep, ok := c.endpointDecl(decl, ptr+pointer(name), extEndpoints+"."+name); ok {
				c.declareEndpoint(name, ep, ptr+pointer(name))
			}
		}
	}
	if v, has := ext[wso2Endpoints]; has {
		ptr := pointer(wso2Endpoints)
		// WSO2 writes a list of single-entry mappings; a plain mapping is read too.
		entries := map[string]any{}
		entryPtr := map[string]string{}
		switch t := v.(type) {
		case []any:
			for i, e := range t {
				m, ok := asMap(e)
				if !ok {
					c.fail(file, fmt.Sprintf("%s/%d", ptr, i), CodeInvalidDefinition, wso2Endpoints+": each entry must be {<name>: {urls: [...]}}")
					continue
				}
				for _, k := range sortedKeys(m) {
					entries[k] = m[k]
					entryPtr[k] = fmt.Sprintf("%s/%d%s", ptr, i, pointer(k))
				}
			}
		case map[string]any:
			for k, e := range t {
				entries[k] = e
				entryPtr[k] = ptr + pointer(k)
			}
		default:
			c.fail(file, ptr, CodeInvalidDefinition, wso2Endpoints+": want a list of {<name>: {urls: [...]}}")
		}
		for _, name := range sortedKeys(entries) {
			m, ok := asMap(entries[name])
			if !ok {
				c.fail(file, entryPtr[name], CodeInvalidDefinition, wso2Endpoints+"."+name+": want {urls: [...]}")
				continue
			}
			if ep, ok := c.wso2EndpointDecl(m, entryPtr[name], wso2Endpoints+"."+name); ok {
				c.declareEndpoint(name, ep, entryPtr[name])
			}
		}
	}
}

func (c *compiler) declareEndpoint(name string, ep bundle.Endpoint, ptr string) {
	if prev, ok := c.declared.endpoints[name]; ok {
		if !sameEndpoint(prev, ep) {
			c.fail(c.fs.root.file, ptr, CodeInvalidDefinition, fmt.Sprintf("endpoint %q is declared twice, differently (first at %s)", name, c.declared.endpointAt[name]))
		}
		return
	}
	c.declared.endpoints[name] = ep
	c.declared.endpointAt[name] = ptr
}

func sameEndpoint(a, b bundle.Endpoint) bool {
	ja, _ := bundle.Canonical(a)
	jb, _ := bundle.Canonical(b)
	return string(ja) == string(jb)
}

func (c *compiler) useEndpoint(name, ptr string) {
	if _, ok := c.names.endpointAt[name]; !ok {
		c.names.endpointAt[name] = ptr
	}
}

// Rate limits.

// gatekilnRateLimits reads x-gatekiln-ratelimit: a RateLimit name, an inline
// policy {name?, requests, unit | period, burst}, or a list of either.
func (c *compiler) gatekilnRateLimits(v any, sc scope, ptr string) ([]string, bool) {
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	names := make([]string, 0, len(items))
	ok := true
	for i, item := range items {
		ip := ptr
		if isList {
			ip = fmt.Sprintf("%s/%d", ptr, i)
		}
		name, good := c.rateLimitItem(item, sc, ip, isList && len(items) > 1, i)
		if !good {
			ok = false
			continue
		}
		if !contains(names, name) {
			names = append(names, name)
		}
	}
	return names, ok
}

func (c *compiler) rateLimitItem(v any, sc scope, ptr string, several bool, index int) (string, bool) {
	file := c.fs.root.file
	switch t := v.(type) {
	case string:
		if t == "" {
			c.fail(file, ptr, CodeInvalidDefinition, extRateLimit+": the name is empty")
			return "", false
		}
		c.useRateLimit(t, nil, ptr)
		return t, true
	case map[string]any:
		for _, f := range unknownFields(t, "name", "requests", "unit", "period", "burst") {
			c.warn(file, ptr+pointer(f), CodeIgnoredExtension, extRateLimit+"."+f+" is not a known field; it is ignored")
		}
		name := sc.derived()
		if several {
			name = fmt.Sprintf("%s-%d", name, index)
		}
		if n, has := t["name"]; has {
			s, ok := asString(n)
			if !ok || s == "" {
				c.fail(file, ptr+"/name", CodeInvalidDefinition, extRateLimit+".name: want a non-empty string")
				return "", false
			}
			name = s
		}
		if _, has := t["requests"]; !has {
			c.useRateLimit(name, nil, ptr)
			return name, true
		}
		rate, ok := c.rate(t, ptr)
		if !ok {
			return "", false
		}
		c.useRateLimit(name, rate, ptr)
		return name, true
	}
	c.fail(file, ptr, CodeInvalidDefinition, extRateLimit+": want a RateLimit name or {requests, unit, burst}, got "+describe(v))
	return "", false
}

var unitPeriods = map[string]bundle.Duration{
	"second": bundle.Duration(1e9), "minute": bundle.Duration(60e9),
	"hour": bundle.Duration(3600e9), "day": bundle.Duration(86400e9),
}

func (c *compiler) rate(m map[string]any, ptr string) (*bundle.Rate, bool) {
	file := c.fs.root.file
	n, ok := asInt(m["requests"])
	if !ok || n < 1 {
		c.fail(file, ptr+"/requests", CodeInvalidDefinition, extRateLimit+".requests: want a whole number of at least 1")
		return nil, false
	}
	r := &bundle.Rate{Requests: n, Period: unitPeriods["minute"]}
	_, hasUnit := m["unit"]
	_, hasPeriod := m["period"]
	switch {
	case hasUnit && hasPeriod:
		c.fail(file, ptr, CodeInvalidDefinition, extRateLimit+": give unit or period, not both")
		return nil, false
	case hasUnit:
		s, _ := asString(m["unit"])
		p, ok := unitPeriods[strings.ToLower(s)]
		if !ok {
			c.fail(file, ptr+"/unit", CodeInvalidDefinition, extRateLimit+".unit: want Second, Minute, Hour or Day")
			return nil, false
		}
		r.Period = p
	case hasPeriod:
		d, err := asDuration(m["period"])
		if err != nil || d <= 0 {
			c.fail(file, ptr+"/period", CodeInvalidDefinition, extRateLimit+".period: want a positive duration like \"1m\"")
			return nil, false
		}
		r.Period = d
	}
	if b, has := m["burst"]; has {
		n, ok := asInt(b)
		if !ok || n < 0 {
			c.fail(file, ptr+"/burst", CodeInvalidDefinition, extRateLimit+".burst: want a whole number of at least 0")
			return nil, false
		}
		r.Burst = n
	}
	return r, true
}

func (c *compiler) useRateLimit(name string, def *bundle.Rate, ptr string) {
	if _, ok := c.names.rateLimitAt[name]; !ok {
		c.names.rateLimitAt[name] = ptr
	}
	prev, seen := c.declared.rateLimits[name]
	switch {
	case !seen:
		c.declared.rateLimits[name] = bundle.RateLimit{Default: def}
	case def == nil:
	case prev.Default == nil:
		c.declared.rateLimits[name] = bundle.RateLimit{Default: def}
	case *prev.Default != *def:
		c.fail(c.fs.root.file, ptr, CodeInvalidDefinition, fmt.Sprintf("rate limit %q is given two different inline defaults", name))
	}
}

// Security.

// gatekilnSecurity reads x-gatekiln-security: a scheme name, a list of scheme
// names (alternatives), or the native form [{scheme: [scopes]}]; [] is public.
func (c *compiler) gatekilnSecurity(v any, ptr string) ([]bundle.SecurityRequirement, bool) {
	file := c.fs.root.file
	if s, ok := v.(string); ok {
		v = []any{s}
	}
	list, ok := v.([]any)
	if !ok {
		c.fail(file, ptr, CodeInvalidDefinition, extSecurity+": want a scheme name, a list of names or [{scheme: [scopes]}], got "+describe(v))
		return nil, false
	}
	reqs := make([]bundle.SecurityRequirement, 0, len(list))
	for i, item := range list {
		ip := fmt.Sprintf("%s/%d", ptr, i)
		switch t := item.(type) {
		case string:
			reqs = append(reqs, bundle.SecurityRequirement{{Name: t}})
			c.useScheme(t, ip)
		case map[string]any:
			req := bundle.SecurityRequirement{}
			for _, name := range sortedKeys(t) {
				scopes, ok := asStrings(t[name])
				if !ok && t[name] != nil {
					c.fail(file, ip+pointer(name), CodeInvalidDefinition, extSecurity+": scopes must be a list of strings")
					return nil, false
				}
				if len(scopes) == 0 {
					scopes = nil
				}
				req = append(req, bundle.SchemeRef{Name: name, Scopes: scopes})
				c.useScheme(name, ip+pointer(name))
			}
			reqs = append(reqs, req)
		default:
			c.fail(file, ip, CodeInvalidDefinition, extSecurity+": each entry is a scheme name or {scheme: [scopes]}")
			return nil, false
		}
	}
	return reqs, true
}

func (c *compiler) useScheme(name, ptr string) {
	if _, ok := c.names.schemeAt[name]; !ok {
		c.names.schemeAt[name] = ptr
	}
}

// CORS, validation.

func (c *compiler) gatekilnCORS(v any, ptr string) (*bundle.CORS, bool) {
	file := c.fs.root.file
	m, ok := asMap(v)
	if !ok {
		c.fail(file, ptr, CodeInvalidDefinition, extCORS+": want {allowOrigins, allowMethods, allowHeaders, exposeHeaders, allowCredentials, maxAge}")
		return nil, false
	}
	for _, f := range unknownFields(m, "allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "allowCredentials", "maxAge") {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, extCORS+"."+f+" is not a known field; it is ignored")
	}
	return c.corsFields(m, ptr, extCORS, corsKeys{"allowOrigins", "allowMethods", "allowHeaders", "exposeHeaders", "allowCredentials", "maxAge"})
}

// corsKeys names a CORS dialect's fields; an empty name is a field the dialect lacks.
type corsKeys struct{ origins, methods, headers, expose, credentials, maxAge string }

// corsFields reads a CORS object in either dialect (x-gatekiln-cors, x-wso2-cors).
func (c *compiler) corsFields(m map[string]any, ptr, ext string, k corsKeys) (*bundle.CORS, bool) {
	file := c.fs.root.file
	var cors bundle.CORS
	for _, f := range []struct {
		key string
		dst *[]string
	}{{k.origins, &cors.AllowOrigins}, {k.methods, &cors.AllowMethods}, {k.headers, &cors.AllowHeaders}, {k.expose, &cors.ExposeHeaders}} {
		if x, has := m[f.key]; has {
			list, ok := asStrings(x)
			if !ok {
				c.fail(file, ptr+"/"+f.key, CodeInvalidDefinition, ext+"."+f.key+": want a list of strings")
				return nil, false
			}
			*f.dst = list
		}
	}
	if x, has := m[k.credentials]; has {
		b, ok := asBool(x)
		if !ok {
			c.fail(file, ptr+"/"+k.credentials, CodeInvalidDefinition, ext+"."+k.credentials+": want true or false")
			return nil, false
		}
		cors.AllowCredentials = b
	}
	if x, has := m[k.maxAge]; has && k.maxAge != "" {
		d, err := asDuration(x)
		if err != nil {
			c.fail(file, ptr+"/"+k.maxAge, CodeInvalidDefinition, ext+"."+k.maxAge+": "+err.Error())
			return nil, false
		}
		cors.MaxAge = d
	}
	return &cors, true
}

// wso2CORS reads WSO2's {corsConfigurationEnabled, accessControlAllow*}.
func (c *compiler) wso2CORS(v any, ptr string) (*bundle.CORS, bool) {
	file := c.fs.root.file
	m, ok := asMap(v)
	if !ok {
		c.fail(file, ptr, CodeInvalidDefinition, wso2CORS+": want {corsConfigurationEnabled, accessControlAllowOrigins, ...}")
		return nil, false
	}
	for _, f := range unknownFields(m, "corsConfigurationEnabled", "accessControlAllowOrigins", "accessControlAllowCredentials",
		"accessControlAllowHeaders", "accessControlAllowMethods", "accessControlExposeHeaders") {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, wso2CORS+"."+f+" is read but not honoured; it is ignored")
	}
	if enabled, has := m["corsConfigurationEnabled"]; has {
		if b, ok := asBool(enabled); ok && !b {
			return nil, false
		}
	}
	return c.corsFields(m, ptr, wso2CORS, corsKeys{"accessControlAllowOrigins", "accessControlAllowMethods",
		"accessControlAllowHeaders", "accessControlExposeHeaders", "accessControlAllowCredentials", ""})
}

func (c *compiler) validation(v any, ptr string) (*bundle.Validation, bool) {
	file := c.fs.root.file
	if b, ok := asBool(v); ok {
		return &bundle.Validation{Request: b}, true
	}
	m, ok := asMap(v)
	if !ok {
		c.fail(file, ptr, CodeInvalidDefinition, extValidate+": want true, false or {request, response, maxBodyBytes}")
		return nil, false
	}
	for _, f := range unknownFields(m, "request", "response", "maxBodyBytes") {
		c.warn(file, ptr+pointer(f), CodeIgnoredExtension, extValidate+"."+f+" is not a known field; it is ignored")
	}
	val := bundle.Validation{Request: true}
	for _, f := range []struct {
		key string
		dst *bool
	}{{"request", &val.Request}, {"response", &val.Response}} {
		if x, has := m[f.key]; has {
			b, ok := asBool(x)
			if !ok {
				c.fail(file, ptr+"/"+f.key, CodeInvalidDefinition, extValidate+"."+f.key+": want true or false")
				return nil, false
			}
			*f.dst = b
		}
	}
	if x, has := m["maxBodyBytes"]; has {
		n, ok := asInt(x)
		if !ok || n < 0 {
			c.fail(file, ptr+"/maxBodyBytes", CodeInvalidDefinition, extValidate+".maxBodyBytes: want a whole number of bytes")
			return nil, false
		}
		val.MaxBodyBytes = n
	}
	return &val, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
