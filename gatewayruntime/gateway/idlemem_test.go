package gateway

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"testing"
)

// TestIdleConnectionMemory keeps many keep-alive connections idle after one
// request each: an idle connection holds no I/O buffers (they are lent by the
// event loop only while bytes are in them), so each costs the gateway's heap
// a few KiB, not the 8 KiB of its two buffers on top.
func TestIdleConnectionMemory(t *testing.T) {
	const conns = 300
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	exchange := func(c net.Conn, br *bufio.Reader) {
		if status, _ := rawGet(t, c, br); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	// Warm up: the upstream connection, the loop's spare buffers.
	warm, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	exchange(warm, bufio.NewReader(warm))
	before := liveHeap()
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		exchange(c, bufio.NewReader(c)) // one at a time: one upstream connection
		cs[i] = c
	}
	// The clients' own bufio.Readers (4 KiB each) are garbage by now.
	perConn := (int64(liveHeap()) - int64(before)) / conns
	t.Logf("live heap per idle connection: %d bytes", perConn)
	if perConn > 6<<10 {
		t.Fatalf("each idle connection keeps %d bytes of heap, want at most 6 KiB", perConn)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
