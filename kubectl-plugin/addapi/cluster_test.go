package addapi_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// env is one real API server (envtest: kube-apiserver and etcd from
// bin/envtest), with the garbage collector of a real kube-controller-manager
// so that owner references are honoured, and kubectl with the plugin on its
// PATH. The tests run `kubectl add api …` exactly as a user does.
type env struct {
	root       string
	kubeconfig string
	path       string // PATH with the plugin first
	home       string
	kube       kubernetes.Interface
	dyn        dynamic.Interface
	cfg        *rest.Config
}

var shared *env

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("skipping kubectl-add cluster tests in -short mode")
		os.Exit(m.Run())
	}
	e, stop, err := start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubectl-add tests:", err)
		os.Exit(1)
	}
	shared = e
	code := m.Run()
	stop()
	os.Exit(code)
}

func moduleRoot() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	return filepath.Abs(root)
}

func start() (*env, func(), error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "envtest")
	}
	// KUBECTL names another kubectl, for a machine without `make cluster-bins`.
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		kubectl = filepath.Join(root, "bin", "k8s", "kubectl")
	}
	for _, b := range []string{filepath.Join(assets, "kube-apiserver"), filepath.Join(assets, "etcd"), filepath.Join(assets, "kube-controller-manager")} {
		if _, err := os.Stat(b); err != nil {
			return nil, nil, fmt.Errorf("%s is missing: run `make envtest-bins` (or set KUBEBUILDER_ASSETS)", b)
		}
	}
	if _, err := os.Stat(kubectl); err != nil {
		return nil, nil, fmt.Errorf("%s is missing: run `make cluster-bins` (or set KUBECTL)", kubectl)
	}

	tmp, err := os.MkdirTemp("", "kubectl-add-test-")
	if err != nil {
		return nil, nil, err
	}
	var cleanups []func()
	stop := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	cleanups = append(cleanups, func() { os.RemoveAll(tmp) })

	pluginDir := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "kubectl-add"), "./cmd/kubectl-add")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("build kubectl-add: %w\n%s", err, out)
	}
	if err := os.Symlink(kubectl, filepath.Join(pluginDir, "kubectl")); err != nil {
		stop()
		return nil, nil, err
	}

	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if err := fixPorts(te, os.Getenv("ADDAPI_TEST_PORTS")); err != nil {
		stop()
		return nil, nil, err
	}
	_, err = te.Start()
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("start envtest: %w", err)
	}
	cleanups = append(cleanups, func() { _ = te.Stop() })
	user, err := te.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("envtest user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		stop()
		return nil, nil, err
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		stop()
		return nil, nil, err
	}

	// The garbage collector deletes the ConfigMaps an API owns, and the
	// quota controller computes the quota a test refuses an API with; envtest
	// runs no controllers, so run the controller-manager with just those.
	kcm := exec.Command(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig, "--controllers=garbagecollector,resourcequota", "--leader-elect=false",
		"--secure-port=0", "--flex-volume-plugin-dir="+filepath.Join(tmp, "flexvolume"))
	var kcmLog bytes.Buffer
	kcm.Stdout, kcm.Stderr = &kcmLog, &kcmLog
	if err := kcm.Start(); err != nil {
		stop()
		return nil, nil, fmt.Errorf("start kube-controller-manager: %w", err)
	}
	cleanups = append(cleanups, func() {
		_ = kcm.Process.Kill()
		_ = kcm.Wait()
		if os.Getenv("KCM_LOG") != "" {
			fmt.Fprintln(os.Stderr, kcmLog.String())
		}
	})

	e := &env{root: root, kubeconfig: kubeconfig, home: tmp, cfg: user.Config(),
		path: pluginDir + string(os.PathListSeparator) + os.Getenv("PATH")}
	if e.kube, err = kubernetes.NewForConfig(e.cfg); err != nil {
		stop()
		return nil, nil, err
	}
	if e.dyn, err = dynamic.NewForConfig(e.cfg); err != nil {
		stop()
		return nil, nil, err
	}
	return e, stop, nil
}

// fixPorts puts the API server and etcd on 127.0.0.1 at base, base+1 and
// base+2 (etcd's peer port) instead of ports envtest picks, for a machine
// where tests may listen only on some ports. An empty base changes nothing.
func fixPorts(te *envtest.Environment, base string) error {
	if base == "" {
		return nil
	}
	p, err := strconv.Atoi(base)
	if err != nil {
		return fmt.Errorf("ADDAPI_TEST_PORTS %q: want the first of three free ports", base)
	}
	serving := &te.ControlPlane.GetAPIServer().SecureServing
	serving.Address, serving.Port = "127.0.0.1", strconv.Itoa(p)
	etcd := &envtest.Etcd{}
	te.ControlPlane.Etcd = etcd
	etcd.URL = &url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1))}
	etcd.Configure().Set("listen-peer-urls", "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(p+2)))
	return nil
}

// result is one kubectl run.
type result struct {
	stdout, stderr string
	code           int
}

// kubectl runs kubectl (and through it the plugin) against the test server.
func (e *env) kubectl(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return e.kubectlCtx(ctx, t, args...)
}

func (e *env) kubectlCtx(ctx context.Context, t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "PATH="+e.path, "KUBECONFIG="+e.kubeconfig, "HOME="+e.home)
	cmd.Path = filepath.Join(strings.SplitN(e.path, string(os.PathListSeparator), 2)[0], "kubectl")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func (e *env) mustKubectl(t *testing.T, args ...string) result {
	t.Helper()
	r := e.kubectl(t, args...)
	if r.code != 0 {
		t.Fatalf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// namespace creates a fresh namespace for one test.
func (e *env) namespace(t *testing.T, name string) string {
	t.Helper()
	_, err := e.kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func needCluster(t *testing.T) *env {
	t.Helper()
	if shared == nil {
		t.Skip("cluster tests are skipped in -short mode")
	}
	return shared
}
