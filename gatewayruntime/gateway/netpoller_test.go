package gateway

import (
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn/rawconntest"
)

// TestWithGoNetpoller runs the proxying, resilience and shutdown tests again
// with -own-poller=false: client and upstream sockets on Go's netpoller.
func TestWithGoNetpoller(t *testing.T) {
	rawconntest.OnGoNetpoller(t, map[string]func(*testing.T){
		"ProxyForwardsRequestAndResponse":  TestProxyForwardsRequestAndResponse,
		"RequestBodies":                    TestRequestBodies,
		"ErrorsAreProblems":                TestErrorsAreProblems,
		"StaleUpstreamBytes":               TestStaleUpstreamBytesNeverAnswerAnotherRequest,
		"EarlyAnswerToABody":               TestEarlyAnswerToABody,
		"SlowUploadIsNotAnUpstreamTimeout": TestSlowUploadIsNotAnUpstreamTimeout,
		"CircuitBreakerOpensAndCloses":     TestCircuitBreakerOpensAndCloses,
		"Retries":                          TestRetries,
		"StreamingResponse":                TestStreamingResponse,
		"WebSocketUpgrade":                 TestWebSocketUpgrade,
		"GracefulShutdownUnderLoad":        TestGracefulShutdownUnderLoad,
	})
}
