package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/test/redistest"
)

func rateAPI(t *testing.T, limits map[string][]string, defaults map[string]*bundle.Rate) *bundle.Bundle {
	t.Helper()
	api := petstore(t, func(r *bundle.Route) { r.RateLimits = limits[r.Method+" "+r.Path] })
	for _, names := range limits {
		for _, n := range names {
			api.RateLimits[n] = bundle.RateLimit{Default: defaults[n]}
		}
	}
	return api
}

func TestLocalRateLimit(t *testing.T) {
	api := rateAPI(t, map[string][]string{
		"GET /v1/pets":         {"perIP"},
		"POST /v1/pets":        {"burst", "hourly"},
		"GET /v1/pets/{petId}": {"inline"},
	}, map[string]*bundle.Rate{"inline": {Requests: 2, Period: bundle.Duration(time.Hour)}})
	b := binding()
	b.RateLimits["perIP"] = bundle.RateLimitBinding{Requests: 3, Period: bundle.Duration(time.Minute), Key: bundle.KeyClientIP}
	b.RateLimits["burst"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Second), Burst: 3}
	b.RateLimits["hourly"] = bundle.RateLimitBinding{Requests: 4, Period: bundle.Duration(time.Hour), Key: bundle.KeyOperation}
	up := newUpstream(t)
	gw := startGateway(t, api, b, t.TempDir(), up, gatewayOptions{trusted: []string{"127.0.0.1"}})

	t.Run("per client address", func(t *testing.T) {
		for i := range 3 {
			res := gw.do(t, "GET", "/v1/pets", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "")
			if res.status != 200 {
				t.Fatalf("request %d: status %d", i, res.status)
			}
			if got := res.header.Get("RateLimit-Policy"); got != `"perIP";q=3;w=60` {
				t.Fatalf("RateLimit-Policy = %q", got)
			}
			if got, want := res.header.Get("RateLimit"), fmt.Sprintf(`"perIP";r=%d;t=`, 2-i); !strings.HasPrefix(got, want) {
				t.Fatalf("RateLimit = %q, want prefix %q", got, want)
			}
		}
		res := gw.do(t, "GET", "/v1/pets", map[string]string{"X-Forwarded-For": "203.0.113.7"}, "")
		if res.status != 429 {
			t.Fatalf("4th request: status %d, want 429", res.status)
		}
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		if err != nil || retry < 1 || retry > 20 {
			t.Fatalf("Retry-After = %q, want 1..20 s (one token per 20 s)", res.header.Get("Retry-After"))
		}
		if got := res.header.Get("RateLimit"); got != `"perIP";r=0;t=`+strconv.Itoa(retry) {
			t.Fatalf("RateLimit on 429 = %q", got)
		}
		if res.prob.Status != 429 || !strings.Contains(res.prob.Detail, "perIP") {
			t.Fatalf("problem %+v", res.prob)
		}
		// Another client behind the same trusted proxy has its own bucket.
		if res := gw.do(t, "GET", "/v1/pets", map[string]string{"X-Forwarded-For": "198.51.100.1"}, ""); res.status != 200 {
			t.Fatalf("other client: status %d", res.status)
		}
	})

	t.Run("two policies, both must admit", func(t *testing.T) {
		var codes []int
		for range 5 {
			res := gw.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`)
			codes = append(codes, res.status)
			if res.status == 200 {
				rl := res.header.Get("RateLimit-Policy")
				if rl != `"burst";q=1;w=1, "hourly";q=4;w=3600` {
					t.Fatalf("RateLimit-Policy = %q", rl)
				}
			}
		}
		// burst allows 3 at once; the 4th and 5th wait for refill.
		if fmt.Sprint(codes) != "[200 200 200 429 429]" {
			t.Fatalf("codes %v", codes)
		}
	})

	t.Run("inline default from the bundle", func(t *testing.T) {
		var codes []int
		for range 3 {
			codes = append(codes, gw.do(t, "GET", "/v1/pets/1", nil, "").status)
		}
		if fmt.Sprint(codes) != "[200 200 429]" {
			t.Fatalf("codes %v", codes)
		}
	})
	if got := gw.counter(t, "gatekiln_policy_denied_total", map[string]string{"policy": "ratelimit", "reason": "limited"}); got != 4 {
		t.Fatalf("limited metric %v, want 4", got)
	}
}

func TestRateLimitKeys(t *testing.T) {
	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		"GET /v1/pets": {{}, {{Name: "key"}}},
	})
	for i := range api.Routes {
		api.Routes[i].RateLimits = []string{"perConsumer"}
	}
	api.Routes[1].RateLimits = []string{"perTenant"}
	api.Routes[2].RateLimits = []string{"whole"}
	api.RateLimits["perConsumer"] = bundle.RateLimit{}
	api.RateLimits["perTenant"] = bundle.RateLimit{}
	api.RateLimits["whole"] = bundle.RateLimit{}
	b, dir := securityBinding(t, "http://127.0.0.1:1/")
	b.RateLimits["perConsumer"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Hour), Key: bundle.KeyConsumer}
	b.RateLimits["perTenant"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Hour), Key: bundle.KeyHeader, Header: "X-Tenant"}
	b.RateLimits["whole"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Hour), Key: bundle.KeyAPI}
	gw := startGateway(t, api, b, dir, newUpstream(t))
	alice := map[string]string{"X-Api-Key": "alice-secret-key"}
	bob := map[string]string{"X-Api-Key": "bob-secret-key"}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
	}{
		{"alice", "GET", "/v1/pets", alice, 200},
		{"alice again", "GET", "/v1/pets", alice, 429},
		{"bob has his own bucket", "GET", "/v1/pets", bob, 200},
		{"anonymous falls back to the address", "GET", "/v1/pets", nil, 200},
		{"anonymous again", "GET", "/v1/pets", nil, 429},
		{"tenant a", "POST", "/v1/pets", map[string]string{"X-Tenant": "a"}, 200},
		{"tenant b", "POST", "/v1/pets", map[string]string{"X-Tenant": "b"}, 200},
		{"tenant a again", "POST", "/v1/pets", map[string]string{"X-Tenant": "a"}, 429},
		{"whole API", "GET", "/v1/pets/1", nil, 200},
		{"whole API, another path", "GET", "/v1/pets/2", alice, 429},
	}
	for _, tt := range tests {
		if res := gw.do(t, tt.method, tt.path, tt.hdr, `{"id":1,"name":"rex"}`); res.status != tt.status {
			t.Fatalf("%s: status %d, want %d", tt.name, res.status, tt.status)
		}
	}
}

func TestRateLimitBindingErrors(t *testing.T) {
	tests := []struct {
		name string
		rb   *bundle.RateLimitBinding
		want string
	}{
		{"no rate anywhere", nil, "no rate in the binding and no default"},
		{"unknown key", &bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Second), Key: "moon"}, `key "moon"`},
		{"header key without header", &bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Second), Key: bundle.KeyHeader}, "needs a header name"},
		{"bad failure mode", &bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Second), FailureMode: "maybe"}, `failureMode "maybe"`},
		{"redis without address", &bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Second), Store: bundle.StoreRedis}, "no redis address"},
		{"unknown store", &bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Second), Store: "memcached"}, `store "memcached"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := rateAPI(t, map[string][]string{"GET /v1/pets": {"p"}}, nil)
			b := binding()
			if tt.rb != nil {
				b.RateLimits["p"] = *tt.rb
			}
			f := &rateLimitFactory{&shared{}}
			_, err := f.Build(api, &api.Routes[0], b, envFor(context.Background(), t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "rate limit p") {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRedisRateLimitShared(t *testing.T) {
	rs := redistest.Start(t, "")
	api := rateAPI(t, map[string][]string{
		"GET /v1/pets":         {"global"},
		"POST /v1/pets":        {"strict"},
		"GET /v1/pets/{petId}": {"roomy"},
	}, nil)
	b := binding()
	b.Redis = &bundle.RedisBinding{Address: rs.Addr}
	b.RateLimits["global"] = bundle.RateLimitBinding{Requests: 10, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
	// Below the lease threshold: every decision is Redis's own.
	b.RateLimits["roomy"] = bundle.RateLimitBinding{Requests: 150, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
	b.RateLimits["strict"] = bundle.RateLimitBinding{Requests: 100, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis,
		FailureMode: bundle.FailClosed}
	// Two gateway instances, as two replicas would be: separate processes' worth
	// of state (own Factories, own Redis client), one shared limit.
	up := newUpstream(t)
	gwA := startGateway(t, api, b, t.TempDir(), up)
	gwB := startGateway(t, api, b, t.TempDir(), up)

	t.Run("two instances share one limit", func(t *testing.T) {
		var allowed, limited atomic.Int64
		alternating(30, []*testGateway{gwA, gwB}, func(gw *testGateway) {
			switch res := gw.do(t, "GET", "/v1/pets", nil, ""); res.status {
			case 200:
				allowed.Add(1)
			case 429:
				limited.Add(1)
				if res.header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			default:
				t.Errorf("status %d", res.status)
			}
		})
		if allowed.Load() != 10 || limited.Load() != 20 {
			t.Fatalf("allowed %d, limited %d; want exactly 10 and 20 across both instances", allowed.Load(), limited.Load())
		}
	})

	t.Run("redis killed: fail open, fail closed, no waiting per request", func(t *testing.T) {
		if res := gwA.do(t, "GET", "/v1/pets/1", nil, ""); res.status != 200 || res.header.Get("RateLimit") == "" {
			t.Fatalf("before the kill: status %d, RateLimit %q", res.status, res.header.Get("RateLimit"))
		}
		callsBefore := gwA.counter(t, "gatekiln_ratelimit_store_calls_total", nil)
		rs.Stop()
		start := time.Now()
		for i := range 50 {
			res := gwA.do(t, "GET", "/v1/pets/1", nil, "")
			if res.status != 200 {
				t.Fatalf("request %d with redis down: status %d, want 200 (fail open)", i, res.status)
			}
			if res.header.Get("RateLimit") != "" {
				t.Fatal("RateLimit header without a decision")
			}
		}
		elapsed := time.Since(start)
		// Redis is tried once, then again at most once per cooldown (1 s): the
		// circuit, not a timeout per request, decides while it is down.
		calls := gwA.counter(t, "gatekiln_ratelimit_store_calls_total", nil) - callsBefore
		if maxCalls := 2 + elapsed.Seconds(); calls > maxCalls {
			t.Fatalf("%v store calls for 50 requests in %s, want at most %.0f", calls, elapsed, maxCalls)
		}
		if got := gwA.counter(t, "gatekiln_ratelimit_store_failures_total", map[string]string{"policy": "roomy", "mode": "open"}); got != 50 {
			t.Fatalf("fail-open metric %v, want 50", got)
		}
		res := gwA.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`)
		if res.status != 503 || res.header.Get("Retry-After") == "" {
			t.Fatalf("fail-closed policy with redis down: status %d, want 503 with Retry-After", res.status)
		}
		if got := gwA.counter(t, "gatekiln_ratelimit_store_failures_total", map[string]string{"policy": "strict", "mode": "closed"}); got != 1 {
			t.Fatalf("fail-closed metric %v, want 1", got)
		}
	})

	t.Run("redis back: decisions resume", func(t *testing.T) {
		rs.Restart(t)
		// The circuit lets a probe through after its cooldown; then limits apply
		// again (the restarted Redis has empty buckets).
		for _, gw := range []*testGateway{gwA, gwB} {
			waitFor(t, 10*time.Second, "a rate-limit decision from the restarted redis", func() bool {
				return gw.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`).header.Get("RateLimit") != ""
			})
		}
		// The restarted Redis lost its buckets: the roomy one starts full again
		// and counts down, decided by Redis for both replicas.
		for i, gw := range []*testGateway{gwA, gwB, gwA, gwB} {
			res := gw.do(t, "GET", "/v1/pets/2", nil, "")
			if want := fmt.Sprintf(`"roomy";r=%d;`, 149-i); res.status != 200 || !strings.HasPrefix(res.header.Get("RateLimit"), want) {
				t.Fatalf("after recovery, request %d: status %d, RateLimit %q, want prefix %q", i, res.status, res.header.Get("RateLimit"), want)
			}
		}
		// The exhausted bucket is remembered: Redis said when its next token
		// comes, and that does not change because Redis restarted.
		if res := gwB.do(t, "GET", "/v1/pets", nil, ""); res.status != 429 {
			t.Fatalf("exhausted bucket after recovery: status %d", res.status)
		}
	})
}

// TestRedisLeasesShared: two gateway instances over real HTTP share one
// leased limit; together they admit the bucket's capacity within the
// documented lease slack, mostly without waiting for Redis. When Redis dies, a
// fail-closed limit admits at most what its lease still holds and then answers
// 503 at once; a fail-open one keeps admitting.
func TestRedisLeasesShared(t *testing.T) {
	rs := redistest.Start(t, "")
	api := rateAPI(t, map[string][]string{
		"GET /v1/pets":         {"shared"},
		"POST /v1/pets":        {"closed"},
		"GET /v1/pets/{petId}": {"open"},
	}, nil)
	b := binding()
	b.Redis = &bundle.RedisBinding{Address: rs.Addr}
	shared := bundle.RateLimitBinding{Requests: 3000, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
	b.RateLimits["shared"] = shared
	b.RateLimits["closed"] = bundle.RateLimitBinding{Requests: 100000, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis,
		FailureMode: bundle.FailClosed}
	b.RateLimits["open"] = bundle.RateLimitBinding{Requests: 100000, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
	up := newUpstream(t)
	gws := []*testGateway{startGateway(t, api, b, t.TempDir(), up), startGateway(t, api, b, t.TempDir(), up)}

	t.Run("two instances, one leased limit", func(t *testing.T) {
		var allowed, failedOpen, limited atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 16 {
			gw := gws[i%2]
			wg.Go(func() {
				// Until the bucket is clearly empty for this worker.
				for n, refusedInARow := 0, 0; n < 2000 && refusedInARow < 20; n++ {
					switch res := gw.do(t, "GET", "/v1/pets", nil, ""); res.status {
					case 200:
						// Without a RateLimit header the store did not
						// decide: Redis did not answer in time (a loaded
						// machine) and the policy failed open, as it should.
						if res.header.Get("RateLimit") == "" {
							failedOpen.Add(1)
						} else {
							allowed.Add(1)
						}
						refusedInARow = 0
					case 429:
						limited.Add(1)
						refusedInARow++
					default:
						t.Errorf("status %d", res.status)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		bk := bucket{requests: shared.Requests, period: shared.Period.D(), capacity: shared.Requests}
		slack := 2 * leaseLimit(bk)
		refill := int64(math.Ceil(float64(bk.requests) * elapsed.Seconds() / bk.period.Seconds()))
		if got := allowed.Load(); got > bk.capacity+refill+slack || got < bk.capacity-slack {
			t.Fatalf("admitted %d across both instances, want %d within the lease slack %d (+%d refilled)",
				got, bk.capacity, slack, refill)
		}
		t.Logf("admitted %d (and %d failed open), refused %d in %s", allowed.Load(), failedOpen.Load(), limited.Load(), elapsed)
		var calls, fromLease float64
		for _, gw := range gws {
			calls += gw.counter(t, "gatekiln_ratelimit_store_calls_total", nil)
			fromLease += gw.counter(t, "gatekiln_ratelimit_redis_checks_total", map[string]string{"source": "lease"})
		}
		if total := float64(allowed.Load() + limited.Load()); calls > total/4 || fromLease < float64(allowed.Load())/2 {
			t.Fatalf("%v Redis calls and %v checks from a lease for %v requests: leases did not engage", calls, fromLease, total)
		}
	})

	t.Run("redis killed", func(t *testing.T) {
		gw := gws[0]
		// Busy keys: each policy holds a lease.
		for range 200 {
			gw.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`)
			gw.do(t, "GET", "/v1/pets/1", nil, "")
		}
		rs.Stop()
		callsBefore := gw.counter(t, "gatekiln_ratelimit_store_calls_total", nil)
		start := time.Now()
		// Fail closed: what the lease holds, then 503 (by the lease's TTL at the latest).
		admitted, first503 := 0, -1
		for i := 0; i < 5000 && first503 < 0; i++ {
			switch res := gw.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`); res.status {
			case 200:
				admitted++
			case 503:
				first503 = i
			default:
				t.Fatalf("request %d with redis down: status %d", i, res.status)
			}
		}
		bk := bucket{capacity: 100000}
		if first503 < 0 || admitted > int(leaseLimit(bk)) {
			t.Fatalf("fail closed with redis down: %d admitted before the first 503 (at %d), want at most the lease (%d)",
				admitted, first503, leaseLimit(bk))
		}
		t.Logf("fail closed: %d admitted from the lease, then 503", admitted)
		for i := range 20 {
			if res := gw.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`); res.status != 503 {
				t.Fatalf("request %d after the lease: status %d, want 503", i, res.status)
			}
		}
		// Fail open: always admitted; once the lease is gone, without a decision.
		undecided, fromLease := 0, 0
		for i := 0; i < 5000 && undecided < 20; i++ {
			res := gw.do(t, "GET", "/v1/pets/1", nil, "")
			if res.status != 200 {
				t.Fatalf("fail-open request %d with redis down: status %d", i, res.status)
			}
			if res.header.Get("RateLimit") == "" {
				undecided++
			} else if undecided > 0 {
				t.Fatalf("fail-open request %d decided after the store had failed", i)
			} else {
				fromLease++
			}
		}
		if undecided < 20 || fromLease > int(leaseLimit(bk)) {
			t.Fatalf("fail open with redis down: %d admitted from the lease, %d without a decision", fromLease, undecided)
		}
		if got := gw.counter(t, "gatekiln_ratelimit_store_failures_total", map[string]string{"policy": "open", "mode": "open"}); int(got) != undecided {
			t.Fatalf("fail-open metric %v, want %d (the requests admitted without a decision)", got, undecided)
		}
		t.Logf("fail open: %d admitted from the lease, then %d without a decision", fromLease, undecided)
		// The circuit, not a timeout per request, decides while Redis is down.
		elapsed := time.Since(start)
		calls := gw.counter(t, "gatekiln_ratelimit_store_calls_total", nil) - callsBefore
		if maxCalls := 2 + 2*elapsed.Seconds(); calls > maxCalls {
			t.Fatalf("%v store calls in %s with redis down, want at most %.0f", calls, elapsed, maxCalls)
		}
	})
}

// TestRedisKeyPrefix: two APIs built from one definition (one Bundle) share a
// Redis but not their buckets, when their Bindings carry different key
// prefixes; replicas of one API (one prefix) share them.
func TestRedisKeyPrefix(t *testing.T) {
	rs := redistest.Start(t, "")
	api := rateAPI(t, map[string][]string{"GET /v1/pets": {"once"}}, nil)
	up := newUpstream(t)
	gateway := func(prefix string) *testGateway {
		b := binding()
		b.Redis = &bundle.RedisBinding{Address: rs.Addr, KeyPrefix: prefix}
		b.RateLimits["once"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
		return startGateway(t, api, b, t.TempDir(), up)
	}
	shopA, shopB, shopAReplica, unprefixed := gateway("shop/a"), gateway("shop/b"), gateway("shop/a"), gateway("")
	for _, tt := range []struct {
		name   string
		gw     *testGateway
		status int
	}{
		{"shop/a", shopA, 200},
		{"shop/b has its own bucket", shopB, 200},
		{"a replica of shop/a shares its bucket", shopAReplica, 429},
		{"a Binding without a prefix has its own", unprefixed, 200},
	} {
		if res := tt.gw.do(t, "GET", "/v1/pets", nil, ""); res.status != tt.status {
			t.Fatalf("%s: status %d, want %d", tt.name, res.status, tt.status)
		}
	}
}

// TestRedisStoreBatches checks the batching store directly: concurrent takes
// on one key are merged, every take is answered, and the bucket never grants
// more than it holds.
func TestRedisStoreBatches(t *testing.T) {
	rs := redistest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{flushers: 2}, nil)
	b := bucket{requests: 100, period: time.Hour, capacity: 100}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 5 {
				d, err := s.take(ctx, "gatekiln:test:batch", b)
				if err != nil {
					t.Error(err)
					return
				}
				if d.allowed {
					allowed.Add(1)
					if d.remaining < 0 || d.remaining > 99 {
						t.Errorf("remaining %d", d.remaining)
					}
				} else if d.retryAfter <= 0 || d.retryAfter > 37*time.Second {
					t.Errorf("retryAfter %s, want (0, 36 s]", d.retryAfter)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 100 {
		t.Fatalf("allowed %d of 320 takes, want exactly 100 (the capacity)", allowed.Load())
	}
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, DisableIdentity: true})
	defer c.Close()
	ttl, err := c.PTTL(ctx, "gatekiln:test:batch").Result()
	if err != nil || ttl <= 0 {
		t.Fatalf("bucket key has no expiry (%v, %v): idle keys would pile up", ttl, err)
	}
	// The store ends with its generation and then answers at once.
	cancel()
	waitFor(t, 5*time.Second, "the store to stop with its generation", s.stopped.Load)
	if _, err := s.take(context.Background(), "gatekiln:test:other", b); !errors.Is(err, errStoreDown) {
		t.Fatalf("take after the generation ended: %v, want errStoreDown", err)
	}
}

// TestRedisLeases: a busy key of a large bucket is served mostly from local
// leases, and two replicas together admit what the bucket holds: never more
// (every admitted token was granted by Redis, and both start without a
// lease), at most the unspent leases less.
func TestRedisLeases(t *testing.T) {
	rs := redistest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 1000 hours to refill: less than a token in a test's time.
	b := bucket{requests: 100000, period: 1000 * time.Hour, capacity: 100000}
	calls := prometheus.NewCounter(prometheus.CounterOpts{Name: "calls"})
	stores := []*redisStore{
		newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{calls: calls}, nil),
		newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{calls: calls}, nil),
	}
	var allowed, takes atomic.Int64
	var wg sync.WaitGroup
	for _, s := range stores {
		for range 16 {
			wg.Go(func() {
				for range 4000 {
					d, err := s.take(ctx, "gatekiln:test:lease", b)
					if err != nil {
						t.Error(err)
						return
					}
					takes.Add(1)
					if d.allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	slack := 2 * leaseLimit(b)
	if got := allowed.Load(); got > b.capacity+1 || got < b.capacity-slack {
		t.Fatalf("admitted %d of %d takes, want %d (at most %d short, for unspent leases)", got, takes.Load(), b.capacity, slack)
	}
	if n := testutil.ToFloat64(calls); n > float64(takes.Load())/50 {
		t.Fatalf("%v Redis calls for %d takes: leases did not engage", n, takes.Load())
	}
}

// TestRedisLeasePrefetch: a steady stream of checks on one key is served from
// the lease while the next one is fetched in the background, so checks almost
// never wait for Redis; the replica never holds more than leaseLimit tokens;
// and every token Redis granted is either spent or still held.
func TestRedisLeasePrefetch(t *testing.T) {
	rs := redistest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A lease of at most 2000 tokens: the stream spends 20.
	b := bucket{requests: 200_000, period: 1_000_000 * time.Hour, capacity: 200_000}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	fromLease, waited := m.redisChecks.WithLabelValues("lease"), m.redisChecks.WithLabelValues("redis")
	s := newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{fromLease: fromLease, waited: waited}, nil)
	const key, takes = "gatekiln:test:prefetch", 40_000
	l := s.leases.get(key)
	// Paced to about 40 checks per millisecond, as a busy gateway sees them:
	// three quarters of a lease last some 37 ms, far longer than a fetch.
	// The first 50 ms are the key turning busy (its first leases are small).
	const warmup = 2000
	var waitedWarm float64
	start := time.Now()
	for i := range takes {
		if i%40 == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i/40) * time.Millisecond)))
		}
		if i == warmup {
			waitedWarm = testutil.ToFloat64(waited)
		}
		d, err := s.take(ctx, key, b)
		if err != nil || !d.allowed {
			t.Fatalf("take %d: %+v, %v", i, d, err)
		}
		l.mu.Lock()
		held := l.tokens
		l.mu.Unlock()
		if held > leaseLimit(b) {
			t.Fatalf("take %d: %d tokens held, more than the lease limit %d", i, held, leaseLimit(b))
		}
	}
	// Once the key is busy, a check waits only when a background fetch is
	// slower than three quarters of a lease last. Fetching only once a lease is
	// spent would wait once per lease.
	leases := (takes - warmup) / leaseLimit(b)
	w := testutil.ToFloat64(waited) - waitedWarm
	t.Logf("%v checks waited for Redis while the key turned busy, %v of the next %d", waitedWarm, w, takes-warmup)
	if w > float64(leases/2) {
		t.Fatalf("%v of %d checks waited for Redis, want at most %d (fewer than one per two leases spent)", w, takes-warmup, leases/2)
	}
	if got := testutil.ToFloat64(fromLease) + testutil.ToFloat64(waited); got != takes {
		t.Fatalf("checks counted %v, want %d", got, takes)
	}
	waitFor(t, 5*time.Second, "the fetch in flight", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.fetching
	})
	c := redis.NewClient(&redis.Options{Addr: rs.Addr, DisableIdentity: true})
	defer c.Close()
	left, err := c.HGet(ctx, key, "t").Float64()
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	held := l.tokens
	l.mu.Unlock()
	// The refill in the test's time is a fraction of a token.
	if granted := float64(b.capacity) - left; granted < takes+float64(held)-1 || granted > takes+float64(held)+1 {
		t.Fatalf("Redis granted %.1f tokens; %d were spent and %d are held", granted, takes, held)
	}
}

// TestRedisLeaseBound: two replicas hammering one refilling bucket admit, in
// any interval of length w, at most capacity + rate·w + 2·leaseLimit (the
// documented slack) + the checks in flight when the interval began (whose
// tokens Redis granted just before it).
func TestRedisLeaseBound(t *testing.T) {
	rs := redistest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := bucket{requests: 20000, period: time.Second, capacity: 20000}
	const workers = 16
	stores := []*redisStore{
		newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{}, nil),
		newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{}, nil),
	}
	admitted := make([][]time.Time, 2*workers)
	var refused atomic.Int64
	start := time.Now()
	deadline := start.Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range admitted {
		s := stores[i%2]
		wg.Go(func() {
			for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
				d, err := s.take(ctx, "gatekiln:test:bound", b)
				if err != nil {
					t.Error(err)
					return
				}
				if d.allowed {
					admitted[i] = append(admitted[i], time.Now())
				} else {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Time
	for _, a := range admitted {
		all = append(all, a...)
	}
	slices.SortFunc(all, time.Time.Compare)
	if refused.Load() == 0 {
		t.Fatalf("%d admitted and none refused: the test never reached the limit", len(all))
	}
	rate := float64(b.requests) / b.period.Seconds()
	slack := 2*leaseLimit(b) + 2*workers
	if limit := float64(b.capacity) + rate*elapsed.Seconds() + float64(slack); float64(len(all)) > limit {
		t.Fatalf("admitted %d in %s, more than %.0f", len(all), elapsed, limit)
	}
	for _, w := range []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond} {
		limit := b.capacity + int64(rate*w.Seconds()) + slack
		j := 0
		for i := range all {
			for j < len(all) && all[j].Sub(all[i]) <= w {
				j++
			}
			if n := int64(j - i); n > limit {
				t.Fatalf("admitted %d within %s from %s, more than capacity + rate·w + slack = %d",
					n, w, all[i].Sub(start), limit)
			}
		}
	}
}

func TestLeaseTarget(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name     string
		capacity int64
		prevRate float64       // requests per second in the last window
		count    int64         // requests so far in the current window
		elapsed  time.Duration // since the current window began
		want     int64
	}{
		{"small bucket never leases", 399, 1e6, 0, 0, 0},
		{"quiet key never leases", 1e6, 70, 0, 0, 0},
		{"a horizon of traffic", 1e6, 2000, 0, 0, 100},
		{"at most 1% of the bucket", 1000, 1e5, 0, 0, 10},
		{"at most maxLease", 1e9, 1e7, 0, 0, maxLease},
		{"a key turning busy: the current window", 1e6, 0, 50, 10 * time.Millisecond, 250},
		{"the current window counts once it is the busier", 1e6, 1000, 100, 20 * time.Millisecond, 250},
		{"too few requests yet", 1e6, 0, minLeaseCount - 1, time.Millisecond, 0},
		{"a window just begun is not taken at its word", 1e6, 0, minLeaseCount, time.Millisecond, 40},
	}
	for _, tt := range tests {
		l := &lease{prevRate: tt.prevRate, count: tt.count, windowStart: now.Add(-tt.elapsed)}
		if got := l.target(bucket{capacity: tt.capacity}, now); got != tt.want {
			t.Errorf("%s: target = %d, want %d", tt.name, got, tt.want)
		}
	}
	// Windows: the last full window's rate sizes the lease; a quiet window in
	// between forgets it.
	l := &lease{}
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		l.tick(t0.Add(time.Duration(i) * time.Millisecond))
	}
	l.tick(t0.Add(leaseWindow))
	if l.prevRate != 100 {
		t.Fatalf("prevRate = %v after 10 requests in %s, want 100/s", l.prevRate, leaseWindow)
	}
	l.tick(t0.Add(5 * leaseWindow))
	if l.prevRate != 0 {
		t.Fatalf("prevRate = %v after quiet windows", l.prevRate)
	}
}

// TestRedisCluster: with the Binding's redis.cluster set, the gateway finds a
// Redis Cluster's nodes from the one address it is given, and replicas share
// buckets through it. One script call takes from several buckets of an API
// (several policies and requests batched), and a call's keys must share a
// hash slot: the API's part of the key is a hash tag. Without it, the same
// batches fail with CROSSSLOT.
func TestRedisCluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	api := rateAPI(t, map[string][]string{
		"GET /v1/pets":  {"once"},
		"POST /v1/pets": {"ten"},
	}, nil)
	b := binding()
	// Not the node the others met: any node leads to all of them.
	b.Redis = &bundle.RedisBinding{Address: nodes[2].Addr, Cluster: true, KeyPrefix: "shop/a"}
	b.RateLimits["once"] = bundle.RateLimitBinding{Requests: 1, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
	b.RateLimits["ten"] = bundle.RateLimitBinding{Requests: 10, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis,
		FailureMode: bundle.FailClosed}
	up := newUpstream(t)
	gwA := startGateway(t, api, b, t.TempDir(), up)
	gwB := startGateway(t, api, b, t.TempDir(), up)
	if res := gwA.do(t, "GET", "/v1/pets", nil, ""); res.status != 200 {
		t.Fatalf("first request: %d", res.status)
	}
	if res := gwB.do(t, "GET", "/v1/pets", nil, ""); res.status != 429 {
		t.Fatalf("the other replica's request: %d, want 429 (one shared bucket)", res.status)
	}
	// Failing closed, a store error would answer 503: only 200 and 429 may come.
	var allowed atomic.Int64
	alternating(24, []*testGateway{gwA, gwB}, func(gw *testGateway) {
		switch res := gw.do(t, "POST", "/v1/pets", nil, "{}"); res.status {
		case 200:
			allowed.Add(1)
		case 429:
		default:
			t.Errorf("POST: %d %s", res.status, res.body)
		}
	})
	if allowed.Load() != 10 {
		t.Fatalf("allowed %d of 24, want the bucket's 10", allowed.Load())
	}

	// The store on its own: batches of two policies' keys, with and without
	// the hash tag.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{nodes[0].Addr}, IsClusterMode: true}, redisOptions{flushers: 1}, nil)
	bk := bucket{requests: 1000, period: time.Hour, capacity: 1000}
	batch := func(rb *bundle.RedisBinding) (errs int) {
		var n atomic.Int64
		var wg sync.WaitGroup
		for i := range 64 {
			key := redisPrefix(rb, "id", []string{"a", "b", "c", "d"}[i%4]) + "api"
			wg.Go(func() {
				if d := s.takeN(ctx, key, bk, 1); d.err != nil {
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return int(n.Load())
	}
	if n := batch(&bundle.RedisBinding{Cluster: true}); n != 0 {
		t.Fatalf("%d of 64 takes failed with the hash tag", n)
	}
	// The control: untagged keys of four policies land in different slots.
	s.open.Store(false)
	if n := batch(&bundle.RedisBinding{}); n == 0 {
		t.Fatal("untagged keys batched without an error: the test does not exercise the hash tag")
	}
}

// TestRedisClusterMismatch: a store configured for the other kind of server
// (a plain client on a cluster node, a cluster client on a plain server)
// logs what to change, not only Redis's own error.
func TestRedisClusterMismatch(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	plain := redistest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bk := bucket{requests: 10, period: time.Hour, capacity: 10}
	for _, tt := range []struct {
		name string
		ro   *redis.UniversalOptions
		want string
	}{
		{"plain client on a cluster node", &redis.UniversalOptions{Addrs: []string{nodes[0].Addr}}, "set cluster in the RateLimit's or API's redis"},
		{"cluster client on a plain server", &redis.UniversalOptions{Addrs: []string{plain.Addr}, IsClusterMode: true}, "unset cluster"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			s := newRedisStore(ctx, tt.ro, redisOptions{}, slog.New(slog.NewTextHandler(&logs, nil)))
			// Keys of several slots: some live on another node than the one
			// a plain client talks to.
			for i := range 8 {
				if s.takeN(ctx, redisPrefix(&bundle.RedisBinding{}, "id", strconv.Itoa(i))+"api", bk, 1).err != nil {
					break
				}
			}
			if !strings.Contains(logs.String(), tt.want) {
				t.Fatalf("log %q, want it to say %q", logs.String(), tt.want)
			}
		})
	}
}

// TestLocalStoreBounded: keys a client chooses (every request a new one) do
// not grow the local store past its bound, and limiting still works.
func TestLocalStoreBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newLocalStore(ctx, bucket{requests: 1, period: time.Hour, capacity: 1})
	s.perShard = 8
	for i := range 10000 {
		if _, err := s.take(context.Background(), "h:"+strconv.Itoa(i), bucket{}); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i := range s.shards {
		if n := len(s.shards[i].m); n > s.perShard {
			t.Fatalf("shard %d holds %d keys, bound %d", i, n, s.perShard)
		}
		total += len(s.shards[i].m)
	}
	if total == 0 {
		t.Fatal("no keys kept at all")
	}
	for i, want := range []bool{true, false} {
		d, err := s.take(context.Background(), "client", bucket{})
		if err != nil || d.allowed != want {
			t.Fatalf("take %d: allowed %v (%v), want %v", i, d.allowed, err, want)
		}
	}
}

// TestLeasesBounded: the Redis store's per-key leases are bounded like the
// local buckets, and a lease with a fetch in flight is not evicted.
func TestLeasesBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ls := newLeases(ctx)
	ls.perShard = 8
	busy := ls.get("busy")
	busy.mu.Lock()
	busy.startFetch()
	busy.mu.Unlock()
	for i := range 10000 {
		ls.get("h:" + strconv.Itoa(i))
	}
	for i := range ls.shards {
		if n := len(ls.shards[i].m); n > ls.perShard {
			t.Fatalf("shard %d holds %d leases, bound %d", i, n, ls.perShard)
		}
	}
	if ls.get("busy") != busy {
		t.Fatal("the lease with a fetch in flight was evicted")
	}
}

// TestRefusalIsNotChargedToOtherPolicies: a request one policy refuses gives
// back the tokens the route's other policies took for it, whatever their
// store. Otherwise a client held back by its own limit would go on draining an
// API-wide one, and every other client would be refused with it.
func TestRefusalIsNotChargedToOtherPolicies(t *testing.T) {
	rs := redistest.Start(t, "")
	for _, store := range []string{bundle.StoreLocal, bundle.StoreRedis} {
		t.Run(store, func(t *testing.T) {
			api := rateAPI(t, map[string][]string{"GET /v1/pets": {"apiWide", "perClient"}}, nil)
			b := binding()
			b.Redis = &bundle.RedisBinding{Address: rs.Addr}
			// Below the lease threshold: each Redis decision is exact.
			b.RateLimits["apiWide"] = bundle.RateLimitBinding{Requests: 10, Period: bundle.Duration(time.Hour), Key: bundle.KeyAPI, Store: store}
			b.RateLimits["perClient"] = bundle.RateLimitBinding{Requests: 2, Period: bundle.Duration(time.Hour), Key: bundle.KeyClientIP, Store: store}
			gw := startGateway(t, api, b, t.TempDir(), newUpstream(t), gatewayOptions{trusted: []string{"127.0.0.1"}})
			client := func(n int) map[string]string {
				return map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", n)}
			}
			var codes []int
			for range 12 {
				codes = append(codes, gw.do(t, "GET", "/v1/pets", client(1), "").status)
			}
			if fmt.Sprint(codes) != "[200 200 429 429 429 429 429 429 429 429 429 429]" {
				t.Fatalf("one client's codes %v", codes)
			}
			// The refused ten were given back to apiWide: four more clients
			// get their two each, and then apiWide is spent.
			for n := 2; n <= 5; n++ {
				for i := range 2 {
					res := gw.do(t, "GET", "/v1/pets", client(n), "")
					if res.status != 200 {
						t.Fatalf("client %d, request %d: status %d (%s), want 200", n, i, res.status, res.prob.Detail)
					}
				}
			}
			res := gw.do(t, "GET", "/v1/pets", client(6), "")
			if res.status != 429 || !strings.Contains(res.prob.Detail, "apiWide") {
				t.Fatalf("eleventh admission: status %d (%s), want 429 by apiWide", res.status, res.prob.Detail)
			}
		})
	}

	t.Run("refused because a store is down", func(t *testing.T) {
		api := rateAPI(t, map[string][]string{
			"POST /v1/pets":        {"apiWide", "closed"},
			"GET /v1/pets/{petId}": {"apiWide"},
			"GET /v1/pets":         {"open", "apiWide"},
		}, nil)
		b := binding()
		b.Redis = &bundle.RedisBinding{Address: "127.0.0.1:1"} // nothing listens on port 1
		b.RateLimits["apiWide"] = bundle.RateLimitBinding{Requests: 3, Period: bundle.Duration(time.Hour), Key: bundle.KeyAPI}
		b.RateLimits["closed"] = bundle.RateLimitBinding{Requests: 100, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis,
			FailureMode: bundle.FailClosed}
		b.RateLimits["open"] = bundle.RateLimitBinding{Requests: 100, Period: bundle.Duration(time.Hour), Store: bundle.StoreRedis}
		gw := startGateway(t, api, b, t.TempDir(), newUpstream(t))
		for i := range 5 {
			if res := gw.do(t, "POST", "/v1/pets", nil, `{"id":1,"name":"rex"}`); res.status != 503 {
				t.Fatalf("POST %d with redis down: status %d, want 503", i, res.status)
			}
		}
		res := gw.do(t, "GET", "/v1/pets/1", nil, "")
		if res.status != 200 || !strings.HasPrefix(res.header.Get("RateLimit"), `"apiWide";r=2;`) {
			t.Fatalf("after five 503s: status %d, RateLimit %q, want apiWide's first token taken only now", res.status, res.header.Get("RateLimit"))
		}
		// The headers name the policy that decided, not the one that could not.
		res = gw.do(t, "GET", "/v1/pets", nil, "")
		if res.status != 200 || res.header.Get("RateLimit-Policy") != `"apiWide";q=3;w=3600` || !strings.HasPrefix(res.header.Get("RateLimit"), `"apiWide";r=1;`) {
			t.Fatalf("fail-open policy first: status %d, RateLimit-Policy %q, RateLimit %q", res.status, res.header.Get("RateLimit-Policy"), res.header.Get("RateLimit"))
		}
	})
}

// TestRedisRefund: a token given back returns where it came from, a lease or
// the shared bucket.
func TestRedisRefund(t *testing.T) {
	rs := redistest.Start(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newRedisStore(ctx, &redis.UniversalOptions{Addrs: []string{rs.Addr}}, redisOptions{}, nil)

	t.Run("to redis", func(t *testing.T) {
		b := bucket{requests: 3, period: time.Hour, capacity: 3}
		d, err := s.take(ctx, "gatekiln:test:refund", b)
		if err != nil || !d.allowed || d.leased || d.remaining != 2 {
			t.Fatalf("take: %+v, %v", d, err)
		}
		s.refund("gatekiln:test:refund", b, d)
		// The refund is sent in the background: wait for the bucket to be full.
		waitFor(t, 5*time.Second, "the token back in redis", func() bool {
			left, err := rs.Client().HGet(ctx, "gatekiln:test:refund", "t").Float64()
			return err == nil && left > 2.99
		})
		for i := range 3 {
			if d, err := s.take(ctx, "gatekiln:test:refund", b); err != nil || !d.allowed {
				t.Fatalf("take %d after the refund: %+v, %v", i, d, err)
			}
		}
		if d, _ := s.take(ctx, "gatekiln:test:refund", b); d.allowed {
			t.Fatal("a fourth token from a bucket of three")
		}
		// A refund never fills a bucket past its capacity.
		s.refund("gatekiln:test:full", b, decision{allowed: true})
		waitFor(t, 5*time.Second, "the refund of a full bucket", func() bool {
			left, err := rs.Client().HGet(ctx, "gatekiln:test:full", "t").Float64()
			return err == nil && left == 3
		})
	})

	t.Run("to the lease", func(t *testing.T) {
		b := bucket{requests: 100000, period: 1000 * time.Hour, capacity: 100000}
		key := "gatekiln:test:refund-lease"
		var d decision
		for d = (decision{}); !d.leased; {
			var err error
			if d, err = s.take(ctx, key, b); err != nil || !d.allowed {
				t.Fatalf("take: %+v, %v", d, err)
			}
		}
		l := s.leases.get(key)
		l.mu.Lock()
		before := l.tokens
		l.mu.Unlock()
		s.refund(key, b, d)
		l.mu.Lock()
		after := l.tokens
		l.mu.Unlock()
		if after != before+1 {
			t.Fatalf("lease tokens %d after a refund, were %d", after, before)
		}
	})
}
