package policy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

// upstream is a real HTTP server on loopback that counts the requests it gets
// and echoes what it saw as JSON.
type upstream struct {
	srv  *httptest.Server
	hits atomic.Int64
	// body, when set, is served instead of the echo (response validation tests).
	body atomic.Pointer[string]
}

type echo struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if b := u.body.Load(); b != nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			_, _ = io.WriteString(w, *b)
			return
		}
		body, _ := io.ReadAll(r.Body)
		e := echo{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: map[string]string{}, Body: string(body)}
		for k := range r.Header {
			e.Headers[k] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// testGateway stands in for the gateway runtime: it matches routes, puts the
// filter.State in the context, composes the policy chain exactly as filter
// documents (Factories in order, outermost first) and proxies to the upstream.
type testGateway struct {
	URL    string
	srv    *httptest.Server
	reg    *prometheus.Registry
	cancel context.CancelFunc
	client *http.Client
}

type gatewayOptions struct {
	tls     *tls.Config // serve TLS with this config (client certificates)
	trusted []string
	log     *slog.Logger // the policies' logger; nil discards
}

func startGateway(t *testing.T, api *bundle.Bundle, b *bundle.Binding, dir string, up *upstream, opts ...gatewayOptions) *testGateway {
	t.Helper()
	var o gatewayOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx, cancel := context.WithCancel(context.Background())
	env := envFor(ctx, dir)
	if o.log != nil {
		env.Logger = o.log
	}
	reg := env.Metrics.(*prometheus.Registry)
	target, _ := url.Parse(up.srv.URL)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = target.Host
	}}
	// The upstream sees who the policies decided the caller is.
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("X-Test-Identity")
		if id := filter.IdentityFrom(r.Context()); id != nil {
			r.Header.Set("X-Test-Identity", id.Scheme+"/"+id.Subject)
		}
		rp.ServeHTTP(w, r)
	})
	type compiled struct {
		route   *bundle.Route
		segs    []string
		handler http.Handler
	}
	var routes []compiled
	factories := Factories()
	for i := range api.Routes {
		rt := &api.Routes[i]
		var h http.Handler = proxy
		var mws []filter.Middleware
		for _, f := range factories {
			mw, err := f.Build(api, rt, b, env)
			if err != nil {
				cancel()
				t.Fatalf("build %s for %s %s: %v", f.Name(), rt.Method, rt.Path, err)
			}
			if mw != nil {
				mws = append(mws, mw)
			}
		}
		for j := len(mws) - 1; j >= 0; j-- {
			h = mws[j](h)
		}
		routes = append(routes, compiled{rt, strings.Split(rt.Path, "/"), h})
	}
	trusted, err := filter.ParseTrustedProxies(o.trusted)
	if err != nil {
		t.Fatal(err)
	}
	match := func(method, path string) (*compiled, []filter.Param) {
		segs := strings.Split(path, "/")
	next:
		for i := range routes {
			c := &routes[i]
			if c.route.Method != method || len(c.segs) != len(segs) {
				continue
			}
			var params []filter.Param
			for j, s := range c.segs {
				if strings.HasPrefix(s, "{") {
					if segs[j] == "" {
						continue next
					}
					params = append(params, filter.Param{Name: strings.Trim(s, "{}"), Value: segs[j]})
					continue
				}
				if s != segs[j] {
					continue next
				}
			}
			return c, params
		}
		return nil, nil
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := filter.NewState(trusted)
		st.RequestID = "test-req"
		r = r.WithContext(filter.WithState(r.Context(), st))
		method := r.Method
		if method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			method = strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))
		}
		c, params := match(method, r.URL.Path)
		if c == nil {
			problem.Write(w, r, http.StatusNotFound, "Not Found", "no route")
			return
		}
		st.Route = filter.Route{API: api, Bundle: c.route, Name: c.route.Method + " " + c.route.Path, Params: params}
		c.handler.ServeHTTP(w, r)
	})
	srv := httptest.NewUnstartedServer(handler)
	// Large enough that the policies, not the server, refuse oversized tokens.
	srv.Config.MaxHeaderBytes = 4 << 20
	if o.tls != nil {
		srv.TLS = o.tls
		srv.StartTLS()
	} else {
		srv.Start()
	}
	g := &testGateway{URL: srv.URL, srv: srv, reg: reg, cancel: cancel, client: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		srv.Close()
		cancel()
	})
	return g
}

