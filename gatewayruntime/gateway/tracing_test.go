package gateway

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gatekiln/gatekiln/gatewayruntime/tracing"
)

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// collector is an OTLP/HTTP traces receiver on loopback.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
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
		if hex.EncodeToString(s.TraceId) != clientTraceID || hex.EncodeToString(s.ParentSpanId) != clientSpanID ||
			hex.EncodeToString(s.SpanId) != parts[2] || s.Name != "GET /v1/items/{id}" || s.Kind != tracepb.Span_SPAN_KIND_SERVER {
			t.Fatalf("span %v", s)
		}
	})
}
