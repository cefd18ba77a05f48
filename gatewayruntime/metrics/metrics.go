// Package metrics holds the gateway's Prometheus collectors and the per-route
// and per-upstream handles the hot path uses. Handles are resolved once (at
// route compile time, or on a route's first use of a status code) so that a
// request does an atomic load and an increment, never a label lookup.
package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Count is a gauge of things in progress, read when scraped: an atomic add
// per change, where a prometheus.Gauge makes a compare-and-swap loop on a
// float (twice a request, for requests in flight).
type Count struct{ n atomic.Int64 }

// Inc adds one.
func (c *Count) Inc() { c.n.Add(1) }

// Dec takes one away.
func (c *Count) Dec() { c.n.Add(-1) }

// Value is the count now.
func (c *Count) Value() int64 { return c.n.Load() }

// Gateway is the set of collectors one gateway process registers.
type Gateway struct {
	Registry *prometheus.Registry

	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	InFlight        *Count
	Rejected        *prometheus.CounterVec
	upstreamLatency *prometheus.HistogramVec
	upstreamErrors  *prometheus.CounterVec
	retries         *prometheus.CounterVec
	circuitState    *prometheus.GaugeVec
	ejections       *prometheus.CounterVec
	Reloads         *prometheus.CounterVec
	Generation      prometheus.Gauge
	BindingValid    prometheus.Gauge
	Ready           prometheus.Gauge
}

var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New creates and registers the collectors (plus the Go and process collectors)
// on a fresh registry.
func New() *Gateway {
	g := &Gateway{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_requests_total",
			Help: "Requests answered, by route template, method and status code. Unmatched requests have route \"\".",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatekiln_request_duration_seconds",
			Help:    "Time from the request head to the end of the response, by route template and method.",
			Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		InFlight: new(Count),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_requests_rejected_total",
			Help: "Requests refused before routing (malformed, oversized or slow heads), by status code.",
		}, []string{"code"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatekiln_upstream_request_duration_seconds",
			Help:    "Time from sending a request upstream to its response head, per attempt, by endpoint and upstream.",
			Buckets: latencyBuckets,
		}, []string{"endpoint", "upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_upstream_errors_total",
			Help: "Failed upstream attempts by endpoint, upstream and kind (connect, reset, timeout, protocol, 5xx).",
		}, []string{"endpoint", "upstream", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_upstream_retries_total",
			Help: "Retried upstream attempts by endpoint; budget_exhausted counts retries refused by the retry budget.",
		}, []string{"endpoint", "result"}),
		circuitState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatekiln_circuit_state",
			Help: "Circuit state per upstream URL: 0 closed, 1 open (ejected), 2 half-open.",
		}, []string{"endpoint", "upstream"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_circuit_ejections_total",
			Help: "Times an upstream URL was ejected after consecutive failures.",
		}, []string{"endpoint", "upstream"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_binding_reloads_total",
			Help: "Binding loads by result (success, failure). A failure keeps the previous Binding in force.",
		}, []string{"result"}),
		Generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatekiln_binding_generation",
			Help: "Generation of the Binding in force: a new value means a new Binding took effect (failed loads use up numbers too).",
		}),
		BindingValid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatekiln_binding_last_load_success",
			Help: "1 when the last Binding load succeeded, 0 when it failed (the previous Binding stays in force).",
		}),
		Ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatekiln_ready",
			Help: "1 when /readyz reports ready.",
		}),
	}
	g.Registry.MustRegister(
		g.requests, g.duration, g.Rejected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatekiln_requests_in_flight",
			Help: "Requests being served.",
		}, func() float64 { return float64(g.InFlight.Value()) }),
		g.upstreamLatency, g.upstreamErrors, g.retries, g.circuitState, g.ejections,
		g.Reloads, g.Generation, g.BindingValid, g.Ready,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return g
}

// Route is one route's handles. The zero Route (nil *Route) records nothing.
type Route struct {
	g             *Gateway
	route, method string
	codes         [len(commonCodes)]atomic.Pointer[prometheus.Counter]
	duration      atomic.Pointer[prometheus.Observer]
}

