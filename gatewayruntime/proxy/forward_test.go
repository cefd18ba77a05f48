package proxy

import "testing"

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
