package load

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

const report = `Running 2s test @ http://127.0.0.1:8080/v1/pets
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.80ms  400.00us   9.00ms   90.00%
  Latency Distribution
     50%  750.00us
     75%    1.90ms
     90%    2.20ms
     99%    1.20s
  70000 requests in 2.00s, 9.00MB read
Requests/sec:  35000.50
Transfer/sec:      4.50MB
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(report)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 35000.50 || r.Requests != 70000 || r.P50 != 0.75 || r.P99 != 1200 {
		t.Errorf("ParseWrk = %+v, want 35000.5 req/s, 70000 requests, p50 0.75 ms, p99 1200 ms", r)
	}
	for _, bad := range []string{
		strings.Replace(report, "Transfer/sec", "  Non-2xx or 3xx responses: 12\nTransfer/sec", 1),
		strings.Replace(report, "Requests/sec", "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec", 1),
		"wrk: command not found",
	} {
		if _, err := ParseWrk(bad); err == nil {
			t.Errorf("ParseWrk accepted:\n%s", bad)
		}
	}
}

func TestParseWrkQuantiles(t *testing.T) {
	var b strings.Builder
	b.WriteString(report)
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&b, "quantile %d %d\n", i, i*500)
	}
	r, err := ParseWrk(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 1, 1.5, 2}; !slices.Equal(r.Quantiles, want) {
		t.Errorf("Quantiles = %v, want %v", r.Quantiles, want)
	}
	if _, err := ParseWrk(report + "quantile 1 500\nquantile 3 700\n"); err == nil {
		t.Error("ParseWrk accepted a gap in the quantiles")
	}
}

// levels returns the quantiles of n requests whose latencies are
// lo, lo+step, …: what wrk reports for them at 100 levels.
func levels(lo, step float64, n int) []float64 {
	q := make([]float64, 100)
	for i := range q {
		k := (i+1)*n/100 - 1 // the request at level (i+1)/100
		q[i] = lo + step*float64(k)
	}
	return q
}

func TestPool(t *testing.T) {
	tests := []struct {
		name          string
		runs          []Result
		rps, p50, p99 float64
	}{
		{
			// 1000 fast requests in 1 s and 1000 slow ones in 2 s: the
			// median is the slowest fast one, p99 among the slow ones.
			name: "quantiles",
			runs: []Result{
				{RPS: 1000, Requests: 1000, Quantiles: levels(1, 0.001, 1000)},
				{RPS: 500, Requests: 1000, Quantiles: levels(10, 0.001, 1000)},
			},
			rps: 2000.0 / 3, p50: 1.999, p99: 10.979,
		},
		{
			name: "one run is itself",
			runs: []Result{{RPS: 100, Requests: 200, Quantiles: levels(1, 0.01, 200)}},
			rps:  100, p50: 1.99, p99: 2.97,
		},
		{
			name: "without quantiles: weighted by requests",
			runs: []Result{{RPS: 100, Requests: 300, P50: 1, P99: 4}, {RPS: 100, Requests: 100, P50: 5, P99: 8}},
			rps:  100, p50: 2, p99: 5,
		},
		{name: "none", runs: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Pool(tt.runs)
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
			if !near(p.RPS, tt.rps) || !near(p.P50, tt.p50) || !near(p.P99, tt.p99) {
				t.Errorf("Pool = %.6f req/s, p50 %.6f, p99 %.6f; want %.6f, %.6f, %.6f", p.RPS, p.P50, p.P99, tt.rps, tt.p50, tt.p99)
			}
		})
	}
}
