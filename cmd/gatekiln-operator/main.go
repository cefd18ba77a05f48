// Command gatekiln-operator runs the API and Endpoint reconcilers: it
// compiles API definitions, builds one gateway image per API (a Kaniko Job,
// or in process) and deploys it. It only parses flags; package operator
// does the work.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
	"github.com/gatekiln/gatekiln/builder/kaniko"
	"github.com/gatekiln/gatekiln/operator"
)

// listFlag collects a repeatable or comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// bytesFlag is a size in bytes, written as a Kubernetes quantity (8Mi).
type bytesFlag struct{ p *int64 }

func (b bytesFlag) String() string {
	if b.p == nil {
		return ""
	}
	return resource.NewQuantity(*b.p, resource.BinarySI).String()
}

func (b bytesFlag) Set(v string) error {
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return err
	}
	if q.Sign() <= 0 {
		return fmt.Errorf("%s: want a positive size", v)
	}
	*b.p = q.Value()
	return nil
}

// resourceFlag sets one entry of a ResourceList; "" or "0" removes it.
type resourceFlag struct {
	list corev1.ResourceList
	name corev1.ResourceName
}

func (f resourceFlag) String() string {
	if q, ok := f.list[f.name]; ok {
		return q.String()
	}
	return ""
}

func (f resourceFlag) Set(v string) error {
	if v == "" || v == "0" {
		delete(f.list, f.name)
		return nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return err
	}
	f.list[f.name] = q
	return nil
}

func main() {
	var (
		o                    operator.Options
		namespaces, insecure listFlag
		caFile, dockerConfig string
		logLevel             slog.Level
		qps                  float64
		burst                int
	)
	flag.StringVar(&o.Registry, "registry", "", "where built images go: host[:port][/prefix] (required)")
	flag.StringVar(&o.RuntimeImage, "runtime-image", "", "the gateway runtime base image: repo@sha256:…, or a tag resolved to its digest at start (required)")
	flag.StringVar(&o.KanikoImage, "kaniko-image", kaniko.DefaultExecutorImage, "the Kaniko executor image build Jobs run")
	flag.StringVar(&o.KanikoJoinImage, "kaniko-join-image", "", "image with a shell that joins a build context split across ConfigMaps (default: the Kaniko image's tag + \"-debug\")")
	flag.StringVar(&o.DefaultStrategy, "default-strategy", v1alpha1.BuildKaniko, "build strategy of APIs that name none: Kaniko or Direct")
	flag.Var(&namespaces, "namespaces", "namespaces to watch, comma-separated or repeated (default: all)")
	flag.StringVar(&caFile, "registry-ca", "", "PEM file of certificate authorities trusted for registries, besides the system pool")
	flag.Var(&insecure, "insecure-registry", "registry host:port reached over plain HTTP (repeatable)")
	flag.StringVar(&dockerConfig, "registry-config", "", "docker config.json with registry credentials (default: the default keychain)")
	flag.IntVar(&o.MaxConcurrentBuilds, "max-concurrent-builds", operator.DefaultMaxConcurrentBuilds, "builds in flight at once (Direct in the operator, Kaniko Jobs in the cluster)")
	flag.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", operator.DefaultMaxConcurrentReconciles, "API reconcile workers")
	o.CompileBudget, o.MaxDefinitionBytes = operator.DefaultCompileBudget, operator.DefaultMaxDefinitionBytes
	flag.Var(bytesFlag{&o.CompileBudget}, "compile-budget", "bytes of definitions (decompressed) compiled at once; a compile takes about 20 times its definition's size in memory, so size the memory limit for it")
	flag.Var(bytesFlag{&o.MaxDefinitionBytes}, "max-definition-size", "largest definition (decompressed, all files) the operator compiles; larger ones are refused (Resolved=False, DefinitionTooLarge)")
	flag.DurationVar(&o.NameConflictRequeue, "name-conflict-requeue", operator.DefaultNameConflictRequeue, "how soon an API whose object names someone else's object holds is tried again")
	kr := operator.DefaultKanikoResources()
	o.KanikoResources = &kr
	flag.Var(resourceFlag{kr.Requests, corev1.ResourceCPU}, "kaniko-cpu-request", "CPU request of Kaniko build containers (\"\" for none)")
	flag.Var(resourceFlag{kr.Requests, corev1.ResourceMemory}, "kaniko-memory-request", "memory request of Kaniko build containers (\"\" for none)")
	flag.Var(resourceFlag{kr.Limits, corev1.ResourceCPU}, "kaniko-cpu-limit", "CPU limit of Kaniko build containers (\"\" for none; a ResourceQuota on limits.cpu needs one)")
	flag.Var(resourceFlag{kr.Limits, corev1.ResourceMemory}, "kaniko-memory-limit", "memory limit of Kaniko build containers (\"\" for none)")
	flag.DurationVar(&o.DiscoveryInterval, "discovery-interval", operator.DefaultDiscoveryInterval, "how often to look for exposure kinds (Gateway API HTTPRoute, Ingress) installed after the operator started")
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "/healthz and /readyz address (0 disables)")
	flag.StringVar(&o.PprofAddr, "pprof-bind-address", "0", "net/http/pprof address (0 disables)")
	flag.BoolVar(&o.LeaderElection, "leader-elect", false, "run one active replica, chosen by a Lease")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the operator's own)")
	flag.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	flag.Float64Var(&qps, "kube-api-qps", 50, "requests per second to the API server (client-side limit)")
	flag.IntVar(&burst, "kube-api-burst", 100, "burst of requests to the API server (client-side limit)")
	flag.Parse()

	o.Namespaces = namespaces
	o.RegistryConfig.Insecure = insecure
	o.RegistryConfig.UserAgent = "gatekiln-operator"
	if err := readFile(caFile, &o.RegistryConfig.CABundle); err != nil {
		fail(err)
	}
	if err := readFile(dockerConfig, &o.RegistryConfig.DockerConfig); err != nil {
		fail(err)
	}
	o.Logger = logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	ctrl.SetLogger(o.Logger)

	// Flags first: a wrong flag is the error to report, not a missing
	// kubeconfig.
	if err := o.Validate(); err != nil {
		fail(fmt.Errorf("operator config: %w", err))
	}
	ctx := ctrl.SetupSignalHandler()
	rc, err := ctrl.GetConfig()
	if err != nil {
		fail(fmt.Errorf("kubeconfig: %w", err))
	}
	rc.QPS, rc.Burst = float32(qps), burst
	mgr, err := operator.NewManager(ctx, rc, o)
	if err != nil {
		fail(err)
	}
	if err := mgr.Start(ctx); err != nil {
		fail(err)
	}
}

func readFile(path string, into *[]byte) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	*into = b
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gatekiln-operator:", err)
	os.Exit(1)
}
