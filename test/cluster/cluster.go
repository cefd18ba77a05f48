// Package cluster runs the local single-node Kubernetes of hack/cluster for
// tests that need real Pods: Up starts it (building what is missing through
// `make -f hack/cluster.mk cluster-up`), Down stops it and leaves the machine
// as it was. One test process at a time holds the cluster: Up takes an
// exclusive lock on LockFile and Down releases it, so packages that
// `go test ./...` runs in parallel take turns, and so do two checkouts on one
// machine (the bridge, port 6443 and the iptables chains are the machine's).
//
// A test uses it as
//
//	c := cluster.Start(t) // skips unless root; t.Cleanup brings it down
//	ref, err := c.PushImage(ctx, c.Registry+"/app:v1", cluster.Image{…})
//	out, err := c.Kubectl(ctx, "apply", "-f", "-")
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a running local cluster.
type Cluster struct {
	Root       string // repository root
	Kubeconfig string // admin kubeconfig (bin/cluster/admin.kubeconfig)
	KubectlBin string // kubectl of the cluster's own version
	ImagesBin  string // hack/images tool: builds and pushes images without Docker
	Registry   string // host:port of the registry, plain HTTP, reachable from the node and from Pods

	lock *os.File
	down bool
}

// Registry is the cluster registry's address (see hack/cluster/env.sh).
const Registry = "10.244.0.1:5000"

// RepoRoot finds the repository root: the nearest parent of the working
// directory holding hack/cluster.mk.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "cluster.mk")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hack/cluster.mk not found above the working directory")
		}
		dir = parent
	}
}

// Start brings the cluster up for t and brings it down when t ends. It skips
// t when not running as root: the cluster creates a bridge, iptables chains,
// cgroups and mounts.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the local cluster needs root (bridge, iptables, cgroups, mounts); run the tests as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, out, err := Up(ctx)
	t.Log(out)
	if c != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if out, err := c.Down(ctx); err != nil {
				t.Errorf("cluster down: %v\n%s", err, out)
			}
		})
	}
	if err != nil {
		t.Fatalf("cluster up: %v", err)
	}
	return c
}

// Up takes the cluster lock (waiting for another test process to release it)
// and starts the cluster. It returns the make output. On error after the lock
// is taken, it returns the Cluster too, so the caller can Down it.
func Up(ctx context.Context) (*Cluster, string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, "", err
	}
	c := &Cluster{
		Root:       root,
		Kubeconfig: filepath.Join(root, "bin", "cluster", "admin.kubeconfig"),
		KubectlBin: filepath.Join(root, "bin", "k8s", "kubectl"),
		ImagesBin:  filepath.Join(root, "bin", "images", "images"),
		Registry:   Registry,
	}
	if err := c.acquire(ctx); err != nil {
		return nil, "", err
	}
	out, err := c.make(ctx, "cluster-up")
	if err != nil {
		return c, out, fmt.Errorf("make cluster-up: %w", err)
	}
	return c, out, nil
}

// Down stops the cluster (hack/cluster/down.sh verifies that nothing is
// left) and releases the lock. It may be called more than once.
func (c *Cluster) Down(ctx context.Context) (string, error) {
	if c.down {
		return "", nil
	}
	out, err := c.make(ctx, "cluster-down")
	if err == nil {
		c.down = true
		c.release()
		return out, nil
	}
	return out, fmt.Errorf("make cluster-down: %w", err)
}

// Kubectl runs the cluster's kubectl with the admin kubeconfig and returns
// its standard output; the error carries standard error.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlIn(ctx, "", args...)
}

// KubectlIn is Kubectl with stdin (for `apply -f -`).
func (c *Cluster) KubectlIn(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.KubectlBin, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Apply applies manifest (YAML, several documents allowed).
func (c *Cluster) Apply(ctx context.Context, manifest string) error {
	_, err := c.KubectlIn(ctx, manifest, "apply", "-f", "-")
	return err
}

// Image describes a one-layer image for PushImage: Files maps a path in the
// image to a file on this machine (mode 0755 for everything).
type Image struct {
	Files      map[string]string
	Entrypoint []string
	User       string
	Env        []string
}

// PushImage assembles img with hack/images and pushes it to ref (in the
// cluster registry). It returns ref by digest.
func (c *Cluster) PushImage(ctx context.Context, ref string, img Image) (string, error) {
	args := []string{"push", "--insecure", "--ref", ref}
	for dst, src := range img.Files {
		args = append(args, "--file", dst+"="+src+":0755")
	}
	for _, e := range img.Entrypoint {
		args = append(args, "--entrypoint", e)
	}
	for _, e := range img.Env {
		args = append(args, "--env", e)
	}
	if img.User != "" {
		args = append(args, "--user", img.User)
	}
	cmd := exec.CommandContext(ctx, c.ImagesBin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("push %s: %w: %s", ref, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// make runs a target of hack/cluster.mk.
func (c *Cluster) make(ctx context.Context, target string) (string, error) {
	return c.Make(ctx, "-f", "hack/cluster.mk", target)
}

// Make runs make with args from the repository root, outside any make that
// started this test (its MAKEFLAGS would leak into the child).
func (c *Cluster) Make(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = c.Root
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// The cluster's processes run in their own sessions with their output in
	// bin/cluster/logs, so nothing holds these pipes once make returns.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// LockFile is the machine-wide cluster lock: $CLUSTER_LOCK, by default
// /run/gatekiln-cluster.lock (hack/cluster/env.sh uses the same).
func LockFile() string {
	if p := os.Getenv("CLUSTER_LOCK"); p != "" {
		return p
	}
	return "/run/gatekiln-cluster.lock"
}

func (c *Cluster) acquire(ctx context.Context) error {
	path := LockFile()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			c.lock = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return fmt.Errorf("waiting for %s (another test holds the cluster): %w", path, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func (c *Cluster) release() {
	if c.lock != nil {
		_ = syscall.Flock(int(c.lock.Fd()), syscall.LOCK_UN)
		c.lock.Close()
		c.lock = nil
	}
}
