package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// statusUpstream answers with the status in *code.
func statusUpstream(t *testing.T, code *atomic.Int64) *upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
		_, _ = io.WriteString(w, "from upstream")
	})
}

func TestCircuitBreakerOpensAndCloses(t *testing.T) {
	var code atomic.Int64
	code.Store(503)
	up := statusUpstream(t, &code)
	b := bindingTo(up.url)
	b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{up.url}, CircuitBreaker: &bundle.CircuitBreaker{
		ConsecutiveFailures: 3, BaseEjection: bundle.Duration(300 * time.Millisecond),
	}}
	h := newHarness(t, testAPI(), b)
	// Three failures pass through (the upstream's own 503s), then the circuit opens.
	for i := 0; i < 3; i++ {
		if r := h.do("GET", "/v1/items", nil, nil); r.status != 503 || r.body != "from upstream" {
			t.Fatalf("attempt %d: %d %q", i, r.status, r.body)
		}
	}
	hits := up.hits.Load()
	r := h.do("GET", "/v1/items", nil, nil)
	if r.status != 503 || up.hits.Load() != hits {
		t.Fatalf("open circuit: %d %q, upstream hits %d → %d", r.status, r.body, hits, up.hits.Load())
	}
	if d := problemOf(t, r); !strings.Contains(d.Detail, "No healthy upstream") || r.header.Get("Retry-After") == "" {
		t.Fatalf("open circuit problem %+v, Retry-After %q", d, r.header.Get("Retry-After"))
	}
	if v := testutil.ToFloat64(h.g.metrics.Upstream("backend", up.url).State); v != 1 {
		t.Fatalf("circuit state gauge %v, want 1 (open)", v)
	}
	// After the ejection the next request is a probe; success closes the circuit.
	code.Store(200)
	time.Sleep(350 * time.Millisecond)
	for i := 0; i < 3; i++ {
		if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 {
			t.Fatalf("after ejection, request %d: %d", i, r.status)
		}
	}
	if v := testutil.ToFloat64(h.g.metrics.Upstream("backend", up.url).State); v != 0 {
		t.Fatalf("circuit state gauge %v, want 0 (closed)", v)
	}
	// A probe that fails re-opens the circuit, for twice as long.
	code.Store(502)
	for i := 0; i < 3; i++ {
		h.do("GET", "/v1/items", nil, nil)
	}
	time.Sleep(350 * time.Millisecond)
	hits = up.hits.Load()
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 502 || up.hits.Load() != hits+1 {
		t.Fatalf("probe after the first ejection: %d, hits %d → %d", r.status, hits, up.hits.Load())
	}
	time.Sleep(350 * time.Millisecond)
	hits = up.hits.Load()
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 503 || up.hits.Load() != hits {
		t.Fatalf("second ejection should last twice as long: %d, hits %d → %d", r.status, hits, up.hits.Load())
	}
	code.Store(200)
	time.Sleep(300 * time.Millisecond)
	if r := h.do("GET", "/v1/items", nil, nil); r.status != 200 {
		t.Fatalf("after the second ejection: %d", r.status)
	}
}

