package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// tokenBucketScript takes tokens from several buckets in one atomic call, on
// the Redis clock (TIME), so that replicas with skewed clocks agree. For
// bucket i, ARGV holds capacity, requests, period (µs) and the number of
// tokens wanted (a negative number gives that many back); the reply holds, per bucket, tokens granted, whole tokens
// left, µs until one token is available and µs until the bucket is full.
// Numbers are written back with %.17g / %.0f: Lua's tostring keeps only 14
// digits, which would lose the microseconds of the timestamp.
const tokenBucketScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local cap = tonumber(ARGV[a + 1])
  local rate = tonumber(ARGV[a + 2]) / tonumber(ARGV[a + 3])
  local want = tonumber(ARGV[a + 4])
  local st = redis.call('HMGET', KEYS[i], 't', 'n')
  local tokens = tonumber(st[1])
  local last = tonumber(st[2])
  if tokens == nil or last == nil then
    tokens = cap
  elseif now > last then
    tokens = math.min(cap, tokens + (now - last) * rate)
  end
  local granted = 0
  if want < 0 then
    tokens = math.min(cap, tokens - want)
  else
    granted = math.max(0, math.min(want, math.floor(tokens)))
    tokens = tokens - granted
  end
  local full = math.ceil((cap - tokens) / rate)
  local wait = 0
  if tokens < 1 then wait = math.ceil((1 - tokens) / rate) end
  redis.call('HSET', KEYS[i], 't', string.format('%.17g', tokens), 'n', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(full / 1000) + 1000)
  out[#out + 1] = granted
  out[#out + 1] = math.floor(tokens)
  out[#out + 1] = wait
  out[#out + 1] = full
end
return out
`

// redisOptions tune the store; zero fields take the defaults in withDefaults.
type redisOptions struct {
	// timeout bounds dialling, one round trip and waiting for a pooled
	// connection: a dead Redis costs at most this, once per cooldown.
	timeout time.Duration
	// cooldown is how long the circuit stays open after a failure; then one
	// request probes Redis while the others keep failing fast.
	cooldown time.Duration
	// flushers is the number of concurrent batches in flight.
	flushers int
	// maxBatch bounds the takes sent in one script call.
	maxBatch int
	// calls and failed count script calls by outcome; fromLease, waited and
	// remembered count checks by how they were decided (nil: not counted).
	calls, failed                 prometheus.Counter
	fromLease, waited, remembered prometheus.Counter
}

func (o redisOptions) withDefaults() redisOptions {
	if o.timeout == 0 {
		o.timeout = 250 * time.Millisecond
	}
	if o.cooldown == 0 {
		o.cooldown = time.Second
	}
	if o.flushers == 0 {
		o.flushers = 4
	}
	if o.maxBatch == 0 {
		o.maxBatch = 128
	}
	if o.calls == nil {
		o.calls = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered_calls"})
	}
	for _, c := range []*prometheus.Counter{&o.failed, &o.fromLease, &o.waited, &o.remembered} {
		if *c == nil {
			*c = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})
		}
	}
	return o
}

// redisStore is the global token-bucket store shared by all replicas.
//
// Each take is queued and a few flusher goroutines send whatever is queued as
// one script call (takes for the same key are merged into one "want n"): under
// load a request waits for at most about one round trip plus its own, instead
// of queueing for a pooled connection behind every other request. Busy keys
// of large buckets are served from a local lease of tokens, topped up in the
// background (see lease), so their requests almost never wait for Redis.
//
// When Redis fails, a circuit opens for opts.cooldown: takes fail at once with
// errStoreDown (the policy's failure mode decides), then one probe is let through.
type redisStore struct {
	client redis.UniversalClient
	script *redis.Script
	opts   redisOptions
	log    *slog.Logger
	queue  chan *redisTake
	leases *leases

	// open is set while the circuit is open; until (unix ns) is when the next
	// probe may go. Whoever moves until forward past now sends the probe.
	open  atomic.Bool
	until atomic.Int64
	// stopped is set when the generation ends; later takes fail at once.
	stopped atomic.Bool
}

type redisTake struct {
	key   string
	b     bucket
	want  int64
	probe bool
	// The answer goes to then when set (a lease refill nobody waits for),
	// else into done.
	then func(decisionOrErr)
	done chan decisionOrErr
}

type decisionOrErr struct {
	d decision
	// granted is how many of the wanted tokens Redis gave; the decision
	// admits the request when it is at least one.
	granted int64
	err     error
}

func (t *redisTake) answer(r decisionOrErr) {
	if t.then != nil {
		t.then(r)
		return
	}
	t.done <- r
}

var takePool = sync.Pool{New: func() any { return &redisTake{done: make(chan decisionOrErr, 1)} }}

// redisStore returns this generation's store, creating it on first use; the
// client closes when the generation ends.
func (g *generation) redisStore(b *bundle.Binding) (*redisStore, error) {
	if g.redis != nil {
		return g.redis, nil
	}
	if b == nil || b.Redis == nil || b.Redis.Address == "" {
		return nil, errors.New("store redis but the binding has no redis address")
	}
	var password string
	if b.Redis.PasswordFile != "" {
		var err error
		if password, err = readSecretString(g.env, b.Redis.PasswordFile); err != nil {
			return nil, err
		}
	}
	ctx := g.env.Context
	if ctx == nil {
		ctx = context.Background()
	}
	ro := &redis.UniversalOptions{Addrs: []string{b.Redis.Address}, Password: password, DB: b.Redis.DB,
		IsClusterMode: b.Redis.Cluster}
	s := newRedisStore(ctx, ro, redisOptions{
		calls:      g.m.storeCalls.WithLabelValues(bundle.StoreRedis, "ok"),
		failed:     g.m.storeCalls.WithLabelValues(bundle.StoreRedis, "error"),
		fromLease:  g.m.redisChecks.WithLabelValues("lease"),
		waited:     g.m.redisChecks.WithLabelValues("redis"),
		remembered: g.m.redisChecks.WithLabelValues("remembered"),
	}, g.env.Logger)
	g.redis = s
	return s, nil
}

// newRedisStore connects to one Redis server, or to a Redis Cluster when
// ro.IsClusterMode is set (the script's keys must then share a hash slot).
func newRedisStore(ctx context.Context, ro *redis.UniversalOptions, opts redisOptions, log *slog.Logger) *redisStore {
	opts = opts.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// go-redis logs dial failures through a process-wide logger of its own;
	// route them into the gateway's structured log (the circuit already
	// reports the outage once, at warn).
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{log}) })
	ro.DialTimeout = opts.timeout
	ro.ReadTimeout = opts.timeout
	ro.WriteTimeout = opts.timeout
	ro.PoolTimeout = opts.timeout
	ro.MaxRetries = -1 // a retry would double the wait on a dead server; the circuit handles it
	ro.DialerRetries = 1
	ro.DisableIdentity = true
	ro.PoolSize = opts.flushers * 2
	ro.MinIdleConns = opts.flushers
	s := &redisStore{
		client: redis.NewUniversalClient(ro),
		script: redis.NewScript(tokenBucketScript),
		opts:   opts,
		log:    log,
		queue:  make(chan *redisTake, 4096),
		leases: newLeases(ctx),
	}
	var wg sync.WaitGroup
	for range opts.flushers {
		wg.Go(func() { s.flush(ctx) })
	}
	go func() {
		wg.Wait()
		_ = s.client.Close()
	}()
	return s
}

// take decides one request: from this replica's lease of tokens when the key
// is busy enough to have one (see lease), else by waiting for Redis.
func (s *redisStore) take(ctx context.Context, key string, b bucket) (decision, error) {
	return s.takeLeased(ctx, key, b)
}

// takeN asks Redis for want tokens and waits for the answer.
func (s *redisStore) takeN(ctx context.Context, key string, b bucket, want int64) decisionOrErr {
	ok, probe := s.admit(time.Now())
	if !ok || s.stopped.Load() {
		return decisionOrErr{err: errStoreDown}
	}
	t := takePool.Get().(*redisTake)
	t.key, t.b, t.want, t.probe, t.then = key, b, want, probe, nil
	select {
	case s.queue <- t:
	default:
		// Queue full: Redis cannot keep up; decide by the failure mode now.
		takePool.Put(t)
		return decisionOrErr{err: errStoreDown}
	}
	// A flusher answers every take it dequeues within about opts.timeout; the
	// timer only guards against a take queued as the store stops.
	timer := time.NewTimer(4 * s.opts.timeout)
	defer timer.Stop()
	select {
	case r := <-t.done:
		takePool.Put(t)
		return r
	case <-ctx.Done():
		// A flusher may still answer into t's buffered channel; t is not
		// reused, so dropping it is safe.
		return decisionOrErr{err: ctx.Err()}
	case <-timer.C:
		return decisionOrErr{err: errStoreDown}
	}
}

// takeAsync asks Redis for want tokens and hands the answer to then, which
// runs on a flusher goroutine and must not block. It reports false when the
// request was not queued (circuit open, store stopped, queue full).
func (s *redisStore) takeAsync(key string, b bucket, want int64, then func(decisionOrErr)) bool {
	ok, probe := s.admit(time.Now())
	if !ok || s.stopped.Load() {
		return false
	}
	t := &redisTake{key: key, b: b, want: want, probe: probe, then: then}
	select {
	case s.queue <- t:
		return true
	default:
		return false
	}
}

// admit reports whether a take may go to Redis now, and whether it is the
// probe of an open circuit. A lost probe (its request cancelled) is replaced
// after the probe window.
func (s *redisStore) admit(now time.Time) (ok, probe bool) {
	if !s.open.Load() {
		return true, false
	}
	until := s.until.Load()
	if now.UnixNano() < until {
		return false, false
	}
	window := now.Add(4 * s.opts.timeout).UnixNano()
	if s.until.CompareAndSwap(until, window) {
		return true, true
	}
	return false, false
}

func (s *redisStore) flush(ctx context.Context) {
	batch := make([]*redisTake, 0, s.opts.maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			// The generation is over: answer what is queued and stop.
			s.stopped.Store(true)
			for {
				select {
				case t := <-s.queue:
					t.answer(decisionOrErr{err: errStoreDown})
				default:
					return
				}
			}
		case t := <-s.queue:
			batch = append(batch, t)
		}
	drain:
		for len(batch) < s.opts.maxBatch {
			select {
			case t := <-s.queue:
				batch = append(batch, t)
			default:
				break drain
			}
		}
		s.run(ctx, batch)
	}
}

// run sends one batch and answers every take in it.
func (s *redisStore) run(ctx context.Context, batch []*redisTake) {
	if s.open.Load() && !slices.ContainsFunc(batch, func(t *redisTake) bool { return t.probe }) {
		// Queued before the circuit opened: do not wait on a dead server again.
		answerAll(batch, decisionOrErr{err: errStoreDown})
		return
	}
	// Merge takes of the same key, keeping their order.
	type group struct {
		key   string
		b     bucket
		want  int64
		takes []*redisTake
	}
	groups := make([]group, 0, len(batch))
	// Refunds (want < 0) are groups of their own, so that a take merged
	// with one never asks for nothing.
	type groupKey struct {
		key    string
		refund bool
	}
	index := make(map[groupKey]int, len(batch))
	for _, t := range batch {
		gk := groupKey{t.key, t.want < 0}
		i, ok := index[gk]
		if !ok {
			i = len(groups)
			index[gk] = i
			groups = append(groups, group{key: t.key, b: t.b})
		}
		groups[i].takes = append(groups[i].takes, t)
		groups[i].want += t.want
	}
	keys := make([]string, len(groups))
	args := make([]any, 0, 4*len(groups))
	for i, g := range groups {
		keys[i] = g.key
		args = append(args, g.b.capacity, g.b.requests, g.b.period.Microseconds(), g.want)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.timeout)
	res, err := s.script.Run(cctx, s.client, keys, args...).Int64Slice()
	cancel()
	if err == nil && len(res) != 4*len(groups) {
		err = fmt.Errorf("token bucket script: %d values for %d keys", len(res), len(groups))
	}
	if err != nil {
		s.opts.failed.Inc()
		s.trip(explainRedisError(err))
		answerAll(batch, decisionOrErr{err: errStoreDown})
		return
	}
	s.opts.calls.Inc()
	s.recovered()
	for i, g := range groups {
		granted, left := res[4*i], res[4*i+1]
		wait := time.Duration(res[4*i+2]) * time.Microsecond
		full := time.Duration(res[4*i+3]) * time.Microsecond
		// Hand out the granted tokens in queue order; a take is admitted
		// when it got at least one.
		for _, t := range g.takes {
			if t.want < 0 {
				t.answer(decisionOrErr{d: decision{reset: full, remaining: left}})
				continue
			}
			n := min(t.want, granted)
			granted -= n
			d := decision{reset: full, remaining: left + granted}
			if n > 0 {
				d.allowed = true
			} else {
				d.retryAfter = wait
			}
			t.answer(decisionOrErr{d: d, granted: n})
		}
	}
}

var redisLogOnce sync.Once

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, "redis client", "message", fmt.Sprintf(format, v...))
}

// explainRedisError names the likely misconfiguration behind the errors a
// server of the other kind (cluster or not) answers with.
func explainRedisError(err error) error {
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") || strings.HasPrefix(msg, "CROSSSLOT"):
		return fmt.Errorf("%w (the server is part of a Redis Cluster: set cluster in the RateLimit's or API's redis)", err)
	case strings.Contains(msg, "cluster support disabled"):
		return fmt.Errorf("%w (the server is not a Redis Cluster node: unset cluster in the RateLimit's or API's redis)", err)
	}
	return err
}

func answerAll(batch []*redisTake, r decisionOrErr) {
	for _, t := range batch {
		t.answer(r)
	}
}

// trip opens the circuit for a cooldown.
func (s *redisStore) trip(err error) {
	s.until.Store(time.Now().Add(s.opts.cooldown).UnixNano())
	if !s.open.Swap(true) {
		s.log.Warn("redis rate-limit store unreachable, deciding by failure mode", "error", err.Error(),
			"cooldown", s.opts.cooldown.String())
	}
}

func (s *redisStore) recovered() {
	if s.open.Load() && s.open.Swap(false) {
		s.log.Info("redis rate-limit store reachable again")
	}
}
