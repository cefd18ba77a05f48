package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runMain makes the test binary run main when it re-executes itself, so
// the test sees the process's exit status and output.
const runMain = "GATEKILN_OPERATOR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFlagsCheckedFirst: a bad flag is reported before the operator looks
// for a cluster, with every problem named, and the process exits 1.
func TestFlagsCheckedFirst(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"nothing set", nil, []string{"registry: not set", "runtime image: not set"}},
		{"bad strategy and resources", []string{"--registry", "127.0.0.1:5000", "--runtime-image", "127.0.0.1:5000/base:v1",
			"--default-strategy", "Docker", "--kaniko-cpu-request", "2", "--kaniko-cpu-limit", "1"},
			[]string{`default strategy "Docker"`, "kaniko cpu request 2 is over its limit 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			// No cluster to be found: a kubeconfig that does not exist.
			cmd.Env = append(os.Environ(), runMain+"=1", "KUBECONFIG="+filepath.Join(t.TempDir(), "none"),
				"KUBERNETES_SERVICE_HOST=", "KUBERNETES_SERVICE_PORT=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
			}
			got := stderr.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("stderr lacks %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, "kubeconfig") {
				t.Errorf("reported the kubeconfig before the flags:\n%s", got)
			}
		})
	}
}
