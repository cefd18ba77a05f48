package proxy

import (
	"net"
	"net/url"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
)

// A Location field (a 201's new resource, a redirect) names a URL of the
// upstream's: its own origin and base path. The client reaches the same
// resource through the gateway's base path, so the gateway maps the value
// back, as nginx's proxy_redirect default does for the absolute form:
//
//	http://backend:8080/base/items/7  →  /v1/items/7
//	/base/items/7                     →  /v1/items/7
//
// (upstream URL http://backend:8080/base, API base path /v1). The result is
// path-absolute, which RFC 9110 §10.2.2 allows, so it holds for whichever
// host and scheme the client used. A path-absolute value is mapped only when
// the upstream URL has a base path it starts with: without one there is no
// telling the upstream's own paths from ones it already wrote for clients. A
// value the mapping does not cover (another host, a path outside the base
// path, a relative reference) is left alone.

// clientBase is the route's path up to its upstream part: the API's base path
// (no trailing slash), which the proxy strips from request paths.
func clientBase(r *bundle.Route) string {
	up := strings.TrimSuffix(r.UpstreamPath, "/")
	full := strings.TrimSuffix(r.Path, "/")
	if up == "" || !strings.HasSuffix(full, up) {
		return full
	}
	return full[:len(full)-len(up)]
}

// location maps an upstream's Location value, reporting whether it changed.
func (p *routeProxy) location(v string, u *Upstream) (string, bool) {
	rest, ok := originRest(v, u.url)
	switch {
	case ok:
	case u.basePath != "" && len(v) > 0 && v[0] == '/' && (len(v) == 1 || v[1] != '/'):
		rest = v // path-absolute ("//host" is another host)
	default:
		return v, false
	}
	base := u.basePath
	if !underBase(rest, base) {
		return v, false
	}
	out := p.base + rest[len(base):]
	if out == "" || out[0] != '/' {
		out = "/" + out
	}
	if out == v || !http1.SafeFieldValue(out) {
		return v, false
	}
	return out, true
}

// underBase reports whether path-absolute rest is base or under it.
func underBase(rest, base string) bool {
	if base == "" {
		return true
	}
	return strings.HasPrefix(rest, base) && (len(rest) == len(base) || strings.ContainsRune("/?#", rune(rest[len(base)])))
}

// originRest returns what follows u's origin (scheme://host[:port]) in v,
// as a path-absolute reference, when v is on that origin.
func originRest(v string, u *url.URL) (string, bool) {
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok || !strings.EqualFold(scheme, u.Scheme) {
		return "", false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if !sameHost(rest[:end], u.Host, u.Scheme) {
		return "", false
	}
	rest = rest[end:]
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest, true
}

// sameHost compares host[:port] authorities, a scheme's default port being
// the same as none.
func sameHost(a, b, scheme string) bool {
	def := "80"
	if strings.EqualFold(scheme, "https") {
		def = "443"
	}
	norm := func(h string) string {
		if host, port, err := net.SplitHostPort(h); err == nil && port == def {
			if strings.IndexByte(host, ':') >= 0 {
				return "[" + host + "]"
			}
			return host
		}
		return h
	}
	return !strings.ContainsAny(a, "@") && strings.EqualFold(norm(a), norm(b))
}
