package gateway

import (
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// TestWithGoNetpoller runs the proxying, resilience and shutdown tests again
// with -own-poller=false: client and upstream sockets on Go's netpoller.
func TestWithGoNetpoller(t *testing.T) {
	if !rawconn.Polled {
		t.Skip("the other tests already run on Go's netpoller")
	}
	rawconn.Polled = false
	t.Cleanup(func() { rawconn.Polled = true })
	for name, test := range map[string]func(*testing.T){
		"ProxyForwardsRequestAndResponse": TestProxyForwardsRequestAndResponse,
		"RequestBodies":                   TestRequestBodies,
		"ErrorsAreProblems":               TestErrorsAreProblems,
		"CircuitBreakerOpensAndCloses":    TestCircuitBreakerOpensAndCloses,
		"Retries":                         TestRetries,
		"StreamingResponse":               TestStreamingResponse,
		"WebSocketUpgrade":                TestWebSocketUpgrade,
		"GracefulShutdownUnderLoad":       TestGracefulShutdownUnderLoad,
	} {
		t.Run(name, test)
	}
}
