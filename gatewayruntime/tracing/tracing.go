// Package tracing is the gateway's OpenTelemetry hook: a server span per
// request, exported by OTLP/HTTP, with W3C trace context (traceparent,
// tracestate) read from the client and written to the upstream so that the
// upstream's spans are children of the gateway's. Tracing is off unless an
// endpoint is configured; then a traceparent simply passes through untouched.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// Tracer starts spans; it implements gateway.Tracer.
type Tracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New exports spans to an OTLP/HTTP traces endpoint URL
// ("http://collector:4318/v1/traces"), JSON-encoded. The returned function
// flushes and stops the exporter.
func New(_ context.Context, endpoint, service string) (*Tracer, func(), error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("otlp endpoint %q: want an http(s) URL", bundle.RedactURL(endpoint))
	}
	exp := newExporter(endpoint)
	res := resource.NewSchemaless(
		attribute.String("service.name", "gatekiln-gateway"),
		attribute.String("gatekiln.api", service),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	)
	t := &Tracer{
		tracer: tp.Tracer("github.com/gatekiln/gatekiln/gatewayruntime"),
		prop:   propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}
	return t, stop, nil
}

// Start opens the server span for a routed request and rewrites its
// traceparent so that the upstream continues the trace under this span.
func (t *Tracer) Start(r *http.Request, route string) (*http.Request, func(status int)) {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, route,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
		))
	t.prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
	return r.WithContext(ctx), func(status int) {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 || status == 0 {
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
}
