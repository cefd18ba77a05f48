package addapi_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"

	"github.com/gatekiln/gatekiln/kubectl-plugin/addapi"
)

// cancelAfter is a transport that cancels the command's context (Ctrl-C)
// once the API server has answered the first request that matches: the
// write it stands for is done, the ones after it are interrupted.
type cancelAfter struct {
	next   http.RoundTripper
	match  func(*http.Request) bool
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (c *cancelAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && c.match(r) {
		c.once.Do(func() { c.cancel(errInterrupt) })
	}
	return resp, err
}

var errInterrupt = errors.New("interrupt signal received")

// TestInterruptWhileWritingCleansUp presses Ctrl-C while a new API is being
// written: once an Endpoint, or a definition ConfigMap, is written and before
// the API is. The run must end as interrupted (exit 130), remove what it
// created (the cancelled context cannot be used for that) and say so.
func TestInterruptWhileWritingCleansUp(t *testing.T) {
	e := needCluster(t)
	for _, c := range []struct {
		name  string
		match func(*http.Request) bool
	}{
		{"after the endpoint", func(r *http.Request) bool {
			return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/endpoints/")
		}},
		{"after the configmap", func(r *http.Request) bool {
			return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/configmaps/")
		}},
		// The API is written, its ConfigMaps not yet owned by it.
		{"after the api", func(r *http.Request) bool {
			return r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/apis/petstore")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := e.namespace(t, "interrupt-"+strings.ReplaceAll(c.name, " ", "-"))
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			config := genericclioptions.NewConfigFlags(false)
			config.KubeConfig, config.Namespace = &e.kubeconfig, &ns
			config.WrapConfigFn = func(cfg *rest.Config) *rest.Config {
				cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
					return &cancelAfter{next: rt, match: c.match, cancel: cancel}
				})
				return cfg
			}
			var out, errOut bytes.Buffer
			o := &addapi.Options{Name: "petstore", Files: []string{e.sample()}, Config: config,
				Endpoints: []string{"petstore-backend=http://petstore-backend:8080"},
				IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}}
			err := o.Run(ctx)
			if err == nil || !errors.Is(err, errInterrupt) {
				t.Errorf("Run = %v, want an error carrying the interrupt", err)
			}
			if code := addapi.ExitCode(ctx, err); code != 130 {
				t.Errorf("exit code %d, want 130", code)
			}
			if !strings.Contains(err.Error(), "removed") {
				t.Errorf("Run = %v, want it to say what it removed", err)
			}
			t.Log(err)
			e.nothingWritten(t, ns)
		})
	}
}
