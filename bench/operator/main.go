// Command operator benchmarks gatekiln-operator against a real API server
// (envtest: kube-apiserver + etcd from bin/envtest) and a real registry
// (Debian's docker-registry on 127.0.0.1), with Direct builds:
//
//  1. BENCH_APIS (default 1000) petstore variants, each a distinct definition
//     and so a distinct image: time until every API is Ready, and the
//     operator's peak RSS (VmHWM of its own process, run as in its
//     Deployment with GOMEMLIMIT=110MiB; target ≤ 128 MiB).
//  2. A full resync: the operator restarts, lists everything and reconciles
//     every API again; every write to an API object meanwhile is counted
//     (target 0), and writes to the objects it owns are printed too.
//  3. One more API, timed from create to Ready (target ≤ 2 s).
//
// There is no kubelet in envtest: the benchmark marks each gateway
// Deployment available as soon as the operator has applied it, through the
// API server (operatortest.Rollouts), which is what Ready follows.
//
// The last line is `apis ready: <n>, peak rss MiB: <x>, resync writes: <n>,
// one api ready s: <x>`.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/image"
	"github.com/gatekiln/gatekiln/builder/registry"
	"github.com/gatekiln/gatekiln/builder/registry/registrytest"
	"github.com/gatekiln/gatekiln/operator/operatortest"
)

const namespace = "bench"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/operator:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	n := 1000
	if v := os.Getenv("BENCH_APIS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			return fmt.Errorf("BENCH_APIS=%q: want a positive number", v)
		}
	}
	// Interrupted, it still stops what it started (API server, etcd, registry).
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-operator-")
	if err != nil {
		return err
	}
	// The operator's logs stay for a look when the benchmark fails.
	defer func() {
		if err == nil {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintln(os.Stderr, "bench/operator: logs in", dir)
		}
	}()

	env, err := operatortest.Launch(dir)
	if err != nil {
		return err
	}
	defer func() {
		if serr := env.Stop(); serr != nil {
			fmt.Fprintln(os.Stderr, "bench/operator: stop envtest:", serr)
		}
	}()
	regDir := filepath.Join(dir, "registry")
	if err := os.MkdirAll(regDir, 0o755); err != nil {
		return err
	}
	reg, err := registrytest.Launch(ctx, registrytest.Options{Dir: regDir})
	if err != nil {
		return err
	}
	defer reg.Close()
	base, err := pushRuntimeBase(ctx, reg.Config(), reg.Host, dir)
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "gatekiln-operator")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gatekiln-operator")
	build.Dir, build.Stdout, build.Stderr = operatortest.RepoRoot(), os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the operator: %w", err)
	}

	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	if err := createKinds(ctx, c); err != nil {
		return err
	}
	rollCtx, stopRollouts := context.WithCancel(ctx)
	rolloutsDone := make(chan struct{})
	defer func() { stopRollouts(); <-rolloutsDone }()
	go func() {
		defer close(rolloutsDone)
		if err := env.Rollouts(rollCtx, namespace); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "rollouts:", err)
		}
	}()
	petstore, err := os.ReadFile(filepath.Join(operatortest.RepoRoot(), "samples", "petstore", "petstore.yaml"))
	if err != nil {
		return err
	}

	op, err := startOperator(ctx, bin, env.Kubeconfig, reg, base, dir)
	if err != nil {
		return err
	}
	fmt.Printf("creating %d APIs (petstore variants, Direct builds to %s)\n", n, reg.Host)
	start := time.Now()
	for i := range n {
		if err := createAPI(ctx, c, petstore, i); err != nil {
			return err
		}
	}
	created := time.Since(start)
	if err := waitReady(ctx, c, n, 30*time.Minute); err != nil {
		return err
	}
	allReady := time.Since(start)
	rss1, err := op.peakRSS()
	if err != nil {
		return err
	}
	fmt.Printf("all %d APIs ready in %.1f s (creating them took %.1f s): %.1f APIs/s; operator peak RSS %.1f MiB\n",
		n, allReady.Seconds(), created.Seconds(), float64(n)/allReady.Seconds(), rss1)
	if err := op.stop(); err != nil {
		return err
	}

	// Full resync: a new operator process lists and reconciles everything.
	apiWrites, ownedWrites, resync, rss2, err := measureResync(ctx, env, bin, reg, base, dir, n)
	if err != nil {
		return err
	}
	fmt.Printf("full resync of %d APIs in %.1f s: %d API writes, %d writes to owned objects; operator peak RSS %.1f MiB\n",
		n, resync.Seconds(), apiWrites, ownedWrites, rss2)

	// One more API, against the running operator.
	op, err = startOperator(ctx, bin, env.Kubeconfig, reg, base, dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, op.stop()) }()
	if err := op.waitIdle(ctx, n); err != nil {
		return err
	}
	t0 := time.Now()
	if err := createAPI(ctx, c, petstore, n); err != nil {
		return err
	}
	if err := waitOneReady(ctx, c, apiName(n)); err != nil {
		return err
	}
	one := time.Since(t0)
	fmt.Printf("one more API (a new image): create → Ready in %.2f s\n", one.Seconds())
	rss3, err := op.peakRSS()
	if err != nil {
		return err
	}
	peak := max(rss1, rss2, rss3)
	fmt.Printf("apis ready: %d, peak rss MiB: %.1f, resync writes: %d, one api ready s: %.2f\n", n, peak, apiWrites, one.Seconds())
	return nil
}

