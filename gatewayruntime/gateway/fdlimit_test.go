//go:build linux

package gateway

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestOutOfDescriptors runs the gateway out of file descriptors while it
// must dial its upstream: the client gets a 503 with Retry-After, and the
// upstream, which did nothing wrong, is neither counted as failing nor
// ejected, so requests succeed as soon as descriptors are free again.
func TestOutOfDescriptors(t *testing.T) {
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() (status int, retryAfter string) {
		t.Helper()
		if _, err := c.Write([]byte("GET /v1/items HTTP/1.1\r\nHost: gw\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	// The connection is served (its descriptor is open) before the limit.
	if status, _ := get(); status != http.StatusOK {
		t.Fatalf("before the limit: %d", status)
	}
	h.g.gen.Load().upstreams.Close() // drop the pooled connection: the next request dials

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	lim := old
	lim.Cur = uint64(len(fds))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	// Whatever descriptors are still free under the limit are taken, again
	// before each request: the connections of earlier tests may still be
	// closing, and a freed descriptor would let the dial through (to an
	// upstream in this process that could not accept it).
	var hold []*os.File
	takeFree := func() {
		for {
			f, err := os.Open(os.DevNull)
			if err != nil {
				return
			}
			hold = append(hold, f)
		}
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			for _, f := range hold {
				f.Close()
			}
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
		}
	}
	defer restore()
	for i := range 8 { // more than the 5 failures that eject an upstream
		takeFree()
		status, retryAfter := get()
		if status != http.StatusServiceUnavailable || retryAfter == "" {
			restore()
			t.Fatalf("request %d out of descriptors: status %d, Retry-After %q", i, status, retryAfter)
		}
	}
	restore()
	if status, _ := get(); status != http.StatusOK {
		t.Fatalf("with descriptors free again: %d (the upstream was ejected for the gateway's own limit)", status)
	}
	m := h.g.metrics.Upstream("backend", up.url)
	if v := testutil.ToFloat64(m.State); v != 0 {
		t.Fatalf("circuit state %v, want closed", v)
	}
	if v := testutil.ToFloat64(h.g.metrics.UpstreamErrorsCounter("backend", up.url, "connect")); v != 0 {
		t.Fatalf("%v connect errors counted against the upstream", v)
	}
}
