package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

// recordingFactory is a policy that tags requests with its name (to prove the
// order), refuses routes whose path contains refuse (to prove how build
// errors are handled) and remembers the Envs it was given.
type recordingFactory struct {
	name   string
	refuse string
	mu     sync.Mutex
	envs   []filter.Env
}

func (f *recordingFactory) Name() string { return f.name }

func (f *recordingFactory) Build(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding, env filter.Env) (filter.Middleware, error) {
	f.mu.Lock()
	f.envs = append(f.envs, env)
	f.mu.Unlock()
	if f.refuse != "" && strings.Contains(route.Path, f.refuse) {
		return nil, errors.New("cannot serve " + route.Path)
	}
	if route.Method == "DELETE" {
		return nil, nil // nothing to do on this route
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rt := filter.RouteFrom(r.Context())
			if rt == nil || rt.Bundle != route || filter.RequestIDFrom(r.Context()) == "" {
				problem.Write(w, r, 500, "", "filter sees no route or request id")
				return
			}
			if r.URL.Query().Get("deny") == f.name {
				problem.Write(w, r, http.StatusForbidden, "", f.name+" says no")
				return
			}
			r.Header.Add("X-Chain", f.name+":"+rt.Param("id"))
			next.ServeHTTP(w, r)
		})
	}, nil
}

func TestFactoriesRunInOrderOncePerRoute(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Join(r.Header.Values("X-Chain"), ",")))
	})
	first, second := &recordingFactory{name: "first"}, &recordingFactory{name: "second"}
	h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) { c.Factories = []filter.Factory{first, second} })
	if r := h.do("GET", "/v1/items/7", nil, nil); r.body != "first:7,second:7" {
		t.Fatalf("chain order seen upstream: %q", r.body)
	}
	if r := h.do("DELETE", "/v1/items/7", nil, nil); r.body != "" {
		t.Fatalf("a factory that returned nil still ran: %q", r.body)
	}
	r := h.do("GET", "/v1/items/7?deny=first", nil, nil)
	if r.status != 403 || up.hits.Load() != 2 {
		t.Fatalf("refusal by the first filter: %d, upstream hits %d", r.status, up.hits.Load())
	}
	problemOf(t, r)
	// One Build per route per generation, with the gateway's Env.
	if n := len(first.envs); n != len(testAPI().Routes) {
		t.Fatalf("%d builds for %d routes", n, len(testAPI().Routes))
	}
	env := first.envs[0]
	if env.BindingDir != h.dir.dir || env.Generation != 1 || env.Metrics == nil || env.Logger == nil || env.Context.Err() != nil {
		t.Fatalf("env %+v", env)
	}
	// A reload builds a new generation and cancels the old one's context.
	b := bindingTo(up.url)
	b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{up.url}, Timeout: bundle.Duration(time.Second)}
	h.dir.swap(b, nil)
	h.g.Reload()
	waitFor(t, "the old generation's context to end", func() bool { return env.Context.Err() != nil })
	if last := first.envs[len(first.envs)-1]; last.Generation != 2 || last.Context.Err() != nil {
		t.Fatalf("new env %+v", last)
	}
}

func TestRouteThatCannotBeBuilt(t *testing.T) {
	up := newUpstream(t, nil)
	f := &recordingFactory{name: "picky", refuse: "/parts/"}
	h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) { c.Factories = []filter.Factory{f} })
	// At start-up the route answers 503, the rest serve, and readiness says why.
	if r := h.do("GET", "/v1/items/1/parts/2", nil, nil); r.status != 503 {
		t.Fatalf("unbuildable route: %d", r.status)
	}
	if r := h.do("GET", "/v1/items/1", nil, nil); r.status != 200 {
		t.Fatalf("other route: %d", r.status)
	}
	ok, why := h.g.Ready()
	if ok || !strings.Contains(strings.Join(why, "\n"), "picky: cannot serve /v1/items/{id}/parts/{part}") {
		t.Fatalf("ready %v: %v", ok, why)
	}
	// A Binding under which a route that works now would fail is refused.
	f.mu.Lock()
	f.refuse = "/items"
	f.mu.Unlock()
	b := bindingTo(up.url)
	b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{up.url}, Timeout: bundle.Duration(time.Second)}
	h.dir.swap(b, nil)
	h.g.Reload()
	if r := h.do("GET", "/v1/items/1", nil, nil); r.status != 200 {
		t.Fatalf("after a regressing binding the route answers %d", r.status)
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(h.g.warnings())
	if !strings.Contains(buf.String(), "what works now would fail") {
		t.Fatalf("warnings %s", buf.String())
	}
}

// waitingFactory's middleware waits on a channel when asked to (?wait=1):
// a policy that may wait, so it does not declare filter.LoopSafe.
type waitingFactory struct {
	entered, release chan struct{}
}

func (f *waitingFactory) Name() string { return "waiting" }

func (f *waitingFactory) Build(_ *bundle.Bundle, route *bundle.Route, _ *bundle.Binding, _ filter.Env) (filter.Middleware, error) {
	if route.Method != "GET" {
		return nil, nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("wait") == "1" {
				f.entered <- struct{}{}
				<-f.release
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// safeFactory declares its middleware loop-safe.
type safeFactory struct{ recordingFactory }

func (*safeFactory) LoopSafe(*bundle.Bundle, *bundle.Route, *bundle.Binding) bool { return true }

// TestWaitingPolicyLeavesTheLoop: a request held up inside a policy that may
// wait does not hold up the other connections of its event loop.
func TestWaitingPolicyLeavesTheLoop(t *testing.T) {
	up := newUpstream(t, nil)
	wf := &waitingFactory{entered: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) {
		c.Factories = []filter.Factory{&safeFactory{recordingFactory{name: "safe"}}, wf}
	})
	// Which routes stay on the loop: GET routes have the waiting policy.
	for _, cr := range h.g.gen.Load().routes {
		if want := cr.bundle.Method != "GET"; cr.loopSafe != want {
			t.Errorf("%s: loopSafe %v, want %v", cr.name, cr.loopSafe, want)
		}
	}
	held := make(chan int, 1)
	go func() {
		resp, err := client.Get(h.url + "/v1/items/1?wait=1")
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	<-wf.entered
	// New connections are spread over the pollers in turn: among four, some
	// share the held request's loop.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 3 * time.Second}
	for i := range 4 {
		for _, path := range []string{"/v1/items", "/v1/items/2"} {
			method := "GET"
			if path == "/v1/items/2" {
				method = "PUT" // a loop-safe route
			}
			req, _ := http.NewRequest(method, h.url+path, nil)
			resp, err := fresh.Do(req)
			if err != nil {
				t.Fatalf("connection %d, %s %s while a request waits in a policy: %v", i, method, path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
		}
	}
	close(wf.release)
	if s := <-held; s != 200 {
		t.Fatalf("the held request: %d", s)
	}
}
