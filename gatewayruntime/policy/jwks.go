package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"golang.org/x/time/rate"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

var (
	// errJWKSUnavailable: no key set has ever been fetched.
	errJWKSUnavailable = errors.New("jwks: no key set fetched yet")
	// errUnknownKID: the key set has no key with the token's kid.
	errUnknownKID = errors.New("jwks: unknown kid")
)

// jwksOptions tune the cache; zero fields take the defaults in withDefaults.
type jwksOptions struct {
	// refresh is the background refresh interval.
	refresh time.Duration
	// retry replaces refresh after a failed fetch.
	retry time.Duration
	// unknownKID is the minimum spacing of fetches that tokens with an unknown kid
	// may trigger: a flood of made-up kids costs the issuer one fetch per interval.
	unknownKID time.Duration
	// timeout bounds one fetch.
	timeout time.Duration
	// wait bounds how long a request waits for a fetch to finish.
	wait time.Duration
	// maxBytes bounds the JWKS document.
	maxBytes int64
	// transport makes the fetches; nil means http.DefaultTransport. The
	// JWT scheme gives one trusting the Binding's jwt.caFile.
	transport http.RoundTripper
}

func (o jwksOptions) withDefaults() jwksOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.refresh, 5*time.Minute)
	def(&o.retry, 10*time.Second)
	def(&o.unknownKID, 10*time.Second)
	def(&o.timeout, 5*time.Second)
	def(&o.wait, 2*time.Second)
	if o.maxBytes == 0 {
		o.maxBytes = 1 << 20
	}
	return o
}

// jwk is one verification key from a JWKS.
type jwk struct {
	key any
	// alg, when the JWK states one, is the only algorithm the key may verify.
	alg string
}

func (k jwk) fits(alg string) bool { return (k.alg == "" || k.alg == alg) && keyFits(alg, k.key) }

type jwkSet struct {
	byKID map[string]jwk
	all   []jwk
}

// jwksCache holds a remote JWKS: fetched at start, refreshed in the background,
// refetched when a token names an unknown kid (at most once per
// opts.unknownKID), and kept when a fetch fails (stale-if-error). Concurrent
// requests share one fetch.
type jwksCache struct {
	url     string
	opts    jwksOptions
	client  *http.Client
	ctx     context.Context
	log     *slog.Logger
	observe func(result string)

	set atomic.Pointer[jwkSet]
	// version counts successful fetches; tokens verified against an older
	// set are verified again.
	version atomic.Uint64
	limiter *rate.Limiter

	mu       sync.Mutex
	inflight *fetchCall
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// newJWKSCache starts the cache's background loop, which ends with ctx.
func newJWKSCache(ctx context.Context, rawURL string, opts jwksOptions, log *slog.Logger, observe func(string)) (*jwksCache, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwks url %q: want an http(s) URL", bundle.RedactURL(rawURL))
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if observe == nil {
		observe = func(string) {}
	}
	opts = opts.withDefaults()
	c := &jwksCache{
		url:     rawURL,
		opts:    opts,
		client:  &http.Client{Transport: opts.transport, Timeout: opts.timeout},
		ctx:     ctx,
		log:     log,
		observe: observe,
		limiter: rate.NewLimiter(rate.Every(opts.unknownKID), 1),
	}
	c.mu.Lock()
	first := c.startLocked()
	c.mu.Unlock()
	go c.loop(first)
	return c, nil
}

// key returns the key with kid, fetching the set again (rate-bounded) when the
// kid is unknown.
func (c *jwksCache) key(ctx context.Context, kid string) (jwk, error) {
	if set := c.set.Load(); set != nil {
		if k, ok := set.byKID[kid]; ok {
			return k, nil
		}
	}
	c.await(ctx)
	set := c.set.Load()
	if set == nil {
		return jwk{}, errJWKSUnavailable
	}
	if k, ok := set.byKID[kid]; ok {
		return k, nil
	}
	return jwk{}, errUnknownKID
}

// keys returns every key, for tokens without a kid.
// loaded says whether a key set was ever fetched.
func (c *jwksCache) loaded() bool { return c.set.Load() != nil }

func (c *jwksCache) keys(ctx context.Context) []jwk {
	if set := c.set.Load(); set != nil {
		return set.all
	}
	c.await(ctx)
	if set := c.set.Load(); set != nil {
		return set.all
	}
	return nil
}

// await joins the fetch in flight, or starts one if the unknown-kid limiter
// allows, and waits for it at most opts.wait.
func (c *jwksCache) await(ctx context.Context) {
	c.mu.Lock()
	call := c.inflight
	if call == nil {
		if !c.limiter.Allow() {
			c.mu.Unlock()
			return
		}
		call = c.startLocked()
	}
	c.mu.Unlock()
	t := time.NewTimer(c.opts.wait)
	defer t.Stop()
	select {
	case <-call.done:
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *jwksCache) startLocked() *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	c.inflight = call
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.timeout)
		set, err := c.fetch(ctx)
		cancel()
		if err == nil {
			c.set.Store(set)
			c.version.Add(1)
			c.observe("ok")
		} else {
			c.observe("error")
			c.log.Warn("jwks fetch failed, keeping the previous keys", "url", bundle.RedactURL(c.url), "error", err.Error())
		}
		call.err = err
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(call.done)
	}()
	return call
}

// loop refreshes the set until ctx ends, sooner after a failure.
func (c *jwksCache) loop(call *fetchCall) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-call.done:
		}
		next := c.opts.refresh
		if call.err != nil {
			next = c.opts.retry
		}
		t := time.NewTimer(next)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c.mu.Lock()
		call = c.inflight
		if call == nil {
			call = c.startLocked()
		}
		c.mu.Unlock()
	}
}

func (c *jwksCache) fetch(ctx context.Context) (*jwkSet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if untrustedCertificate(err) {
		return nil, fmt.Errorf("get jwks: the server's TLS certificate is not trusted (a server behind a private CA "+
			"needs that CA in the Security's jwt.caSecretRef, the Binding's jwt.caFile): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("get jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if int64(len(body)) > c.opts.maxBytes {
		return nil, fmt.Errorf("jwks larger than %d bytes", c.opts.maxBytes)
	}
	return parseJWKS(body)
}

// parseJWKS keeps the signature keys of a JWKS that we can use: public RSA
// (2048 bits or more), EC and Ed25519 keys. Symmetric ("oct") keys are never
// taken from a JWKS, so an HS* token cannot be checked against one.
func parseJWKS(body []byte) (*jwkSet, error) {
	var doc jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	set := &jwkSet{byKID: map[string]jwk{}}
	for _, m := range doc.Keys {
		if m.KTY == jwkset.KtyOct || (m.USE != "" && m.USE != jwkset.UseSig) {
			continue
		}
		// Only the public part is read; x5u is never followed.
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil
		parsed, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			continue
		}
		var k jwk
		switch key := parsed.Key().(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			k = jwk{key: key, alg: string(m.ALG)}
		default:
			continue
		}
		if len(algsFor(k.key)) == 0 {
			continue
		}
		set.all = append(set.all, k)
		if m.KID != "" {
			set.byKID[m.KID] = k
		}
	}
	return set, nil
}
