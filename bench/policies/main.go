// Command policies-bench measures what the policies cost the gateway, in one
// run:
//
//   - throughput of the real gatekiln-gateway serving a petstore route with no
//     policies ("plain") and with JWT (RS256) + a rate limit + request
//     validation on, once with the limit in this replica's memory ("local") and
//     once in Redis ("redis"). The gateway and the upstream share one core, the
//     load generator (wrk) and Redis the other; rounds alternate the configs
//     and the median counts;
//   - the Redis-backed limit check's latency at 64 concurrent requests, through
//     the rate-limit filter itself, unpaced (every worker checks as fast as it
//     can: the CPU is saturated) and paced: an unbatched token-bucket script
//     call per request with go-redis (the baseline), the filter's exact path
//     (no lease: every check waits for a batched script call), its leased path
//     (a busy key of a large bucket) and the local store (no Redis, the floor).
//     Two summary lines give the exact and the leased path's p99, each unpaced
//     and paced; the leased one is the headline against the 1 ms target.
//
// Its last line is "ratio policies/plain: <x.xx>" (throughput, policies with the
// Redis limit over plain). run.sh builds it and the gateway and runs it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatekiln/gatekiln/bench/load"
	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/policy"
)

func main() {
	role := flag.String("role", "", "internal: upstream")
	listen := flag.String("listen", "127.0.0.1:0", "internal: upstream address")
	gatewayBin := flag.String("gateway", "", "path to the gatekiln-gateway binary")
	seconds := flag.Int("seconds", load.EnvInt("BENCH_SECONDS", 10), "seconds per throughput run (BENCH_SECONDS)")
	rounds := flag.Int("rounds", 3, "rounds of each throughput config")
	conns := flag.Int("c", 64, "concurrent connections / requests")
	only := flag.String("only", "", "run only this throughput config (plain, local, redis) and keep its gateway's stderr")
	flag.Parse()
	onlyConfig = *only
	if *role == "upstream" {
		serveUpstream(*listen)
		return
	}
	if err := run(*gatewayBin, *seconds, *rounds, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "policies-bench:", err)
		os.Exit(1)
	}
}

var onlyConfig string

// runs numbers the filter check runs (each gets its own keys).
var runs int

// pacedRate is about what one gateway core serves with the policies on.
const pacedRate = 20000.0

