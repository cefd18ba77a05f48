//go:build unix

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRuntimeImageInterrupt sends SIGINT to runtime-image while it builds the
// gateway: it must stop go build, remove its build directory and exit
// non-zero. A stand-in for go on PATH records its pid and waits.
func TestRuntimeImageInterrupt(t *testing.T) {
	bin := buildCompileCLI(t)
	fakeBin, tmp, mod := t.TempDir(), t.TempDir(), t.TempDir()
	pidFile := filepath.Join(t.TempDir(), "go.pid")
	fake := "#!/bin/sh\necho $$ > \"$GATEKILN_TEST_PIDFILE\"\nexec sleep 60\n"
	if err := os.WriteFile(filepath.Join(fakeBin, "go"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(mod, "cmd", "gatekiln-gateway"), 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "runtime-image", "--push", "127.0.0.1:20999/gatekiln/runtime", "--module", mod, "--platform", "linux/amd64")
	cmd.Env = append(os.Environ(), "PATH="+fakeBin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+tmp, "GATEKILN_TEST_PIDFILE="+pidFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var goPID int
	for deadline := time.Now().Add(20 * time.Second); goPID == 0; time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil {
			goPID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("go build did not start in 20s; stderr:\n%s", stderr.String())
		}
	}
	// Whatever happens, the stand-in does not outlive the test.
	defer func() { _ = syscall.Kill(goPID, syscall.SIGKILL) }()

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
			t.Errorf("exit after SIGINT: %v, want a non-zero exit status; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("runtime-image did not stop within 20s of SIGINT")
	}
	if err := syscall.Kill(goPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("go build (pid %d) still runs after runtime-image exited", goPID)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "gatekiln-runtime-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
