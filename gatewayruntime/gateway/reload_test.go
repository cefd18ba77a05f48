package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// load sends requests from n keep-alive clients until stop, counting
// failures and the upstreams that answered.
type load struct {
	failures atomic.Int64
	requests atomic.Int64
	dials    atomic.Int64
	mu       sync.Mutex
	seen     map[string]int
	firstErr string
	wg       sync.WaitGroup
	stop     chan struct{}
}

func startLoad(t *testing.T, url string, n int) *load {
	l := &load{seen: map[string]int{}, stop: make(chan struct{})}
	d := &net.Dialer{}
	// MaxConnsPerHost: a client whose connection is on its way back to the
	// idle pool waits for it instead of racing a new dial (under load that
	// dial counted as a reconnect though no connection was dropped).
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		l.dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(url)
				l.requests.Add(1)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.fail(resp.Status + " " + string(b))
					continue
				}
				l.mu.Lock()
				l.seen[strings.Fields(string(b))[1]]++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.failures.Add(1)
	l.mu.Lock()
	if l.firstErr == "" {
		l.firstErr = msg
	}
	l.mu.Unlock()
}

func (l *load) count(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[addr]
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

func TestHotReloadUnderLoad(t *testing.T) {
	a, b := newUpstream(t, nil), newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(a.url), func(c *Config) { c.ReloadInterval = 20 * time.Millisecond })
	go h.g.watch()
	l := startLoad(t, h.url+"/v1/items", 8)
	// Every client connected (on a loaded machine some start late, and their
	// first dial is no reconnect), then traffic.
	waitFor(t, "traffic on A from every client", func() bool { return l.dials.Load() >= 8 && l.count(a.addr) > 100 })
	dials := l.dials.Load()
	h.dir.swap(bindingTo(b.url), nil) // the kubelet's ..data symlink swap
	waitFor(t, "traffic on B", func() bool { return l.count(b.addr) > 100 })
	l.end()
	if f := l.failures.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed across the reload; first: %s", f, l.requests.Load(), l.firstErr)
	}
	if d := l.dials.Load(); d != dials {
		t.Fatalf("clients had to reconnect %d times: the reload dropped connections", d-dials)
	}
	if got := testutil.ToFloat64(h.g.metrics.Reloads.WithLabelValues("success")); got != 2 {
		t.Fatalf("successful loads %v, want 2", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadBindingKeepsThePreviousOne(t *testing.T) {
	a, b := newUpstream(t, nil), newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(a.url))
	lb := bindingTo(b.url)
	lb.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{b.url}, LoadBalance: "random"}
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"not json", map[string][]byte{"binding.json": []byte("{not json")}},
		{"unknown field", map[string][]byte{"binding.json": []byte(`{"apiVersion":"gatekiln.io/binding/v1","endpionts":{}}`)}},
		{"bad url", map[string][]byte{"binding.json": []byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoints":{"backend":{"urls":["ftp://x"]}}}`)}},
		{"unknown load balancing", nil},
		{"unreadable CA", map[string][]byte{"binding.json": []byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoints":{"backend":{"urls":["` + b.url + `"],"caFile":"nope.pem"}}}`)}},
		{"data after the object", map[string][]byte{"binding.json": []byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoints":{"backend":{"urls":["` + b.url + `"]}}} {}`)}},
		// Complete and valid, but it would take away what works now, on
		// every replica at once.
		{"endpoint URLs removed", map[string][]byte{"binding.json": []byte(`{"apiVersion":"gatekiln.io/binding/v1","endpoints":{"backend":{"urls":[]}}}`)}},
		{"binding.json gone", map[string][]byte{"other-file": []byte("x")}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.files == nil {
				h.dir.swap(lb, nil)
			} else {
				h.dir.swapRaw(tt.files)
			}
			h.g.Reload()
			if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 || !strings.Contains(r.body, a.addr) {
				t.Fatalf("after a bad binding: %d %q (want upstream A)", r.status, r.body)
			}
			if got := testutil.ToFloat64(h.g.metrics.Reloads.WithLabelValues("failure")); got != float64(i+1) {
				t.Fatalf("failed loads %v, want %d", got, i+1)
			}
			if testutil.ToFloat64(h.g.metrics.BindingValid) != 0 {
				t.Fatal("binding_last_load_success should be 0")
			}
			rec := &captureWriter{header: http.Header{}}
			h.g.readyz(rec, nil)
			if rec.status != 0 || !strings.Contains(rec.body.String(), "warning: last binding load failed") {
				t.Fatalf("readyz %d %q: a running gateway stays ready and warns", rec.status, rec.body.String())
			}
		})
	}
	h.dir.swap(bindingTo(b.url), nil)
	h.g.Reload()
	if r := h.do("GET", "/v1/items", nil, nil); !strings.Contains(r.body, b.addr) {
		t.Fatalf("a good binding after bad ones: %q", r.body)
	}
	if testutil.ToFloat64(h.g.metrics.BindingValid) != 1 {
		t.Fatal("binding_last_load_success should be 1 again")
	}
}

func TestReadinessNamesWhatIsMissing(t *testing.T) {
	up := newUpstream(t, nil)
	api := testAPI()
	api.Endpoints["other"] = bundle.Endpoint{}
	api.Routes = append(api.Routes, bundle.Route{Method: "GET", Path: "/v1/other", UpstreamPath: "/other", Endpoint: "other"})
	h := newHarness(t, api, bindingTo(up.url))
	rec := &captureWriter{header: http.Header{}}
	h.g.readyz(rec, nil)
	if rec.status != 503 || !strings.Contains(rec.body.String(), "endpoint other: no URLs") {
		t.Fatalf("readyz %d %q", rec.status, rec.body.String())
	}
	// The routes that can be served are served meanwhile.
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	b := bindingTo(up.url)
	b.Endpoints["other"] = bundle.EndpointBinding{URLs: []string{up.url}}
	h.dir.swap(b, nil)
	h.g.Reload()
	rec = &captureWriter{header: http.Header{}}
	h.g.readyz(rec, nil)
	if rec.status != 0 || rec.body.String() != "ok\n" {
		t.Fatalf("readyz after the fix %d %q", rec.status, rec.body.String())
	}
}

func TestServerCertificateReload(t *testing.T) {
	up := newUpstream(t, nil)
	cert1, key1, ca1 := testCert(t, "first")
	cert2, key2, ca2 := testCert(t, "second")
	b := bindingTo(up.url)
	b.Server = &bundle.ServerBinding{TLSCertFile: "tls.crt", TLSKeyFile: "tls.key"}
	dir := newBindingDir(t)
	dir.swap(b, map[string][]byte{"tls.crt": cert1, "tls.key": key1})
	g, err := New(Config{Bundle: testAPI(), BindingDir: dir.dir, ShutdownDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.ServeTLS(ln) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca1)
	pool.AppendCertsFromPEM(ca2)
	peer := func() string {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := peer(); cn != "first" {
		t.Fatalf("certificate %q", cn)
	}
	dir.swap(b, map[string][]byte{"tls.crt": cert2, "tls.key": key2})
	g.Reload()
	if cn := peer(); cn != "second" {
		t.Fatalf("after the swap the certificate is %q", cn)
	}
	// A key that does not match keeps the previous certificate.
	dir.swap(b, map[string][]byte{"tls.crt": cert1, "tls.key": key2})
	g.Reload()
	if cn := peer(); cn != "second" {
		t.Fatalf("after a bad swap the certificate is %q", cn)
	}
}

// documentFactory records what a filter.DocumentReader sees of the document.
type documentFactory struct {
	read    []string
	builtOn []int // len(api.OpenAPI) at each Build
}

func (f *documentFactory) Name() string { return "document" }

func (f *documentFactory) ReadDocument(api *bundle.Bundle) {
	f.read = append(f.read, string(api.OpenAPI))
}

func (f *documentFactory) Build(api *bundle.Bundle, _ *bundle.Route, _ *bundle.Binding, _ filter.Env) (filter.Middleware, error) {
	f.builtOn = append(f.builtOn, len(api.OpenAPI))
	return nil, nil
}

// TestDocumentReadOnce: the factories read the OpenAPI document once, before
// the first generation; the gateway then holds no copy (it can be megabytes),
// and the caller's Bundle keeps its own.
func TestDocumentReadOnce(t *testing.T) {
	up := newUpstream(t, nil)
	api := testAPI()
	api.OpenAPI = json.RawMessage(`{"openapi":"3.0.3"}`)
	f := &documentFactory{}
	h := newHarness(t, api, bindingTo(up.url), func(c *Config) { c.Factories = []filter.Factory{f} })
	h.dir.swap(bindingTo(up.url, up.url), nil)
	h.g.Reload()
	if len(f.read) != 1 || f.read[0] != `{"openapi":"3.0.3"}` {
		t.Fatalf("ReadDocument saw %q, want the document once", f.read)
	}
	if len(f.builtOn) != 2*len(api.Routes) {
		t.Fatalf("%d Builds, want two generations of %d routes", len(f.builtOn), len(api.Routes))
	}
	for _, n := range f.builtOn {
		if n != 0 {
			t.Fatal("Build still sees the document: the gateway keeps it resident")
		}
	}
	if h.g.api.OpenAPI != nil || string(api.OpenAPI) != `{"openapi":"3.0.3"}` {
		t.Fatal("the gateway's copy should drop the document, the caller's keep it")
	}
}

// TestUnreadableBindingReportedOnce: a Binding that cannot be read is tried
// again every interval, but one persisting failure is logged and counted
// once, not every second.
func TestUnreadableBindingReportedOnce(t *testing.T) {
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	// binding.json as a directory: reading it fails every time.
	link := filepath.Join(h.dir.dir, "binding.json")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(link, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		h.g.reload(false)
	}
	if got := testutil.ToFloat64(h.g.metrics.Reloads.WithLabelValues("failure")); got != 1 {
		t.Fatalf("failed loads %v after three looks at the same unreadable file, want 1", got)
	}
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 {
		t.Fatalf("the previous binding stopped serving: %d", r.status)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	h.dir.swap(bindingTo(up.url), nil)
	h.g.reload(false)
	if testutil.ToFloat64(h.g.metrics.BindingValid) != 1 {
		t.Fatal("a readable binding again was not loaded")
	}
}

// TestRemovedUpstreamStopsReporting: once a Binding without an upstream URL
// takes effect, that URL's series are gone from /metrics (an open circuit
// left behind would keep an alert firing), and the new URL's are there.
func TestRemovedUpstreamStopsReporting(t *testing.T) {
	a, b := newUpstream(t, nil), newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(a.url))
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	series := func(url string) []string {
		var out []string
		for k := range scrape(t, h.g) {
			if strings.Contains(k, `upstream="`+url+`"`) {
				out = append(out, k)
			}
		}
		return out
	}
	if len(series(a.url)) == 0 {
		t.Fatal("no series for the upstream in use")
	}
	h.dir.swap(bindingTo(b.url), nil)
	h.g.Reload()
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 || !strings.Contains(r.body, b.addr) {
		t.Fatalf("after the reload: %d %q", r.status, r.body)
	}
	if s := series(a.url); len(s) != 0 {
		t.Fatalf("the removed upstream still reports: %v", s)
	}
	if len(series(b.url)) == 0 {
		t.Fatal("no series for the new upstream")
	}
}
