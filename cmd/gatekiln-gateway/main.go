// Command gatekiln-gateway serves one compiled API: the Bundle baked into its
// image and the Binding mounted next to it. It only parses flags; package
// gateway does the work.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/gateway"
	"github.com/gatekiln/gatekiln/gatewayruntime/policy"
	"github.com/gatekiln/gatekiln/gatewayruntime/rawconn"
	"github.com/gatekiln/gatekiln/gatewayruntime/tracing"
)

func main() {
	var (
		cfg          gateway.Config
		bundlePath   string
		accessLog    bool
		logLevel     slog.Level
		otlpEndpoint string
		heapFloor    gateway.ByteSize
	)
	flag.StringVar(&bundlePath, "bundle", bundle.Path, "the Bundle to serve")
	flag.StringVar(&cfg.BindingDir, "binding-dir", bundle.BindingDir, "directory holding binding.json and the files it names (watched for changes)")
	flag.StringVar(&cfg.Addr, "addr", ":8080", "plain HTTP listen address (empty: none)")
	flag.StringVar(&cfg.TLSAddr, "tls-addr", "", "HTTPS and HTTP/2 listen address, with the Binding's server certificate (empty: none)")
	flag.StringVar(&cfg.AdminAddr, "admin-addr", ":9090", "admin listen address: /metrics, /healthz, /readyz")
	flag.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/ on the admin address (in a binary built with -tags pprof)")
	flag.BoolVar(&rawconn.Loop, "event-loop", rawconn.Loop, "serve plain HTTP/1.1 requests whose route's policies never wait as coroutines of the own epoll loop (needs -own-poller)")
	flag.BoolVar(&rawconn.Polled, "own-poller", rawconn.Polled, "wait for plain HTTP client and upstream sockets in the gateway's own epoll loop (oldest first); false: Go's netpoller")
	flag.BoolVar(&accessLog, "access-log", true, "write a JSON access log line per request to stdout")
	flag.TextVar(&logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	flag.DurationVar(&cfg.Server.ReadHeaderTimeout, "read-header-timeout", 0, "time to read a request head (default 10s)")
	flag.DurationVar(&cfg.Server.IdleTimeout, "idle-timeout", 0, "keep-alive idle timeout (default 2m)")
	flag.DurationVar(&cfg.Server.BodyIdleTimeout, "body-idle-timeout", 0, "request body read without progress (default 1m)")
	flag.IntVar(&cfg.Server.MaxHeaderBytes, "max-header-bytes", 0, "request head size limit (default 32768)")
	flag.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 0, "request body limit for routes without their own (default 10485760)")
	flag.DurationVar(&cfg.Proxy.DialTimeout, "dial-timeout", 0, "upstream connect timeout (default 5s)")
	flag.DurationVar(&cfg.Proxy.Timeout, "upstream-timeout", 0, "default route timeout, request to response head (default 30s)")
	flag.DurationVar(&cfg.Proxy.IdleConnTimeout, "upstream-idle-timeout", 0, "pooled upstream connection idle timeout (default 90s)")
	flag.DurationVar(&cfg.ReloadInterval, "reload-interval", 0, "how often the Binding directory is checked (default 1s)")
	flag.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", gateway.DefaultShutdownDelay, "not-ready time before closing listeners on SIGTERM, responses saying Connection: close meanwhile (0: none)")
	flag.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 0, "longest drain of in-flight requests (default 30s)")
	flag.TextVar(&heapFloor, "gc-heap-floor", gateway.ByteSize(gateway.DefaultHeapFloor), "heap goal under load: the GC lets the heap grow to this size (e.g. 16MiB) before it collects, when the GOGC target alone would collect sooner: fewer collections for a few MB more memory; idle memory is returned either way (0: the GOGC target alone)")
	flag.StringVar(&otlpEndpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "OTLP/HTTP traces endpoint URL; tracing is off when empty")
	flag.Parse()
	cfg.HeapFloor = uint64(heapFloor)
	if cfg.ShutdownDelay == 0 {
		cfg.ShutdownDelay = -1 // Config's zero is the default; the flag's is none
	}

	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	if err := run(cfg, bundlePath, accessLog, otlpEndpoint, logger); err != nil {
		logger.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

func run(cfg gateway.Config, bundlePath string, accessLog bool, otlpEndpoint string, logger *slog.Logger) error {
	b, err := bundle.Load(bundlePath)
	if err != nil {
		return err
	}
	cfg.Bundle = b
	cfg.Logger = logger
	cfg.Factories = policy.Factories()
	if accessLog {
		cfg.AccessLog = os.Stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The first signal drains; a second one (someone at a terminal) exits
	// without waiting for the grace period.
	context.AfterFunc(ctx, stop)
	if otlpEndpoint != "" {
		tr, shutdown, err := tracing.New(ctx, otlpEndpoint, b.API.Title)
		if err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
		defer shutdown()
		cfg.Tracer = tr
	}
	g, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}