func run(gatewayBin string, seconds, rounds, conns int) error {
	for _, bin := range []string{"wrk", "taskset", "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (Debian packages wrk, util-linux, redis-server): %w", bin, err)
		}
	}
	if gatewayBin == "" {
		return errors.New("-gateway: path to gatekiln-gateway required")
	}
	work, err := os.MkdirTemp("", "policies-bench")
	if err != nil {
		return err
	}
	if onlyConfig == "" {
		defer func() { _ = os.RemoveAll(work) }()
	} else {
		fmt.Fprintln(os.Stderr, "configs kept in", work)
	}
	var stops []func()
	defer func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}()

	redisAddr := load.FreeAddr()
	stop, err := startRedis(redisAddr, work)
	if err != nil {
		return err
	}
	stops = append(stops, stop)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	upAddr := load.FreeAddr()
	stop, err = start(exec.Command("taskset", "-c", "1", self, "-role", "upstream", "-listen", upAddr), "http://"+upAddr+"/health")
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	stops = append(stops, stop)

	token, configs, err := writeConfigs(work, "http://"+upAddr, redisAddr)
	if err != nil {
		return err
	}
	if onlyConfig != "" {
		if err := os.WriteFile(filepath.Join(work, "token"), []byte(token), 0o600); err != nil {
			return err
		}
	}
	if rounds == 0 { // the Redis check alone (while tuning)
		configs = nil
	}
	if onlyConfig != "" {
		configs = slices.DeleteFunc(configs, func(c gatewayConfig) bool { return c.name != onlyConfig })
	}
	fmt.Printf("throughput: gatekiln-gateway + upstream on cpu 1, wrk (-c %d) on cpu 0, %d s × %d rounds\n", conns, seconds, rounds)
	results := map[string][]wrkResult{}
	for round := range rounds {
		for _, c := range configs {
			r, err := runGateway(gatewayBin, c, token, seconds, conns)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			results[c.name] = append(results[c.name], r)
			fmt.Printf("  round %d %-8s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  gateway cpu %5.1f µs/req\n",
				round+1, c.name, r.rps, r.p50, r.p99, r.cpuUS)
		}
	}
	med := map[string]wrkResult{}
	for _, c := range configs {
		med[c.name] = median(results[c.name])
		fmt.Printf("%-8s median %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  gateway cpu %5.1f µs/req (median)\n",
			c.name, med[c.name].rps, med[c.name].p50, med[c.name].p99, medianCPU(results[c.name]))
	}

	d := time.Duration(max(seconds/3, 2)) * time.Second
	// p99 of each check path, unpaced (index 0) and paced (index 1).
	var leased, exact [2]float64
	for i, rate := range []float64{0, pacedRate} {
		if rate == 0 {
			fmt.Printf("redis limit check, %d concurrent requests, as fast as they go (unpaced), %s each:\n", conns, d)
		} else {
			fmt.Printf("redis limit check, %d concurrent requests paced to %.0f checks/s in total, %s each:\n", conns, rate, d)
		}
		base, err := unbatchedChecks(redisAddr, conns, d, rate)
		if err != nil {
			return err
		}
		fmt.Printf("  unbatched script call per request (go-redis):  %s\n", base)
		ex, err := filterChecks(redisAddr, conns, d, rate, checkExact)
		if err != nil {
			return err
		}
		fmt.Printf("  gatekiln filter, exact (no lease, batched):    %s\n", ex)
		le, err := filterChecks(redisAddr, conns, d, rate, checkLeased)
		if err != nil {
			return err
		}
		fmt.Printf("  gatekiln filter, leased (busy key):            %s\n", le)
		loc, err := filterChecks(redisAddr, conns, d, rate, checkLocal)
		if err != nil {
			return err
		}
		fmt.Printf("  gatekiln filter, local store (no Redis):       %s\n", loc)
		leased[i], exact[i] = le.p99, ex.p99
	}
	fmt.Printf("redis limit check p99 at %d concurrent, exact path (quiet key or bucket < 400 tokens): unpaced %.3f ms, paced %.0f/s %.3f ms\n",
		conns, exact[0], pacedRate, exact[1])
	fmt.Printf("redis limit check p99 at %d concurrent, leased path (busy key): unpaced %.3f ms, paced %.0f/s %.3f ms (target <= 1 ms)\n",
		conns, leased[0], pacedRate, leased[1])
	if rounds == 0 || onlyConfig != "" {
		return nil
	}
	// On a saturated proxy core throughput is inverse to CPU per request; this
	// estimate holds even when other work shares the machine.
	fmt.Printf("cpu-based ratio policies/plain: %.2f (local %.2f)\n",
		medianCPU(results["plain"])/medianCPU(results["redis"]), medianCPU(results["plain"])/medianCPU(results["local"]))
	fmt.Printf("ratio policies-local/plain: %.2f\n", med["local"].rps/med["plain"].rps)
	fmt.Printf("ratio policies/plain: %.2f\n", med["redis"].rps/med["plain"].rps)
	return nil
}

