package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/metrics"
)

// Options configures the proxy. Zero values take the defaults shown.
type Options struct {
	// DialTimeout bounds connecting to an upstream: 5s.
	DialTimeout time.Duration
	// Timeout is the default route timeout (request sent → response head): 30s.
	Timeout time.Duration
	// IdleConnTimeout closes pooled upstream connections idle that long: 90s.
	IdleConnTimeout time.Duration
	// MaxIdlePerUpstream bounds each URL's pool of idle connections: 1024.
	MaxIdlePerUpstream int
	// BodyIdleTimeout aborts a response body that makes no progress that long: 60s.
	BodyIdleTimeout time.Duration
	// Metrics receives upstream metrics; required.
	Metrics *metrics.Gateway
	// Logger receives upstream errors at debug level.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.MaxIdlePerUpstream <= 0 {
		o.MaxIdlePerUpstream = 1024
	}
	if o.BodyIdleTimeout <= 0 {
		o.BodyIdleTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
}

// Load-balancing policies.
const (
	RoundRobin   = "round-robin"
	LeastRequest = "least-request"
)

// Cluster is one endpoint: its URLs and the policy that applies to all of them.
type Cluster struct {
	name  string
	ups   []*Upstream
	least bool
	rr    atomic.Uint64
	// timeout and retries from the Binding (which win over the route's) or nil.
	bindTimeout time.Duration
	bindRetries *bundle.Retries
	defTimeout  time.Duration
	defRetries  *bundle.Retries

	active, retrying atomic.Int64
	retried, refused prometheus.Counter
	// lastLocalLog rate-limits the log of local-limit failures (logLocal).
	lastLocalLog atomic.Int64
}

// Upstreams is one Binding generation's endpoints. Build reuses the Upstream
// (pool and circuit state) of every URL the previous generation had.
type Upstreams struct {
	opts     *Options
	clusters map[string]*Cluster
	all      map[string]*Upstream
	fwd      forwarding
}

// Build resolves every endpoint the Bundle's routes use against the Binding:
// the Binding's URLs, timeout, retries, circuit breaker and load balancing win
// over the definition's. prev may be nil.
func Build(api *bundle.Bundle, b *bundle.Binding, bindingDir string, prev *Upstreams, opts Options) (*Upstreams, error) {
	opts.defaults()
	us := &Upstreams{opts: &opts, clusters: map[string]*Cluster{}, all: map[string]*Upstream{}}
	if b.Server != nil {
		t, err := filter.ParseTrustedProxies(b.Server.TrustedProxies)
		if err != nil {
			return nil, fmt.Errorf("server.trustedProxies: %w", err)
		}
		us.fwd = forwarding{trusted: t, rfc7239: b.Server.ForwardedHeader}
	}
	used := map[string]bool{}
	for _, r := range api.Routes {
		if r.Endpoint != "" {
			used[r.Endpoint] = true
		}
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		c, err := us.cluster(name, api.Endpoints[name], b.Endpoints[name], bindingDir, prev)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", name, err))
			continue
		}
		us.clusters[name] = c
	}
	if err := errors.Join(errs...); err != nil {
		// Close only what this failed build created; prev stays in force.
		var made []*Upstream
		for key, up := range us.all {
			if prev == nil || prev.all[key] != up {
				up.close()
				made = append(made, up)
			}
		}
		prev.forget(made)
		return nil, err
	}
	return us, nil
}

// forget deletes the metric series of upstreams that are gone, unless an
// upstream of us (the Upstreams in force, or nil) reports under the same
// endpoint and URL.
func (us *Upstreams) forget(gone []*Upstream) {
	for _, up := range gone {
		kept := false
		if us != nil {
			for _, o := range us.all {
				if o.endpoint == up.endpoint && o.url.Redacted() == up.url.Redacted() {
					kept = true
					break
				}
			}
		}
		if !kept {
			up.opts.Metrics.ForgetUpstream(up.endpoint, up.url.Redacted())
		}
	}
}

func (us *Upstreams) cluster(name string, def bundle.Endpoint, bind bundle.EndpointBinding, dir string, prev *Upstreams) (*Cluster, error) {
	urls := bind.URLs
	if len(urls) == 0 {
		urls = def.URLs
	}
	lb := bind.LoadBalance
	if lb == "" {
		lb = def.LoadBalance
	}
	switch lb {
	case "", RoundRobin, LeastRequest:
	default:
		return nil, fmt.Errorf("loadBalance %q: want %s or %s", lb, RoundRobin, LeastRequest)
	}
	cb := bind.CircuitBreaker
	if cb == nil {
		cb = def.CircuitBreaker
	}
	bcfg := newBreakerConfig(cb)
	tlsCfg, caSum, err := upstreamTLS(bind, dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		name:        name,
		least:       lb == LeastRequest,
		bindTimeout: bind.Timeout.D(),
		bindRetries: bind.Retries,
		defTimeout:  def.Timeout.D(),
		defRetries:  def.Retries,
	}
	c.retried, c.refused = us.opts.Metrics.Retries(name)
	for _, raw := range urls {
		u, err := parseUpstreamURL(raw)
		if err != nil {
			return nil, err
		}
		key := name + "\x00" + u.String() + "\x00" + caSum + "\x00" + bind.ServerName
		up := us.all[key]
		if up == nil && prev != nil {
			up = prev.all[key]
		}
		if up == nil {
			up = newUpstream(key, name, u, tlsCfg, bcfg, us.opts)
		} else {
			up.br.cfg.Store(&bcfg)
		}
		us.all[key] = up
		c.ups = append(c.ups, up)
	}
	return c, nil
}

