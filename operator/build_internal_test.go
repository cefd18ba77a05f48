package operator

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// TestRemotesBounded: every push-Secret rotation brings new credentials; the
// sets (each with its own HTTP transport) stay bounded, the ones in use are
// kept, and the operator's own is never evicted.
func TestRemotesBounded(t *testing.T) {
	r := newRemotes(context.Background(), registry.Config{})
	r.max = 3
	dc := func(i int) []byte {
		auth := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "ci:password-%d", i))
		return fmt.Appendf(nil, `{"auths":{"r.example":{"auth":%q}}}`, auth)
	}
	get := func(b []byte) *remoteSet {
		t.Helper()
		s, err := r.get(b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	own := get(nil)
	kept := get(dc(0))
	for i := 1; i <= 100; i++ {
		get(dc(i))
		get(dc(0)) // an API whose Secret does not change keeps using it
		if n := len(r.sets); n > r.max {
			t.Fatalf("after %d rotations: %d credential sets, want at most %d", i, n, r.max)
		}
	}
	if get(nil) != own {
		t.Error("the operator's own set was evicted")
	}
	if get(dc(0)) != kept {
		t.Error("a set in steady use was evicted")
	}
	if get(dc(100)) == nil || len(r.sets) != 3 {
		t.Errorf("%d sets", len(r.sets))
	}
	// An empty docker config is not the operator's own credentials.
	if get([]byte{}) == own {
		t.Error("an empty push Secret got the operator's own credentials")
	}
}

// TestBindingShape: Bindings that differ only in values have one shape, so
// refreshBinding applies one while the new image builds; a name more or
// less, or another kind of scheme, is another shape and waits.
func TestBindingShape(t *testing.T) {
	base := func() *bundle.Binding {
		return &bundle.Binding{
			Endpoints:  map[string]bundle.EndpointBinding{"backend": {URLs: []string{"http://a:80"}}},
			Security:   map[string]bundle.SecurityBinding{"keys": {APIKey: &bundle.APIKeyBinding{KeysFile: "k.txt"}}},
			RateLimits: map[string]bundle.RateLimitBinding{"std": {Requests: 10}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(b *bundle.Binding)
		same   bool
	}{
		{"other URLs", func(b *bundle.Binding) {
			b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{"http://b:80", "http://c:80"}}
		}, true},
		{"other limit", func(b *bundle.Binding) { b.RateLimits["std"] = bundle.RateLimitBinding{Requests: 99} }, true},
		{"an endpoint more", func(b *bundle.Binding) { b.Endpoints["other"] = bundle.EndpointBinding{URLs: []string{"http://o:80"}} }, false},
		{"a limit less", func(b *bundle.Binding) { delete(b.RateLimits, "std") }, false},
		{"another kind of scheme", func(b *bundle.Binding) {
			b.Security["keys"] = bundle.SecurityBinding{Basic: &bundle.BasicBinding{}}
		}, false},
		{"a server certificate", func(b *bundle.Binding) { b.Server = &bundle.ServerBinding{} }, false},
	} {
		b := base()
		tc.change(b)
		if got := bindingShape(b) == bindingShape(base()); got != tc.same {
			t.Errorf("%s: same shape %v, want %v", tc.name, got, tc.same)
		}
	}
}
