package operator

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// statusWrites counts API status writes: in a steady state a full resync
// must not add to it (bench/operator reads it).
var statusWrites = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "gatekiln_api_status_writes_total",
	Help: "API status writes by the operator.",
})

func init() { metrics.Registry.MustRegister(statusWrites) }