// serveUpstream answers like a small JSON API; it is the same for every config.
func serveUpstream(addr string) {
	body := []byte(`[{"id":1,"name":"rex"},{"id":2,"name":"tom"}]`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const openapiDoc = `{"openapi":"3.0.3","info":{"title":"Petstore","version":"1.0.0"},"servers":[{"url":"/v1"}],
"paths":{"/pets":{"get":{"operationId":"listPets","parameters":[
 {"name":"limit","in":"query","schema":{"type":"integer","minimum":1,"maximum":100}}],
 "responses":{"200":{"description":"pets"}}}}}}`

type gatewayConfig struct {
	name, bundle, bindingDir string
}

// writeConfigs writes the three Bundles and Bindings and returns a token the
// policies accept.
func writeConfigs(dir, upstream, redisAddr string) (string, []gatewayConfig, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", nil, err
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://issuer.bench", "aud": "petstore", "sub": "bench", "scope": "pets:read",
		"exp": time.Now().Add(2 * time.Hour).Unix(),
	}).SignedString(key)
	if err != nil {
		return "", nil, err
	}
	var configs []gatewayConfig
	for _, name := range []string{"plain", "local", "redis"} {
		api := &bundle.Bundle{
			APIVersion: bundle.APIVersion,
			API:        bundle.API{Title: "Petstore", Version: "1.0.0", BasePath: "/v1", SpecVersion: "3.0.3"},
			Source:     bundle.Source{Files: map[string]string{"": "bench"}},
			OpenAPI:    json.RawMessage(openapiDoc),
			Routes: []bundle.Route{{Method: "GET", Path: "/v1/pets", OperationID: "listPets",
				UpstreamPath: "/pets", Endpoint: "pets"}},
			Endpoints: map[string]bundle.Endpoint{"pets": {}},
		}
		b := &bundle.Binding{APIVersion: bundle.BindingAPIVersion,
			Endpoints: map[string]bundle.EndpointBinding{"pets": {URLs: []string{upstream}}}}
		if name != "plain" {
			rt := &api.Routes[0]
			rt.Security = []bundle.SecurityRequirement{{{Name: "jwt", Scopes: []string{"pets:read"}}}}
			rt.RateLimits = []string{"global"}
			rt.Validation = bundle.Validation{Request: true}
			api.SecuritySchemes = map[string]bundle.SecurityScheme{"jwt": {Type: bundle.SchemeJWT}}
			api.RateLimits = map[string]bundle.RateLimit{"global": {}}
			b.Security = map[string]bundle.SecurityBinding{"jwt": {JWT: &bundle.JWTBinding{
				Issuer: "https://issuer.bench", Audiences: []string{"petstore"}, CertificateFile: "issuer.pem"}}}
			// High enough never to refuse: the bench measures the check, not refusals.
			rl := bundle.RateLimitBinding{Requests: 1_000_000_000, Period: bundle.Duration(time.Hour), Key: bundle.KeyConsumer}
			if name == "redis" {
				rl.Store = bundle.StoreRedis
				b.Redis = &bundle.RedisBinding{Address: redisAddr}
			}
			b.RateLimits = map[string]bundle.RateLimitBinding{"global": rl}
		}
		c := gatewayConfig{name: name, bundle: filepath.Join(dir, name+"-bundle.json"), bindingDir: filepath.Join(dir, name)}
		if err := os.MkdirAll(c.bindingDir, 0o755); err != nil {
			return "", nil, err
		}
		bb, err := api.Marshal()
		if err != nil {
			return "", nil, err
		}
		bind, err := b.Marshal()
		if err != nil {
			return "", nil, err
		}
		files := map[string][]byte{
			c.bundle: bb,
			filepath.Join(c.bindingDir, bundle.BindingFile): bind,
			filepath.Join(c.bindingDir, "issuer.pem"):       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		}
		for p, data := range files {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				return "", nil, err
			}
		}
		configs = append(configs, c)
	}
	return token, configs, nil
}

// wrkResult is one load run: throughput, latency and the gateway process's
// CPU time per request (which, unlike throughput, does not depend on what else
// the machine is running).
type wrkResult struct{ rps, p50, p99, cpuUS, requests float64 }

// runGateway starts the gateway for c on cpu 1, loads it with wrk on cpu 0 and stops it.
func runGateway(bin string, c gatewayConfig, token string, seconds, conns int) (wrkResult, error) {
	addr, admin := load.FreeAddr(), load.FreeAddr()
	cmd := exec.Command("taskset", "-c", "1", bin, "-bundle", c.bundle, "-binding-dir", c.bindingDir,
		"-addr", addr, "-admin-addr", admin, "-access-log=false", "-shutdown-delay=-1s", "-log-level=warn")
	if onlyConfig != "" {
		cmd.Args = append(cmd.Args[:len(cmd.Args)-1], "-log-level=debug")
	}
	stop, err := start(cmd, "http://"+admin+"/readyz")
	if err != nil {
		return wrkResult{}, err
	}
	defer stop()
	if onlyConfig != "" {
		defer func() { fmt.Fprintf(os.Stderr, "gateway stderr:\n%s\n", cmd.Stderr) }()
	}
	url := "http://" + addr + "/v1/pets?limit=10"
	// A short warm-up fills connection pools and the verified-token cache.
	if _, err := wrk(url, token, 1, conns); err != nil {
		return wrkResult{}, err
	}
	// taskset execs the gateway, so the child's pid is the gateway's.
	before, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		return wrkResult{}, err
	}
	r, err := wrk(url, token, seconds, conns)
	if err != nil {
		return r, err
	}
	after, err := cpuTime(cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	if r.requests > 0 {
		r.cpuUS = float64(after-before) / float64(time.Microsecond) / r.requests
	}
	return r, nil
}

