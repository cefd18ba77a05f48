package addapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// server is a loopback listener standing in for the API server where the
// test proves the command never gets that far: it only counts connections.
type server struct {
	addr  string
	conns atomic.Int32
}

// listen takes a free port of 127.0.0.1:21400-21499, the range these tests
// may use.
func listen(t *testing.T) *server {
	t.Helper()
	for port := 21400; port < 21500; port++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		s := &server{addr: l.Addr().String()}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				s.conns.Add(1)
				c.Close()
			}
		}()
		return s
	}
	t.Fatal("no free port in 127.0.0.1:21400-21499")
	return nil
}

// config is a kubeconfig reaching s whose context's namespace is ctxNS;
// nsFlag, when set, is -n.
func (s *server) config(t *testing.T, ctxNS, nsFlag string) *genericclioptions.ConfigFlags {
	t.Helper()
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: test, user: {token: test}}]
contexts: [{name: test, context: {cluster: test, user: test, namespace: %q}}]
current-context: test
`, s.addr, ctxNS)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	f := genericclioptions.NewConfigFlags(false)
	f.KubeConfig = &path
	if nsFlag != "" {
		f.Namespace = &nsFlag
	}
	return f
}

func petstore(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "samples", "petstore", "petstore.yaml")
}

// bigDefinition is a valid definition with n operations: one that takes the
// compiler a while.
func bigDefinition(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: big, version: 1.0.0}\npaths:\n")
	for i := range n {
		fmt.Fprintf(&b, "  /r%d/{id}:\n    get:\n      operationId: op%d\n"+
			"      parameters: [{name: id, in: path, required: true, schema: {type: string}}]\n"+
			"      responses: {'200': {description: ok}}\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var errSignal = errors.New("interrupt signal received")

// TestInterruptStops runs the command with Ctrl-C already pressed, or pressed
// while the definition compiles: it must stop with an error (exit 130),
// print no object and never reach the cluster.
func TestInterruptStops(t *testing.T) {
	for _, c := range []struct {
		name   string
		dryRun string
		file   func(t *testing.T) string
		// after, when set, cancels that long after the start: within the
		// compile of a definition that takes far longer than that.
		after time.Duration
		want  string
	}{
		{name: "at the start, client dry run", dryRun: DryRunClient, file: petstore, want: "interrupted before reading the definition"},
		{name: "at the start, server dry run", dryRun: DryRunServer, file: petstore, want: "interrupted before reading the definition"},
		{name: "at the start", dryRun: DryRunNone, file: petstore, want: "interrupted before reading the definition"},
		{name: "while compiling, client dry run", dryRun: DryRunClient, file: func(t *testing.T) string { return bigDefinition(t, 3000) },
			after: 50 * time.Millisecond, want: "interrupted while compiling"},
		{name: "while compiling", dryRun: DryRunNone, file: func(t *testing.T) string { return bigDefinition(t, 3000) },
			after: 50 * time.Millisecond, want: "interrupted while compiling"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := listen(t)
			var out, errOut bytes.Buffer
			o := &Options{Name: "petstore", Files: []string{c.file(t)}, DryRun: c.dryRun,
				Config: srv.config(t, "shop", ""), IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if c.after == 0 {
				cancel(errSignal)
			} else {
				time.AfterFunc(c.after, func() { cancel(errSignal) })
			}
			err := o.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errSignal) {
				t.Errorf("Run = %v, want an error saying %q", err, c.want)
			}
			if !strings.Contains(fmt.Sprint(err), "nothing was written") {
				t.Errorf("Run = %v, want it to say nothing was written", err)
			}
			if code := ExitCode(ctx, err); code != 130 {
				t.Errorf("exit code %d, want 130", code)
			}
			if out.Len() > 0 {
				t.Errorf("an interrupted run printed objects:\n%s", out.String())
			}
			if n := srv.conns.Load(); n != 0 {
				t.Errorf("%d connections to the cluster after the interrupt", n)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"success", context.Background(), nil, 0},
		{"error", context.Background(), errors.New("definition refused"), 1},
		{"interrupted", cancelled, errors.New("interrupted"), 130},
		{"interrupted once done", cancelled, nil, 130},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ExitCode(c.ctx, c.err); got != c.want {
				t.Errorf("ExitCode = %d, want %d", got, c.want)
			}
		})
	}
}

// TestNamespaceChecked refuses a namespace no namespace can have, naming
// where it came from, before the definition is even read (the file given
// does not exist) and without reaching the cluster.
func TestNamespaceChecked(t *testing.T) {
	for _, c := range []struct {
		name          string
		ctxNS, nsFlag string
		want          string
	}{
		{"flag", "default", "Bad_NS", `-n "Bad_NS": not a valid namespace`},
		{"kubeconfig context", "Bad_NS", "", `namespace of the kubeconfig context "Bad_NS": not a valid namespace`},
		{"too long", "default", strings.Repeat("a", 64), `-n "` + strings.Repeat("a", 64) + `"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := listen(t)
			var out bytes.Buffer
			o := &Options{Name: "petstore", Files: []string{filepath.Join(t.TempDir(), "missing.yaml")},
				Config: srv.config(t, c.ctxNS, c.nsFlag), IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &out}}
			err := o.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want an error naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "missing.yaml") {
				t.Errorf("Run = %v: the definition was read before the namespace was checked", err)
			}
			if n := srv.conns.Load(); n != 0 {
				t.Errorf("%d connections to the cluster", n)
			}
		})
	}
}

