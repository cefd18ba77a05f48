package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
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

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

// testAPI is a small API under /v1 whose routes all use endpoint "backend"
// unless a test changes them.
func testAPI(routes ...bundle.Route) *bundle.Bundle {
	if len(routes) == 0 {
		routes = []bundle.Route{
			{Method: "GET", Path: "/v1/items"},
			{Method: "POST", Path: "/v1/items"},
			{Method: "GET", Path: "/v1/items/{id}"},
			{Method: "PUT", Path: "/v1/items/{id}"},
			{Method: "DELETE", Path: "/v1/items/{id}"},
			{Method: "GET", Path: "/v1/items/{id}/parts/{part}"},
		}
	}
	for i := range routes {
		r := &routes[i]
		if r.UpstreamPath == "" {
			r.UpstreamPath = strings.TrimPrefix(r.Path, "/v1")
		}
		if r.Endpoint == "" {
			r.Endpoint = "backend"
		}
		if r.Endpoint == "-" {
			r.Endpoint = ""
		}
	}
	return &bundle.Bundle{
		APIVersion: bundle.APIVersion,
		API:        bundle.API{Title: "test", Version: "1", BasePath: "/v1", SpecVersion: "3.0.3"},
		OpenAPI:    json.RawMessage(`{}`),
		Routes:     routes,
		Endpoints:  map[string]bundle.Endpoint{"backend": {}},
	}
}

func bindingTo(urls ...string) *bundle.Binding {
	return &bundle.Binding{
		APIVersion: bundle.BindingAPIVersion,
		Endpoints:  map[string]bundle.EndpointBinding{"backend": {URLs: urls}},
	}
}

// bindingDir lays out a Binding the way the kubelet projects a ConfigMap:
// files in a timestamped directory, "..data" pointing at it, and top-level
// symlinks through "..data". swap replaces the content atomically.
type bindingDir struct {
	t   testing.TB
	dir string
	n   int
}

func newBindingDir(t testing.TB) *bindingDir {
	return &bindingDir{t: t, dir: t.TempDir()}
}

func (d *bindingDir) swap(b *bundle.Binding, extra map[string][]byte) {
	files := map[string][]byte{}
	for k, v := range extra {
		files[k] = v
	}
	if b != nil {
		data, err := json.Marshal(b)
		if err != nil {
			d.t.Fatal(err)
		}
		files[bundle.BindingFile] = data
	}
	d.swapRaw(files)
}

func (d *bindingDir) swapRaw(files map[string][]byte) {
	d.n++
	ts := filepath.Join(d.dir, fmt.Sprintf("..2026_11_23_00_00_%02d.%d", d.n, d.n))
	if err := os.Mkdir(ts, 0o755); err != nil {
		d.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(d.dir, "..data"))
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		d.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(d.dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				d.t.Fatal(err)
			}
		}
	}
	if old != "" {
		_ = os.RemoveAll(filepath.Join(d.dir, old))
	}
}

type harness struct {
	t    testing.TB
	g    *Gateway
	url  string
	addr string
	dir  *bindingDir
}

// newHarness serves the gateway on loopback with the Binding written into a
// kubelet-style directory.
func newHarness(t testing.TB, api *bundle.Bundle, b *bundle.Binding, configure ...func(*Config)) *harness {
	t.Helper()
	return newHarnessFiles(t, api, b, nil, configure...)
}

// newHarnessFiles is newHarness with files beside the Binding (CAs, keys).
func newHarnessFiles(t testing.TB, api *bundle.Bundle, b *bundle.Binding, files map[string][]byte, configure ...func(*Config)) *harness {
	t.Helper()
	dir := newBindingDir(t)
	dir.swap(b, files)
	cfg := Config{Bundle: api, BindingDir: dir.dir, ShutdownDelay: -1, ReloadInterval: time.Hour}
	for _, f := range configure {
		f(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Close)
	return &harness{t: t, g: g, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), dir: dir}
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 20 * time.Second}

type reply struct {
	status int
	header http.Header
	body   string
	// close: the response said the connection ends (net/http takes
	// "Connection: close" out of the header).
	close bool
}

// dial opens a raw connection to the gateway, closed with t (the test or
// subtest that uses it), whose reads and writes give up after 10 s.
func (h *harness) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func (h *harness) do(method, path string, body io.Reader, header map[string]string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b), resp.Close}
}

// problemOf decodes a problem+json reply and checks its shape.
func problemOf(t testing.TB, r reply) problem.Details {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("content type %q, body %q", ct, r.body)
	}
	var d problem.Details
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Status != r.status || d.RequestID == "" || d.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("problem %+v for status %d, request id header %q", d, r.status, r.header.Get("X-Request-Id"))
	}
	return d
}

// upstream is a real HTTP server that records what it received.
type upstream struct {
	*http.Server
	url  string
	addr string
	hits atomic.Int64
	// conns is the number of connections the upstream has open: accepted
	// and not yet closed (their descriptors still taken).
	conns atomic.Int64
	mu    sync.Mutex
	last  *http.Request
	body  string
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	u.url = "http://" + u.addr
	u.Server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.last, u.body = r.Clone(r.Context()), string(b)
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "upstream "+u.addr+" "+r.Method+" "+r.URL.RequestURI())
	}), ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			u.conns.Add(1)
		case http.StateClosed, http.StateHijacked: // closed (its descriptor too), or the handler's now
			u.conns.Add(-1)
		}
	}}
	go func() { _ = u.Serve(ln) }()
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// waitNoConns waits until the upstream has closed every connection it
// accepted: a client that closes its end only starts the upstream's close.
func (u *upstream) waitNoConns(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); u.conns.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream still has %d connections open after 10s", u.conns.Load())
		}
	}
}

func (u *upstream) request() (*http.Request, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.body
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// itemsRequest is a plain GET of /v1/items, for tests that drive a raw
// connection.
const itemsRequest = "GET /v1/items HTTP/1.1\r\nHost: gw\r\n\r\n"

// readAnswer reads one response from br: its status and Retry-After.
func readAnswer(br *bufio.Reader) (status int, retryAfter string, err error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// rawGet sends itemsRequest on c and reads the answer from br.
func rawGet(t testing.TB, c net.Conn, br *bufio.Reader) (status int, retryAfter string) {
	t.Helper()
	if _, err := io.WriteString(c, itemsRequest); err != nil {
		t.Fatal(err)
	}
	status, retryAfter, err := readAnswer(br)
	if err != nil {
		t.Fatal(err)
	}
	return status, retryAfter
}
