package proxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestAppendElement(t *testing.T) {
	for _, tt := range []struct {
		name string
		f    forwarded
		want string
	}{
		{"plain", forwarded{peer: "127.0.0.1", host: "api.example.com", proto: "http"},
			`for=127.0.0.1;host="api.example.com";proto=http`},
		{"IPv6 peer in brackets, quoted", forwarded{peer: "::1", host: "h:8080", proto: "https"},
			`for="[::1]";host="h:8080";proto=https`},
		{"quotes in the host are dropped", forwarded{peer: "10.0.0.1", host: `ev"il".example`, proto: "http"},
			`for=10.0.0.1;host="evil.example";proto=http`},
		{"line breaks in the host cannot end the field", forwarded{peer: "10.0.0.1", host: "a\r\nX-Evil: 1", proto: "http"},
			`for=10.0.0.1;host="a  X-Evil: 1";proto=http`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.f.appendElement(nil)); got != tt.want {
				t.Errorf("appendElement = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestForwardedChain(t *testing.T) {
	hop := forwarded{peer: "10.0.0.2", host: "api.example.com", proto: "https"}
	const el = `for=10.0.0.2;host="api.example.com";proto=https`
	for _, tt := range []struct {
		name     string
		rfc7239  bool
		priorFor []string
		priorFwd []string
		want     string // "" when no Forwarded field is sent
	}{
		{"off by default", false, nil, nil, ""},
		{"off, trusted XFF only", false, []string{"203.0.113.7"}, nil, ""},
		{"on, no prior hops", true, nil, nil, el},
		{"a trusted peer's Forwarded is carried even when off", false, []string{"198.51.100.1"}, []string{"for=203.0.113.7"},
			"for=203.0.113.7, " + el},
		{"a trusted peer's Forwarded wins over its XFF", true, []string{"198.51.100.1"}, []string{"for=203.0.113.7;proto=https"},
			"for=203.0.113.7;proto=https, " + el},
		{"a trusted peer's XFF becomes for= nodes", true, []string{"203.0.113.7, 2001:db8::1", "198.51.100.1:4711"}, nil,
			`for=203.0.113.7, for="[2001:db8::1]", for="198.51.100.1:4711", ` + el},
		{"obfuscated and unknown nodes stay tokens", true, []string{"unknown,_gw1"}, nil,
			"for=unknown, for=_gw1, " + el},
		{"anything else is quoted, without quotes or backslashes", true, []string{`evil"; by=\x`}, nil,
			`for="evil; by=x", ` + el},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := hop
			f.rfc7239, f.priorFor, f.priorFwd = tt.rfc7239, tt.priorFor, tt.priorFwd
			// Both proxy paths: the head the fast path writes and the header
			// map the ReverseProxy path sends.
			head := string(f.appendTo(nil))
			h := http.Header{}
			f.set(h)
			if got := h.Get("Forwarded"); got != tt.want {
				t.Errorf("set: Forwarded = %q, want %q", got, tt.want)
			}
			_, line, found := strings.Cut(head, "\r\nForwarded: ")
			line, _, _ = strings.Cut(line, "\r\n")
			switch {
			case tt.want == "" && found:
				t.Errorf("appendTo sent Forwarded: %q", head)
			case tt.want != "" && line != tt.want:
				t.Errorf("appendTo: Forwarded = %q, want %q", line, tt.want)
			}
		})
	}
}
