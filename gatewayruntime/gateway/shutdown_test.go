package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// buildGateway builds cmd/gatekiln-gateway into dir.
func buildGateway(t *testing.T, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "gatekiln-gateway")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/gatekiln-gateway")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestGracefulShutdownUnderLoad runs the real binary, keeps it busy with
// keep-alive clients and slow requests, sends SIGTERM and counts failures:
// there must be none. Clients behave like a load balancer's members: they stop
// sending new requests once /readyz says not ready.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway binary")
	}
	tmp := t.TempDir()
	bin := buildGateway(t, tmp)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/items/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "ok")
	})
	bundlePath := filepath.Join(tmp, "bundle.json")
	data, _ := json.Marshal(testAPI())
	if err := os.WriteFile(bundlePath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := newBindingDir(t)
	dir.swap(bindingTo(up.url), nil)
	addr, admin := closedAddr(t), closedAddr(t)
	cmd := exec.Command(bin, "-bundle", bundlePath, "-binding-dir", dir.dir, "-addr", addr, "-admin-addr", admin,
		"-shutdown-delay", "1s", "-shutdown-grace", "10s", "-access-log=false")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	ready := func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	waitFor(t, "the gateway to be ready", ready)

	var (
		inRotation atomic.Bool
		failures   atomic.Int64
		served     atomic.Int64
		firstErr   atomic.Value
		wg         sync.WaitGroup
	)
	inRotation.Store(true)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 15 * time.Second}
	request := func(path string) {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			failures.Add(1)
			firstErr.CompareAndSwap(nil, resp.Status)
			return
		}
		served.Add(1)
	}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for inRotation.Load() {
				request("/v1/items")
			}
		}()
	}
	// The load balancer: polls readiness and takes the gateway out of rotation.
	go func() {
		for inRotation.Load() {
			if !ready() {
				inRotation.Store(false)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waitFor(t, "steady load", func() bool { return served.Load() > 200 })
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			request("/v1/items/slow")
		}()
	}
	time.Sleep(200 * time.Millisecond) // the slow requests are in flight
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the load balancer to notice", func() bool { return !inRotation.Load() })
	wg.Wait()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("gateway exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not exit")
	}
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d failed requests of %d; first: %v", f, f+served.Load(), firstErr.Load())
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("exited after %v, before the shutdown delay", took)
	}
	resp, err := http.Get("http://" + addr + "/v1/items")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after exit: %v, want connection refused", err)
	}
	t.Logf("%d requests served, 0 failed", served.Load())
}
