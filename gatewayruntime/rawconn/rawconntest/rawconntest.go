// Package rawconntest runs tests again with sockets on Go's netpoller.
package rawconntest

import (
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
)

// OnGoNetpoller runs tests with rawconn.Polled false (the gateway's
// -own-poller=false), restoring it after. Where the poller is not used at all,
// the package's other tests already cover that path and it skips.
func OnGoNetpoller(t *testing.T, tests map[string]func(*testing.T)) {
	t.Helper()
	if !rawconn.Polled {
		t.Skip("the other tests already run on Go's netpoller")
	}
	rawconn.Polled = false
	t.Cleanup(func() { rawconn.Polled = true })
	for name, test := range tests {
		t.Run(name, test)
	}
}