// TestClientDryRunOutput: a client dry run sends nothing, so it must not
// claim server-side apply happened; it says what kubectl says for one.
func TestClientDryRunOutput(t *testing.T) {
	srv := listen(t)
	var out, errOut bytes.Buffer
	o := &Options{Name: "petstore", Files: []string{petstore(t)}, DryRun: DryRunClient,
		Endpoints: []string{"petstore-backend=http://petstore-backend:8080"},
		Config:    srv.config(t, "shop", ""), IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &errOut}}
	if err := o.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"endpoint.gatekiln.io/petstore-backend created (dry run)", "configmap/petstore-definition-", "api.gatekiln.io/petstore created (dry run)"}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s\nwant %d lines", out.String(), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) || !strings.HasSuffix(lines[i], " created (dry run)") {
			t.Errorf("line %d = %q, want %q… created (dry run)", i, lines[i], w)
		}
	}
	if n := srv.conns.Load(); n != 0 {
		t.Errorf("a client dry run made %d connections to the cluster", n)
	}
}

func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		dryRun, verb, suffix string
	}{
		{"", "serverside-applied", ""},
		{DryRunNone, "serverside-applied", ""},
		{DryRunServer, "serverside-applied", " (server dry run)"},
		{DryRunClient, "created", " (dry run)"},
	} {
		o := Options{DryRun: c.dryRun}
		if verb, suffix := o.outcome(); verb != c.verb || suffix != c.suffix {
			t.Errorf("--dry-run=%q: %q%q, want %q%q", c.dryRun, verb, suffix, c.verb, c.suffix)
		}
	}
}

// TestPreflightInterrupted: after Ctrl-C, preflight neither warns about
// what it could not check (the reason is the interrupt, which Run reports)
// nor compiles the definition a second time.
func TestPreflightInterrupted(t *testing.T) {
	srv := listen(t)
	var out bytes.Buffer
	o := &Options{Name: "petstore", Files: []string{petstore(t)}, PullSecret: "regcred",
		Config: srv.config(t, "shop", ""), IOStreams: genericiooptions.IOStreams{Out: &out, ErrOut: &out}}
	plan, err := o.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCluster(o.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var warnings bytes.Buffer
	c.preflight(ctx, &warnings, plan, plan.Files)
	if warnings.Len() > 0 {
		t.Errorf("preflight warned after Ctrl-C:\n%s", warnings.String())
	}
}

// TestCheckInstalledInterrupted: the discovery call takes the context, so
// after Ctrl-C it neither reaches the cluster nor blames the kubeconfig.
func TestCheckInstalledInterrupted(t *testing.T) {
	srv := listen(t)
	c, err := newCluster(srv.config(t, "shop", ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errSignal)
	err = c.checkInstalled(ctx)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !errors.Is(err, errSignal) {
		t.Errorf("checkInstalled = %v, want an error saying it was interrupted", err)
	}
	if n := srv.conns.Load(); n != 0 {
		t.Errorf("%d connections to the cluster after the interrupt", n)
	}
}
