package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// TestConnectionBurst opens more connections than one turn of the event loop
// handles and sends every request at once: each must be answered at once,
// not after a dial or route timeout (events left over from a full batch
// used to wait for the next new event, which in a burst never came).
func TestConnectionBurst(t *testing.T) {
	const conns = 600
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs[i] = c
	}
	// On one P the writes finish before the gateway's loop runs again: all
	// the requests are waiting together.
	func() {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		for _, c := range cs {
			if _, err := io.WriteString(c, itemsRequest); err != nil {
				t.Fatal(err)
			}
		}
	}()
	// Well inside the 5 s dial timeout.
	deadline := time.Now().Add(4 * time.Second)
	for i, c := range cs {
		_ = c.SetReadDeadline(deadline)
		if status, _, err := readAnswer(bufio.NewReader(c)); err != nil || status != http.StatusOK {
			t.Fatalf("connection %d of %d: status %d, %v", i, conns, status, err)
		}
	}
}
