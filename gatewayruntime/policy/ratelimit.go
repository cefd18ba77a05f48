package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

// errStoreDown: the store could not decide (unreachable, or its circuit is open).
var errStoreDown = errors.New("rate-limit store unavailable")

// A limitStore takes one token from the bucket named key, and gives it back
// when a later policy of the route refuses the request.
type limitStore interface {
	take(ctx context.Context, key string, b bucket) (decision, error)
	// refund returns the token of d, an admitting decision of take for key.
	// It does not block and may be lost (a store that is down).
	refund(key string, b bucket, d decision)
}

// bucket is a token bucket: capacity tokens, refilled at requests per period.
type bucket struct {
	requests int64
	period   time.Duration
	capacity int64
}

type decision struct {
	allowed bool
	// remaining is the whole tokens left after this request.
	remaining int64
	// retryAfter is, when refused, how long until a token is available.
	retryAfter time.Duration
	// reset is how long until the bucket is full again.
	reset time.Duration
	// leased: the token came from this replica's lease (redisStore).
	leased bool
}

// limitPolicy is one named rate-limit policy with its numbers from the
// Binding (or the Bundle's inline default) and its store.
type limitPolicy struct {
	name       string
	bucket     bucket
	key        string
	header     string
	store      limitStore
	failClosed bool
	// field is this policy's member of the RateLimit-Policy header; quoted its
	// name as a structured-field string.
	field, quoted string
	// prefix namespaces the policy's keys in a shared store.
	prefix string

	limited, storeDown, failedOpen, failedClosed prometheus.Counter
}

// rateLimitFactory applies a route's rate-limit policies; every one must admit
// the request. It runs after authentication, so a consumer key is known.
type rateLimitFactory struct{ s *shared }

func (f *rateLimitFactory) Name() string { return "ratelimit" }

// LoopSafe (filter.LoopSafe): local buckets are computed; a Redis store is
// a network call.
func (f *rateLimitFactory) LoopSafe(_ *bundle.Bundle, route *bundle.Route, b *bundle.Binding) bool {
	for _, name := range route.RateLimits {
		if b != nil && b.RateLimits[name].Store == bundle.StoreRedis {
			return false
		}
	}
	return true
}

