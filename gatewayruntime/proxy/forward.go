package proxy

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
)

// forwarded holds what the gateway tells the upstream about the client:
// X-Forwarded-For/-Host/-Proto always, and the RFC 7239 Forwarded field when
// the Binding asks for it (server.forwardedHeader) or a trusted peer sent one,
// whose chain then stays whole. Off by default, as in Envoy, Traefik and
// Kong: one family is what upstreams read, and two say the same thing twice.
//
// A client cannot spoof them: when the TCP peer is not a trusted proxy
// (Binding server.trustedProxies), every incoming forwarding field is dropped
// (every X-Forwarded-*, Forwarded, X-Real-IP, and the names that read as
// theirs with '_' for '-', which CGI, WSGI and PHP upstreams merge with them)
// and the values are the gateway's own observations. When the peer is
// trusted, its X-Forwarded-For and Forwarded chains are kept and the peer is
// appended, and its X-Forwarded-Host/-Proto and other X-Forwarded-* fields
// (Port, Prefix, ...) are kept.
type forwarded struct {
	priorFor []string
	priorFwd []string
	peer     string
	host     string
	proto    string
	// rfc7239: send Forwarded even when no trusted peer sent one.
	rfc7239 bool
	// extra are a trusted peer's other X-Forwarded-* fields.
	extra []extraField
}

type extraField struct {
	name   string
	values []string
}

// isForwardingField reports the X-Forwarded-* family (canonical names).
func isForwardingField(k string) bool {
	return strings.HasPrefix(k, "X-Forwarded-") || k == "Forwarded" || k == "X-Real-Ip"
}

// forwarding is a Binding's forwarding policy.
type forwarding struct {
	trusted *filter.TrustedProxies
	// rfc7239 is Binding server.forwardedHeader.
	rfc7239 bool
}

func newForwarded(r *http.Request, fp forwarding) forwarded {
	f := forwarded{peer: peerHost(r.RemoteAddr), host: r.Host, proto: "http", rfc7239: fp.rfc7239}
	trusted := fp.trusted
	if r.TLS != nil {
		f.proto = "https"
	}
	if trusted == nil {
		return f
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !trusted.Trusts(ap.Addr()) {
		return f
	}
	f.priorFor = r.Header["X-Forwarded-For"]
	f.priorFwd = r.Header["Forwarded"]
	for k, v := range r.Header {
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		default:
			if strings.HasPrefix(k, "X-Forwarded-") {
				f.extra = append(f.extra, extraField{k, v})
			}
		}
	}
	if v := r.Header["X-Forwarded-Host"]; len(v) == 1 && v[0] != "" {
		f.host = v[0]
	}
	if v := r.Header["X-Forwarded-Proto"]; len(v) == 1 && (v[0] == "http" || v[0] == "https") {
		f.proto = v[0]
	}
	return f
}

// peerHost returns the address part of "ip:port" or "[ipv6]:port".
func peerHost(remote string) string {
	i := strings.LastIndexByte(remote, ':')
	if i < 0 {
		return remote
	}
	h := remote[:i]
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	return h
}

// appendTo appends the fields as HTTP/1.1 header lines.
func (f *forwarded) appendTo(b []byte) []byte {
	b = append(b, "X-Forwarded-For: "...)
	for _, p := range f.priorFor {
		b = append(b, sanitize(p)...)
		b = append(b, ", "...)
	}
	b = append(b, f.peer...)
	if f.host != "" {
		// An HTTP/1.0 request may name no host: then none is forwarded.
		b = append(b, "\r\nX-Forwarded-Host: "...)
		b = append(b, sanitize(f.host)...)
	}
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	b = append(b, f.proto...)
	b = append(b, "\r\n"...)
	if f.sendsForwarded() {
		b = append(b, "Forwarded: "...)
		b = f.appendChain(b, true)
		b = append(b, "\r\n"...)
	}
	for _, x := range f.extra {
		for _, v := range x.values {
			b = append(b, x.name...)
			b = append(b, ": "...)
			b = append(b, sanitize(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

func (f *forwarded) sendsForwarded() bool { return f.rfc7239 || len(f.priorFwd) > 0 }

// appendChain appends the Forwarded value: the trusted peer's chain and this
// hop's element. A trusted peer that sent only X-Forwarded-For (most load
// balancers do) has its chain carried over, so that an upstream reading
// Forwarded finds the client, not the load balancer.
func (f *forwarded) appendChain(b []byte, clean bool) []byte {
	for _, p := range f.priorFwd {
		if clean {
			p = sanitize(p)
		}
		b = append(b, p...)
		b = append(b, ", "...)
	}
	if len(f.priorFwd) == 0 {
		for _, v := range f.priorFor {
			for n := range strings.SplitSeq(v, ",") {
				if n = http1.TrimOWS(n); n != "" {
					b = appendForNode(b, n)
					b = append(b, ", "...)
				}
			}
		}
	}
	return f.appendElement(b)
}

// appendForNode appends an X-Forwarded-For entry as a Forwarded "for"
// parameter (RFC 7239 §6, §7.4).
func appendForNode(b []byte, n string) []byte {
	b = append(b, "for="...)
	if a, err := netip.ParseAddr(n); err == nil {
		if a.Is4() {
			return append(b, a.String()...)
		}
		return append(append(append(b, `"[`...), a.String()...), `]"`...)
	}
	if ap, err := netip.ParseAddrPort(n); err == nil {
		return append(append(append(b, '"'), ap.String()...), '"')
	}
	if n == "unknown" || n[0] == '_' && http1.IsToken(n) {
		return append(b, n...) // obfuscated identifiers are tokens
	}
	// Anything else is passed as a quoted string, which holds it safely.
	b = append(b, '"')
	for i := 0; i < len(n); i++ {
		if c := n[i]; c != '"' && c != '\\' && c >= ' ' && c != 0x7f {
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendElement appends this hop's RFC 7239 element.
func (f *forwarded) appendElement(b []byte) []byte {
	b = append(b, "for="...)
	if strings.IndexByte(f.peer, ':') >= 0 {
		b = append(b, `"[`...)
		b = append(b, f.peer...)
		b = append(b, `]"`...)
	} else {
		b = append(b, f.peer...)
	}
	b = append(b, `;host="`...)
	if h := sanitize(f.host); strings.IndexByte(h, '"') < 0 {
		b = append(b, h...) // the common case, without ReplaceAll's count
	} else {
		b = append(b, strings.ReplaceAll(h, `"`, "")...)
	}
	b = append(b, `";proto=`...)
	return append(b, f.proto...)
}

// set writes the fields into a header map (the ReverseProxy path).
func (f *forwarded) set(h http.Header) {
	for k := range h {
		if isForwardingField(k) || filter.IsAliasOf(k, managedField) {
			delete(h, k)
		}
	}
	for _, x := range f.extra {
		h[x.name] = x.values
	}
	xff := f.peer
	if len(f.priorFor) > 0 {
		xff = strings.Join(f.priorFor, ", ") + ", " + f.peer
	}
	h["X-Forwarded-For"] = []string{xff}
	if f.host != "" {
		h["X-Forwarded-Host"] = []string{f.host}
	}
	h["X-Forwarded-Proto"] = []string{f.proto}
	if f.sendsForwarded() {
		h["Forwarded"] = []string{string(f.appendChain(nil, false))}
	}
}

// sanitize replaces characters that would break a header line.
func sanitize(v string) string {
	if !http1.SafeFieldValue(v) {
		return strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == 0 {
				return ' '
			}
			return r
		}, v)
	}
	return v
}
