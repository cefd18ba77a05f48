package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/metrics"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
	"github.com/gatekiln/gatekiln/gatewayruntime/proxy"
)

// generation is everything built from one Binding: the upstreams, one handler
// chain per route and the server TLS config. Requests load it once and use it
// to the end, so a reload never changes a request midway.
type generation struct {
	id        uint64
	binding   *bundle.Binding
	upstreams *proxy.Upstreams
	routes    []compiledRoute
	trusted   *filter.TrustedProxies
	tls       *tls.Config
	// missing lists what the Bundle needs and the Binding lacks (not ready).
	missing []string
	// failed marks the routes (by index) whose chain failed to build; they
	// answer 503. routeErrs says why, once per distinct reason.
	failed    map[int]bool
	routeErrs []string

	ctx    context.Context
	cancel context.CancelFunc
	// active counts requests using this generation; a replaced generation's
	// Env.Context is cancelled once it drops to zero.
	active atomic.Int64
}

type compiledRoute struct {
	bundle  *bundle.Route
	name    string
	chain   http.Handler
	maxBody int64
	metrics *metrics.Route
	// loopSafe: every middleware of the chain is filter.LoopSafe, so the
	// request stays on the event loop (the proxy leaves it by itself when
	// it must wait on something else).
	loopSafe bool
}

// build makes a generation from a Binding. It is pure apart from reading the
// files the Binding names.
func (g *Gateway) build(b *bundle.Binding, prev *generation) (*generation, error) {
	g.genID++
	ctx, cancel := context.WithCancel(g.ctx)
	gen := &generation{id: g.genID, binding: b, ctx: ctx, cancel: cancel}
	fail := func(err error) (*generation, error) {
		cancel()
		return nil, err
	}
	var prevUps *proxy.Upstreams
	if prev != nil {
		prevUps = prev.upstreams
	}
	ups, err := proxy.Build(g.api, b, g.cfg.BindingDir, prevUps, g.cfg.Proxy)
	if err != nil {
		return fail(err)
	}
	gen.upstreams = ups
	if b.Server != nil {
		t, err := filter.ParseTrustedProxies(b.Server.TrustedProxies)
		if err != nil {
			return fail(fmt.Errorf("server.trustedProxies: %w", err))
		}
		gen.trusted = t
		tc, err := g.serverTLS(b.Server)
		if err != nil {
			return fail(err)
		}
		gen.tls = tc
	}
	env := filter.Env{
		BindingDir: g.cfg.BindingDir,
		Generation: gen.id,
		Context:    ctx,
		Metrics:    g.metrics.Registry,
		Logger:     g.log,
	}
	gen.routes = make([]compiledRoute, len(g.api.Routes))
	gen.failed = map[int]bool{}
	seen := map[string]bool{}
	for i := range g.api.Routes {
		r := &g.api.Routes[i]
		h, loopSafe, err := g.chain(r, ups, b, env)
		if err != nil {
			// The route answers 503 and readiness says why; whether the whole
			// generation is acceptable is reload's decision.
			gen.failed[i] = true
			if msg := err.Error(); !seen[msg] {
				seen[msg] = true
				gen.routeErrs = append(gen.routeErrs, msg)
			}
			h = unavailable{}
		}
		maxBody := r.Validation.MaxBodyBytes
		if maxBody <= 0 {
			maxBody = g.cfg.MaxBodyBytes
		}
		var rm *metrics.Route
		if prev != nil {
			rm = prev.routes[i].metrics
		} else {
			rm = g.metrics.Route(r.Path, r.Method)
		}
		gen.routes[i] = compiledRoute{bundle: r, name: g.names[i], chain: h, maxBody: maxBody, metrics: rm, loopSafe: loopSafe}
	}
	gen.missing = append(b.Missing(g.api), gen.routeErrs...)
	if g.cfg.TLSAddr != "" && gen.tls == nil {
		gen.missing = append(gen.missing, "server: no TLS certificate and key for the TLS listener")
	}
	return gen, nil
}