func (f *rateLimitFactory) Build(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding, env filter.Env) (filter.Middleware, error) {
	if len(route.RateLimits) == 0 {
		return nil, nil
	}
	g := f.s.generation(env)
	routeName := route.Method + " " + route.Path
	var checks []limitCheck
	for _, name := range route.RateLimits {
		p, err := g.limitPolicy(api, name, b)
		if err != nil {
			return nil, err
		}
		checks = append(checks, limitCheck{p, keyFunc(p, routeName, apiKeyHeader(api, route, p.header))})
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !admit(w, r, checks) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

type limitCheck struct {
	p   *limitPolicy
	key func(r *http.Request) string
}

// admit runs every policy and writes the RateLimit headers (or the refusal).
//
// A request refused by one policy is not charged to the others: the tokens
// the policies before it took are given back. Otherwise a client refused by
// its own small limit would go on draining a shared one (an API-wide limit)
// for every other client, which nginx's limit_req does not do either.
func admit(w http.ResponseWriter, r *http.Request, checks []limitCheck) bool {
	// The header values are built in stack buffers: one allocation per header.
	var polBuf, stateBuf [256]byte
	policies, states := polBuf[:0], stateBuf[:0]
	// taken holds the tokens taken so far, to give back on a refusal; a
	// route rarely has more than a few policies.
	var takenBuf [4]takenToken
	taken := takenBuf[:0]
	for _, c := range checks {
		key := c.key(r)
		d, err := c.p.store.take(r.Context(), key, c.p.bucket)
		if err != nil {
			if c.p.failClosed {
				c.p.failedClosed.Inc()
				c.p.storeDown.Inc()
				refundAll(taken)
				w.Header().Set("Retry-After", "1")
				problem.Write(w, r, http.StatusServiceUnavailable, "Service Unavailable",
					"the rate limit cannot be checked right now")
				return false
			}
			c.p.failedOpen.Inc()
			continue
		}
		if !d.allowed {
			c.p.limited.Inc()
			refundAll(taken)
			retry := ceilSeconds(d.retryAfter)
			h := w.Header()
			h.Set("Retry-After", strconv.FormatInt(retry, 10))
			h[hdrPolicy] = []string{c.p.field}
			h[hdrRateLimit] = []string{string(appendRateLimit(nil, c.p.quoted, 0, retry))}
			problem.Write(w, r, http.StatusTooManyRequests, "Too Many Requests",
				fmt.Sprintf("rate limit %s exceeded; retry in %d s", c.p.name, retry))
			return false
		}
		if len(taken) > 0 {
			policies = append(policies, ", "...)
			states = append(states, ", "...)
		}
		policies = append(policies, c.p.field...)
		states = appendRateLimit(states, c.p.quoted, d.remaining, ceilSeconds(d.reset))
		taken = append(taken, takenToken{c.p, key, d})
	}
	if len(taken) > 0 {
		h := w.Header()
		if len(taken) == 1 {
			h[hdrPolicy] = []string{taken[0].p.field}
		} else {
			h[hdrPolicy] = []string{string(policies)}
		}
		h[hdrRateLimit] = []string{string(states)}
	}
	return true
}

// takenToken is a token one policy took for a request still being decided.
type takenToken struct {
	p   *limitPolicy
	key string
	d   decision
}

func refundAll(taken []takenToken) {
	for _, t := range taken {
		t.p.store.refund(t.key, t.p.bucket, t.d)
	}
}

// The header names in Go's canonical form, so that setting them costs no
// canonicalisation (names are case-insensitive on the wire).
const (
	hdrPolicy    = "Ratelimit-Policy"
	hdrRateLimit = "Ratelimit"
)

// appendRateLimit appends one member of the RateLimit header
// (draft-ietf-httpapi-ratelimit-headers): remaining quota r, seconds to reset t.
func appendRateLimit(b []byte, quotedName string, remaining, reset int64) []byte {
	b = append(b, quotedName...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, max(remaining, 0), 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, reset, 10)
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// apiKeyHeader reports whether header carries an API key on route: the
// security filter has removed it by the time the limit runs.
func apiKeyHeader(api *bundle.Bundle, route *bundle.Route, header string) bool {
	if header == "" {
		return false
	}
	for _, alt := range route.Security {
		for _, ref := range alt {
			s := api.SecuritySchemes[ref.Name]
			if s.Type == bundle.SchemeAPIKey && s.In == "header" && strings.EqualFold(s.Name, header) {
				return true
			}
		}
	}
	return false
}

// keyFunc returns how p partitions requests on one route. A consumer key
// without an authenticated identity, or a header key without the header, falls
// back to the client address, so that anonymous callers do not share one bucket.
// A header key naming the route's API-key header partitions by the key's id
// (the consumer) instead: the key itself never gets past the security filter,
// and an unknown key must not buy a fresh bucket.
func keyFunc(p *limitPolicy, routeName string, apiKeyHeader bool) func(r *http.Request) string {
	byIP := func(r *http.Request) string {
		return p.prefix + "ip:" + filter.ClientIP(r).String()
	}
	// Key parts a client chooses are bounded (boundKey); the common short case
	// is built with one concatenation.
	key := p.key
	if key == bundle.KeyHeader && apiKeyHeader {
		key = bundle.KeyConsumer
	}
	switch key {
	case bundle.KeyOperation:
		k := p.prefix + "op:" + routeName
		return func(*http.Request) string { return k }
	case bundle.KeyConsumer:
		return func(r *http.Request) string {
			if id := filter.IdentityFrom(r.Context()); id != nil && id.Subject != "" {
				if len(id.Scheme)+len(id.Subject) < 64 {
					return p.prefix + "consumer:" + id.Scheme + "/" + id.Subject
				}
				return p.prefix + "consumer:" + boundKey(id.Scheme+"/"+id.Subject)
			}
			return byIP(r)
		}
	case bundle.KeyClientIP:
		return byIP
	case bundle.KeyHeader:
		return func(r *http.Request) string {
			if v := r.Header.Get(p.header); v != "" {
				return p.prefix + "h:" + boundKey(v)
			}
			return byIP(r)
		}
	}
	k := p.prefix + "api"
	return func(*http.Request) string { return k }
}

// boundKey keeps client-chosen key parts short: a long one is replaced by its digest.
func boundKey(s string) string {
	if len(s) <= 64 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// limitPolicy builds the named policy once per generation: its numbers, key and store.
func (g *generation) limitPolicy(api *bundle.Bundle, name string, b *bundle.Binding) (*limitPolicy, error) {
	if e, ok := g.limits[name]; ok {
		return e.policy, e.err
	}
	p, err := g.buildLimitPolicy(api, name, b)
	if err != nil {
		err = fmt.Errorf("rate limit %s: %w", name, err)
	}
	g.limits[name] = limitEntry{p, err}
	return p, err
}

func (g *generation) buildLimitPolicy(api *bundle.Bundle, name string, b *bundle.Binding) (*limitPolicy, error) {
	var rb bundle.RateLimitBinding
	var bound bool
	if b != nil {
		rb, bound = b.RateLimits[name]
	}
	if !bound || rb.Requests <= 0 || rb.Period <= 0 {
		def := api.RateLimits[name].Default
		if def == nil {
			return nil, errors.New("no rate in the binding and no default in the bundle")
		}
		rb.Requests, rb.Period, rb.Burst = def.Requests, def.Period, def.Burst
	}
	if rb.Requests <= 0 || rb.Period <= 0 {
		return nil, fmt.Errorf("rate %d per %s: want positive numbers", rb.Requests, rb.Period.D())
	}
	p := &limitPolicy{
		name:         name,
		bucket:       bucket{requests: rb.Requests, period: rb.Period.D(), capacity: rb.Burst},
		key:          rb.Key,
		header:       rb.Header,
		limited:      g.m.denied.WithLabelValues("ratelimit", "limited"),
		storeDown:    g.m.denied.WithLabelValues("ratelimit", "store_unavailable"),
		failedOpen:   g.m.storeFailures.WithLabelValues(name, bundle.FailOpen),
		failedClosed: g.m.storeFailures.WithLabelValues(name, bundle.FailClosed),
	}
	if p.bucket.capacity <= 0 {
		p.bucket.capacity = rb.Requests
	}
	switch rb.Key {
	case "", bundle.KeyAPI, bundle.KeyOperation, bundle.KeyConsumer, bundle.KeyClientIP:
	case bundle.KeyHeader:
		if rb.Header == "" {
			return nil, errors.New("key header needs a header name")
		}
	default:
		return nil, fmt.Errorf("key %q: want api, operation, consumer, clientIP or header", rb.Key)
	}
	switch rb.FailureMode {
	case "", bundle.FailOpen:
	case bundle.FailClosed:
		p.failClosed = true
	default:
		return nil, fmt.Errorf("failureMode %q: want open or closed", rb.FailureMode)
	}
	// q is the quota per window w (seconds), as the draft defines them.
	p.quoted = strconv.Quote(name)
	p.field = p.quoted + ";q=" + strconv.FormatInt(rb.Requests, 10) +
		";w=" + strconv.FormatInt(max(ceilSeconds(p.bucket.period), 1), 10)
	switch rb.Store {
	case "", bundle.StoreLocal:
		p.store = newLocalStore(g.env.Context, p.bucket)
	case bundle.StoreRedis:
		rs, err := g.redisStore(b)
		if err != nil {
			return nil, err
		}
		p.store = rs
		p.prefix = redisPrefix(b.Redis, apiID(api), name)
	default:
		return nil, fmt.Errorf("store %q: want local or redis", rb.Store)
	}
	return p, nil
}

// redisPrefix namespaces a policy's keys. The Binding's prefix (the API
// object's namespace/name) keeps apart APIs built from one definition; the
// Bundle's id, versions of one API. In a Redis Cluster the API part is a hash
// tag: one script call takes from several of the API's buckets (several
// policies, several requests), and a call's keys must share a slot.
func redisPrefix(rb *bundle.RedisBinding, id, policy string) string {
	api := id
	if rb.KeyPrefix != "" {
		api = rb.KeyPrefix + ":" + id
	}
	if rb.Cluster {
		api = "{" + api + "}"
	}
	return "gatekiln:rl:" + api + ":" + policy + ":"
}

// apiID names the API in shared-store keys, so that the replicas of one API
// share buckets and different APIs never do.
func apiID(api *bundle.Bundle) string {
	sum := sha256.Sum256([]byte(api.API.Title + "\x00" + api.API.Version + "\x00" + api.API.BasePath))
	return hex.EncodeToString(sum[:6])
}

// localStore keeps one x/time/rate limiter per key in this replica's memory.
// Buckets that have refilled completely carry no state worth keeping and are
// swept every minute, so idle keys (client addresses) do not accumulate.
//
// The keys are bounded too (maxLocalKeys, like the fixed zone of nginx's
// limit_req): clients choose them (an IPv6 /64 holds 2^64 addresses, a
// header any value), and a bucket of a slow rate stays for as long as it
// takes to refill, so unbounded they would be a way to exhaust the gateway's
// memory. A full shard first drops its refilled buckets, then arbitrary ones:
// the clients evicted start over with a full bucket.
type localStore struct {
	limit  rate.Limit
	burst  int
	seed   maphash.Seed
	shards [localShards]localShard
	// perShard bounds each shard's keys.
	perShard int
}

const (
	localShards = 32
	// maxLocalKeys bounds a policy's local buckets: about 200 bytes each,
	// some 25 MiB at most.
	maxLocalKeys = 1 << 17
)

type localShard struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newLocalStore(ctx context.Context, b bucket) *localStore {
	s := &localStore{
		limit:    rate.Limit(float64(b.requests) / b.period.Seconds()),
		burst:    int(b.capacity),
		seed:     maphash.MakeSeed(),
		perShard: maxLocalKeys / localShards,
	}
	for i := range s.shards {
		s.shards[i].m = map[string]*rate.Limiter{}
	}
	if ctx != nil {
		go s.sweep(ctx, time.Minute)
	}
	return s
}

func (s *localStore) limiter(key string) *rate.Limiter {
	sh := &s.shards[maphash.String(s.seed, key)%uint64(len(s.shards))]
	sh.mu.Lock()
	l, ok := sh.m[key]
	if !ok {
		if len(sh.m) >= s.perShard {
			s.makeRoom(sh, time.Now())
		}
		l = rate.NewLimiter(s.limit, s.burst)
		sh.m[key] = l
	}
	sh.mu.Unlock()
	return l
}

// makeRoom frees an eighth of a full shard (sh.mu held): refilled buckets
// first, then whichever the map's iteration yields.
func (s *localStore) makeRoom(sh *localShard, now time.Time) {
	target := s.perShard - s.perShard/8
	for k, l := range sh.m {
		if l.TokensAt(now) >= float64(s.burst) {
			delete(sh.m, k)
		}
	}
	for k := range sh.m {
		if len(sh.m) <= target {
			break
		}
		delete(sh.m, k)
	}
}

func (s *localStore) take(_ context.Context, key string, _ bucket) (decision, error) {
	l := s.limiter(key)
	now := time.Now()
	// AllowN rather than ReserveN: a refusal must not queue a reservation,
	// and AllowN does not allocate.
	if l.AllowN(now, 1) {
		tokens := l.TokensAt(now)
		return decision{allowed: true, remaining: int64(math.Floor(tokens)), reset: s.untilFull(tokens)}, nil
	}
	tokens := l.TokensAt(now)
	wait := time.Duration((1 - tokens) / float64(s.limit) * float64(time.Second))
	return decision{retryAfter: max(wait, time.Millisecond), reset: s.untilFull(tokens)}, nil
}

// refund adds the token back; a bucket that refilled meanwhile stays full
// (the limiter caps its tokens at the burst on its next use).
func (s *localStore) refund(key string, _ bucket, _ decision) {
	sh := &s.shards[maphash.String(s.seed, key)%uint64(len(s.shards))]
	sh.mu.Lock()
	l := sh.m[key]
	sh.mu.Unlock()
	if l != nil {
		// AllowN with -1 adds a token: the limiter has no other way to,
		// short of keeping a Reservation (an allocation) for every take.
		l.AllowN(time.Now(), -1)
	}
}

func (s *localStore) untilFull(tokens float64) time.Duration {
	missing := float64(s.burst) - tokens
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(s.limit) * float64(time.Second))
}

func (s *localStore) sweep(ctx context.Context, every time.Duration) {
	periodically(ctx, every, func(now time.Time) {
		for i := range s.shards {
			sh := &s.shards[i]
			sh.mu.Lock()
			for k, l := range sh.m {
				if l.TokensAt(now) >= float64(s.burst) {
					delete(sh.m, k)
				}
			}
			sh.mu.Unlock()
		}
	})
}

// periodically calls f with the tick's time every d until ctx ends.
func periodically(ctx context.Context, d time.Duration, f func(now time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