func apiName(i int) string { return fmt.Sprintf("petstore-%04d", i) }

// createAPI writes a petstore variant (its own title, so its own Bundle and
// image) and the API using it.
func createAPI(ctx context.Context, c client.Client, petstore []byte, i int) error {
	def := strings.Replace(string(petstore), "title: Swagger Petstore", fmt.Sprintf("title: Swagger Petstore %04d", i), 1)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: apiName(i) + "-def", Namespace: namespace},
		Data: map[string]string{"petstore.yaml": def}}
	api := &v1alpha1.API{ObjectMeta: metav1.ObjectMeta{Name: apiName(i), Namespace: namespace},
		Spec: v1alpha1.APISpec{
			Definition: []v1alpha1.ConfigMapKeyRef{{Name: cm.Name, Key: "petstore.yaml"}},
			Build:      v1alpha1.BuildSpec{Strategy: v1alpha1.BuildDirect},
		}}
	for _, o := range []client.Object{cm, api} {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	return nil
}

// createKinds writes the Endpoint, RateLimit and Security objects of
// samples/petstore/kinds.yaml and the API-key Secret they name.
func createKinds(ctx context.Context, c client.Client) error {
	data, err := os.ReadFile(filepath.Join(operatortest.RepoRoot(), "samples", "petstore", "kinds.yaml"))
	if err != nil {
		return err
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return err
		}
		var obj client.Object
		switch tm.Kind {
		case "Endpoint":
			obj = &v1alpha1.Endpoint{}
		case "RateLimit":
			obj = &v1alpha1.RateLimit{}
		case "Security":
			obj = &v1alpha1.Security{}
		default:
			return fmt.Errorf("kinds.yaml: unexpected kind %q", tm.Kind)
		}
		if err := yaml.Unmarshal([]byte(doc), obj); err != nil {
			return err
		}
		obj.SetNamespace(namespace)
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}
	return c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "petstore-api-keys", Namespace: namespace},
		Data: map[string][]byte{"alice": []byte("alice-key"), "bob": []byte("bob-key")}})
}

