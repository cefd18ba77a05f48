package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/net/http/httpguts"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// maxTokenBytes bounds a bearer token before any decoding: a JWT of a few
// claims is well under 2 KiB, and a megabyte-sized one is an attack on the parser.
const maxTokenBytes = 8 << 10

// minRSABits refuses RSA keys too short to trust.
const minRSABits = 2048

const (
	// verifiedTTL bounds how long a verified token skips signature checking.
	// Entries also end at the token's exp (plus leeway) and whenever the JWKS
	// changes, so a revoked key stops working at the next fetch.
	verifiedTTL  = 5 * time.Minute
	verifiedSize = 16384
	// verifiedMaxToken bounds the tokens cached (so the cache stays within
	// verifiedSize × 2 KiB); larger ones are verified on every request.
	verifiedMaxToken = 2 << 10
)

// asymmetricAlgs are the algorithms accepted when the Binding does not narrow
// them. HS* joins only when the Binding names an HMAC secret.
var (
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	hmacAlgs       = []string{"HS256", "HS384", "HS512"}
)

// hmacKey marks a shared secret so that it can never be confused with a public
// key: only HS* algorithms accept it, and HS* accepts nothing else.
type hmacKey []byte

// jwtScheme verifies bearer JWTs: the algorithm is pinned by the scheme's key
// types (WithValidMethods) and again per key in keyFor, so "none" and RS/HS
// confusion cannot pass.
type jwtScheme struct {
	name, realm string
	parser      *jwt.Parser
	jwks        *jwksCache // nil without a JWKS URL
	static      []any      // public keys from the certificate file
	hmac        hmacKey
	claims      []claimHeader
	leeway      time.Duration

	// verified caches principals by the token itself (compared in full by
	// the map; hashing it with sha256 would cost more than the lookup saves):
	// a signature check (tens of µs for RSA, more for ECDSA) is paid once per
	// token, not per request. Only tokens that verified are kept, in memory.
	mu       sync.RWMutex
	verified map[string]verifiedToken
}

type verifiedToken struct {
	p     *principal
	until time.Time
	keys  uint64 // the JWKS version it was verified against
}

type claimHeader struct{ claim, header string }

// parseClaimHeaders checks a Binding's claim → header mapping (shared by the
// JWT and introspection schemes) and sorts it, so headers are set in a stable order.
func parseClaimHeaders(m map[string]string) ([]claimHeader, error) {
	sel := make([]claimHeader, 0, len(m))
	for claim, header := range m {
		if !httpguts.ValidHeaderFieldName(header) {
			return nil, fmt.Errorf("claim header %q: not a valid header name", header)
		}
		sel = append(sel, claimHeader{claim, http.CanonicalHeaderKey(header)})
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].claim < sel[j].claim })
	return sel, nil
}

func newJWTScheme(g *generation, name, realm string, jb *bundle.JWTBinding) (*jwtScheme, error) {
	s := &jwtScheme{name: name, realm: realm, leeway: jb.Leeway.D(), verified: map[string]verifiedToken{}}
	var algs []string
	if jb.CertificateFile != "" {
		data, err := readBindingFile(g.env, jb.CertificateFile)
		if err != nil {
			return nil, err
		}
		keys, err := parsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", jb.CertificateFile, err)
		}
		s.static = keys
		for _, k := range keys {
			algs = append(algs, algsFor(k)...)
		}
	}
	if jb.JWKSURL != "" {
		tr, err := outboundTransport(g.env, jb.CAFile)
		if err != nil {
			return nil, err
		}
		c, err := newJWKSCache(g.env.Context, jb.JWKSURL, jwksOptions{transport: tr}, g.env.Logger, func(result string) {
			g.m.jwksFetches.WithLabelValues(name, result).Inc()
		})
		if err != nil {
			return nil, err
		}
		s.jwks = c
		algs = append(algs, asymmetricAlgs...)
	}
	if jb.HMACSecretFile != "" {
		secret, err := readBindingFile(g.env, jb.HMACSecretFile)
		if err != nil {
			return nil, err
		}
		secret = []byte(strings.TrimRight(string(secret), "\r\n"))
		// RFC 7518 §3.2: the key must be at least as long as the hash output.
		if len(secret) < 32 {
			return nil, fmt.Errorf("%s: HMAC secret is %d bytes, want at least 32", jb.HMACSecretFile, len(secret))
		}
		s.hmac = secret
		algs = append(algs, hmacAlgs...)
	}
	if len(algs) == 0 {
		return nil, errors.New("jwt needs a JWKS URL, a certificate file or an HMAC secret file")
	}
	if len(jb.Algorithms) > 0 {
		var narrowed []string
		for _, a := range jb.Algorithms {
			if !slices.Contains(asymmetricAlgs, a) && !slices.Contains(hmacAlgs, a) {
				return nil, fmt.Errorf("algorithm %q is not supported", a)
			}
			if slices.Contains(algs, a) {
				narrowed = append(narrowed, a)
			}
		}
		if len(narrowed) == 0 {
			return nil, fmt.Errorf("algorithms %v: none fits the configured keys", jb.Algorithms)
		}
		algs = narrowed
	}
	slices.Sort(algs)
	algs = slices.Compact(algs)

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(jb.Leeway.D()),
		// A token without exp would be valid forever.
		jwt.WithExpirationRequired(),
	}
	if jb.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(jb.Issuer))
	}
	if len(jb.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(jb.Audiences...))
	}
	s.parser = jwt.NewParser(opts...)
	claims, err := parseClaimHeaders(jb.ClaimHeaders)
	if err != nil {
		return nil, err
	}
	s.claims = claims
	return s, nil
}