func TestRetries(t *testing.T) {
	var failCode atomic.Int64
	failCode.Store(503)
	bad := statusUpstream(t, &failCode)
	good := newUpstream(t, nil)
	dead := "http://" + closedAddr(t)
	retry := &bundle.Retries{Attempts: 2, On: []string{"5xx", "connect-failure", "reset"}}
	tests := []struct {
		name      string
		urls      []string
		method    string
		body      string
		status    int
		badHits   int64 // exact hits on the failing upstream
		goodHits  int64
		retryable bool
		retried   float64 // the retries metric's increase: attempts after the first
	}{
		{"GET retried away from a 503", []string{bad.url, good.url}, "GET", "", 200, 1, 1, true, 1},
		{"GET retried away from a dead URL", []string{dead, good.url}, "GET", "", 200, 0, 1, true, 1},
		{"POST never retried on 5xx", []string{bad.url, good.url}, "POST", "x", 503, 1, 0, false, 0},
		{"POST without body never retried", []string{bad.url, good.url}, "POST", "", 503, 1, 0, false, 0},
		{"PUT with a body not retried", []string{bad.url, good.url}, "PUT", "x", 503, 1, 0, false, 0},
		{"DELETE retried", []string{bad.url, good.url}, "DELETE", "", 200, 1, 1, true, 1},
		{"attempts run out", []string{bad.url, bad.url + "/"}, "GET", "", 503, 3, 0, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bindingTo(tt.urls...)
			e := b.Endpoints["backend"]
			e.Retries = retry
			// Round robin must start on the first URL: one URL that always fails first.
			b.Endpoints["backend"] = e
			h := newHarness(t, testAPI(), b)
			// Find the pick order: the cluster's round robin starts at index 1.
			bad0, good0 := bad.hits.Load(), good.hits.Load()
			path := "/v1/items"
			if tt.method == "PUT" || tt.method == "DELETE" {
				path = "/v1/items/1"
			}
			// Send until the failing URL is the first one tried (round robin;
			// a dead URL shows as a retry).
			var (
				r        reply
				retried0 float64
			)
			retriedNow := func() float64 { return testutil.ToFloat64(h.g.metrics.RetriesCounter("backend", "retried")) }
			for i := 0; i < 2; i++ {
				retried0 = retriedNow()
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				r = h.do(tt.method, path, body, nil)
				if bad.hits.Load() != bad0 || (tt.urls[0] == dead && retriedNow() > retried0) {
					break
				}
				bad0, good0 = bad.hits.Load(), good.hits.Load()
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d (%q)", r.status, tt.status, r.body)
			}
			if got := bad.hits.Load() - bad0; got != tt.badHits {
				t.Errorf("failing upstream hit %d times, want %d", got, tt.badHits)
			}
			if got := good.hits.Load() - good0; got != tt.goodHits {
				t.Errorf("good upstream hit %d times, want %d", got, tt.goodHits)
			}
			if got := retriedNow() - retried0; got != tt.retried {
				t.Errorf("retries metric rose by %v, want %v", got, tt.retried)
			}
		})
	}
}

func TestRetryBudget(t *testing.T) {
	var code atomic.Int64
	code.Store(503)
	bad := statusUpstream(t, &code)
	b := bindingTo(bad.url, bad.url+"/")
	e := b.Endpoints["backend"]
	e.Retries = &bundle.Retries{Attempts: 5, On: []string{"5xx"}}
	e.CircuitBreaker = &bundle.CircuitBreaker{ConsecutiveFailures: 1 << 20}
	b.Endpoints["backend"] = e
	h := newHarness(t, testAPI(), b)
	// 40 concurrent failing GETs may retry at most 5 times each, but the budget
	// (20% of requests in flight, at least 3) caps retries in flight.
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.do("GET", "/v1/items", nil, nil)
		}()
	}
	wg.Wait()
	done := testutil.ToFloat64(h.g.metrics.RetriesCounter("backend", "retried"))
	refused := testutil.ToFloat64(h.g.metrics.RetriesCounter("backend", "budget_exhausted"))
	if refused == 0 || done >= 40*5 {
		t.Fatalf("retried %v, refused by budget %v: the budget did not bind", done, refused)
	}
	if hits := bad.hits.Load(); hits >= 40*6 {
		t.Fatalf("upstream hit %d times", hits)
	}
}

func TestLoadBalancing(t *testing.T) {
	t.Run("round robin", func(t *testing.T) {
		ups := []*upstream{newUpstream(t, nil), newUpstream(t, nil), newUpstream(t, nil)}
		h := newHarness(t, testAPI(), bindingTo(ups[0].url, ups[1].url, ups[2].url))
		for i := 0; i < 30; i++ {
			h.do("GET", "/v1/items", nil, nil)
		}
		for i, u := range ups {
			if n := u.hits.Load(); n != 10 {
				t.Errorf("upstream %d: %d hits, want 10", i, n)
			}
		}
	})
	t.Run("least request", func(t *testing.T) {
		slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(300 * time.Millisecond) })
		fast := newUpstream(t, nil)
		b := bindingTo(slow.url, fast.url)
		e := b.Endpoints["backend"]
		e.LoadBalance = "least-request"
		b.Endpoints["backend"] = e
		h := newHarness(t, testAPI(), b)
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.do("GET", "/v1/items", nil, nil)
			}()
			time.Sleep(5 * time.Millisecond)
		}
		wg.Wait()
		if s, f := slow.hits.Load(), fast.hits.Load(); s >= f || s > 6 {
			t.Fatalf("slow upstream got %d requests, fast %d: least-request should avoid the busy one", s, f)
		}
	})
}

