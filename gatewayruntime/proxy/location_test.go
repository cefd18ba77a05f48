package proxy

import (
	"net/url"
	"testing"
)

func TestLocation(t *testing.T) {
	up := func(raw string) *Upstream {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		var o Options
		o.defaults()
		return newUpstream("k", "e", u, nil, breakerConfig{}, &o)
	}
	withBase := up("http://backend:8080/base/")
	noBase := up("http://backend")
	tlsUp := up("https://Backend.internal/base")
	p := &routeProxy{base: "/v1"}
	for _, tt := range []struct {
		name string
		u    *Upstream
		in   string
		want string // "" means unchanged
	}{
		{"absolute, on the upstream's origin", withBase, "http://backend:8080/base/items/7?x=1", "/v1/items/7?x=1"},
		{"absolute, origin case-insensitive", withBase, "HTTP://BACKEND:8080/base/items/7", "/v1/items/7"},
		{"absolute, the base itself", withBase, "http://backend:8080/base", "/v1"},
		{"path-absolute under the base", withBase, "/base/items/7", "/v1/items/7"},
		{"path-absolute, query right after the base", withBase, "/base?page=2", "/v1?page=2"},
		{"path-absolute outside the base", withBase, "/other/7", ""},
		{"a longer segment is not the base", withBase, "/baseball/7", ""},
		{"another host", withBase, "http://elsewhere:8080/base/items/7", ""},
		{"another port", withBase, "http://backend:9090/base/items/7", ""},
		{"another scheme", withBase, "https://backend:8080/base/items/7", ""},
		{"userinfo is not the origin", withBase, "http://x@backend:8080/base/items/7", ""},
		{"scheme-relative is another host", withBase, "//backend:8080/base/items/7", ""},
		{"relative reference", withBase, "items/7", ""},
		{"no base: absolute on the origin, default port", noBase, "http://backend:80/items/7", "/v1/items/7"},
		{"no base: path-absolute left alone", noBase, "/items/7", ""},
		{"https default port", tlsUp, "https://backend.internal:443/base/a", "/v1/a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := p.location(tt.in, tt.u)
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if got != want || changed != (tt.want != "") {
				t.Errorf("location(%q) = %q, %v; want %q", tt.in, got, changed, want)
			}
		})
	}
}
