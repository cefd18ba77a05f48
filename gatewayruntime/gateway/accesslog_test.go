package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// slogJSON is how slog's JSON handler writes s: the escaping the access log
// keeps.
func slogJSON(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
			return slog.Attr{}
		}
		return a
	}})
	slog.New(h).LogAttrs(context.Background(), slog.LevelInfo, "", slog.String("v", s))
	out := strings.TrimSpace(buf.String())
	return strings.TrimSuffix(strings.TrimPrefix(out, `{"v":`), "}")
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `say "hi"`, `back\slash`, "tab\tnew\nline\rret", "nul\x00bell\x07esc\x1bdel\x7f",
		"héllo wörld ✓ 🎉", "bad \xff utf8 \xc3", "js \u2028 \u2029 sep", "</script>&amp;",
		"Mozilla/5.0 (X11; Linux x86_64) \"quoted\"\n{\"injected\":true}",
	} {
		got := string(appendJSONString(nil, s))
		if want := slogJSON(t, s); got != want {
			t.Errorf("appendJSONString(%q) = %s, slog writes %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("appendJSONString(%q) = %s: not JSON: %v", s, got, err)
		}
	}
}

func TestAppendMillis(t *testing.T) {
	for _, us := range []int64{0, 1, 9, 10, 100, 999, 1000, 1001, 1700, 1234, 12345678, -1500} {
		d := time.Duration(us) * time.Microsecond
		got := string(appendMillis(nil, d))
		want := strconv.FormatFloat(float64(us)/1000, 'f', -1, 64)
		if got != want {
			t.Errorf("appendMillis(%v) = %s, want %s", d, got, want)
		}
	}
}

// TestAccessLogLine: a line has slog's shape and the request's fields, and a
// hostile User-Agent stays inside its string.
func TestAccessLogLine(t *testing.T) {
	var out syncBuffer
	a := newAccessLog(&out)
	defer a.close()
	r := httptest.NewRequest("GET", "/v1/items/a%20b?x=1", nil)
	r.RemoteAddr = "192.0.2.7:4711"
	// The id is the request State's (what the gateway decided), not a field.
	st := filter.NewState(nil)
	st.SetRequestID("abc-1")
	r = r.WithContext(filter.WithState(r.Context(), st))
	r.Header["X-Request-Id"] = []string{"client-sent"}
	r.Header["User-Agent"] = []string{"evil\n{\"status\":200}"}
	a.log(r, "GET /v1/items/{id}", 502, 123, 1500*time.Microsecond)
	a.flush()
	line := out.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want one line, got %q", line)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{"level": "INFO", "msg": "request", "request_id": "abc-1", "remote": "192.0.2.7:4711",
		"method": "GET", "path": "/v1/items/a%20b", "route": "GET /v1/items/{id}", "status": float64(502),
		"bytes": float64(123), "duration_ms": 1.5, "proto": "HTTP/1.1", "user_agent": "evil\n{\"status\":200}"}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %#v, want %#v", k, e[k], v)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, e["time"].(string)); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("time %v: %v", e["time"], err)
	}
	if len(e) != len(want)+1 {
		t.Errorf("fields %v, want those of %v and time", e, want)
	}
}

// blockingWriter holds every Write until released, recording what it got.
type blockingWriter struct {
	mu      sync.Mutex
	got     bytes.Buffer
	release chan struct{}
	entered chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got.Write(p)
}

// TestAccessLogSlowReader: while the log's reader is stuck, requests go on
// logging (the write is not theirs to wait for) until every buffer is
// queued; nothing is lost and the order is kept; close writes the rest, and
// lines logged after close are written at once.
func TestAccessLogSlowReader(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	a := newAccessLog(w)
	r := httptest.NewRequest("GET", "/p", nil)
	perBuffer := (accessBufSize - 1024) / lineLen(t, r)
	// Two buffers' worth: the first goes to the writer, which blocks.
	logged := make(chan int)
	go func() {
		for i := range 2 * perBuffer {
			a.log(r, "r"+strconv.Itoa(i), 200, 0, 0)
		}
		logged <- 2 * perBuffer
	}()
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the full buffer never reached the writer")
	}
	select {
	case n := <-logged:
		if n != 2*perBuffer {
			t.Fatal(n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logging waited for the stuck writer although buffers were free")
	}
	close(w.release) // unstick
	a.close()
	a.log(r, "after-close", 200, 0, 0)
	w.mu.Lock()
	text := w.got.String()
	w.mu.Unlock()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 2*perBuffer+1 {
		t.Fatalf("%d lines written, want %d", len(lines), 2*perBuffer+1)
	}
	for i, l := range lines[:2*perBuffer] {
		if !strings.Contains(l, `"route":"r`+strconv.Itoa(i)+`"`) {
			t.Fatalf("line %d out of order: %s", i, l)
		}
	}
	if !strings.Contains(lines[len(lines)-1], `"route":"after-close"`) {
		t.Errorf("the line logged after close: %s", lines[len(lines)-1])
	}
}

// lineLen is the length of the longest line TestAccessLogSlowReader logs.
func lineLen(t *testing.T, r *http.Request) int {
	t.Helper()
	var out syncBuffer
	a := newAccessLog(&out)
	a.log(r, "r99999", 200, 0, 0)
	a.close()
	return len(out.String())
}

func BenchmarkAccessLog(b *testing.B) {
	a := newAccessLog(discard{})
	defer a.close()
	r := httptest.NewRequest("GET", "/v2/user/user1", nil)
	r.Header["X-Request-Id"] = []string{"effb304f66b3b4d3-1"}
	r.Header["User-Agent"] = []string{"wrk"}
	b.ReportAllocs()
	for b.Loop() {
		a.log(r, "GET /user/{username}", 200, 93, 1700*time.Microsecond)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestAccessLogShutdown: the lines still buffered when the gateway drains are
// written before Shutdown returns (the process exits right after).
func TestAccessLogShutdown(t *testing.T) {
	up := newUpstream(t, nil)
	var buf syncBuffer
	h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) { c.AccessLog = &buf })
	h.do("GET", "/v1/items/9", nil, nil)
	if err := h.g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"route":"GET /v1/items/{id}"`) {
		t.Errorf("after Shutdown the log holds %q", buf.String())
	}
}

// TestAccessLogFlushConcurrent: each flush returns only once its own lines
// are written, also when flushes overlap.
func TestAccessLogFlushConcurrent(t *testing.T) {
	var out syncBuffer
	a := newAccessLog(&out)
	defer a.close()
	r := httptest.NewRequest("GET", "/p", nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			route := "flush-" + strconv.Itoa(i)
			a.log(r, route, 200, 0, 0)
			a.flush()
			if !strings.Contains(out.String(), `"route":"`+route+`"`) {
				t.Errorf("flush returned before %s was written", route)
			}
		}()
	}
	wg.Wait()
}