// chain builds one route's handler: the proxy wrapped by each Factory's
// middleware, the first Factory outermost. loopSafe says whether every
// middleware is filter.LoopSafe.
func (g *Gateway) chain(r *bundle.Route, ups *proxy.Upstreams, b *bundle.Binding, env filter.Env) (h http.Handler, loopSafe bool, err error) {
	h, err = ups.Handler(g.api, r)
	if err != nil {
		return nil, false, err
	}
	loopSafe = true
	for j := len(g.cfg.Factories) - 1; j >= 0; j-- {
		f := g.cfg.Factories[j]
		mw, err := f.Build(g.api, r, b, env)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", f.Name(), err)
		}
		if mw != nil {
			h = mw(h)
			if ls, ok := f.(filter.LoopSafe); !ok || !ls.LoopSafe(g.api, r, b) {
				loopSafe = false
			}
		}
	}
	return h, loopSafe, nil
}

// unavailable serves a route whose chain could not be built from the Binding.
type unavailable struct{}

func (unavailable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	problem.Write(w, r, http.StatusServiceUnavailable, "", "This operation is not configured in this environment.")
}

// regresses reports whether gen fails a route that prev served, or lacks
// something prev had (an endpoint's URLs, security values, the TLS
// certificate, all of them when binding.json is gone): such a Binding is
// refused and prev stays in force, since it would take every replica down at
// once. A Binding that only completes what was missing, or still lacks the
// same, is taken.
func (gen *generation) regresses(prev *generation) []string {
	if prev == nil {
		return nil
	}
	for i := range gen.failed {
		if !prev.failed[i] {
			return gen.routeErrs
		}
	}
	var lost []string
	for _, m := range gen.missing {
		if !slices.Contains(prev.missing, m) {
			lost = append(lost, m)
		}
	}
	return lost
}

