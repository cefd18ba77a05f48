package server

import (
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn/rawconntest"
)

// TestWithGoNetpoller runs the server's main tests again with plain
// connections on Go's netpoller (rawconn.Wrap) instead of the rawconn poller.
func TestWithGoNetpoller(t *testing.T) {
	rawconntest.OnGoNetpoller(t, map[string]func(*testing.T){
		"ServeWithNetHTTPClient":              TestServeWithNetHTTPClient,
		"WireBehaviour":                       TestWireBehaviour,
		"SlowHeadersAreRefused":               TestSlowHeadersAreRefused,
		"IdleConnectionIsClosed":              TestIdleConnectionIsClosed,
		"Hijack":                              TestHijack,
		"ShutdownDrains":                      TestShutdownDrains,
		"RequestArrivingDuringTheHandler":     TestRequestArrivingDuringTheHandler,
		"BodiesAndBodylessRequestsAlternate":  TestBodiesAndBodylessRequestsAlternate,
		"ResponsesAreNotHeldBack":             TestResponsesAreNotHeldBack,
		"ShutdownWaitsForUpgradedConnections": TestShutdownWaitsForUpgradedConnections,
	})
}
