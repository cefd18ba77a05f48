package tracing

import (
	"context"
	"strings"
	"testing"
)

// TestEndpointErrorQuotesNoCredentials: the gateway logs this error at start.
func TestEndpointErrorQuotesNoCredentials(t *testing.T) {
	const canary = "s3cr3t-CANARY-otlp"
	_, _, err := New(context.Background(), "grpc://user:"+canary+"@collector:4317", "api")
	if err == nil || strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), "collector:4317") {
		t.Fatalf("error %v: want one naming the endpoint without its credentials", err)
	}
}
