// Package gateway assembles the gateway from a Bundle and a Binding: the
// router (compiled once, the Bundle never changes), one precompiled handler
// chain per route per Binding generation, the listeners, the admin endpoints,
// Binding hot reload and graceful shutdown.
//
// Dependency direction: gateway imports filter, router, proxy, server, metrics
// and problem; it never imports a policy package. The policies come in as
// Config.Factories (cmd/gatekiln-gateway passes policy.Factories()).
//
// A request runs: request id → metrics and access log → routing → body limit
// → the Factories' filters in the order given → proxy (see package filter).
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/metrics"
	"github.com/gatekiln/gatekiln/gatewayruntime/proxy"
	"github.com/gatekiln/gatekiln/gatewayruntime/router"
	"github.com/gatekiln/gatekiln/gatewayruntime/server"
)

// Config configures a Gateway. Zero values take the defaults noted.
type Config struct {
	// Bundle is the loaded Bundle (bundle.Load).
	Bundle *bundle.Bundle
	// BindingDir holds binding.json and the files it names.
	BindingDir string
	// Addr serves plain HTTP ("" disables it); TLSAddr serves HTTPS and HTTP/2
	// with the Binding's server certificate ("" disables it; when set, the
	// gateway is not ready until the Binding has a certificate).
	Addr, TLSAddr string
	// AdminAddr serves /metrics, /healthz, /readyz (and /debug/pprof/ with
	// Pprof, in a binary built with the pprof tag: see PprofBuilt).
	AdminAddr string
	Pprof     bool
	// Factories are the policies, in the order package filter documents.
	Factories []filter.Factory
	// Logger receives the gateway's own logs; AccessLog, when non-nil,
	// receives one JSON line per request.
	Logger    *slog.Logger
	AccessLog io.Writer
	// Server limits and timeouts (see server.Config).
	Server server.Config
	// Proxy options (see proxy.Options); Metrics and Logger are set here.
	Proxy proxy.Options
	// MaxBodyBytes is the request body limit of routes that set none: 10 MiB.
	MaxBodyBytes int64
	// ReloadInterval is how often the Binding directory is checked: 1s.
	ReloadInterval time.Duration
	// ShutdownDelay is how long the gateway reports not-ready, still serving
	// (responses saying Connection: close), after SIGTERM before it closes
	// its listeners, so that load balancers stop sending first: zero means
	// DefaultShutdownDelay, negative none. ShutdownGrace bounds the drain
	// after that: 30s.
	ShutdownDelay, ShutdownGrace time.Duration
	// Tracer, when non-nil, starts a server span per request and propagates W3C traceparent upstream.
	Tracer Tracer
	// HeapFloor, when set, raises the process's GC target after each Binding
	// load so that the heap goal is at least this many bytes (see tuneGC).
	// It changes a process-wide setting: for the command, not for libraries.
	HeapFloor uint64
}

// Tracer is the tracing hook (package tracing provides the OpenTelemetry one).
// Start returns the request to pass on (its context carries the span and its
// header the traceparent for the upstream) and a function ending the span.
type Tracer interface {
	Start(r *http.Request, route string) (*http.Request, func(status int))
}

// Gateway serves one Bundle.
type Gateway struct {
	cfg     Config
	api     *bundle.Bundle
	router  *router.Router[int]
	names   []string // route label per Bundle route
	metrics *metrics.Gateway
	log     *slog.Logger
	access  *accessLog

	gen     atomic.Pointer[generation]
	genID   uint64
	loadErr atomic.Pointer[string] // last failed load, "" after a success
	// reloadMu serialises generation builds (start-up, reload).
	reloadMu sync.Mutex
	lastSum  string

	ctx      context.Context
	cancel   context.CancelFunc
	stopping atomic.Bool
	srv      *server.Server
	admin    *http.Server
	ids      requestIDs
	// gcBase is the GC target the operator set, which HeapFloor raises.
	gcBase int
	// preflightAPI is set when some route has a CORS policy.
	preflightAPI    bool
	unmatchedRoutes map[string]*metrics.Route
}

