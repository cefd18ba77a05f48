package policy

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Leases: a busy key need not wait for Redis on every request.
//
// When a key sees many requests in this replica, the replica takes a small
// lease of tokens from the shared bucket in the same atomic script call (one
// round trip fetches the request's token and the lease) and admits the next
// requests from it without waiting; it tops the lease up in the background
// when half of it is spent. Tokens are only ever spent after Redis granted
// them, so the long-run rate is exact across replicas; what changes is the
// burst: each replica may hold up to a lease's worth of tokens taken from the
// bucket earlier, so a burst can exceed the capacity by at most one lease per
// replica (at most 1% of the capacity, and at most maxLease tokens).
//
// Small buckets (capacity below minLeaseCapacity) and quiet keys (fewer than
// minLeaseRate requests in the last window) never lease: every request waits
// for Redis and the decisions are exact. Unspent leased tokens are dropped
// after leaseTTL, so a replica whose traffic stops does not keep a claim.
//
// Refusals are remembered too, for every bucket: when Redis answers that the
// next token comes in W, no replica can have one before then, so this replica
// refuses the key locally until then, exactly as Redis would, without asking.
const (
	minLeaseCapacity = 200
	maxLease         = 1024
	minLeaseRate     = 4
	leaseWindow      = 100 * time.Millisecond
	leaseTTL         = time.Second
)

// lease is one key's local state.
type lease struct {
	mu     sync.Mutex
	tokens int64     // granted by Redis, not yet spent
	until  time.Time // tokens are dropped after this
	// fetching is set while a request for more tokens is in flight.
	fetching bool
	// Requests seen in the current and the previous window size the lease.
	windowStart time.Time
	count, prev int64
	// The bucket as Redis last reported it, for the RateLimit header.
	remaining int64
	reset     time.Duration
	lastUsed  time.Time
	// emptyUntil is when Redis said the bucket has its next token.
	emptyUntil time.Time
}

// size is how many tokens to lease: about one window of this key's traffic,
// within the bounds above; 0 means do not lease.
func (l *lease) size(b bucket) int64 {
	if b.capacity < minLeaseCapacity {
		return 0
	}
	n := min(l.prev, maxLease, b.capacity/100)
	if n < minLeaseRate {
		return 0
	}
	return n
}

func (l *lease) tick(now time.Time) {
	l.lastUsed = now
	if d := now.Sub(l.windowStart); d >= leaseWindow {
		if d >= 2*leaseWindow {
			l.prev = 0 // a quiet window in between
		} else {
			l.prev = l.count
		}
		l.count = 0
		l.windowStart = now
	}
	l.count++
}

// store records tokens Redis granted for the lease.
func (l *lease) store(r decisionOrErr, tokens int64, now time.Time) {
	l.fetching = false
	if r.err != nil || tokens <= 0 {
		return
	}
	if !now.Before(l.until) {
		l.tokens = 0
	}
	l.tokens += tokens
	l.until = now.Add(leaseTTL)
	l.remaining, l.reset = r.d.remaining, r.d.reset
}

// leases holds the per-key state of leaseable buckets, sharded; keys idle for
// a minute are swept.
type leases struct {
	seed   maphash.Seed
	shards [32]leaseShard
}

type leaseShard struct {
	mu sync.Mutex
	m  map[string]*lease
}

func newLeases(ctx context.Context) *leases {
	ls := &leases{seed: maphash.MakeSeed()}
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
		l = &lease{}
		sh.m[key] = l
	}
	sh.mu.Unlock()
	return l
}

func (ls *leases) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
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
		}
	}
}

// takeLeased admits from the key's lease when it has tokens, else waits for
// Redis, fetching a lease along with the request's own token when the key is
// busy enough.
func (s *redisStore) takeLeased(ctx context.Context, key string, b bucket) (decision, error) {
	l := s.leases.get(key)
	now := time.Now()
	l.mu.Lock()
	l.tick(now)
	if now.Before(l.emptyUntil) {
		d := decision{retryAfter: l.emptyUntil.Sub(now), reset: l.reset}
		l.mu.Unlock()
		return d, nil
	}
	if l.tokens > 0 && now.Before(l.until) {
		l.tokens--
		d := decision{allowed: true, remaining: l.remaining + l.tokens, reset: l.reset}
		var more int64
		if !l.fetching && l.tokens <= l.size(b)/2 {
			if more = l.size(b); more > 0 {
				l.fetching = true
			}
		}
		l.mu.Unlock()
		if more > 0 && !s.takeAsync(key, b, more, func(r decisionOrErr) {
			l.mu.Lock()
			l.store(r, r.granted, time.Now())
			l.mu.Unlock()
		}) {
			l.mu.Lock()
			l.fetching = false
			l.mu.Unlock()
		}
		return d, nil
	}
	var extra int64
	if !l.fetching {
		if extra = l.size(b); extra > 0 {
			l.fetching = true
		}
	}
	l.mu.Unlock()
	r := s.takeN(ctx, key, b, 1+extra)
	if extra > 0 || (r.err == nil && !r.d.allowed) {
		l.mu.Lock()
		if extra > 0 {
			// The first granted token is this request's; the rest are the lease.
			l.store(r, r.granted-1, time.Now())
		}
		if r.err == nil && !r.d.allowed {
			l.emptyUntil = now.Add(r.d.retryAfter)
		}
		l.mu.Unlock()
	}
	return r.d, r.err
}
