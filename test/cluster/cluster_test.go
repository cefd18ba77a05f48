package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestLocalCluster is the proof of hack/cluster: bring the cluster up, run a
// Deployment from an image in the local registry, reach it through its
// Service from a Pod and through `kubectl port-forward`, run a Job to
// completion and read its logs, bring the cluster down, and check that no
// process, mount, bridge, iptables chain, cgroup or host path of the cluster
// is left and that the sysctls the components change are back.
func TestLocalCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the local cluster needs root (bridge, iptables, cgroups, mounts); run the tests as root")
	}
	if testing.Short() {
		t.Skip("-short: the local cluster test needs the cluster binaries (make cluster-bins)")
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), testBudget(t))
	defer cancel()

	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{
		Root:       root,
		Kubeconfig: filepath.Join(root, "bin", "cluster", "admin.kubeconfig"),
		KubectlBin: filepath.Join(root, "bin", "k8s", "kubectl"),
		ImagesBin:  filepath.Join(root, "bin", "images", "images"),
		Registry:   Registry,
	}
	if err := c.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	// Whatever happens below, the cluster goes down.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if out, err := c.Down(ctx); err != nil {
			t.Errorf("cluster down: %v\n%s", err, out)
		}
	})
	// A cluster left by an earlier run (or started by hand) goes first, so
	// that the snapshot below is of the machine without any cluster.
	if out, err := c.make(ctx, "cluster-down"); err != nil {
		t.Fatalf("cluster-down before the test: %v\n%s", err, out)
	}
	before := snapshotHost(t, root)

	step := time.Now()
	out, err := c.make(ctx, "cluster-up")
	t.Logf("cluster-up:\n%s", out)
	if err != nil {
		t.Fatalf("cluster-up: %v", err)
	}
	upTime := time.Since(step)

	// The workload: one static binary in a one-layer image.
	bin := filepath.Join(t.TempDir(), "echo")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./testdata/echo")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/echo: %v\n%s", err, out)
	}
	image, err := c.PushImage(ctx, c.Registry+"/gatekiln-test/echo:v1", Image{
		Files:      map[string]string{"/echo": bin},
		Entrypoint: []string{"/echo"},
		User:       "65532:65532",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s", image)

	// A Deployment and its Service.
	step = time.Now()
	mustApply(ctx, t, c, fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: %s
        args: [serve]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
`, image))
	mustKubectl(ctx, t, c, "rollout", "status", "deployment/echo", "--timeout=90s")
	rolloutTime := time.Since(step)
	clusterIP := strings.TrimSpace(mustKubectl(ctx, t, c, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"))

	// From a Pod, through the Service: by its cluster IP (kube-proxy's DNAT),
	// by its DNS name (cluster-dns) and by its short name (the search path);
	// and the registry, as Kaniko will push to it from a Pod.
	step = time.Now()
	mustApply(ctx, t, c, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: %s
    args: [get, "http://%s/", "http://echo.default.svc.cluster.local/", "http://echo/", "http://%s/v2/"]
`, image, clusterIP, c.Registry))
	mustKubectl(ctx, t, c, "wait", "pod/client", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=90s")
	clientTime := time.Since(step)
	logs := mustKubectl(ctx, t, c, "logs", "pod/client")
	if strings.Count(logs, "status 200: hello from echo-") != 3 || !strings.Contains(logs, "/v2/ status 200") {
		t.Fatalf("client pod did not reach the Service three ways and the registry: %q", logs)
	}

	// From this test, through kubectl port-forward (apiserver → kubelet → CRI).
	body := portForwardGet(ctx, t, c, "service/echo", 80, "/")
	if !strings.HasPrefix(body, "hello from echo-") {
		t.Fatalf("port-forward: got %q", body)
	}

	// A Job runs to completion, and its logs are read back.
	step = time.Now()
	token := fmt.Sprintf("job-ok-%d", time.Now().UnixNano())
	mustApply(ctx, t, c, fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: echo-job, namespace: default}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: job
        image: %s
        args: [print, %s]
`, image, token))
	mustKubectl(ctx, t, c, "wait", "job/echo-job", "--for=condition=Complete", "--timeout=90s")
	jobTime := time.Since(step)
	if logs := mustKubectl(ctx, t, c, "logs", "job/echo-job"); strings.TrimSpace(logs) != token {
		t.Fatalf("job logs = %q, want %q", logs, token)
	}

	// Down, and the machine is as it was.
	step = time.Now()
	if out, err := c.Down(ctx); err != nil {
		t.Fatalf("cluster down: %v\n%s", err, out)
	}
	downTime := time.Since(step)
	after := snapshotHost(t, root)
	for _, p := range after.procs {
		t.Errorf("process left: %s", p)
	}
	for _, m := range after.mounts {
		t.Errorf("mount left: %s", m)
	}
	for _, l := range after.links {
		if !contains(before.links, l) {
			t.Errorf("network interface left: %s", l)
		}
	}
	for _, ch := range after.chains {
		t.Errorf("iptables chain left: %s", ch)
	}
	for _, cg := range after.cgroups {
		t.Errorf("cgroup left: %s", cg)
	}
	for p, existed := range before.paths {
		if after.paths[p] != existed {
			t.Errorf("host path %s: existed before %v, after %v", p, existed, after.paths[p])
		}
	}
	for k, v := range before.sysctls {
		if after.sysctls[k] != v {
			t.Errorf("sysctl %s = %q after, %q before", k, after.sysctls[k], v)
		}
	}
	t.Logf("timings: cluster-up %v (incl. node Ready), Deployment rolled out %v after apply, client Pod done %v, Job complete %v, cluster-down %v, whole test %v",
		upTime.Round(100*time.Millisecond), rolloutTime.Round(100*time.Millisecond), clientTime.Round(100*time.Millisecond),
		jobTime.Round(100*time.Millisecond), downTime.Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
}

// testBudget leaves a minute of the go test deadline for cleanup (a timed-out
// test binary runs no t.Cleanup).
func testBudget(t *testing.T) time.Duration {
	budget := 15 * time.Minute
	if d, ok := t.Deadline(); ok {
		if left := time.Until(d) - time.Minute; left < budget {
			budget = left
		}
	}
	return budget
}

func mustKubectl(ctx context.Context, t *testing.T, c *Cluster, args ...string) string {
	t.Helper()
	out, err := c.Kubectl(ctx, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.describe(ctx))
	}
	return out
}

func mustApply(ctx context.Context, t *testing.T, c *Cluster, manifest string) {
	t.Helper()
	if err := c.Apply(ctx, manifest); err != nil {
		t.Fatal(err)
	}
}

// describe is what a failing wait prints: Pods and recent events.
func (c *Cluster) describe(ctx context.Context) string {
	pods, _ := c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	events, _ := c.Kubectl(ctx, "get", "events", "-A", "--sort-by=.lastTimestamp")
	return "pods:\n" + pods + "events:\n" + events
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// portForwardGet runs `kubectl port-forward TARGET :PORT`, GETs path through
// it and returns the body.
func portForwardGet(ctx context.Context, t *testing.T, c *Cluster, target string, port int, path string) string {
	t.Helper()
	pfCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	cmd := exec.CommandContext(pfCtx, c.KubectlBin, "--kubeconfig", c.Kubeconfig,
		"port-forward", "--address", "127.0.0.1", target, fmt.Sprintf(":%d", port))
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	local := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
				local <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var lport string
	select {
	case lport = <-local:
	case <-pfCtx.Done():
		t.Fatalf("port-forward did not start: %s", stderr.String())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", lport) + path)
	if err != nil {
		t.Fatalf("GET through port-forward: %v (kubectl: %s)", err, stderr.String())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET through port-forward: status %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// hostState is what the cluster may leave behind.
type hostState struct {
	procs, mounts, links, chains, cgroups []string
	paths                                 map[string]bool
	sysctls                               map[string]string
}

// The sysctls the kubelet, kube-proxy and up.sh change.
var watchedSysctls = []string{
	"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
	"net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables", "net/netfilter/nf_conntrack_max",
}

// Host paths the components create on their own.
var watchedPaths = []string{
	"/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/var/lib/cni", "/run/containerd",
	"/run/netns", "/usr/libexec/kubernetes", "/opt/containerd", "/run/nri", "/etc/cni", "/run/gatekiln-cluster",
}

func snapshotHost(t *testing.T, root string) hostState {
	t.Helper()
	s := hostState{paths: map[string]bool{}, sysctls: map[string]string{}}
	state := filepath.Join(root, "bin", "cluster") + "/"
	const rundir = "/run/gatekiln-cluster/"
	self := fmt.Sprint(os.Getpid())
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || strings.Contains(p, "/"+self+"/") {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, state) || strings.Contains(cmdline, rundir) {
			s.procs = append(s.procs, filepath.Base(filepath.Dir(p))+": "+cmdline)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (strings.HasPrefix(f[4], state) || strings.HasPrefix(f[4], rundir) || strings.HasPrefix(f[4], "/run/netns/cni-")) {
				s.mounts = append(s.mounts, f[4])
			}
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		s.links = append(s.links, i.Name)
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(save).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, ":KUBE-") || strings.HasPrefix(line, ":CNI-") || strings.HasPrefix(line, ":GATEKILN-") {
				s.chains = append(s.chains, save+" "+strings.Fields(line)[0])
			}
		}
	}
	s.cgroups, _ = filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	for _, p := range watchedPaths {
		_, err := os.Lstat(p)
		s.paths[p] = err == nil
	}
	for _, k := range watchedSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			s.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	sort.Strings(s.links)
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
