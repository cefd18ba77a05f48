package server

import (
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// TestWithGoNetpoller runs the server's tests again with plain connections
// on Go's netpoller (rawconn.Wrap) instead of the rawconn poller.
func TestWithGoNetpoller(t *testing.T) {
	if !rawconn.Polled {
		t.Skip("the other tests already run on Go's netpoller")
	}
	rawconn.Polled = false
	t.Cleanup(func() { rawconn.Polled = true })
	for name, test := range map[string]func(*testing.T){
		"ServeWithNetHTTPClient":             TestServeWithNetHTTPClient,
		"WireBehaviour":                      TestWireBehaviour,
		"SlowHeadersAreRefused":              TestSlowHeadersAreRefused,
		"IdleConnectionIsClosed":             TestIdleConnectionIsClosed,
		"Hijack":                             TestHijack,
		"ShutdownDrains":                     TestShutdownDrains,
		"RequestArrivingDuringTheHandler":    TestRequestArrivingDuringTheHandler,
		"BodiesAndBodylessRequestsAlternate": TestBodiesAndBodylessRequestsAlternate,
	} {
		t.Run(name, test)
	}
}
