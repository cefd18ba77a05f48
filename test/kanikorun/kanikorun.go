// Package kanikorun runs a rendered Kaniko build Job on this machine, with the
// real executor, the way a kubelet would run its Pod: the Job's volumes are
// materialized (ConfigMaps, Secrets, emptyDirs), its init container joins the
// context, and the executor runs with exactly the Job's arguments.
//
// Kaniko unpacks the base image over its own root file system, and this
// machine has /.dockerenv, so Kaniko would believe it is in a container and
// overwrite / if started directly. It never is: every container runs chrooted
// in a throwaway root (mode 0755, nothing mounted at /tmp) inside
// `unshare --mount --pid --fork`, whose mounts vanish with it; the executor
// is PID 1 of that namespace and gets --force, since it is not in a container
// it can detect.
package kanikorun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/gatekiln/gatekiln/builder/kaniko"
)

// Executor is what runs the Job's containers here.
type Executor struct {
	// Binary is the Kaniko executor built from source (bin/kaniko/executor).
	Binary string
	// Busybox is a static busybox providing the join container's /busybox.
	Busybox string
	// CACerts becomes /kaniko/ssl/certs/ca-certificates.crt, as in the
	// upstream executor image.
	CACerts string
	// WorkDir holds the throwaway roots and volumes; default a temp dir.
	WorkDir string
}

// Result is what one run produced.
type Result struct {
	// Message is the termination message (/dev/termination-log), what the
	// operator reads from the terminated container.
	Message string
	// Digest is the digest in it.
	Digest string
	// Logs are the combined output of the containers.
	Logs []byte
}

// Default finds the executor built by `make kaniko` (or $KANIKO_EXECUTOR)
// and Debian's static busybox, and says how to get whichever is missing.
func Default() (Executor, error) {
	e := Executor{Binary: os.Getenv("KANIKO_EXECUTOR"), Busybox: "/usr/bin/busybox", CACerts: "/etc/ssl/certs/ca-certificates.crt"}
	if e.Binary == "" {
		root, err := moduleRoot()
		if err != nil {
			return e, err
		}
		e.Binary = filepath.Join(root, "bin", "kaniko", "executor")
	}
	var errs []error
	if _, err := os.Stat(e.Binary); err != nil {
		errs = append(errs, fmt.Errorf("kaniko executor %s missing: run `make kaniko` (builds it from the Go module proxy): %w", e.Binary, err))
	}
	if _, err := os.Stat(e.Busybox); err != nil {
		errs = append(errs, fmt.Errorf("static busybox missing: install the Debian package busybox-static (hack/apt-packages.txt): %w", err))
	}
	for _, tool := range []string{"unshare", "chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			errs = append(errs, fmt.Errorf("%s missing (Debian util-linux/coreutils): %w", tool, err))
		}
	}
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("running Kaniko needs root (unshare --mount, chroot)"))
	}
	return e, errors.Join(errs...)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/gatekiln/gatekiln\n") {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("gatekiln module root not found above the working directory")
}

