package registry_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
)

// TestUnreachableRegistryNamed: a registry that is not there (nothing
// listens, or it accepts and never answers) is reported as such; the hint to
// allow plain HTTP is for a registry that answers in plain HTTP, and only then.
func TestUnreachableRegistryNamed(t *testing.T) {
	closed := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	silent := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		return l.Addr().String()
	}
	plainHTTP := func(t *testing.T) string {
		if testing.Short() {
			t.Skip("starts docker-registry")
		}
		return registrytest.Start(t, registrytest.Options{}).Host
	}
	for _, c := range []struct {
		name     string
		host     func(*testing.T) string
		want     []string
		wantHint bool
	}{
		{"nothing listens", closed, []string{"not reachable", "connection refused"}, false},
		{"never answers", silent, []string{"deadline exceeded"}, false},
		{"answers in plain http", plainHTTP, []string{"plain HTTP"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			host := c.host(t)
			cfg := registry.Config{}
			ref, err := cfg.ParseReference(host + "/apis/petstore:v1")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			opts, err := cfg.Remote(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = remote.Head(ref, opts...)
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatal("Head succeeded")
			}
			for _, w := range append(c.want, host) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			if hint := strings.Contains(err.Error(), "insecure-registry"); hint != c.wantHint {
				t.Errorf("insecure-registry hint given: %v, want %v", hint, c.wantHint)
			}
		})
	}
}