func (s *jwtScheme) checksScopes() bool { return true }

func (s *jwtScheme) challenge(err *authError) string { return bearerChallenge(s.realm, err) }

func (s *jwtScheme) authenticate(r *http.Request) (*principal, *authError) {
	tok, ok := bearerToken(r)
	if !ok {
		return nil, missing("send a bearer token in the Authorization header")
	}
	return s.verify(r.Context(), tok)
}

func (s *jwtScheme) verify(ctx context.Context, tok string) (*principal, *authError) {
	if len(tok) > maxTokenBytes {
		return nil, invalid("too_large", "the token is too large")
	}
	now := time.Now()
	version := s.keysVersion()
	s.mu.RLock()
	v, ok := s.verified[tok]
	s.mu.RUnlock()
	if ok && now.Before(v.until) && v.keys == version {
		return v.p, nil
	}
	claims := jwt.MapClaims{}
	var keyErr *authError
	keyCalled := false
	_, err := s.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		keyCalled = true
		k, ae := s.keyFor(ctx, t)
		if ae != nil {
			keyErr = ae
			return nil, ae
		}
		return k, nil
	})
	if err != nil {
		if keyErr != nil {
			return nil, keyErr
		}
		// The parser refuses an algorithm outside the scheme's list (or one it
		// does not know, like "NONE") before it asks for a key.
		if !keyCalled && !errors.Is(err, jwt.ErrTokenMalformed) &&
			(errors.Is(err, jwt.ErrTokenSignatureInvalid) || errors.Is(err, jwt.ErrTokenUnverifiable)) {
			return nil, invalid("bad_alg", "the token's algorithm is not accepted")
		}
		return nil, jwtError(err)
	}
	p := &principal{scopes: scopesOf(claims), headers: claimHeaders(s.claims, claims)}
	p.identity.Scheme = s.name
	p.identity.Subject, _ = claims["sub"].(string)
	p.identity.Claims = claims
	until := now.Add(verifiedTTL)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		if end := exp.Add(s.leeway); end.Before(until) {
			until = end
		}
	}
	if len(tok) <= verifiedMaxToken {
		s.remember(strings.Clone(tok), verifiedToken{p: p, until: until, keys: version}, now)
	}
	return p, nil
}

func (s *jwtScheme) keysVersion() uint64 {
	if s.jwks == nil {
		return 0
	}
	return s.jwks.version.Load()
}

func (s *jwtScheme) remember(tok string, v verifiedToken, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.verified) >= verifiedSize {
		for k, old := range s.verified {
			if !now.Before(old.until) {
				delete(s.verified, k)
			}
		}
		for k := range s.verified {
			if len(s.verified) < verifiedSize*9/10 {
				break
			}
			delete(s.verified, k)
		}
	}
	s.verified[tok] = v
}