// Run materializes b's volumes from b.ConfigMaps and secrets, runs the init
// containers then the executor, each with the Job's command and arguments
// (plus --force for the executor), and returns the digest it reported.
func (e Executor) Run(ctx context.Context, b *kaniko.Build, secrets []corev1.Secret) (*Result, error) {
	pod := b.Job.Spec.Template.Spec
	work, err := os.MkdirTemp(e.WorkDir, "kaniko-run-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()

	root := filepath.Join(work, "root")
	if err := safeRoot(root); err != nil {
		return nil, err
	}
	volumes, err := materialize(filepath.Join(work, "volumes"), pod.Volumes, b, secrets)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		src, dst string
		mode     os.FileMode
	}{
		{e.Binary, "kaniko/executor", 0o755},
		{e.CACerts, "kaniko/ssl/certs/ca-certificates.crt", 0o644},
	} {
		if err := copyFile(f.src, filepath.Join(root, f.dst), f.mode); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{"dev", "proc", "busybox"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"dev/termination-log", "dev/null"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			return nil, err
		}
	}
	if err := copyFile(e.Busybox, filepath.Join(root, "busybox", "busybox"), 0o755); err != nil {
		return nil, err
	}
	for _, applet := range []string{"sh", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(root, "busybox", applet)); err != nil {
			return nil, err
		}
	}

	chroot, err := exec.LookPath("chroot")
	if err != nil {
		return nil, err
	}
	var script strings.Builder
	script.WriteString("set -eu\n")
	fmt.Fprintf(&script, "chroot=%s\n", shellQuote(chroot))
	fmt.Fprintf(&script, "root=%s\n", shellQuote(root))
	script.WriteString("mount --make-rprivate /\nmount -t proc proc \"$root/proc\"\nmount --bind /dev/null \"$root/dev/null\"\n")
	var mounted []string
	mount := func(c corev1.Container) error {
		for _, m := range c.VolumeMounts {
			src, ok := volumes[m.Name]
			if !ok {
				return fmt.Errorf("container %s mounts unknown volume %s", c.Name, m.Name)
			}
			target := filepath.Join(root, filepath.Clean("/"+m.MountPath))
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(src), shellQuote(target))
			if m.ReadOnly {
				fmt.Fprintf(&script, "mount -o remount,bind,ro %s\n", shellQuote(target))
			}
			mounted = append(mounted, target)
		}
		return nil
	}
	for _, c := range pod.InitContainers {
		if err := mount(c); err != nil {
			return nil, err
		}
		fmt.Fprintf(&script, "env -i PATH=/busybox %s \"$chroot\" \"$root\" %s\n", envOf(c), shellJoin(append(c.Command, c.Args...)))
		for i := len(mounted) - 1; i >= 0; i-- {
			fmt.Fprintf(&script, "umount %s\n", shellQuote(mounted[i]))
		}
		mounted = nil
	}
	script.WriteString("rm -rf \"$root/busybox\"\n")

	var executor *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == kaniko.ExecutorName {
			executor = &pod.Containers[i]
		}
	}
	if executor == nil {
		return nil, fmt.Errorf("job %s has no %s container", b.Job.Name, kaniko.ExecutorName)
	}
	if err := mount(*executor); err != nil {
		return nil, err
	}
	cmd := append([]string{"/kaniko/executor"}, executor.Args...)
	cmd = append(cmd, "--force")
	// exec: the executor replaces the shell as PID 1 of the namespace.
	fmt.Fprintf(&script, "exec env -i PATH=/usr/local/bin:/kaniko HOME=/root USER=root SSL_CERT_DIR=/kaniko/ssl/certs %s \"$chroot\" \"$root\" %s\n",
		envOf(*executor), shellJoin(cmd))

	scriptPath := filepath.Join(work, "run.sh")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o600); err != nil {
		return nil, err
	}
	var logs bytes.Buffer
	run := exec.CommandContext(ctx, "unshare", "--mount", "--pid", "--fork", "--kill-child", "/bin/bash", scriptPath)
	run.Stdout, run.Stderr = &logs, &logs
	err = run.Run()
	res := &Result{Logs: logs.Bytes()}
	if err != nil {
		return res, fmt.Errorf("kaniko build %s: %w\n%s", b.Job.Name, err, logs.Bytes())
	}
	digest, err := os.ReadFile(filepath.Join(root, "dev", "termination-log"))
	if err != nil {
		return res, err
	}
	res.Message = string(digest)
	res.Digest = strings.TrimSpace(res.Message)
	if !strings.HasPrefix(res.Digest, "sha256:") {
		return res, fmt.Errorf("kaniko build %s: termination message %q is not a digest\n%s", b.Job.Name, res.Digest, logs.Bytes())
	}
	return res, nil
}

// safeRoot creates the throwaway root and refuses anything that could be the
// machine's own root.
func safeRoot(root string) error {
	if !filepath.IsAbs(root) || filepath.Clean(root) == "/" {
		return fmt.Errorf("kaniko root %q: must be an absolute path other than /", root)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return fmt.Errorf("kaniko root: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	if resolved == "/" {
		return errors.New("kaniko root resolves to /")
	}
	return os.Chmod(root, 0o755)
}

// materialize writes each volume of the pod into dir the way the kubelet
// would present it, and returns volume name → host directory.
func materialize(dir string, vols []corev1.Volume, b *kaniko.Build, secrets []corev1.Secret) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vols {
		path := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, err
		}
		out[v.Name] = path
		switch {
		case v.EmptyDir != nil:
		case v.ConfigMap != nil:
			var cm *corev1.ConfigMap
			for i := range b.ConfigMaps {
				if b.ConfigMaps[i].Name == v.ConfigMap.Name {
					cm = &b.ConfigMaps[i]
				}
			}
			if cm == nil {
				return nil, fmt.Errorf("volume %s: ConfigMap %s not rendered", v.Name, v.ConfigMap.Name)
			}
			files := map[string][]byte{}
			for k, d := range cm.BinaryData {
				files[k] = d
			}
			for k, d := range cm.Data {
				files[k] = []byte(d)
			}
			if err := writeItems(path, files, v.ConfigMap.Items); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		case v.Secret != nil:
			var s *corev1.Secret
			for i := range secrets {
				if secrets[i].Name == v.Secret.SecretName {
					s = &secrets[i]
				}
			}
			if s == nil {
				return nil, fmt.Errorf("volume %s: Secret %s not given", v.Name, v.Secret.SecretName)
			}
			if err := writeItems(path, s.Data, v.Secret.Items); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		default:
			return nil, fmt.Errorf("volume %s: unsupported source", v.Name)
		}
	}
	return out, nil
}

func writeItems(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if len(items) == 0 {
		for k, d := range data {
			if err := os.WriteFile(filepath.Join(dir, k), d, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s missing", it.Key)
		}
		p := filepath.Join(dir, filepath.Clean("/"+it.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, d, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func envOf(c corev1.Container) string {
	var parts []string
	for _, e := range c.Env {
		parts = append(parts, shellQuote(e.Name+"="+e.Value))
	}
	return strings.Join(parts, " ")
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
