package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/tracing"
)

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// collector is an OTLP/HTTP traces receiver on loopback (JSON encoding).
type collector struct {
	mu    sync.Mutex
	spans []otlpSpan
}

type otlpSpan struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Start        string `json:"startTimeUnixNano"`
	End          string `json:"endTimeUnixNano"`
	Attributes   []struct {
		Key   string         `json:"key"`
		Value map[string]any `json:"value"`
	} `json:"attributes"`
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []otlpSpan `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "want OTLP JSON", 400)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}")
}

func TestTracing(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("Traceparent"))
	})
	t.Run("off passes traceparent through", func(t *testing.T) {
		h := newHarness(t, testAPI(), bindingTo(up.url))
		if r := h.do("GET", "/v1/items/1", nil, map[string]string{"Traceparent": traceparent}); r.body != traceparent {
			t.Fatalf("upstream saw %q", r.body)
		}
	})
	t.Run("on continues the trace", func(t *testing.T) {
		col := &collector{}
		srv := httptest.NewServer(col)
		defer srv.Close()
		tr, stop, err := tracing.New(context.Background(), srv.URL+"/v1/traces", "test")
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) { c.Tracer = tr })
		r := h.do("GET", "/v1/items/1", nil, map[string]string{"Traceparent": traceparent})
		parts := strings.Split(r.body, "-")
		if len(parts) != 4 || parts[1] != clientTraceID || parts[2] == clientSpanID {
			t.Fatalf("upstream traceparent %q: want trace %s with the gateway's span as parent", r.body, clientTraceID)
		}
		stop() // flushes
		col.mu.Lock()
		defer col.mu.Unlock()
		if len(col.spans) != 1 {
			t.Fatalf("%d spans exported", len(col.spans))
		}
		s := col.spans[0]
		attrs := map[string]any{}
		for _, a := range s.Attributes {
			for _, v := range a.Value {
				attrs[a.Key] = v
			}
		}
		if s.TraceID != clientTraceID || s.ParentSpanID != clientSpanID || s.SpanID != parts[2] ||
			s.Name != "GET /v1/items/{id}" || s.Kind != 2 || s.Start == "" || s.End <= s.Start ||
			attrs["http.response.status_code"] != "200" || attrs["http.route"] != "GET /v1/items/{id}" {
			t.Fatalf("span %+v attributes %v", s, attrs)
		}
	})
}