// keyFor picks the verification key for t. The parser has already refused any
// algorithm outside the scheme's list; here each key is matched to the
// algorithm's family (and curve), so a key of one type is never used with
// another type's algorithm.
func (s *jwtScheme) keyFor(ctx context.Context, t *jwt.Token) (any, *authError) {
	alg := t.Method.Alg()
	// RFC 7515 §4.1.11: a token whose "crit" names extensions must be refused
	// by a verifier that understands none of them, as this one.
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid("crit", "the token requires extensions this gateway does not support")
	}
	if slices.Contains(hmacAlgs, alg) {
		if s.hmac == nil {
			return nil, invalid("bad_alg", "the token's algorithm is not accepted")
		}
		return []byte(s.hmac), nil
	}
	kid, _ := t.Header["kid"].(string)
	if s.jwks != nil && kid != "" {
		k, err := s.jwks.key(ctx, kid)
		switch {
		case err == nil:
			if !k.fits(alg) {
				return nil, invalid("bad_alg", "the token's algorithm does not match its key")
			}
			return k.key, nil
		case errors.Is(err, errJWKSUnavailable) && len(s.static) == 0:
			return nil, unavailable("jwks", "the signing keys cannot be fetched")
		}
	}
	var fitting []jwt.VerificationKey
	for _, k := range s.static {
		if keyFits(alg, k) {
			fitting = append(fitting, k)
		}
	}
	if s.jwks != nil && kid == "" {
		for _, k := range s.jwks.keys(ctx) {
			if k.fits(alg) {
				fitting = append(fitting, k.key)
			}
		}
	}
	switch len(fitting) {
	case 0:
		if s.jwks != nil && !s.jwks.loaded() {
			// No key fits because none could be fetched yet: the token may
			// well be good (single-key issuers often send no kid).
			return nil, unavailable("jwks", "the signing keys cannot be fetched")
		}
		if kid != "" {
			return nil, invalid("unknown_key", "the token's signing key is unknown")
		}
		return nil, invalid("no_key", "no key verifies the token's algorithm")
	case 1:
		return fitting[0], nil
	}
	return jwt.VerificationKeySet{Keys: fitting}, nil
}

// jwtError turns the library's error into a verdict a client can act on.
func jwtError(err error) *authError {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed", "the token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("bad_signature", "the token's signature is invalid")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("expired", "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid("not_yet_valid", "the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid("bad_issuer", "the token's issuer is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("bad_audience", "the token's audience is not accepted")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing_claim", "the token lacks a required claim (exp, iss or aud)")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("unverifiable", "the token cannot be verified")
	}
	return invalid("invalid", "the token is invalid")
}

// keyFits reports whether key may verify alg: RSA for RS*/PS* (2048 bits or
// more), the matching curve for ES*, Ed25519 for EdDSA.
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// algsFor lists the algorithms a public key can verify.
func algsFor(key any) []string {
	var out []string
	for _, a := range asymmetricAlgs {
		if keyFits(a, key) {
			out = append(out, a)
		}
	}
	return out
}

// parsePublicKeys reads PEM certificates and public keys (RSA ≥ 2048 bits,
// ECDSA P-256/384/521, Ed25519).
func parsePublicKeys(data []byte) ([]any, error) {
	var keys []any
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			key = c.PublicKey
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse public key: %w", err)
			}
			key = k
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse RSA public key: %w", err)
			}
			key = k
		default:
			return nil, fmt.Errorf("PEM block %q: want CERTIFICATE or PUBLIC KEY", block.Type)
		}
		if len(algsFor(key)) == 0 {
			return nil, fmt.Errorf("key of type %T: unsupported (RSA needs %d bits or more)", key, minRSABits)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM certificate or public key found")
	}
	return keys, nil
}

// scopesOf reads OAuth2 scopes from "scope" (space-separated, RFC 8693) or
// "scp" (a list or a string, as some issuers write it).
func scopesOf(claims map[string]any) []string {
	var out []string
	for _, name := range []string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			out = append(out, strings.Fields(v)...)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// claimHeaders renders the selected claims as header values; a claim that is
// absent or cannot be a header value is not forwarded.
func claimHeaders(sel []claimHeader, claims map[string]any) []headerValue {
	if len(sel) == 0 {
		return nil
	}
	out := make([]headerValue, 0, len(sel))
	for _, c := range sel {
		v, ok := claims[c.claim]
		if !ok || v == nil {
			continue
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(x)
		case []any:
			parts := make([]string, 0, len(x))
			for _, e := range x {
				if es, ok := e.(string); ok {
					parts = append(parts, es)
				}
			}
			s = strings.Join(parts, ",")
		default:
			b, err := json.Marshal(x)
			if err != nil {
				continue
			}
			s = string(b)
		}
		if !httpguts.ValidHeaderFieldValue(s) {
			continue
		}
		out = append(out, headerValue{c.header, s})
	}
	return out
}
