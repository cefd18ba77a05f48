package proxy

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
)

// forwarded holds what the gateway tells the upstream about the client
// (X-Forwarded-For/-Host/-Proto and RFC 7239 Forwarded).
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

func newForwarded(r *http.Request, trusted *filter.TrustedProxies) forwarded {
	f := forwarded{peer: peerHost(r.RemoteAddr), host: r.Host, proto: "http"}
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
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, sanitize(f.host)...)
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	b = append(b, f.proto...)
	b = append(b, "\r\nForwarded: "...)
	for _, p := range f.priorFwd {
		b = append(b, sanitize(p)...)
		b = append(b, ", "...)
	}
	b = f.appendElement(b)
	b = append(b, "\r\n"...)
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
	h["X-Forwarded-Host"] = []string{f.host}
	h["X-Forwarded-Proto"] = []string{f.proto}
	var b []byte
	for _, p := range f.priorFwd {
		b = append(b, p...)
		b = append(b, ", "...)
	}
	h["Forwarded"] = []string{string(f.appendElement(b))}
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
