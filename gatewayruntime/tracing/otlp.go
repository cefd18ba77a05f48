package tracing

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// exporter sends spans to an OTLP/HTTP traces endpoint in the protocol's JSON
// encoding. It stands in for otlptracehttp, whose protobuf and gRPC
// dependencies doubled the gateway binary and added 5 MiB to its idle RSS for
// a feature that is off by default.
type exporter struct {
	url    string
	client *http.Client
}

func newExporter(url string) *exporter {
	return &exporter{url: url, client: &http.Client{Timeout: 10 * time.Second}}
}

// OTLP/JSON shapes (opentelemetry-proto, JSON mapping: ids in hex, 64-bit
// integers as strings, enums as numbers).
type (
	exportRequest struct {
		ResourceSpans []resourceSpans `json:"resourceSpans"`
	}
	resourceSpans struct {
		Resource   otlpResource `json:"resource"`
		ScopeSpans []scopeSpans `json:"scopeSpans"`
	}
	otlpResource struct {
		Attributes []keyValue `json:"attributes,omitempty"`
	}
	scopeSpans struct {
		Scope scope  `json:"scope"`
		Spans []span `json:"spans"`
	}
	scope struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	span struct {
		TraceID           string     `json:"traceId"`
		SpanID            string     `json:"spanId"`
		TraceState        string     `json:"traceState,omitempty"`
		ParentSpanID      string     `json:"parentSpanId,omitempty"`
		Name              string     `json:"name"`
		Kind              int        `json:"kind"`
		StartTimeUnixNano string     `json:"startTimeUnixNano"`
		EndTimeUnixNano   string     `json:"endTimeUnixNano"`
		Attributes        []keyValue `json:"attributes,omitempty"`
		Status            status     `json:"status"`
	}
	status struct {
		Code    int    `json:"code,omitempty"`
		Message string `json:"message,omitempty"`
	}
	keyValue struct {
		Key   string   `json:"key"`
		Value anyValue `json:"value"`
	}
	anyValue struct {
		StringValue *string  `json:"stringValue,omitempty"`
		BoolValue   *bool    `json:"boolValue,omitempty"`
		IntValue    *string  `json:"intValue,omitempty"`
		DoubleValue *float64 `json:"doubleValue,omitempty"`
	}
)

// ExportSpans posts one request per batch, grouped by resource and scope.
func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	var req exportRequest
	resIndex := map[*sdkresource.Resource]int{}
	type scopeKey struct {
		res  int
		name string
	}
	scopeIndex := map[scopeKey]int{}
	for _, s := range spans {
		ri, ok := resIndex[s.Resource()]
		if !ok {
			ri = len(req.ResourceSpans)
			resIndex[s.Resource()] = ri
			req.ResourceSpans = append(req.ResourceSpans, resourceSpans{Resource: otlpResource{Attributes: keyValues(s.Resource().Attributes())}})
		}
		rs := &req.ResourceSpans[ri]
		sk := scopeKey{ri, s.InstrumentationScope().Name}
		si, ok := scopeIndex[sk]
		if !ok {
			si = len(rs.ScopeSpans)
			scopeIndex[sk] = si
			rs.ScopeSpans = append(rs.ScopeSpans, scopeSpans{Scope: scope{Name: sk.name, Version: s.InstrumentationScope().Version}})
		}
		rs.ScopeSpans[si].Spans = append(rs.ScopeSpans[si].Spans, spanOf(s))
	}
	body, err := json.Marshal(&req)
	if err != nil {
		return fmt.Errorf("otlp: encode: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(hr)
	if err != nil {
		return fmt.Errorf("otlp: export: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: export: %s", resp.Status)
	}
	return nil
}

// Shutdown has nothing to release; pending spans are flushed by the batcher.
func (e *exporter) Shutdown(context.Context) error { return nil }

func spanOf(s sdktrace.ReadOnlySpan) span {
	sc := s.SpanContext()
	out := span{
		TraceID:           hex.EncodeToString(traceIDBytes(sc.TraceID())),
		SpanID:            hex.EncodeToString(spanIDBytes(sc.SpanID())),
		TraceState:        sc.TraceState().String(),
		Name:              s.Name(),
		Kind:              kindOf(s.SpanKind()),
		StartTimeUnixNano: strconv.FormatInt(s.StartTime().UnixNano(), 10),
		EndTimeUnixNano:   strconv.FormatInt(s.EndTime().UnixNano(), 10),
		Attributes:        keyValues(s.Attributes()),
	}
	if p := s.Parent(); p.IsValid() {
		out.ParentSpanID = hex.EncodeToString(spanIDBytes(p.SpanID()))
	}
	switch s.Status().Code {
	case codes.Ok:
		out.Status.Code = 1
	case codes.Error:
		out.Status.Code = 2
	}
	out.Status.Message = s.Status().Description
	return out
}

func traceIDBytes(id trace.TraceID) []byte { return id[:] }
func spanIDBytes(id trace.SpanID) []byte   { return id[:] }

// kindOf maps to the OTLP SpanKind numbers (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
func kindOf(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

func keyValues(attrs []attribute.KeyValue) []keyValue {
	out := make([]keyValue, 0, len(attrs))
	for _, a := range attrs {
		var v anyValue
		switch a.Value.Type() {
		case attribute.BOOL:
			b := a.Value.AsBool()
			v.BoolValue = &b
		case attribute.INT64:
			s := strconv.FormatInt(a.Value.AsInt64(), 10)
			v.IntValue = &s
		case attribute.FLOAT64:
			f := a.Value.AsFloat64()
			v.DoubleValue = &f
		default:
			s := a.Value.String()
			v.StringValue = &s
		}
		out = append(out, keyValue{Key: string(a.Key), Value: v})
	}
	return out
}
