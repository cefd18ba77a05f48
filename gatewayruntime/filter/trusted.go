package filter

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// TrustedProxies is the set of peers whose X-Forwarded-For the gateway believes.
// The nil *TrustedProxies trusts nobody.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// ParseTrustedProxies reads CIDRs ("10.0.0.0/8") or single addresses ("10.0.0.1").
func ParseTrustedProxies(cidrs []string) (*TrustedProxies, error) {
	if len(cidrs) == 0 {
		return nil, nil
	}
	t := &TrustedProxies{}
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if !strings.Contains(c, "/") {
			a, err := netip.ParseAddr(c)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", c, err)
			}
			a = a.Unmap()
			t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", c, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		t.prefixes = append(t.prefixes, p.Masked())
	}
	return t, nil
}

// Trusts reports whether a is a trusted proxy.
func (t *TrustedProxies) Trusts(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP walks the forwarding chain from the peer leftwards and returns the
// first address that is not a trusted proxy. xff holds the X-Forwarded-For
// header values in order (each may be a comma-separated list). A malformed entry
// stops the walk at the last trusted hop, so garbage never becomes the client.
func (t *TrustedProxies) ClientIP(remoteAddr string, xff []string) net.IP {
	peer := parseAddrPort(remoteAddr)
	if !peer.IsValid() {
		return nil
	}
	client := peer
	if t.Trusts(peer) {
	walk:
		for i := len(xff) - 1; i >= 0; i-- {
			parts := strings.Split(xff[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				hop := parseAddrPort(strings.TrimSpace(parts[j]))
				if !hop.IsValid() {
					break walk
				}
				client = hop
				if !t.Trusts(hop) {
					break walk
				}
			}
		}
	}
	return net.IP(client.Unmap().AsSlice())
}

// ClientAddr is ClientIP as a netip.Addr, for callers that avoid net.IP.
func (t *TrustedProxies) ClientAddr(remoteAddr string, xff []string) netip.Addr {
	ip := t.ClientIP(remoteAddr, xff)
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func peerIP(remoteAddr string) net.IP {
	a := parseAddrPort(remoteAddr)
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.Unmap().AsSlice())
}

// parseAddrPort accepts "ip", "ip:port", "[ipv6]:port" and "[ipv6]".
func parseAddrPort(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