func waitReady(ctx context.Context, c client.Client, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := -1
	for time.Now().Before(deadline) {
		var list v1alpha1.APIList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		ready, failed := 0, ""
		for i := range list.Items {
			conds := list.Items[i].Status.Conditions
			if meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady) {
				ready++
			}
			for _, t := range []string{v1alpha1.ConditionResolved, v1alpha1.ConditionBuilt, v1alpha1.ConditionDeployed} {
				if cnd := meta.FindStatusCondition(conds, t); cnd != nil && cnd.Status == metav1.ConditionFalse {
					failed = fmt.Sprintf("%s: %s=False %s: %s", list.Items[i].Name, t, cnd.Reason, cnd.Message)
				}
			}
		}
		if failed != "" {
			return errors.New(failed)
		}
		if ready >= n {
			return nil
		}
		if ready/100 != last/100 {
			fmt.Printf("  %d/%d ready\n", ready, n)
			last = ready
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("not all %d APIs ready within %s", n, limit)
}

func waitOneReady(ctx context.Context, c client.WithWatch, name string) error {
	w, err := c.Watch(ctx, &v1alpha1.APIList{}, client.InNamespace(namespace))
	if err != nil {
		return err
	}
	defer w.Stop()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return errors.New("watch closed")
			}
			api, isAPI := ev.Object.(*v1alpha1.API)
			if isAPI && api.Name == name && meta.IsStatusConditionTrue(api.Status.Conditions, v1alpha1.ConditionReady) {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("%s not ready within a minute", name)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// measureResync restarts the operator and counts writes while it
// reconciles all n APIs again.
func measureResync(ctx context.Context, env *operatortest.Env, bin string, reg *registrytest.Registry, base name.Digest, dir string, n int) (apiWrites, ownedWrites int, took time.Duration, rss float64, err error) {
	c := env.Client
	var apis v1alpha1.APIList
	if err := c.List(ctx, &apis, client.InNamespace(namespace)); err != nil {
		return 0, 0, 0, 0, err
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	counts := make(chan int, 2)
	watchWrites := func(list client.ObjectList, rv string) error {
		w, err := c.Watch(wctx, list, client.InNamespace(namespace), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
		if err != nil {
			return err
		}
		go func() {
			defer w.Stop()
			k := 0
			for ev := range w.ResultChan() {
				if _, ok := ev.Object.(*v1alpha1.API); ok && (ev.Type == watch.Modified || ev.Type == watch.Added || ev.Type == watch.Deleted) {
					k++
				}
			}
			counts <- k
		}()
		return nil
	}
	if err := watchWrites(&v1alpha1.APIList{}, apis.ResourceVersion); err != nil {
		return 0, 0, 0, 0, err
	}
	// Every kind the operator writes for an API, from one resource version on.
	var owned []client.ObjectList
	owned = append(owned, &corev1.ConfigMapList{}, &corev1.SecretList{}, &corev1.ServiceList{})
	ownedCounts := make(chan int, 8)
	for _, l := range owned {
		if err := c.List(ctx, l, client.InNamespace(namespace), client.Limit(1)); err != nil {
			return 0, 0, 0, 0, err
		}
		rv := l.(metav1.ListInterface).GetResourceVersion()
		w, err := c.Watch(wctx, l, client.InNamespace(namespace), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
		if err != nil {
			return 0, 0, 0, 0, err
		}
		go func() {
			defer w.Stop()
			k := 0
			for ev := range w.ResultChan() {
				o, ok := ev.Object.(client.Object)
				if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified && ev.Type != watch.Deleted) {
					continue // the watch ending
				}
				if os.Getenv("BENCH_DEBUG") != "" {
					fmt.Printf("  resync write: %s %T %s\n", ev.Type, o, o.GetName())
				}
				k++
			}
			ownedCounts <- k
		}()
	}
	deps, err := deploymentWrites(wctx, c)
	if err != nil {
		return 0, 0, 0, 0, err
	}

	t0 := time.Now()
	op, err := startOperator(ctx, bin, env.Kubeconfig, reg, base, dir)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	if err := op.waitIdle(ctx, n); err != nil {
		return 0, 0, 0, 0, errors.Join(err, op.stop())
	}
	took = time.Since(t0)
	rss, err = op.peakRSS()
	if err != nil {
		return 0, 0, 0, 0, errors.Join(err, op.stop())
	}
	if err := op.stop(); err != nil {
		return 0, 0, 0, 0, err
	}
	stop()
	apiWrites = <-counts
	for range owned {
		ownedWrites += <-ownedCounts
	}
	ownedWrites += <-deps
	return apiWrites, ownedWrites, took, rss, nil
}

// deploymentWrites counts changes to the operator's Deployments, leaving out
// the status writes the benchmark's rollouts make.
func deploymentWrites(ctx context.Context, c client.WithWatch) (<-chan int, error) {
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	w, err := c.Watch(ctx, &list, client.InNamespace(namespace),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		return nil, err
	}
	gens := map[string]int64{}
	for _, d := range list.Items {
		gens[d.Name] = d.Generation
	}
	out := make(chan int, 1)
	go func() {
		defer w.Stop()
		k := 0
		for ev := range w.ResultChan() {
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			if os.Getenv("BENCH_DEBUG") != "" {
				fmt.Printf("  deployment event: %s %s generation %d (was %d)\n", ev.Type, d.Name, d.Generation, gens[d.Name])
			}
			if ev.Type != watch.Modified || d.Generation != gens[d.Name] {
				k++
				gens[d.Name] = d.Generation
			}
		}
		out <- k
	}()
	return out, nil
}

// operatorProcess is a running gatekiln-operator.
type operatorProcess struct {
	cmd     *exec.Cmd
	metrics string
	done    chan error
}

func startOperator(ctx context.Context, bin, kubeconfig string, reg *registrytest.Registry, base name.Digest, dir string) (*operatorProcess, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin,
		"--kubeconfig="+kubeconfig,
		"--registry="+reg.Host+"/gatekiln",
		"--runtime-image="+base.String(),
		"--insecure-registry="+reg.Host,
		"--default-strategy=Direct",
		"--metrics-bind-address="+addr,
		"--health-probe-bind-address=0",
		"--kube-api-qps=200", "--kube-api-burst=400",
		"--log-level=error",
	)
	if a := os.Getenv("BENCH_PPROF_ADDR"); a != "" {
		cmd.Args = append(cmd.Args, "--pprof-bind-address="+a)
	}
	// As in config/manager: a soft memory limit under the 128 MiB hard one.
	cmd.Env = append(os.Environ(), "GOMEMLIMIT=110MiB")
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("operator-%d.log", time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start operator: %w", err)
	}
	p := &operatorProcess{cmd: cmd, metrics: "http://" + addr + "/metrics", done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	return p, nil
}

// stop ends the operator with SIGTERM, as the kubelet would.
func (p *operatorProcess) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case werr := <-p.done:
		if werr != nil {
			return fmt.Errorf("operator exit after SIGTERM: %w", werr)
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("operator did not stop within 30s of SIGTERM")
	}
}

// peakRSS is the process's high-water resident set (VmHWM), in MiB.
func (p *operatorProcess) peakRSS() (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// waitIdle waits until the operator has reconciled at least n APIs and has
// nothing queued or running, for a whole second.
func (p *operatorProcess) waitIdle(ctx context.Context, n int) error {
	deadline := time.Now().Add(30 * time.Minute)
	idleSince := time.Time{}
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			return fmt.Errorf("operator exited: %w", err)
		default:
		}
		m, err := scrape(ctx, p.metrics)
		if err == nil && series(m, "controller_runtime_reconcile_total", `controller="api"`, `result="success"`) >= float64(n) &&
			series(m, "workqueue_depth", `name="api"`) == 0 && series(m, "controller_runtime_active_workers", `controller="api"`) == 0 {
			if idleSince.IsZero() {
				idleSince = time.Now()
			}
			if time.Since(idleSince) >= time.Second {
				return nil
			}
		} else {
			idleSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("operator not idle within 30 minutes")
}

// scrape reads the Prometheus text format into series → value.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] += v
	}
	return out, s.Err()
}

// series sums the samples of metric whose labels include every one given.
func series(m map[string]float64, metric string, labels ...string) float64 {
	var sum float64
next:
	for k, v := range m {
		if !strings.HasPrefix(k, metric+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(k, l) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// pushRuntimeBase pushes a runtime base image made with the real builder
// from a stand-in gateway binary (the benchmark never runs the gateway).
func pushRuntimeBase(ctx context.Context, cfg registry.Config, host, dir string) (name.Digest, error) {
	binPath := filepath.Join(dir, "gatekiln-gateway")
	if err := os.WriteFile(binPath, []byte("#!/bin/false\n"), 0o755); err != nil {
		return name.Digest{}, err
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return name.Digest{}, fmt.Errorf("CA certificates for the runtime base: %w", err)
	}
	idx, err := image.RuntimeBase(image.RuntimeOptions{
		Binaries: []image.Binary{{Platform: v1.Platform{OS: "linux", Architecture: "amd64"}, Path: binPath}},
		CACerts:  certs,
	})
	if err != nil {
		return name.Digest{}, err
	}
	repo, err := cfg.ParseRepository(host + "/gatekiln/runtime")
	if err != nil {
		return name.Digest{}, err
	}
	opts, err := cfg.Remote(ctx)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.WriteIndex(repo.Tag("bench"), idx, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("push runtime base: %w", err)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return repo.Digest(d.String()), nil
}
