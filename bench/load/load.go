// Package load is what the benchmarks share: wrk pinned to a CPU and its
// report read, free loopback addresses, and the BENCH_* settings.
package load

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
)

// Result is what wrk reports: throughput, the requests sent and the latency
// percentiles in milliseconds. Quantiles, when wrk ran QuantileScript, is the
// latency (ms) at each of the levels 1/len … len/len of the requests: what
// Pool needs to merge the latency of several runs.
type Result struct {
	RPS, Requests float64
	P50, P99      float64
	Quantiles     []float64
}

// QuantileScript is a wrk script (-s) that prints the latency distribution at
// 2000 levels (every 0.05%) for ParseWrk to read into Result.Quantiles.
// (wrk's percentile(100) reads 0: the last level is the maximum.)
const QuantileScript = `done = function(summary, latency, requests)
  for i = 1, 1999 do
    io.write(string.format("quantile %d %d\n", i, latency:percentile(i / 20)))
  end
  io.write(string.format("quantile 2000 %d\n", latency.max))
end
`

var (
	rpsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reqRe    = regexp.MustCompile(`(\d+) requests in`)
	latRe    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	quantRe  = regexp.MustCompile(`(?m)^quantile (\d+) (\d+)$`)
	failedRe = regexp.MustCompile(`(Non-2xx or 3xx responses|Socket errors): .*`)
)

// Wrk runs `wrk -t1 -cCONNS -dSECONDSs --latency EXTRA… URL` on cpu and reads
// its report. The process state is returned for CPU accounting.
func Wrk(cpu string, conns, seconds int, url string, extra ...string) (Result, *os.ProcessState, error) {
	args := append([]string{"-c", cpu, "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", seconds), "--latency"}, extra...)
	cmd := exec.Command("taskset", append(args, url)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Result{}, cmd.ProcessState, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	r, err := ParseWrk(string(out))
	return r, cmd.ProcessState, err
}

// ParseWrk reads a `wrk --latency` report. Failed requests (non-2xx answers,
// socket errors) make it an error: a benchmark of refused requests measures
// nothing.
func ParseWrk(s string) (Result, error) {
	if m := failedRe.FindString(s); m != "" {
		return Result{}, fmt.Errorf("wrk reports %s\n%s", m, s)
	}
	m, n := rpsRe.FindStringSubmatch(s), reqRe.FindStringSubmatch(s)
	if m == nil || n == nil {
		return Result{}, errors.New("unexpected wrk output:\n" + s)
	}
	var r Result
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	r.Requests, _ = strconv.ParseFloat(n[1], 64)
	for _, l := range latRe.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		switch l[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if l[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	if qs := quantRe.FindAllStringSubmatch(s, -1); len(qs) > 0 {
		r.Quantiles = make([]float64, len(qs))
		for i, q := range qs {
			if q[1] != strconv.Itoa(i+1) {
				return Result{}, fmt.Errorf("wrk quantile %d out of order (got %s)", i+1, q[1])
			}
			us, _ := strconv.ParseFloat(q[2], 64)
			r.Quantiles[i] = us / 1000
		}
	}
	return r, nil
}

// Pool merges runs of the same target into one: the requests summed, the
// throughput over their summed durations, and the percentiles of all their
// requests together. That takes every run's Quantiles; without them the
// percentiles are the runs' own, weighted by their requests (an
// approximation).
func Pool(rs []Result) Result {
	var p Result
	var seconds float64
	withQuantiles := len(rs) > 0
	for _, r := range rs {
		p.Requests += r.Requests
		if r.RPS > 0 {
			seconds += r.Requests / r.RPS
		}
		withQuantiles = withQuantiles && len(r.Quantiles) > 0
	}
	if seconds > 0 {
		p.RPS = p.Requests / seconds
	}
	if p.Requests == 0 {
		return p
	}
	if !withQuantiles {
		for _, r := range rs {
			p.P50 += r.P50 * r.Requests / p.Requests
			p.P99 += r.P99 * r.Requests / p.Requests
		}
		return p
	}
	// Each quantile point of a run stands for an equal share of its requests.
	type point struct{ ms, weight float64 }
	var pts []point
	for _, r := range rs {
		w := r.Requests / float64(len(r.Quantiles))
		for _, ms := range r.Quantiles {
			pts = append(pts, point{ms, w})
		}
	}
	slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.ms, b.ms) })
	at := func(level float64) float64 {
		want, sum := level*p.Requests, 0.0
		for _, pt := range pts {
			sum += pt.weight
			if sum >= want*(1-1e-12) {
				return pt.ms
			}
		}
		return pts[len(pts)-1].ms
	}
	p.P50, p.P99 = at(0.50), at(0.99)
	levels := len(rs[0].Quantiles)
	p.Quantiles = make([]float64, levels)
	for i := range p.Quantiles {
		p.Quantiles[i] = at(float64(i+1) / float64(levels))
	}
	return p
}

// FreeAddr is a free TCP address on 127.0.0.1.
func FreeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// EnvInt is the positive integer in $name, or def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
