package operator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-containerregistry/pkg/name"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/image/imagetest"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
	"github.com/gatekiln/gatekiln/operator"
	"github.com/gatekiln/gatekiln/operator/operatortest"
	"github.com/gatekiln/gatekiln/operator/render"
)

var update = flag.Bool("update", false, "rewrite golden files")

// kanikoImage is never run in envtest: no Pod runs. Tests write the Job's
// and its Pod's status the way the Job controller and the kubelet would.
const kanikoImage = "registry.invalid/kaniko/executor:v1.24.0"

// conflictRequeue is the fixture operator's --name-conflict-requeue: short,
// so that a test sees a conflict resolve within it.
const conflictRequeue = time.Second

// maxConcurrentBuilds is the fixture operator's --max-concurrent-builds. It
// counts the unfinished Kaniko Jobs of the whole cluster, those of every
// test: a test that leaves one unfinished drops it (dropBuilds).
const maxConcurrentBuilds = 2

// fixture is shared by the tests of this package: one API server, one
// registry, one manager. Each test works in its own namespace.
type fixture struct {
	env      *operatortest.Env
	c        client.WithWatch
	reg      *registrytest.Registry
	down     string // host:port of a registry that has stopped
	base     name.Digest
	recorder *registrytest.Recorder
	cancel   context.CancelFunc
	done     chan error
	// dir holds envtest's kubeconfig and the registries' blobs; stop removes it.
	dir string
}

var (
	shared   fixture
	once     sync.Once
	setupErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

func (f *fixture) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	if f.done != nil {
		select {
		case err := <-f.done:
			if err != nil {
				fmt.Fprintln(os.Stderr, "manager:", err)
			}
		case <-time.After(30 * time.Second):
			fmt.Fprintln(os.Stderr, "manager: did not stop within 30s")
		}
	}
	if f.reg != nil {
		f.reg.Close()
	}
	if f.env != nil {
		if err := f.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "envtest:", err)
		}
	}
	if f.dir != "" {
		// Every run used to leave one behind in the temp directory.
		_ = os.RemoveAll(f.dir)
	}
}

// setup starts the shared fixture on first use. The -short flag skips these
// tests: they need the envtest binaries and docker-registry.
func setup(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("envtest: needs bin/envtest (make envtest-bins) and docker-registry")
	}
	once.Do(func() { setupErr = shared.start(t) })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return &shared
}

func (f *fixture) start(t *testing.T) error {
	dir, err := os.MkdirTemp("", "operator-test-")
	if err != nil {
		return err
	}
	f.dir = dir
	if f.env, err = operatortest.Launch(dir); err != nil {
		return err
	}
	f.c = f.env.Client
	for _, d := range []string{"registry", "down"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if f.reg, err = registrytest.Launch(context.Background(), registrytest.Options{Dir: filepath.Join(dir, "registry")}); err != nil {
		return err
	}
	down, err := registrytest.Launch(context.Background(), registrytest.Options{Dir: filepath.Join(dir, "down")})
	if err != nil {
		return err
	}
	f.down = down.Host
	down.Close()

	cfg := f.reg.Config()
	f.base = imagetest.PushRuntimeBase(t, cfg, f.reg.Host)
	f.recorder = &registrytest.Recorder{}
	cfg.WrapTransport = f.recorder.Wrap
	cfg.Insecure = append(cfg.Insecure, f.down)

	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	// The Gateway API is not installed: TestOptionalObjects installs it
	// while the operator runs, as users often do.
	// The manager runs as a user holding only the generated ClusterRole.
	rc, err := f.env.RestrictedConfig(ctx)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = f.env.Config.QPS, f.env.Config.Burst
	mgr, err := operator.NewManager(ctx, rc, operator.Options{
		Config: operator.Config{
			Registry:            f.reg.Host + "/gatekiln",
			RuntimeImage:        f.base.String(),
			KanikoImage:         kanikoImage,
			DefaultStrategy:     v1alpha1.BuildDirect,
			RegistryConfig:      cfg,
			MaxConcurrentBuilds: maxConcurrentBuilds,
			DiscoveryInterval:   100 * time.Millisecond,
			NameConflictRequeue: conflictRequeue,
		},
		MetricsAddr: "0",
		Logger:      testLogger(),
	})
	if err != nil {
		return err
	}
	f.done = make(chan error, 1)
	go func() { f.done <- mgr.Start(ctx) }()
	return nil
}

// rollouts makes the namespace's Deployments available once rolled out, as
// a cluster's kubelet would, until the test ends.
func (f *fixture) rollouts(t *testing.T, ns string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.env.Rollouts(ctx, ns) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("rollouts: %v", err)
		}
	})
}

// managerLog holds every line the manager logged, debug lines included, so
// that a test can check what reaches the log (never a secret).
var managerLog struct {
	sync.Mutex
	lines []string
}