// cpuTime reads a process's user + system CPU time from /proc.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) start after the last ')'.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// wrk loads url with the bearer token from cpu 0.
func wrk(url, token string, seconds, conns int) (wrkResult, error) {
	w, _, err := load.Wrk("0", conns, seconds, url, "-H", "Authorization: Bearer "+token)
	if err != nil {
		return wrkResult{}, err
	}
	return wrkResult{rps: w.RPS, p50: w.P50, p99: w.P99, requests: w.Requests}, nil
}

func median(rs []wrkResult) wrkResult {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b wrkResult) int { return int(a.rps - b.rps) })
	return sorted[len(sorted)/2]
}

func medianCPU(rs []wrkResult) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = r.cpuUS
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// latencies summarises one check-latency run.
type latencies struct {
	n                   int
	failedOpen, refused int64
	perSec              float64
	p50, p99, p999, max float64 // ms
	// redisCalls counts the store's script calls (-1: not counted).
	redisCalls int64
}

func (l latencies) String() string {
	s := fmt.Sprintf("%8.0f checks/s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms", l.perSec, l.p50, l.p99, l.p999, l.max)
	if l.redisCalls >= 0 {
		s += fmt.Sprintf("  %d Redis calls", l.redisCalls)
	}
	if l.failedOpen > 0 {
		s += fmt.Sprintf("  (%d of %d failed open)", l.failedOpen, l.n)
	}
	if l.refused > 0 {
		s += fmt.Sprintf("  (%d of %d refused)", l.refused, l.n)
	}
	return s
}

