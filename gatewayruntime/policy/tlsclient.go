package policy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
)

// readCAPool reads a Binding file of PEM CA certificates into a pool. It is
// read once per Binding generation, so a changed file takes effect at the
// next reload.
func readCAPool(env filter.Env, name string) (*x509.CertPool, error) {
	pem, err := readBindingFile(env, name)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", name)
	}
	return pool, nil
}

// outboundTransport is the transport for the gateway's own calls to an
// authorization server (introspection, JWKS): http.DefaultTransport's dial,
// handshake and idle timeouts, TLS 1.2 at least, and, when caFile names a
// Binding file, only that CA's certificates trusted (empty: the system roots).
// Its idle connections are closed when the generation ends.
func outboundTransport(env filter.Env, caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := readCAPool(env, caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	tr.TLSClientConfig = cfg
	if env.Context != nil {
		go func() {
			<-env.Context.Done()
			tr.CloseIdleConnections()
		}()
	}
	return tr, nil
}

// untrustedCertificate says, for a failed call, whether the server's
// certificate did not verify: the usual cause is a server behind a private CA
// that the Binding does not name, which deserves saying in the log.
func untrustedCertificate(err error) bool {
	var cv *tls.CertificateVerificationError
	return errors.As(err, &cv)
}
