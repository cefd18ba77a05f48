//go:build linux

package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestOutOfDescriptors runs the gateway out of file descriptors while it
// must dial its upstream: the client gets a 503 with Retry-After, and the
// upstream, which did nothing wrong, is neither counted as failing nor
// ejected, so requests succeed as soon as descriptors are free again.
func TestOutOfDescriptors(t *testing.T) {
	up := newUpstream(t, nil)
	var logs syncBuffer
	h := newHarness(t, testAPI(), bindingTo(up.url), func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	// The connection is served (its descriptor is open) before the limit.
	if status, _ := rawGet(t, c, br); status != http.StatusOK {
		t.Fatalf("before the limit: %d", status)
	}
	h.g.gen.Load().upstreams.Close() // drop the pooled connection: the next request dials
	// The upstream closes its end of that connection once it reads the
	// gateway's close; its descriptor freed after the limit below would let
	// a dial through (to an upstream that could then not accept it).
	up.waitNoConns(t)

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
			// The limit first: a descriptor freed under it would let the
			// gateway accept the late connection, whose dial could then
			// find none free and answer 503 (the test paused between two
			// closes, under load).
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
			for _, f := range hold {
				f.Close()
			}
		}
	}
	defer restore()
	for i := range 8 { // more than the 5 failures that eject an upstream
		takeFree()
		status, retryAfter := rawGet(t, c, br)
		if status != http.StatusServiceUnavailable || retryAfter == "" {
			restore()
			t.Fatalf("request %d out of descriptors: status %d, Retry-After %q", i, status, retryAfter)
		}
	}
	if !strings.Contains(logs.String(), "the gateway is at a resource limit") {
		restore()
		t.Fatalf("no warning about the limit in the log: %q", logs.String())
	}
	// A new connection cannot be accepted now: the gateway says so, and
	// serves it once descriptors are free. (The test's own socket takes the
	// one descriptor freed for it.)
	hold[len(hold)-1].Close()
	hold = hold[:len(hold)-1]
	late, err := net.Dial("tcp", h.addr) // the kernel completes the handshake; the accept waits
	if err != nil {
		restore()
		t.Fatal(err)
	}
	defer late.Close()
	if _, err := io.WriteString(late, itemsRequest); err != nil {
		restore()
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "cannot accept connections"); {
		if time.Now().After(deadline) {
			restore()
			t.Fatalf("no warning that connections cannot be accepted: %q", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	restore()
	_ = late.SetReadDeadline(time.Now().Add(10 * time.Second))
	if status, _, err := readAnswer(bufio.NewReader(late)); err != nil || status != http.StatusOK {
		t.Fatalf("the connection made while out of descriptors: status %d, %v", status, err)
	}
	if status, _ := rawGet(t, c, br); status != http.StatusOK {
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