// serverTLS loads the server certificate and the client CA. Clients may send a
// certificate whenever some route uses mTLS (the mtls policy verifies it per
// scheme); with server.clientCaFile, a certificate sent must chain to it.
func (g *Gateway) serverTLS(sb *bundle.ServerBinding) (*tls.Config, error) {
	if sb.TLSCertFile == "" && sb.TLSKeyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(g.path(sb.TLSCertFile), g.path(sb.TLSKeyFile))
	if err != nil {
		return nil, fmt.Errorf("server tls: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// TLS 1.2 suites: forward secret AEADs only (TLS 1.3 suites are fixed).
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"h2", "http/1.1"},
	}
	for _, s := range g.api.SecuritySchemes {
		if s.Type == bundle.SchemeMTLS {
			cfg.ClientAuth = tls.RequestClientCert
		}
	}
	if sb.ClientCAFile != "" {
		pem, err := os.ReadFile(g.path(sb.ClientCAFile))
		if err != nil {
			return nil, fmt.Errorf("server clientCaFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server clientCaFile %s: no PEM certificate", sb.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

func (g *Gateway) path(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(g.cfg.BindingDir, name)
}

// discard drops a generation that was built but not taken.
func (gen *generation) discard(prev *generation) {
	gen.cancel()
	var prevUps *proxy.Upstreams
	if prev != nil {
		prevUps = prev.upstreams
	}
	prevUps.Retire(gen.upstreams)
	prevUps.ForgetOthers(gen.upstreams)
}

// retire cancels a replaced generation's context once its requests are done,
// and closes the upstreams next does not reuse.
func (gen *generation) retire(next *generation) {
	var nextUps *proxy.Upstreams
	if next != nil {
		nextUps = next.upstreams
	}
	go func() {
		deadline := time.Now().Add(10 * time.Minute)
		for gen.active.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		gen.cancel()
		if nextUps != nil {
			nextUps.Retire(gen.upstreams)
		} else {
			gen.upstreams.Close()
		}
	}()
}

// reload loads the Binding and, when it changed and builds, swaps the
// generation in. A failure keeps the previous generation and is reported.
func (g *Gateway) reload(force bool) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	sum, err := g.fingerprint()
	if err == nil && sum == g.lastSum && !force {
		return
	}
	if err != nil && !force {
		// Unreadable files (no descriptors left, say) are read again every
		// interval, but the same failure is reported once.
		if prev := g.loadErr.Load(); prev != nil && *prev == err.Error() {
			return
		}
	}
	defer collectOften()()
	var gen *generation
	prev := g.gen.Load()
	if err == nil {
		var b *bundle.Binding
		b, err = bundle.LoadBinding(g.cfg.BindingDir)
		if err == nil {
			gen, err = g.build(b, prev)
		}
		if err == nil {
			if why := gen.regresses(prev); why != nil {
				gen.discard(prev)
				gen = nil
				err = fmt.Errorf("what works now would fail: %s", strings.Join(why, "; "))
			}
		}
	}
	if err != nil {
		// Do not retry the same bad files every interval; wait for a change.
		g.lastSum = sum
		msg := err.Error()
		g.loadErr.Store(&msg)
		g.metrics.Reloads.WithLabelValues("failure").Inc()
		g.metrics.BindingValid.Set(0)
		g.log.Error("binding rejected, previous binding stays in force", "dir", g.cfg.BindingDir, "err", err)
		g.updateReady()
		return
	}
	g.lastSum = sum
	g.loadErr.Store(nil)
	g.gen.Store(gen)
	if prev != nil {
		prev.retire(gen)
		gen.upstreams.ForgetOthers(prev.upstreams)
	}
	g.metrics.Reloads.WithLabelValues("success").Inc()
	g.metrics.BindingValid.Set(1)
	g.metrics.Generation.Set(float64(gen.id))
	g.log.Info("binding loaded", "generation", gen.id, "missing", gen.missing)
	g.updateReady()
	// Building a generation (parsing definitions, keys) leaves garbage far
	// larger than what stays live; hand it back now rather than keep it
	// resident until the scavenger gets to it. Reloads are rare. Then the GC
	// target is set from what stays live.
	// reloadMu orders the tuning after this build's GC target is restored
	// (deferred above) and keeps it out of the next build's.
	go func() {
		debug.FreeOSMemory()
		g.reloadMu.Lock()
		defer g.reloadMu.Unlock()
		tuneGC(g.gcBase, g.cfg.HeapFloor)
	}()
}

// buildGCPercent is the GC target while a generation is built.
const buildGCPercent = 20

// collectOften lowers the GC target until the returned func is called.
// Building a generation (parsing a large definition for validation) makes many
// times more garbage than stays live; collected at the default target, the
// heap peaks at several times its live size and what stays live ends up spread
// over all those spans, which stay resident (box: 5 MB live in 12 MB of spans).
// Collected often, the peak and so the spread stay small.
func collectOften() (restore func()) {
	old := debug.SetGCPercent(buildGCPercent)
	if old < 0 || old < buildGCPercent {
		debug.SetGCPercent(old) // GC off, or already lower: as the operator set it
		return func() {}
	}
	return func() { debug.SetGCPercent(old) }
}

// fingerprint hashes binding.json and every file it names, so that any change
// (a ConfigMap's "..data" symlink swap, a rotated Secret) is seen.
func (g *Gateway) fingerprint() (string, error) {
	h := sha256.New()
	data, err := os.ReadFile(filepath.Join(g.cfg.BindingDir, bundle.BindingFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "absent", nil
	case err != nil:
		return "", fmt.Errorf("read binding: %w", err)
	}
	h.Write(data)
	if b, err := bundle.ParseBinding(data); err == nil {
		for _, f := range b.SecretFiles() {
			content, err := os.ReadFile(g.path(f))
			if err != nil {
				content = []byte("missing:" + err.Error())
			}
			fmt.Fprintf(h, "\x00%s\x00%d\x00", f, len(content))
			h.Write(content)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// watch polls the Binding directory until the gateway stops.
func (g *Gateway) watch() {
	t := time.NewTicker(g.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			g.reload(false)
		}
	}
}

// Reload checks the Binding directory now (tests; the watcher does it every interval).
func (g *Gateway) Reload() { g.reload(false) }

// notReady returns why the gateway is not ready, or nil. A failed reload does
// not make a running gateway unready (the previous Binding serves, and every
// replica would otherwise drop out at once); it is reported by warnings.
func (g *Gateway) notReady() []string {
	var why []string
	if g.stopping.Load() {
		why = append(why, "shutting down")
	}
	gen := g.gen.Load()
	if gen == nil {
		msg := "no binding loaded"
		if e := g.loadErr.Load(); e != nil {
			msg += ": " + oneLine(*e)
		}
		why = append(why, msg)
	} else {
		why = append(why, gen.missing...)
	}
	return why
}

// warnings returns what /readyz reports without failing.
func (g *Gateway) warnings() []string {
	if e := g.loadErr.Load(); e != nil && g.gen.Load() != nil {
		return []string{"last binding load failed, previous binding in force: " + oneLine(*e)}
	}
	return nil
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func (g *Gateway) updateReady() {
	if len(g.notReady()) == 0 {
		g.metrics.Ready.Set(1)
	} else {
		g.metrics.Ready.Set(0)
	}
}
