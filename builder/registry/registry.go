// Package registry says how Gatekiln reaches an OCI registry: which
// credentials, which certificate authorities, and whether plain HTTP is
// allowed. It turns that into go-containerregistry options; every other
// builder package takes those options and never builds a transport itself.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Config is how to reach registries. The zero value uses the default keychain
// (~/.docker/config.json or $DOCKER_CONFIG), the system certificate pool, and
// HTTPS only.
type Config struct {
	// DockerConfig is the content of a docker config.json, which is also the
	// `.dockerconfigjson` value of a kubernetes.io/dockerconfigjson Secret.
	// When set it is the only source of credentials.
	DockerConfig []byte
	// Keychain, when set and DockerConfig is empty, replaces the default keychain.
	Keychain authn.Keychain
	// CABundle holds PEM certificates trusted in addition to the system pool.
	CABundle []byte
	// Insecure lists registries (host[:port]) that may be reached over plain
	// HTTP. Any other registry is HTTPS only, loopback addresses included.
	Insecure []string
	// WrapTransport, when set, wraps the HTTP transport (request counting,
	// tracing). It sees every request the options below make.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// UserAgent is added to every request.
	UserAgent string
}

// IsInsecure reports whether reg may be reached over plain HTTP.
func (c Config) IsInsecure(reg string) bool { return slices.Contains(c.Insecure, reg) }

// ParseReference parses an image reference (no tag means latest), marking it
// insecure when its registry is listed in Insecure (go-containerregistry then
// tries plain HTTP).
func (c Config) ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	if c.IsInsecure(ref.Context().RegistryStr()) {
		return name.ParseReference(s, name.Insecure)
	}
	return ref, nil
}

// ParseRepository parses a repository (no tag or digest), marking it insecure
// when its registry is listed in Insecure.
func (c Config) ParseRepository(s string) (name.Repository, error) {
	repo, err := name.NewRepository(s, name.StrictValidation)
	if err != nil {
		return name.Repository{}, fmt.Errorf("repository %q: %w", s, err)
	}
	if c.IsInsecure(repo.RegistryStr()) {
		return name.NewRepository(s, name.StrictValidation, name.Insecure)
	}
	return repo, nil
}

// Remote returns the go-containerregistry options for this configuration.
func (c Config) Remote(ctx context.Context) ([]remote.Option, error) {
	kc, err := c.keychain()
	if err != nil {
		return nil, err
	}
	rt, err := c.Transport()
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(rt),
	}
	if c.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.UserAgent))
	}
	return opts, nil
}

// Transport returns the HTTP transport: the system pool plus CABundle, plain
// HTTP refused unless the registry is listed in Insecure.
func (c Config) Transport() (http.RoundTripper, error) {
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("registry transport: go-containerregistry's default transport is not an *http.Transport")
	}
	t := base.Clone()
	if len(c.CABundle) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(c.CABundle) {
			return nil, errors.New("registry CA bundle: no PEM certificate found")
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = &httpsOnly{allowed: c.Insecure, inner: t}
	if c.WrapTransport != nil {
		rt = c.WrapTransport(rt)
	}
	return rt, nil
}

func (c Config) keychain() (authn.Keychain, error) {
	if len(c.DockerConfig) > 0 {
		return KeychainFromDockerConfig(c.DockerConfig)
	}
	if c.Keychain != nil {
		return c.Keychain, nil
	}
	return authn.DefaultKeychain, nil
}

// httpsOnly refuses plain-HTTP requests to any host not explicitly allowed.
// go-containerregistry falls back to HTTP by itself for loopback and private
// addresses; a registry should never be reached in clear text by accident.
type httpsOnly struct {
	allowed []string
	inner   http.RoundTripper
}

func (h *httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if req.URL.Scheme == "http" && !slices.Contains(h.allowed, host) {
		// go-containerregistry tries plain HTTP whenever HTTPS fails, even
		// when nothing listens: the hint to allow it belongs to the HTTPS
		// error, and only when the registry answered in plain HTTP.
		return nil, fmt.Errorf("registry %s: plain HTTP refused (not an insecure registry)", host)
	}
	resp, err := h.inner.RoundTrip(req)
	if err != nil {
		err = explain(host, req.URL.Scheme, err)
	}
	return resp, err
}

// explain names what a failed request says of the registry: not there at
// all (connection refused, no such host, dial timeout), or there but not
// speaking TLS, which only an insecure-registry setting can fix.
func explain(host, scheme string, err error) error {
	var op *net.OpError
	var dns *net.DNSError
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &dns), errors.As(err, &op) && op.Op == "dial":
		return &explained{fmt.Sprintf("registry %s is not reachable (is it running, and is the address right?)", host), err}
	case scheme == "https" && (errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh)):
		return &explained{fmt.Sprintf("registry %s answers in plain HTTP, not HTTPS (allow it with an insecure-registry setting)", host), err}
	}
	return err
}

// explained is an error with what it means put first. It still answers
// Temporary and Timeout as the network error did: go-containerregistry
// retries a temporary one (a dial timeout) by asking the error itself.
type explained struct {
	what string
	err  error
}

func (e *explained) Error() string { return e.what + ": " + e.err.Error() }
func (e *explained) Unwrap() error { return e.err }

func (e *explained) Temporary() bool {
	var t interface{ Temporary() bool }
	return errors.As(e.err, &t) && t.Temporary()
}

func (e *explained) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.err, &t) && t.Timeout()
}

// IsNotFound says whether err is a registry's answer that the manifest, the
// repository or the blob does not exist (as opposed to a failure to ask).
func IsNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return true
		}
	}
	return false
}
