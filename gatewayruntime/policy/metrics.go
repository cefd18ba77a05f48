package policy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are registered once per process (the gateway's registry is the same
// for every generation); label values are resolved at Build, not per request.
type metrics struct {
	denied        *prometheus.CounterVec
	storeFailures *prometheus.CounterVec
	storeCalls    *prometheus.CounterVec
	redisChecks   *prometheus.CounterVec
	jwksFetches   *prometheus.CounterVec
	introspection *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_policy_denied_total",
			Help: "Requests a policy answered itself instead of passing them on, by policy and reason.",
		}, []string{"policy", "reason"}),
		storeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_ratelimit_store_failures_total",
			Help: "Rate-limit decisions taken without the store (unreachable or circuit open), by policy and failure mode.",
		}, []string{"policy", "mode"}),
		storeCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_ratelimit_store_calls_total",
			Help: "Calls to the shared rate-limit store (one call decides a batch of requests), by result.",
		}, []string{"store", "result"}),
		redisChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_ratelimit_redis_checks_total",
			Help: "Redis-backed limit checks by how they were decided: lease (from this replica's leased tokens, no wait), " +
				"redis (waited for Redis), remembered (refused locally: Redis said when the bucket has its next token).",
		}, []string{"source"}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_jwks_fetches_total",
			Help: "JWKS fetches by security scheme and result.",
		}, []string{"scheme", "result"}),
		introspection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatekiln_oauth2_introspections_total",
			Help: "RFC 7662 token introspection calls by security scheme and result (cache hits are not counted).",
		}, []string{"scheme", "result"}),
	}
	if reg == nil {
		return m
	}
	m.denied = register(reg, m.denied)
	m.storeFailures = register(reg, m.storeFailures)
	m.storeCalls = register(reg, m.storeCalls)
	m.redisChecks = register(reg, m.redisChecks)
	m.jwksFetches = register(reg, m.jwksFetches)
	m.introspection = register(reg, m.introspection)
	return m
}

// register adopts an identical collector already in reg, so that two policy
// sets in one process (tests, a restarted gateway) share the series.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return c
}