var commonCodes = [...]int{200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 431, 500, 502, 503, 504}

func codeIndex(code int) int {
	for i, c := range commonCodes {
		if c == code {
			return i
		}
	}
	return -1
}

// Route returns the handles for a route template and method.
func (g *Gateway) Route(template, method string) *Route {
	return &Route{g: g, route: template, method: method}
}

// Observe records one answered request.
func (r *Route) Observe(code int, seconds float64) {
	if r == nil {
		return
	}
	r.counter(code).Inc()
	o := r.duration.Load()
	if o == nil {
		h := r.g.duration.WithLabelValues(r.route, r.method)
		o = &h
		r.duration.Store(o)
	}
	(*o).Observe(seconds)
}

func (r *Route) counter(code int) prometheus.Counter {
	i := codeIndex(code)
	if i < 0 {
		return r.g.requests.WithLabelValues(r.route, r.method, strconv.Itoa(code))
	}
	if c := r.codes[i].Load(); c != nil {
		return *c
	}
	c := r.g.requests.WithLabelValues(r.route, r.method, strconv.Itoa(code))
	r.codes[i].Store(&c)
	return c
}

// Upstream is one upstream URL's handles.
type Upstream struct {
	Latency   prometheus.Observer
	Ejections prometheus.Counter
	State     prometheus.Gauge
	kinds     [5]prometheus.Counter
}

// Error kinds of failed upstream attempts.
const (
	ErrConnect = iota
	ErrReset
	ErrTimeout
	ErrProtocol
	Err5xx
)

var kindNames = [...]string{"connect", "reset", "timeout", "protocol", "5xx"}

// Upstream returns the handles for one URL of an endpoint.
func (g *Gateway) Upstream(endpoint, upstream string) *Upstream {
	u := &Upstream{
		Latency:   g.upstreamLatency.WithLabelValues(endpoint, upstream),
		Ejections: g.ejections.WithLabelValues(endpoint, upstream),
		State:     g.circuitState.WithLabelValues(endpoint, upstream),
	}
	for i, k := range kindNames {
		u.kinds[i] = g.upstreamErrors.WithLabelValues(endpoint, upstream, k)
	}
	return u
}

// ForgetUpstream deletes the series of an upstream URL that the Binding in
// force no longer has: it must not keep reporting (an open circuit would keep
// an alert firing). Call it only when no Upstream of the Binding in force has
// these labels (their handles would stop counting).
func (g *Gateway) ForgetUpstream(endpoint, upstream string) {
	l := prometheus.Labels{"endpoint": endpoint, "upstream": upstream}
	g.upstreamLatency.DeletePartialMatch(l)
	g.upstreamErrors.DeletePartialMatch(l)
	g.circuitState.DeletePartialMatch(l)
	g.ejections.DeletePartialMatch(l)
}

// Error counts a failed attempt of the given kind.
func (u *Upstream) Error(kind int) { u.kinds[kind].Inc() }

// Retries returns the counters for an endpoint's retries: done and refused by the budget.
func (g *Gateway) Retries(endpoint string) (done, refused prometheus.Counter) {
	return g.retries.WithLabelValues(endpoint, "retried"), g.retries.WithLabelValues(endpoint, "budget_exhausted")
}

// RetriesCounter returns an endpoint's retry counter for result ("retried",
// "budget_exhausted"); tests read it.
func (g *Gateway) RetriesCounter(endpoint, result string) prometheus.Counter {
	return g.retries.WithLabelValues(endpoint, result)
}

// UpstreamErrorsCounter returns the failed-attempt counter of an upstream URL
// for kind ("connect", "reset", ...); tests read it.
func (g *Gateway) UpstreamErrorsCounter(endpoint, upstream, kind string) prometheus.Counter {
	return g.upstreamErrors.WithLabelValues(endpoint, upstream, kind)
}
