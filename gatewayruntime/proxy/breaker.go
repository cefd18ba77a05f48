package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/metrics"
)

// Circuit states, as the gatekiln_circuit_state gauge reports them.
const (
	circuitClosed   = 0
	circuitOpen     = 1
	circuitHalfOpen = 2
)

// breakerConfig is a CircuitBreaker with defaults applied.
type breakerConfig struct {
	// failures in a row (each within interval of the previous) that eject the URL.
	failures int
	interval time.Duration
	// baseEjection is the first ejection's length; the n-th lasts n times as
	// long, up to maxEjectionFactor times.
	baseEjection time.Duration
	// probes is how many requests a half-open URL admits at once.
	probes int
}

const maxEjectionFactor = 10

var defaultBreaker = breakerConfig{failures: 5, interval: 10 * time.Second, baseEjection: 10 * time.Second, probes: 1}

func newBreakerConfig(cb *bundle.CircuitBreaker) breakerConfig {
	c := defaultBreaker
	if cb == nil {
		return c
	}
	if cb.ConsecutiveFailures > 0 {
		c.failures = cb.ConsecutiveFailures
	}
	if cb.Interval > 0 {
		c.interval = cb.Interval.D()
	}
	if cb.BaseEjection > 0 {
		c.baseEjection = cb.BaseEjection.D()
	}
	if cb.MaxRequests > 0 {
		c.probes = cb.MaxRequests
	}
	return c
}

// breaker is the passive health of one upstream URL: consecutive failures open
// it (the URL is ejected from load balancing), after the ejection time it lets
// a few probe requests through (half-open), and a success closes it.
//
// The hot path reads only the atomic state; the mutex guards transitions.
type breaker struct {
	cfg   atomic.Pointer[breakerConfig]
	state atomic.Int32
	// openUntil is when an open circuit may go half-open (unix nanoseconds).
	openUntil atomic.Int64
	probes    atomic.Int32

	// consecutive is written under mu; read atomically on the fast path.
	consecutive atomic.Int32

	mu          sync.Mutex
	lastFailure time.Time
	ejections   int

	m   *metrics.Upstream
	now func() time.Time
}

func newBreaker(cfg breakerConfig, m *metrics.Upstream) *breaker {
	b := &breaker{m: m, now: time.Now}
	b.cfg.Store(&cfg)
	return b
}

// allow reports whether a request may go to this URL now, and whether it is a
// half-open probe (which must be reported back with done).
func (b *breaker) allow() (ok, probe bool) {
	switch b.state.Load() {
	case circuitClosed:
		return true, false
	case circuitOpen:
		if b.now().UnixNano() < b.openUntil.Load() {
			return false, false
		}
		b.mu.Lock()
		if b.state.Load() == circuitOpen {
			b.setState(circuitHalfOpen)
			b.probes.Store(0)
		}
		b.mu.Unlock()
	}
	// Half-open: a bounded number of probes at a time.
	if int(b.probes.Add(1)) > b.cfg.Load().probes {
		b.probes.Add(-1)
		return false, false
	}
	return true, true
}

// retryAfter returns how long until an open circuit may admit a probe.
func (b *breaker) retryAfter() time.Duration {
	if b.state.Load() != circuitOpen {
		return 0
	}
	return time.Duration(b.openUntil.Load() - b.now().UnixNano())
}

// success records an attempt that got a non-5xx response.
func (b *breaker) success(probe bool) {
	if probe {
		b.probes.Add(-1)
	}
	if b.state.Load() == circuitClosed && b.consecutive.Load() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.consecutive.Store(0)
	if b.state.Load() == circuitHalfOpen {
		b.ejections = 0
		b.setState(circuitClosed)
	}
}

// abandon records an attempt that says nothing about the upstream (the
// gateway's own failure): a probe's slot is freed, the state is unchanged.
func (b *breaker) abandon(probe bool) {
	if probe {
		b.probes.Add(-1)
	}
}

// failure records a failed attempt (connect error, reset, timeout or 5xx).
func (b *breaker) failure(probe bool) {
	if probe {
		b.probes.Add(-1)
	}
	cfg := b.cfg.Load()
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() == circuitOpen {
		return
	}
	if b.state.Load() == circuitHalfOpen {
		b.eject(cfg, now)
		return
	}
	if !b.lastFailure.IsZero() && now.Sub(b.lastFailure) > cfg.interval {
		b.consecutive.Store(0)
	}
	b.lastFailure = now
	if int(b.consecutive.Add(1)) >= cfg.failures {
		b.eject(cfg, now)
	}
}

func (b *breaker) eject(cfg *breakerConfig, now time.Time) {
	b.ejections = min(b.ejections+1, maxEjectionFactor)
	b.openUntil.Store(now.Add(time.Duration(b.ejections) * cfg.baseEjection).UnixNano())
	b.consecutive.Store(0)
	b.setState(circuitOpen)
	if b.m != nil {
		b.m.Ejections.Inc()
	}
}

func (b *breaker) setState(s int32) {
	b.state.Store(s)
	if b.m != nil {
		b.m.State.Set(float64(s))
	}
}
