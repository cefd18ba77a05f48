// Package load is what the benchmarks share: wrk pinned to a CPU and its
// report read, free loopback addresses, and the BENCH_* settings.
package load

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
)

// Result is what wrk reports: throughput, the requests sent and the latency
// percentiles in milliseconds.
type Result struct {
	RPS, Requests float64
	P50, P99      float64
}

var (
	rpsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reqRe    = regexp.MustCompile(`(\d+) requests in`)
	latRe    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
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
	return r, nil
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
