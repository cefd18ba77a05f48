package filter

import (
	"context"
	"net/http/httptest"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.168.1.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		trusted *TrustedProxies
		remote  string
		xff     []string
		want    string
	}{
		{"no proxies trusted ignores header", nil, "1.2.3.4:5000", []string{"9.9.9.9"}, "1.2.3.4"},
		{"untrusted peer cannot spoof", trusted, "1.2.3.4:5000", []string{"9.9.9.9"}, "1.2.3.4"},
		{"trusted peer, one hop", trusted, "10.1.1.1:80", []string{"5.6.7.8"}, "5.6.7.8"},
		{"client-supplied prefix ignored", trusted, "10.1.1.1:80", []string{"6.6.6.6, 5.6.7.8"}, "5.6.7.8"},
		{"chain of trusted proxies", trusted, "10.1.1.1:80", []string{"6.6.6.6, 5.6.7.8, 192.168.1.1", "10.2.2.2"}, "5.6.7.8"},
		{"all trusted gives leftmost", trusted, "10.1.1.1:80", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"garbage stops the walk", trusted, "10.1.1.1:80", []string{"5.6.7.8, not-an-ip"}, "10.1.1.1"},
		{"no header", trusted, "10.1.1.1:80", nil, "10.1.1.1"},
		{"ipv6 peer", trusted, "[::1]:443", []string{"2001:db8::1"}, "2001:db8::1"},
		{"ipv4-mapped peer", trusted, "[::ffff:10.0.0.1]:80", []string{"5.6.7.8"}, "5.6.7.8"},
		{"bad remote", trusted, "pipe", nil, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.trusted.ClientIP(tt.remote, tt.xff).String()
			if got != tt.want {
				t.Fatalf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxiesRejectsGarbage(t *testing.T) {
	for _, in := range []string{"10.0.0.0/33", "nope", "1.2.3"} {
		if _, err := ParseTrustedProxies([]string{in}); err == nil {
			t.Errorf("ParseTrustedProxies(%q): want error", in)
		}
	}
}

func TestStateAccessors(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:1234"
	r.Header.Set("X-Forwarded-For", "7.7.7.7")
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8"})
	s := NewState(trusted)
	s.RequestID = "abc"
	r = r.WithContext(WithState(r.Context(), s))
	if RouteFrom(r.Context()) != nil {
		t.Fatal("RouteFrom before routing: want nil")
	}
	if got := RequestIDFrom(r.Context()); got != "abc" {
		t.Fatalf("RequestIDFrom = %q", got)
	}
	ctx := WithIdentity(r.Context(), &Identity{Scheme: "jwt", Subject: "alice"})
	if ctx != r.Context() {
		t.Fatal("WithIdentity inside the gateway must not allocate a context")
	}
	if id := IdentityFrom(r.Context()); id == nil || id.Subject != "alice" {
		t.Fatalf("IdentityFrom = %+v", id)
	}
	if got := ClientIP(r).String(); got != "7.7.7.7" {
		t.Fatalf("ClientIP = %s", got)
	}
	outside := WithIdentity(context.Background(), &Identity{Subject: "bob"})
	if id := IdentityFrom(outside); id == nil || id.Subject != "bob" {
		t.Fatalf("IdentityFrom outside = %+v", id)
	}
}

func TestIsAliasOf(t *testing.T) {
	isXFF := func(k string) bool { return k == "X-Forwarded-For" }
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"X_Forwarded_For", true},
		{"x_forwarded_for", true},
		{"X-Forwarded_For", true},
		{"X-Forwarded-For", false}, // the name itself is not an alias
		{"X_Forwarded_Host", false},
		{"api_key", false},
	} {
		if got := IsAliasOf(tt.name, isXFF); got != tt.want {
			t.Errorf("IsAliasOf(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
