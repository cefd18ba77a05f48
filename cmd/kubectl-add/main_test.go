package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/gatekiln/gatekiln/builder/compile"
	"github.com/gatekiln/gatekiln/kubectl-plugin/addapi"
)

// TestMain runs the command itself when the test re-executes its own binary
// with runMain set: the process is then the plugin, signals and exit code
// included.
const runMain = "KUBECTL_ADD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func petstore(t *testing.T) []byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "samples", "petstore", "petstore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestInterruptExits130 presses Ctrl-C while the plugin reads the definition
// (from a FIFO the test writes only after the signal, so the timing is
// fixed): it must exit 130 without printing an object, not compile the
// definition and report it.
// startOnFIFO runs the plugin on a client dry run whose definition is a FIFO,
// and returns once the plugin has opened the FIFO to read (so it has been
// running main, signal handler installed, for a while), with the FIFO's
// writing end and a channel that reports the process's exit.
func startOnFIFO(t *testing.T) (*exec.Cmd, *os.File, <-chan error, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "petstore.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A kubeconfig whose server nobody listens on: a client dry run must not
	// need one.
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:21499\"}}]\n"+
		"contexts: [{name: c, context: {cluster: c, namespace: shop}}]\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "api", "petstore", "--kubeconfig", kc, "--from-file", fifo, "--dry-run=client")
	cmd.Env = append(os.Environ(), runMain+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			f = nil
		}
		opened <- f
	}()
	var w *os.File
	select {
	case w = <-opened:
	case err := <-done:
		t.Fatalf("plugin exited before reading the definition: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("plugin did not open the definition in 30s")
	}
	if w == nil {
		t.FailNow()
	}
	t.Cleanup(func() { w.Close() })
	return cmd, w, done, &stdout, &stderr
}

func TestInterruptExits130(t *testing.T) {
	cmd, w, done, stdout, stderr := startOnFIFO(t)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// Let the signal land before the definition arrives.
	time.Sleep(200 * time.Millisecond)
	if _, err := w.Write(petstore(t)); err != nil {
		t.Fatal(err)
	}
	w.Close()

	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("plugin did not exit in 30s after Ctrl-C")
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 130 {
		t.Errorf("exit %d after Ctrl-C, want 130\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("printed objects after Ctrl-C:\n%s", stdout.String())
	}
	if got := stderr.String(); !strings.Contains(got, "interrupted") || !strings.Contains(got, "nothing was written") {
		t.Errorf("stderr does not say the run was interrupted before writing:\n%s", got)
	}
}

// TestSecondInterruptKills: the first Ctrl-C lets the plugin finish what it
// is doing and clean up, which can take a while (here: forever, the
// definition never comes); a second one ends it at once.
func TestSecondInterruptKills(t *testing.T) {
	cmd, _, done, _, stderr := startOnFIFO(t)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("plugin exited on the first Ctrl-C while reading: %v\n%s", err, stderr.String())
	default:
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("exit after a second Ctrl-C: %v", err)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
			t.Fatalf("exit after a second Ctrl-C: %v, want killed by SIGINT", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("plugin still running 10s after a second Ctrl-C")
	}
}

// TestHelp: the help states the limits Pack and the compiler enforce and the
// rule for NAME that Validate checks.
func TestHelp(t *testing.T) {
	cmd := newAPICmd(genericclioptions.NewConfigFlags(false), genericiooptions.IOStreams{})
	help := strings.Join(strings.Fields(cmd.Long), " ")
	for _, want := range []string{
		fmt.Sprintf("at most %d MiB", compile.MaxDocumentBytes>>20),
		fmt.Sprintf("at most %d KiB once gzip'd", addapi.MaxStoredFileBytes>>10),
		"NAME must start with a lowercase letter",
		`"1pet" and "Pets" are not`,
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, cmd.Long)
		}
	}
	if strings.Contains(help, "32 MiB at most per file") {
		t.Errorf("help still promises 32 MiB per file:\n%s", cmd.Long)
	}
}
