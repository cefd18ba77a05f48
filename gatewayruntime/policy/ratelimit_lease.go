package policy

import (
	"context"
	"hash/maphash"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Leases: a busy key need not wait for Redis on every request.
//
// When a key sees many requests in this replica, the replica takes a lease of
// tokens from the shared bucket (the first one in the same script call as the
// request's own token) and admits the next requests from it without asking
// Redis. Before the lease runs out — when it falls to a low-water mark — the
// next lease is fetched in the background, one fetch in flight per key, so a
// steady stream of requests almost never waits for Redis. A request that does
// find the lease empty while a fetch is in flight waits for that fetch rather
// than sending one of its own.
//
// A lease is sized to about leaseHorizon of the key's observed request rate
// (the last window's, or the current window's once it has minLeaseCount
// requests, so a key that turns busy leases within a few requests).
//
// The bound. Tokens are only ever spent after Redis granted them, so the
// long-run rate is exact across replicas. What a lease changes is when tokens
// are spent: a replica never holds more than leaseLimit(bucket) granted but
// unspent tokens per key (counting a fetch in flight), which is at most 1% of
// the bucket's capacity and at most maxLease tokens. Over any interval of
// length T the cluster therefore admits at most
//
//	capacity + rate·T + replicas · leaseLimit(bucket)
//
// requests for a key, where a gateway without leases admits capacity + rate·T.
// Unspent tokens are dropped leaseTTL after the last grant (a replica whose
// traffic stops keeps no claim), so leases can only make the cluster admit
// less than the bucket would, never more than the bound above. (A Binding
// reload starts a new store with no leases; until the old generation's
// requests finish, within leaseTTL, the replica counts twice in the bound.)
//
// Buckets whose leaseLimit is below minLease tokens (capacity under 400) and
// quiet keys (under about 80 requests per second in this replica) never lease:
// every request waits for Redis and the decisions are exact.
//
// Refusals are remembered too, for every bucket: when Redis answers that the
// next token comes in W, no replica can have one before then, so this replica
// refuses the key locally until then, exactly as Redis would, without asking.
const (
	// leaseShare: a lease holds at most 1/leaseShare of the bucket's capacity.
	leaseShare = 100
	maxLease   = 16384
	minLease   = 4
	// minLeaseCount requests in the current window let it size the lease
	// before the window is over.
	minLeaseCount = 8
	leaseWindow   = 100 * time.Millisecond
	// leaseHorizon: a lease holds about this long of the key's traffic. Its
	// low-water mark, a quarter spent, leaves the fetch of the next one three
	// quarters of it (37 ms, less where maxLease caps the lease) before a
	// request would wait. A CPU-bound Go process notices network replies only
	// every 10 ms or so (sysmon's poll), hence the generous margin.
	leaseHorizon = 50 * time.Millisecond
	leaseTTL     = time.Second
)

// leaseLimit is the most tokens one replica may hold for a key of bucket b;
// 0 means the bucket is too small to lease.
func leaseLimit(b bucket) int64 {
	n := min(b.capacity/leaseShare, maxLease)
	if n < minLease {
		return 0
	}
	return n
}

// lease is one key's local state.
type lease struct {
	mu     sync.Mutex
	tokens int64     // granted by Redis, not yet spent
	until  time.Time // tokens are dropped after this
	// fetching is set while a request for more tokens is in flight; ready is
	// closed when it has been answered.
	fetching bool
	ready    chan struct{}
	// Requests seen in the current window and the rate of the previous one
	// size the lease.
	windowStart time.Time
	count       int64
	prevRate    float64 // requests per second
	// The bucket as Redis last reported it, for the RateLimit header.
	remaining int64
	reset     time.Duration
	lastUsed  time.Time
	// emptyUntil is when Redis said the bucket has its next token.
	emptyUntil time.Time
}

// target is how many tokens to hold: about leaseHorizon of this key's
// traffic, at most leaseLimit; 0 means do not lease.
func (l *lease) target(b bucket, now time.Time) int64 {
	limit := leaseLimit(b)
	if limit == 0 {
		return 0
	}
	perSec := l.prevRate
	if l.count >= minLeaseCount {
		// A window only just begun would overstate the rate.
		elapsed := max(now.Sub(l.windowStart), leaseWindow/10)
		perSec = max(perSec, float64(l.count)/elapsed.Seconds())
	}
	n := min(int64(perSec*leaseHorizon.Seconds()), limit)
	if n < minLease {
		return 0
	}
	return n
}

func (l *lease) tick(now time.Time) {
	l.lastUsed = now
	if d := now.Sub(l.windowStart); d >= leaseWindow {
		if d >= 2*leaseWindow {
			l.prevRate = 0 // a quiet window in between
		} else {
			l.prevRate = float64(l.count) / d.Seconds()
		}
		l.count = 0
		l.windowStart = now
	}
	l.count++
}

// spend takes a leased token if there is a valid one.
func (l *lease) spend(now time.Time) (decision, bool) {
	if l.tokens > 0 && !now.Before(l.until) {
		l.tokens = 0 // expired: the claim is dropped, never returned late
	}
	if l.tokens == 0 {
		return decision{}, false
	}
	l.tokens--
	return decision{allowed: true, remaining: l.remaining + l.tokens, reset: l.reset, leased: true}, true
}

// startFetch marks a fetch in flight.
func (l *lease) startFetch() {
	l.fetching = true
	l.ready = make(chan struct{})
}

// finish records what Redis answered to the fetch in flight, sent at asked:
// tokens granted for the lease, or that the bucket is empty; waiters are
// released.
func (l *lease) finish(r decisionOrErr, tokens int64, asked, now time.Time) {
	l.fetching = false
	close(l.ready)
	if r.err != nil {
		return
	}
	l.remaining, l.reset = r.d.remaining, r.d.reset
	if r.granted == 0 {
		// From when it was asked: never refuse longer than Redis would.
		l.emptyUntil = asked.Add(r.d.retryAfter)
	}
	if tokens <= 0 {
		return
	}
	if !now.Before(l.until) {
		l.tokens = 0
	}
	l.tokens += tokens
	l.until = now.Add(leaseTTL)
}

// leases holds the per-key state of leaseable buckets, sharded; keys idle for
// a minute are swept, and a shard holds at most its share of maxLocalKeys
// (keys come from clients; see localStore).
type leases struct {
	seed     maphash.Seed
	shards   [localShards]leaseShard
	perShard int
}

type leaseShard struct {
	mu sync.Mutex
	m  map[string]*lease
}

func newLeases(ctx context.Context) *leases {
	ls := &leases{seed: maphash.MakeSeed(), perShard: maxLocalKeys / localShards}
	for i := range ls.shards {
		ls.shards[i].m = map[string]*lease{}
	}
	go ls.sweep(ctx, time.Minute)
	return ls
}

func (ls *leases) get(key string) *lease {
	sh := &ls.shards[maphash.String(ls.seed, key)%uint64(len(ls.shards))]
	sh.mu.Lock()
	l, ok := sh.m[key]
	if !ok {
		if len(sh.m) >= ls.perShard {
			ls.makeRoom(sh)
		}
		l = &lease{}
		sh.m[key] = l
	}
	sh.mu.Unlock()
	return l
}

// makeRoom frees an eighth of a full shard (sh.mu held), sparing leases with
// a fetch in flight. An evicted lease's unspent tokens are lost: the bucket
// admits less, never more.
func (ls *leases) makeRoom(sh *leaseShard) {
	target := ls.perShard - ls.perShard/8
	for k, l := range sh.m {
		if len(sh.m) <= target {
			return
		}
		l.mu.Lock()
		busy := l.fetching
		l.mu.Unlock()
		if !busy {
			delete(sh.m, k)
		}
	}
}

func (ls *leases) sweep(ctx context.Context, every time.Duration) {
	periodically(ctx, every, func(now time.Time) {
		for i := range ls.shards {
			sh := &ls.shards[i]
			sh.mu.Lock()
			for k, l := range sh.m {
				l.mu.Lock()
				idle := now.Sub(l.lastUsed) > every && !l.fetching
				l.mu.Unlock()
				if idle {
					delete(sh.m, k)
				}
			}
			sh.mu.Unlock()
		}
	})
}

// takeLeased admits from the key's lease when it has tokens (topping it up in
// the background at the low-water mark), else waits for the fetch in flight,
// else asks Redis for the request's token and, when the key is busy enough, a
// lease along with it.
func (s *redisStore) takeLeased(ctx context.Context, key string, b bucket) (decision, error) {
	l := s.leases.get(key)
	now := time.Now()
	l.mu.Lock()
	l.tick(now)
	// waited: this request waited for a fetch in flight; it counts as decided
	// by Redis however it ends.
	waited := false
	// A second round follows a fetch that granted fewer tokens than there
	// were requests waiting for it; after that, the request asks for its own.
	for range 2 {
		if d, ok := l.spend(now); ok {
			var want int64
			if !l.fetching {
				// The low-water mark: a quarter of the target spent.
				if t := l.target(b, now); t > 0 && l.tokens <= t*3/4 {
					want = t - l.tokens
					l.startFetch()
				}
			}
			l.mu.Unlock()
			if want > 0 {
				s.refill(l, key, b, want)
			}
			s.count(waited, s.opts.fromLease)
			return d, nil
		}
		if now.Before(l.emptyUntil) {
			d := decision{retryAfter: l.emptyUntil.Sub(now), reset: l.reset}
			l.mu.Unlock()
			s.count(waited, s.opts.remembered)
			return d, nil
		}
		if l.fetching {
			ready := l.ready
			l.mu.Unlock()
			waited = true
			if err := s.wait(ctx, ready); err != nil {
				s.opts.waited.Inc()
				return decision{}, err
			}
			now = time.Now()
			l.mu.Lock()
			continue
		}
		t := l.target(b, now)
		if t == 0 {
			break
		}
		// The first granted token is this request's; the rest are the lease.
		l.startFetch()
		l.mu.Unlock()
		s.opts.waited.Inc()
		r := s.takeN(ctx, key, b, 1+t)
		l.mu.Lock()
		l.finish(r, r.granted-1, now, time.Now())
		l.mu.Unlock()
		if r.granted > 1 {
			r.d.remaining += r.granted - 1 // the lease is part of what is left
		}
		return r.d, r.err
	}
	l.mu.Unlock()
	s.opts.waited.Inc()
	asked := time.Now()
	r := s.takeN(ctx, key, b, 1)
	if r.err == nil && !r.d.allowed {
		l.mu.Lock()
		l.emptyUntil = asked.Add(r.d.retryAfter)
		l.mu.Unlock()
	}
	return r.d, r.err
}

// refund gives a token back where it came from: to the key's lease while
// that is valid (an expired lease's tokens are dropped, never returned late),
// else to Redis, in the background.
func (s *redisStore) refund(key string, b bucket, d decision) {
	if d.leased {
		l := s.leases.get(key)
		now := time.Now()
		l.mu.Lock()
		if now.Before(l.until) {
			l.tokens++
		}
		l.mu.Unlock()
		return
	}
	if s.takeAsync(key, b, -1, func(decisionOrErr) {}) {
		// The bucket has a token again, whatever was remembered.
		l := s.leases.get(key)
		l.mu.Lock()
		l.emptyUntil = time.Time{}
		l.mu.Unlock()
	}
}

// count records how a check was decided; one that waited for a fetch counts
// as decided by Redis.
func (s *redisStore) count(waited bool, c prometheus.Counter) {
	if waited {
		c = s.opts.waited
	}
	c.Inc()
}

// refill fetches want more tokens for l in the background.
func (s *redisStore) refill(l *lease, key string, b bucket, want int64) {
	asked := time.Now()
	queued := s.takeAsync(key, b, want, func(r decisionOrErr) {
		l.mu.Lock()
		l.finish(r, r.granted, asked, time.Now())
		l.mu.Unlock()
	})
	if !queued {
		l.mu.Lock()
		l.finish(decisionOrErr{err: errStoreDown}, 0, asked, asked)
		l.mu.Unlock()
	}
}

// wait blocks until a fetch in flight is answered. A flusher answers every
// take within about opts.timeout; the timer guards against a generation
// ending with the take still queued.
func (s *redisStore) wait(ctx context.Context, ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	default:
	}
	timer := time.NewTimer(4 * s.opts.timeout)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errStoreDown
	}
}
