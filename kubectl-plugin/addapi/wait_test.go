package addapi_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/kubectl-plugin/addapi"
)

// waiting is a `kubectl add api --wait` running in the background, its
// stdout delivered line by line.
type waiting struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
	done   chan error
}

func (e *env) startWait(t *testing.T, ctx context.Context, args ...string) *waiting {
	t.Helper()
	w := &waiting{lines: make(chan string, 100), done: make(chan error, 1)}
	w.cmd = exec.CommandContext(ctx, filepath.Join(strings.SplitN(e.path, string(os.PathListSeparator), 2)[0], "kubectl"), args...)
	w.cmd.Env = append(os.Environ(), "PATH="+e.path, "KUBECONFIG="+e.kubeconfig, "HOME="+e.home)
	w.cmd.Stderr = &w.stderr
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		w.done <- w.cmd.Wait()
	}()
	return w
}

// expect reads lines until one starts with prefix.
func (w *waiting) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("kubectl exited before printing %q; stderr:\n%s", prefix, w.stderr.String())
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line starting %q in 30s", prefix)
		}
	}
}

func (w *waiting) exit(t *testing.T) int {
	t.Helper()
	for range w.lines {
	}
	select {
	case err := <-w.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl did not exit")
		return -1
	}
}

// setStatus plays the operator's part: it writes the API's status as the
// reconciler would, through the status subresource of the real API server.
func (e *env) setStatus(t *testing.T, ns, name string, edit func(gen int64, st *v1alpha1.APIStatus)) {
	t.Helper()
	client := e.dyn.Resource(addapi.APIResource).Namespace(ns)
	for range 10 {
		u, err := client.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var api v1alpha1.API
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &api); err != nil {
			t.Fatal(err)
		}
		edit(api.Generation, &api.Status)
		st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&api.Status)
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(u.Object, st, "status"); err != nil {
			t.Fatal(err)
		}
		_, err = client.UpdateStatus(context.Background(), u, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("status update kept conflicting")
}

func set(st *v1alpha1.APIStatus, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	c := metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: metav1.Now()}
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

func TestWaitFollowsConditions(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "wait")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := e.startWait(t, ctx, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(), "--wait", "--timeout=90s")

	w.expect(t, "api.gatekiln.io/petstore serverside-applied")
	w.expect(t, "Resolving")
	const T, F = metav1.ConditionTrue, metav1.ConditionFalse
	e.setStatus(t, ns, "petstore", func(gen int64, st *v1alpha1.APIStatus) {
		set(st, gen, v1alpha1.ConditionResolved, T, "Resolved", "6 routes")
		set(st, gen, v1alpha1.ConditionBuilt, F, "Building", "the Kaniko Job is running")
		st.BuildJob = "petstore-build-7f3a2"
	})
	if l := w.expect(t, "Building"); !strings.Contains(l, "job petstore-build-7f3a2") || !strings.Contains(l, "the Kaniko Job is running") {
		t.Errorf("building line %q lacks the job name or message", l)
	}
	e.setStatus(t, ns, "petstore", func(gen int64, st *v1alpha1.APIStatus) {
		set(st, gen, v1alpha1.ConditionBuilt, T, "Built", "")
		set(st, gen, v1alpha1.ConditionDeployed, T, "Deployed", "")
		set(st, gen, v1alpha1.ConditionReady, F, "Progressing", "0 of 1 replicas updated and available")
		st.BuildJob = ""
	})
	w.expect(t, "Deploying: Progressing: 0 of 1 replicas")
	e.setStatus(t, ns, "petstore", func(gen int64, st *v1alpha1.APIStatus) {
		set(st, gen, v1alpha1.ConditionReady, T, "Available", "1 of 1 replicas available")
		st.URL = "http://petstore." + ns + ".svc:8080"
	})
	w.expect(t, "Ready: http://petstore."+ns+".svc:8080")
	if code := w.exit(t); code != 0 {
		t.Errorf("exit %d after Ready; stderr:\n%s", code, w.stderr.String())
	}
}

func TestWaitFailsWithReason(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "wait-fail")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := e.startWait(t, ctx, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(), "--wait", "--timeout=90s")
	w.expect(t, "Resolving")
	e.setStatus(t, ns, "petstore", func(gen int64, st *v1alpha1.APIStatus) {
		set(st, gen, v1alpha1.ConditionResolved, metav1.ConditionFalse, "EndpointNotFound", `Endpoint "petstore-backend" not found in namespace "`+ns+`"`)
	})
	w.expect(t, "Failed: EndpointNotFound")
	if code := w.exit(t); code == 0 {
		t.Fatal("exit 0 after the API failed")
	}
	if !strings.Contains(w.stderr.String(), "EndpointNotFound") || !strings.Contains(w.stderr.String(), "petstore-backend") {
		t.Errorf("stderr does not give the reason:\n%s", w.stderr.String())
	}
}

func TestWaitTimesOut(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "wait-timeout")
	r := e.kubectl(t, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(), "--wait", "--timeout=2s")
	if r.code == 0 {
		t.Fatal("exit 0 with no operator to make the API ready")
	}
	if !strings.Contains(r.stderr, "not ready after 2s") || !strings.Contains(r.stderr, "operator running") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// TestWaitInterrupted presses Ctrl-C during --wait: the API was written, but
// the run must end as interrupted (exit 130), not as a timeout.
func TestWaitInterrupted(t *testing.T) {
	e := needCluster(t)
	ns := e.namespace(t, "wait-interrupt")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := e.startWait(t, ctx, "add", "api", "petstore", "-n", ns, "--from-file="+e.sample(), "--wait", "--timeout=90s")
	w.expect(t, "Resolving")
	// kubectl execs the plugin: the process is the plugin itself.
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := w.exit(t); code != 130 {
		t.Errorf("exit %d after Ctrl-C, want 130; stderr:\n%s", code, w.stderr.String())
	}
	got := w.stderr.String()
	if !strings.Contains(got, "interrupted while waiting for api "+ns+"/petstore") || strings.Contains(got, "not ready after") {
		t.Errorf("stderr does not say the wait was interrupted:\n%s", got)
	}
	e.api(t, ns, "petstore")
}