// New compiles the router and builds the first generation from the Binding.
// A Binding that fails to load does not stop the gateway: it starts not ready,
// answers 503, says why on /readyz and keeps watching the directory.
func New(cfg Config) (*Gateway, error) {
	if cfg.Bundle == nil {
		return nil, errors.New("gateway: no bundle")
	}
	if cfg.Pprof && !PprofBuilt {
		return nil, errors.New("gateway: pprof asked for, but this binary was built without it (go build -tags pprof)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = time.Second
	}
	if cfg.ShutdownDelay < 0 {
		cfg.ShutdownDelay = 0
	} else if cfg.ShutdownDelay == 0 {
		cfg.ShutdownDelay = DefaultShutdownDelay
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	// The gateway's own copy of the Bundle, without the OpenAPI document once
	// the factories have read it; the caller's is left as it is.
	api := new(bundle.Bundle)
	*api = *cfg.Bundle
	gcBase := gcPercent()
	restoreGC := collectOften()
	readDocument(api, cfg.Factories)
	restoreGC()
	cfg.Bundle = api
	entries := make([]router.Entry[int], len(api.Routes))
	names := make([]string, len(api.Routes))
	for i, r := range api.Routes {
		entries[i] = router.Entry[int]{Method: r.Method, Path: r.Path, Value: i}
		names[i] = r.Method + " " + r.Path
	}
	rt, err := router.Compile(entries)
	if err != nil {
		return nil, fmt.Errorf("gateway: routes: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:     cfg,
		api:     api,
		router:  rt,
		names:   names,
		metrics: metrics.New(),
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		ids:     newRequestIDs(),
		gcBase:  gcBase,
	}
	g.unmatchedRoutes = map[string]*metrics.Route{"": g.metrics.Route("", "OTHER")}
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		g.unmatchedRoutes[m] = g.metrics.Route("", m)
	}
	g.preflightAPI = api.CORS != nil
	for _, r := range api.Routes {
		if r.CORS != nil {
			g.preflightAPI = true
		}
	}
	if cfg.AccessLog != nil {
		g.access = newAccessLog(cfg.AccessLog)
	}
	g.cfg.Proxy.Metrics = g.metrics
	if g.cfg.Proxy.Logger == nil {
		g.cfg.Proxy.Logger = cfg.Logger
	}
	sc := cfg.Server
	sc.Handler = g
	// The gateway's handler leaves the loop before anything that may wait
	// (a route whose policies are not filter.LoopSafe, net/http upstreams).
	sc.Loop = true
	sc.Logger = cfg.Logger
	sc.Rejected = func(status int) string {
		g.metrics.Rejected.WithLabelValues(fmt.Sprint(status)).Inc()
		return g.ids.next()
	}
	g.srv = server.New(sc)
	g.reload(true)
	return g, nil
}

// Metrics returns the gateway's collectors (tests read them).
func (g *Gateway) Metrics() *metrics.Gateway { return g.metrics }

// Handler returns the data-plane handler (the Gateway itself), for tests that
// serve it on their own listener.
func (g *Gateway) Handler() http.Handler { return g }

// Run serves until ctx is cancelled (SIGTERM), then shuts down gracefully:
// not ready → ShutdownDelay → stop accepting, drain up to ShutdownGrace → return.
// The listeners are opened before Run returns an error for a bad address.
func (g *Gateway) Run(ctx context.Context) error {
	var lns []func() error
	if g.cfg.Addr != "" {
		ln, err := net.Listen("tcp", g.cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", g.cfg.Addr, err)
		}
		lns = append(lns, func() error { return g.srv.Serve(ln) })
	}
	if g.cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", g.cfg.TLSAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", g.cfg.TLSAddr, err)
		}
		tlsCfg := &tls.Config{GetConfigForClient: g.tlsConfigForClient}
		lns = append(lns, func() error { return g.srv.ServeTLS(ln, tlsCfg) })
	}
	if g.cfg.AdminAddr != "" {
		ln, err := net.Listen("tcp", g.cfg.AdminAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", g.cfg.AdminAddr, err)
		}
		g.admin = &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = g.admin.Serve(ln) }()
	}
	errc := make(chan error, len(lns))
	for _, serve := range lns {
		go func() { errc <- serve() }()
	}
	go g.watch()
	go releaseIdle(g.ctx, idleEvery)
	g.log.Info("gateway started", "api", g.api.API.Title, "routes", len(g.api.Routes),
		"addr", g.cfg.Addr, "tls_addr", g.cfg.TLSAddr, "admin_addr", g.cfg.AdminAddr)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, server.ErrServerClosed) {
			g.Close()
			return err
		}
	}
	return g.Shutdown()
}

// Shutdown reports not ready, waits ShutdownDelay, then drains.
func (g *Gateway) Shutdown() error {
	g.stopping.Store(true)
	g.metrics.Ready.Set(0)
	g.log.Info("shutting down", "delay", g.cfg.ShutdownDelay.String(), "grace", g.cfg.ShutdownGrace.String())
	g.srv.Drain()
	time.Sleep(g.cfg.ShutdownDelay)
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace)
	defer cancel()
	err := g.srv.Shutdown(ctx)
	if g.admin != nil {
		_ = g.admin.Close()
	}
	g.cancel()
	if gen := g.gen.Load(); gen != nil {
		gen.retire(nil)
	}
	if g.access != nil {
		g.access.close() // the buffered lines, before the process exits
	}
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	g.log.Info("stopped")
	return nil
}

// DefaultShutdownDelay is Config.ShutdownDelay's default.
const DefaultShutdownDelay = 5 * time.Second

// Close stops everything at once.
func (g *Gateway) Close() {
	g.stopping.Store(true)
	g.srv.Close()
	if g.admin != nil {
		_ = g.admin.Close()
	}
	g.cancel()
	if g.access != nil {
		g.access.close()
	}
}

// Serve serves plain HTTP on ln (tests); ServeTLS serves HTTPS.
func (g *Gateway) Serve(ln net.Listener) error { return g.srv.Serve(ln) }

// ServeTLS serves HTTPS and HTTP/2 on ln with the Binding's certificate.
func (g *Gateway) ServeTLS(ln net.Listener) error {
	return g.srv.ServeTLS(ln, &tls.Config{GetConfigForClient: g.tlsConfigForClient})
}

func (g *Gateway) tlsConfigForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	gen := g.gen.Load()
	if gen == nil || gen.tls == nil {
		return nil, errors.New("no server certificate in the binding")
	}
	return gen.tls, nil
}

// readDocument lets the factories read the OpenAPI document, then drops it
// from the Bundle: nothing else reads it (see filter.DocumentReader).
func readDocument(api *bundle.Bundle, factories []filter.Factory) {
	for _, f := range factories {
		if dr, ok := f.(filter.DocumentReader); ok {
			dr.ReadDocument(api)
		}
	}
	api.OpenAPI = nil
}