func TestStreamingResponse(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: second\n\n")
	})
	h := newHarness(t, testAPI(), bindingTo(up.url))
	resp, err := client.Get(h.url + "/v1/items")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(resp.Body, buf, len("data: first\n\n"))
	if err != nil || string(buf[:n]) != "data: first\n\n" {
		t.Fatalf("first event %q, %v (the gateway held the stream back)", buf[:n], err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "data: second\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

func TestMetrics(t *testing.T) {
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	h.do("GET", "/v1/items/1", nil, nil)
	h.do("GET", "/v1/items/2", nil, nil)
	h.do("GET", "/v1/nope", nil, nil)
	want := map[string]float64{
		`gatekiln_requests_total{code="200",method="GET",route="/v1/items/{id}"}`: 2,
		`gatekiln_requests_total{code="404",method="GET",route=""}`:               1,
		`gatekiln_binding_reloads_total{result="success"}`:                        1,
		`gatekiln_binding_generation`:                                             1,
		`gatekiln_requests_in_flight`:                                             0,
	}
	got := scrape(t, h.g)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got[`gatekiln_upstream_request_duration_seconds_count{endpoint="backend",upstream="`+up.url+`"}`] != 2 {
		t.Errorf("upstream latency histogram missing: %v", got)
	}
	if got[`gatekiln_request_duration_seconds_count{method="GET",route="/v1/items/{id}"}`] != 2 {
		t.Errorf("request latency histogram missing")
	}
}

// scrape reads the admin /metrics output into name{labels} → value.
func scrape(t *testing.T, g *Gateway) map[string]float64 {
	t.Helper()
	rec := &captureWriter{header: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	g.adminHandler().ServeHTTP(rec, req)
	out := map[string]float64{}
	for _, line := range strings.Split(rec.body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		_, _ = fmt.Sscan(line[i+1:], &v)
		out[line[:i]] = v
	}
	return out
}

type captureWriter struct {
	header http.Header
	body   strings.Builder
	status int
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(p []byte) (int, error) { return c.body.Write(p) }
func (c *captureWriter) WriteHeader(s int)           { c.status = s }

func TestAccessLog(t *testing.T) {
	up := newUpstream(t, nil)
	var buf syncBuffer
	h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) { c.AccessLog = &buf })
	r := h.do("GET", "/v1/items/9?x=1", nil, map[string]string{"User-Agent": "test-agent"})
	h.do("GET", "/v1/missing", nil, nil)
	h.g.access.flush()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "request", "method": "GET", "path": "/v1/items/9", "route": "GET /v1/items/{id}",
		"status": float64(200), "request_id": r.header.Get("X-Request-Id"), "user_agent": "test-agent", "proto": "HTTP/1.1"}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %v, want %v", k, e[k], v)
		}
	}
	if _, ok := e["duration_ms"].(float64); !ok {
		t.Errorf("no duration: %v", e)
	}
	if !strings.Contains(lines[1], `"status":404`) || !strings.Contains(lines[1], `"route":""`) {
		t.Errorf("second line %s", lines[1])
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInFlight: the in-flight gauge counts a request the upstream holds, and
// drops back when it is answered.
func TestInFlight(t *testing.T) {
	hold, held := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		close(held)
		<-hold
	})
	h := newHarness(t, testAPI(), bindingTo(up.url))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.do("GET", "/v1/items/1", nil, nil)
	}()
	<-held
	got, ok := scrape(t, h.g)["gatekiln_requests_in_flight"]
	close(hold)
	<-done
	if !ok || got != 1 {
		t.Errorf("in flight while the upstream holds the request: %v (reported %v), want 1", got, ok)
	}
	if got := scrape(t, h.g)["gatekiln_requests_in_flight"]; got != 0 {
		t.Errorf("in flight after the answer: %v, want 0", got)
	}
}