func parseUpstreamURL(raw string) (*url.URL, error) {
	// Quoted with any user info hidden: the error is logged and shown by
	// /readyz.
	shown := bundle.RedactURL(raw)
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL whole
		}
		return nil, fmt.Errorf("url %q: %w", shown, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: scheme must be http or https", shown)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("url %q: no host", shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("url %q: user info, query and fragment are not allowed", shown)
	}
	return u, nil
}

// upstreamTLS builds the client TLS config for an endpoint: the Binding's CA
// (else the system roots) and server name. The CA file's digest is part of an
// Upstream's identity, so a changed CA gets new connections.
func upstreamTLS(bind bundle.EndpointBinding, dir string) (*tls.Config, string, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: bind.ServerName}
	if bind.CAFile == "" {
		return cfg, "", nil
	}
	p := bind.CAFile
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	pem, err := os.ReadFile(p)
	if err != nil {
		return nil, "", fmt.Errorf("caFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("caFile %s: no PEM certificate", bind.CAFile)
	}
	cfg.RootCAs = pool
	sum := sha256.Sum256(pem)
	return cfg, hex.EncodeToString(sum[:8]), nil
}

// Retire closes the upstreams of prev that us does not reuse. Call it after
// the new generation's handlers are in force; requests still using a retired
// upstream finish, and its connections are closed as they come back.
func (us *Upstreams) Retire(prev *Upstreams) {
	if prev == nil {
		return
	}
	for key, up := range prev.all {
		if us == nil || us.all[key] != up {
			up.close()
		}
	}
}

// ForgetOthers deletes the metric series of other's upstreams for which us,
// the Upstreams in force, has no upstream under the same endpoint and URL:
// a URL taken out of the Binding stops reporting when the new Binding takes
// effect. Call it with the Binding in force, not from a retirement that may
// run after a later reload.
func (us *Upstreams) ForgetOthers(other *Upstreams) {
	if other == nil {
		return
	}
	gone := make([]*Upstream, 0, len(other.all))
	for _, up := range other.all {
		gone = append(gone, up)
	}
	us.forget(gone)
}

// Close closes every upstream.
func (us *Upstreams) Close() {
	for _, up := range us.all {
		up.close()
	}
}

// pick chooses an upstream that its circuit admits, avoiding exclude (the one
// that just failed) when there is another. probe says the choice is a
// half-open probe to report back.
func (c *Cluster) pick(exclude *Upstream) (*Upstream, bool) {
	n := len(c.ups)
	if n == 0 {
		return nil, false
	}
	if n == 1 {
		u := c.ups[0]
		ok, probe := u.br.allow()
		if !ok {
			return nil, false
		}
		return u, probe
	}
	if c.least {
		// Power of two choices among admitted upstreams.
		a, b := rand.IntN(n), rand.IntN(n-1)
		if b >= a {
			b++
		}
		ua, ub := c.ups[a], c.ups[b]
		if ub.inflight.Load() < ua.inflight.Load() {
			ua, ub = ub, ua
		}
		for _, u := range [2]*Upstream{ua, ub} {
			if u != exclude {
				if ok, probe := u.br.allow(); ok {
					return u, probe
				}
			}
		}
	}
	start := int(c.rr.Add(1))
	var fallback *Upstream
	for i := 0; i < n; i++ {
		u := c.ups[(start+i)%n]
		if u == exclude {
			fallback = u
			continue
		}
		if ok, probe := u.br.allow(); ok {
			return u, probe
		}
	}
	if fallback != nil {
		if ok, probe := fallback.br.allow(); ok {
			return fallback, probe
		}
	}
	return nil, false
}

// retryAfter is how long until some upstream of the cluster may be tried.
func (c *Cluster) retryAfter() time.Duration {
	var d time.Duration
	for i, u := range c.ups {
		ra := u.br.retryAfter()
		if i == 0 || ra < d {
			d = ra
		}
	}
	return d
}

// Retry budget: retries in flight may not exceed 20% of the requests in flight
// (at least minRetryConcurrency), so that retries cannot multiply the load on
// an upstream that is already failing.
const (
	retryBudgetPercent  = 20
	minRetryConcurrency = 3
)

// retry says whether a request may make another attempt, and counts it. A
// request takes one unit of the budget at its first retry and holds it (held
// says so) until it ends, however many attempts it makes.
func (c *Cluster) retry(held *bool) bool {
	if !*held {
		limit := max(c.active.Load()*retryBudgetPercent/100, minRetryConcurrency)
		if c.retrying.Add(1) > limit {
			c.retrying.Add(-1)
			c.refused.Inc()
			return false
		}
		*held = true
	}
	c.retried.Inc()
	return true
}

func (c *Cluster) doneRetry() { c.retrying.Add(-1) }

// retryPolicy is a Retries with its triggers parsed.
type retryPolicy struct {
	attempts  int
	perTry    time.Duration
	on5xx     bool
	onConnect bool
	onReset   bool
}

func newRetryPolicy(r *bundle.Retries) (retryPolicy, error) {
	if r == nil || r.Attempts <= 0 {
		return retryPolicy{}, nil
	}
	p := retryPolicy{attempts: r.Attempts, perTry: r.PerTry.D()}
	on := r.On
	if len(on) == 0 {
		on = []string{"connect-failure", "reset"}
	}
	for _, o := range on {
		switch strings.ToLower(o) {
		case "5xx":
			p.on5xx = true
		case "connect-failure":
			p.onConnect = true
		case "reset":
			p.onReset = true
		default:
			return retryPolicy{}, fmt.Errorf("retries.on %q: want 5xx, connect-failure or reset", o)
		}
	}
	return p, nil
}
