package policy

import (
	"crypto/sha256"
	"crypto/x509"
	"net/http"
	"sync"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/problem"
)

const (
	mtlsCacheTTL  = 5 * time.Minute
	mtlsCacheSize = 16384
)

// mtlsScheme verifies the TLS client certificate against the scheme's client
// CA. The listener only requests a certificate (the gateway's TLS config); the
// chain is verified here, per scheme, so different routes may trust different
// CAs. The certificate subject is the consumer identity.
//
// A connection presents the same certificate for every request on it, so
// verified leaves are cached by their sha256 until the chain expires (or
// mtlsCacheTTL, so that a replaced CA file takes effect with its generation).
type mtlsScheme struct {
	name  string
	roots *x509.CertPool

	mu    sync.Mutex
	cache map[[sha256.Size]byte]mtlsEntry
}

type mtlsEntry struct {
	p       *principal
	expires time.Time
}

func newMTLSScheme(env filter.Env, name string, mb *bundle.MTLSBinding) (*mtlsScheme, error) {
	pool, err := readCAPool(env, mb.ClientCAFile)
	if err != nil {
		return nil, err
	}
	return &mtlsScheme{name: name, roots: pool, cache: map[[sha256.Size]byte]mtlsEntry{}}, nil
}

func (s *mtlsScheme) checksScopes() bool { return false }

// challenge names no HTTP scheme (a certificate is sent in the TLS handshake,
// not in a header), but a 401 must carry one; this tells the client what is wanted.
func (s *mtlsScheme) challenge(*authError) string { return `MutualTLS realm="client certificate"` }

func (s *mtlsScheme) authenticate(r *http.Request) (*principal, *authError) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, missing("present a TLS client certificate")
	}
	leaf := r.TLS.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	now := time.Now()
	s.mu.Lock()
	e, ok := s.cache[sum]
	s.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.p, nil
	}
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         s.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, invalid("bad_certificate", "the client certificate is not trusted")
	}
	expires := now.Add(mtlsCacheTTL)
	for _, c := range chains[0] {
		if c.NotAfter.Before(expires) {
			expires = c.NotAfter
		}
	}
	subject := leaf.Subject.CommonName
	if subject == "" {
		subject = leaf.Subject.String()
	}
	p := &principal{identity: filter.Identity{Scheme: s.name, Subject: subject, Claims: map[string]any{
		"subject":      leaf.Subject.String(),
		"issuer":       leaf.Issuer.String(),
		"serialNumber": leaf.SerialNumber.String(),
	}}}
	s.mu.Lock()
	if len(s.cache) >= mtlsCacheSize {
		clear(s.cache)
	}
	s.cache[sum] = mtlsEntry{p, expires}
	s.mu.Unlock()
	return p, nil
}

// mtlsFactory refuses, before any other policy runs, a request on a route that
// needs a client certificate in every alternative of its security requirement
// and did not present one that verifies. The security filter then evaluates
// the requirement in full (the verification is cached, so it is not paid twice).
type mtlsFactory struct{ s *shared }

func (f *mtlsFactory) Name() string { return "mtls" }

// LoopSafe (filter.LoopSafe): the certificate was verified in the handshake.
func (f *mtlsFactory) LoopSafe(*bundle.Bundle, *bundle.Route, *bundle.Binding) bool { return true }

func (f *mtlsFactory) Build(api *bundle.Bundle, route *bundle.Route, b *bundle.Binding, env filter.Env) (filter.Middleware, error) {
	if len(route.Security) == 0 {
		return nil, nil
	}
	var names []string
	for _, alt := range route.Security {
		found := false
		for _, ref := range alt {
			if api.SecuritySchemes[ref.Name].Type == bundle.SchemeMTLS {
				found = true
				names = append(names, ref.Name)
			}
		}
		if !found {
			return nil, nil // some alternative needs no certificate
		}
	}
	g := f.s.generation(env)
	var schemes []*mtlsScheme
	for _, n := range names {
		a, err := g.scheme(api, n, b)
		if err != nil {
			return nil, err
		}
		schemes = append(schemes, a.(*mtlsScheme))
	}
	denied := g.m.denied.WithLabelValues("mtls", "unauthenticated")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var detail string
			for _, s := range schemes {
				_, err := s.authenticate(r)
				if err == nil {
					next.ServeHTTP(w, r)
					return
				}
				detail = err.detail
			}
			denied.Inc()
			w.Header().Set("WWW-Authenticate", schemes[0].challenge(nil))
			problem.Write(w, r, http.StatusUnauthorized, "Unauthorized", detail)
		})
	}, nil
}