// measure runs check from conc goroutines for d and summarises the latencies.
// With rate > 0 the workers are paced to rate checks per second in total (a
// gateway's 64 connections spend most of their time in I/O, not in the
// check); with rate 0 each worker checks as fast as it can.
func measure(conc int, d time.Duration, rate float64, check func(ctx context.Context, worker int) error) (latencies, error) {
	// The previous run's garbage is collected before, not during, this one.
	runtime.GC()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	all := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(conc) / rate * float64(time.Second))
	}
	for w := range conc {
		wg.Go(func() {
			next := start.Add(interval * time.Duration(w) / time.Duration(conc))
			for ctx.Err() == nil {
				if interval > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
				}
				t0 := time.Now()
				if err := check(context.Background(), w); err != nil {
					errs[w] = err
					return
				}
				all[w] = append(all[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return latencies{}, err
	}
	var ds []time.Duration
	for _, a := range all {
		ds = append(ds, a...)
	}
	if len(ds) == 0 {
		return latencies{}, errors.New("no checks completed")
	}
	slices.Sort(ds)
	ms := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / 1e6 }
	return latencies{n: len(ds), perSec: float64(len(ds)) / elapsed.Seconds(), p50: ms(0.50), p99: ms(0.99), p999: ms(0.999), max: ms(1), redisCalls: -1}, nil
}

// unbatchedScript is a plain one-key token bucket on the Redis clock: what a
// gateway without batching sends for every request.
const unbatchedScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 't', 'n')
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / tonumber(ARGV[3])
local tokens = tonumber(st[1]) or cap
local last = tonumber(st[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - last) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'n', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], 3600000)
return ok
`

func unbatchedChecks(addr string, conc int, d time.Duration, rate float64) (latencies, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: conc, DisableIdentity: true})
	defer func() { _ = c.Close() }()
	s := redis.NewScript(unbatchedScript)
	return measure(conc, d, rate, func(ctx context.Context, _ int) error {
		return s.Run(ctx, c, []string{"bench:unbatched"}, 1_000_000_000, 1_000_000_000, time.Hour.Microseconds()).Err()
	})
}

// The limit-check paths filterChecks measures.
const (
	// checkExact: a bucket too small to lease (150 tokens, refilled every
	// microsecond, so never empty); every check waits for Redis (batched).
	checkExact = iota
	// checkLeased: a large bucket; a busy key is served from this replica's
	// lease, topped up in the background.
	checkLeased
	// checkLocal: the same bucket in this replica's memory, the floor.
	checkLocal
)

// filterChecks drives the rate-limit filter directly, without HTTP: the time
// measured is the limit check as a request sees it. Every check of a run uses
// one key, the busiest case.
func filterChecks(addr string, conc int, d time.Duration, rate float64, path int) (latencies, error) {
	// Each run has its own API title, hence its own Redis keys.
	runs++
	api := &bundle.Bundle{
		API:        bundle.API{Title: fmt.Sprintf("Petstore run %d", runs), Version: "1.0.0", BasePath: "/v1"},
		Routes:     []bundle.Route{{Method: "GET", Path: "/v1/pets", RateLimits: []string{"global"}}},
		RateLimits: map[string]bundle.RateLimit{"global": {}},
	}
	rl := bundle.RateLimitBinding{Requests: 1_000_000_000, Period: bundle.Duration(time.Hour),
		Store: bundle.StoreRedis, Key: bundle.KeyAPI}
	switch path {
	case checkExact:
		rl.Requests, rl.Period = 150, bundle.Duration(time.Microsecond)
	case checkLocal:
		rl.Store = bundle.StoreLocal
	}
	b := &bundle.Binding{APIVersion: bundle.BindingAPIVersion, Redis: &bundle.RedisBinding{Address: addr},
		RateLimits: map[string]bundle.RateLimitBinding{"global": rl}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var factory filter.Factory
	for _, f := range policy.Factories() {
		if f.Name() == "ratelimit" {
			factory = f
		}
	}
	reg := prometheus.NewRegistry()
	mw, err := factory.Build(api, &api.Routes[0], b, filter.Env{Generation: 1, Context: ctx, Metrics: reg})
	if err != nil {
		return latencies{}, err
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var undecided, refused atomic.Int64
	res, err := measure(conc, d, rate, func(_ context.Context, _ int) error {
		w := &discardWriter{h: http.Header{}}
		r, _ := http.NewRequest("GET", "http://gateway/v1/pets", nil)
		r.RemoteAddr = "10.0.0.1:1234"
		h.ServeHTTP(w, r)
		if w.code == http.StatusTooManyRequests {
			refused.Add(1) // a decision all the same
			return nil
		}
		if w.code != 0 {
			return fmt.Errorf("limit check answered %d", w.code)
		}
		// Admitted without a RateLimit header: Redis did not decide in time
		// and the policy failed open.
		if w.h.Get("RateLimit") == "" {
			undecided.Add(1)
		}
		return nil
	})
	res.failedOpen, res.refused = undecided.Load(), refused.Load()
	if path != checkLocal {
		res.redisCalls = storeCalls(reg)
	}
	return res, err
}

// storeCalls sums gatekiln_ratelimit_store_calls_total in reg.
func storeCalls(reg *prometheus.Registry) int64 {
	families, err := reg.Gather()
	if err != nil {
		return -1
	}
	var n float64
	for _, f := range families {
		if f.GetName() == "gatekiln_ratelimit_store_calls_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int64(n)
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// start runs cmd and waits until ready answers 200; stop ends it.
func start(cmd *exec.Cmd, ready string) (func(), error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s not ready: %w: %s", strings.Join(cmd.Args, " "), err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startRedis(addr, dir string) (func(), error) {
	_, port, _ := net.SplitHostPort(addr)
	// Redis is not pinned: on a 2-core machine it would otherwise starve
	// behind the load generator or take from the gateway's core.
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer func() { _ = c.Close() }()
	for i := 0; ; i++ {
		if c.Ping(context.Background()).Err() == nil {
			break
		}
		if i > 500 {
			_ = cmd.Process.Kill()
			return nil, errors.New("redis-server did not answer PING")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}