// envFor is one Binding generation's Env with a fresh registry.
func envFor(ctx context.Context, dir string) filter.Env {
	return filter.Env{BindingDir: dir, Generation: 1, Context: ctx, Metrics: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler)}
}

type response struct {
	status int
	header http.Header
	body   []byte
	echo   echo
	prob   problem.Details
}

// do sends a request and decodes the upstream echo or the problem document.
// alternating sends n requests at once with send, alternately through each
// of gws (replicas of one API), and waits for them all.
func alternating[G any](n int, gws []G, send func(gw G)) {
	var wg sync.WaitGroup
	for i := range n {
		gw := gws[i%len(gws)]
		wg.Go(func() { send(gw) })
	}
	wg.Wait()
}

func (g *testGateway) do(t *testing.T, method, path string, hdr map[string]string, body string) response {
	t.Helper()
	return doWith(t, g.client, method, g.URL+path, hdr, body)
}

func doWith(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: data}
	switch {
	case strings.HasPrefix(resp.Header.Get("Content-Type"), problem.ContentType):
		if err := json.Unmarshal(data, &out.prob); err != nil {
			t.Fatalf("problem body %q: %v", data, err)
		}
	case resp.StatusCode == http.StatusOK && len(data) > 0 && data[0] == '{':
		_ = json.Unmarshal(data, &out.echo)
	}
	return out
}

// counter reads a counter's value from the gateway's registry.
func (g *testGateway) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// petstore returns a Bundle over testdata/petstore.json with base path /v1.
// edit adjusts each route.
func petstore(t *testing.T, edit func(r *bundle.Route)) *bundle.Bundle {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("testdata", "petstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	api := &bundle.Bundle{
		APIVersion: bundle.APIVersion,
		API:        bundle.API{Title: "Petstore", Version: "1.0.0", BasePath: "/v1", SpecVersion: "3.0.3"},
		OpenAPI:    doc,
		Routes: []bundle.Route{
			{Method: "GET", Path: "/v1/pets", OperationID: "listPets", UpstreamPath: "/pets", Endpoint: "pets"},
			{Method: "POST", Path: "/v1/pets", OperationID: "createPet", UpstreamPath: "/pets", Endpoint: "pets"},
			{Method: "GET", Path: "/v1/pets/{petId}", OperationID: "showPet", UpstreamPath: "/pets/{petId}", Endpoint: "pets"},
		},
		Endpoints:       map[string]bundle.Endpoint{"pets": {}},
		SecuritySchemes: map[string]bundle.SecurityScheme{},
		RateLimits:      map[string]bundle.RateLimit{},
	}
	for i := range api.Routes {
		if edit != nil {
			edit(&api.Routes[i])
		}
	}
	return api
}

// writeFiles writes name → content into a fresh binding directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func binding() *bundle.Binding {
	return &bundle.Binding{
		APIVersion: bundle.BindingAPIVersion,
		Security:   map[string]bundle.SecurityBinding{},
		RateLimits: map[string]bundle.RateLimitBinding{},
	}
}

// waitFor polls cond for up to d; tests use it where a background fetch or a
// circuit cooldown must pass, never to assert speed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startServer starts an unstarted test server: over TLS with cert when it is
// set, plain HTTP otherwise. t.Cleanup closes it.
func startServer(t *testing.T, srv *httptest.Server, cert *tls.Certificate) {
	t.Helper()
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		// Handshakes the gateway refuses are what some tests are about.
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
}