// loggedSince returns the lines logged after the first n, and the count now.
func loggedSince(n int) ([]string, int) {
	managerLog.Lock()
	defer managerLog.Unlock()
	return append([]string(nil), managerLog.lines[min(n, len(managerLog.lines)):]...), len(managerLog.lines)
}

// testLogger prints the manager's errors only, so a failing test shows why,
// and keeps every line in managerLog.
func testLogger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		managerLog.Lock()
		managerLog.lines = append(managerLog.lines, prefix+" "+args)
		managerLog.Unlock()
		if strings.Contains(args, `"error"`) {
			fmt.Fprintln(os.Stderr, prefix, args)
		}
	}, funcr.Options{Verbosity: 5})
}

// eventually polls cond until it returns nil or the deadline passes; it
// returns the last error. Polling reads the API server, never sleeps in
// the code under test.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func (f *fixture) getAPI(t *testing.T, ns, name string) *v1alpha1.API {
	t.Helper()
	api := &v1alpha1.API{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, api); err != nil {
		t.Fatalf("get api %s/%s: %v", ns, name, err)
	}
	return api
}

// waitCondition waits until the API's condition has status and reason and
// returns the API.
func (f *fixture) waitCondition(t *testing.T, ns, name, typ string, status metav1.ConditionStatus, reason string) *v1alpha1.API {
	t.Helper()
	var api *v1alpha1.API
	eventually(t, fmt.Sprintf("api %s/%s %s=%s/%s", ns, name, typ, status, reason), func() error {
		api = &v1alpha1.API{}
		if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, api); err != nil {
			return err
		}
		c := meta.FindStatusCondition(api.Status.Conditions, typ)
		if c == nil {
			return fmt.Errorf("no %s condition; conditions %s", typ, conditionsString(api))
		}
		// A condition counts only for the spec it was computed from.
		if c.Status != status || c.Reason != reason || c.ObservedGeneration != api.Generation {
			return fmt.Errorf("generation %d, conditions %s", api.Generation, conditionsString(api))
		}
		return nil
	})
	return api
}

func conditionsString(api *v1alpha1.API) string {
	var b strings.Builder
	for _, c := range api.Status.Conditions {
		fmt.Fprintf(&b, "[%s=%s %s: %s] ", c.Type, c.Status, c.Reason, c.Message)
	}
	return b.String()
}

func condition(api *v1alpha1.API, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(api.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func (f *fixture) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := f.c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// definition is a ConfigMap holding one definition file.
func definition(ns, name, key string, data []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string]string{key: string(data)},
	}
}

func newAPI(ns, name, configMap, key string, mutate ...func(*v1alpha1.API)) *v1alpha1.API {
	api := &v1alpha1.API{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.APISpec{
			Definition: []v1alpha1.ConfigMapKeyRef{{Name: configMap, Key: key}},
		},
	}
	for _, m := range mutate {
		m(api)
	}
	return api
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(operatortest.RepoRoot(), path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// events lists the Events regarding an object.
func (f *fixture) events(t *testing.T, ns, name string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := f.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// dropBuilds deletes, once the test is over, the namespace's APIs and then
// its Kaniko Jobs: envtest runs neither the Job controller that would finish
// them nor the garbage collector that would delete them with their API, and
// an unfinished one would hold a build slot for every later test.
func (f *fixture) dropBuilds(t *testing.T, ns string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := context.Background()
		if err := f.c.DeleteAllOf(ctx, &v1alpha1.API{}, client.InNamespace(ns)); err != nil {
			t.Errorf("delete apis: %v", err)
			return
		}
		// A reconcile under way as the APIs went may still create a Job.
		f.quiesce(t)
		if err := f.c.DeleteAllOf(ctx, &batchv1.Job{}, client.InNamespace(ns),
			client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Errorf("delete jobs: %v", err)
		}
	})
}

// quiesce waits until the API controller has nothing queued and nothing
// running, twice in a row: every reconcile an earlier change caused is done.
func (f *fixture) quiesce(t *testing.T) {
	t.Helper()
	idle := 0
	eventually(t, "api controller idle", func() error {
		depth, active := gauge(t, "workqueue_depth", "name", "api"), gauge(t, "controller_runtime_active_workers", "controller", "api")
		if depth != 0 || active != 0 {
			idle = 0
			return fmt.Errorf("queue depth %v, active workers %v", depth, active)
		}
		if idle++; idle < 3 {
			return errors.New("idle for a moment only")
		}
		return nil
	})
}

func gauge(t *testing.T, metric, label, value string) float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// servesHTTPRoute asks the API server (not a cached mapper) whether the
// Gateway API's HTTPRoute is installed.
func (f *fixture) servesHTTPRoute(t *testing.T) bool {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(f.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dc.ServerResourcesForGroupVersion(render.HTTPRouteGVK.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list.APIResources {
		if r.Kind == render.HTTPRouteGVK.Kind {
			return true
		}
	}
	return false
}
