package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// testCA issues real certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

var serial int64 = 100

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type certOpts struct {
	cn        string
	usage     x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
	ip        net.IP
}

func (ca *testCA) issue(t *testing.T, o certOpts) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(time.Hour)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: o.cn, Organization: []string{"Gatekiln Tests"}},
		NotBefore: o.notBefore, NotAfter: o.notAfter, ExtKeyUsage: []x509.ExtKeyUsage{o.usage},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if o.ip != nil {
		tmpl.IPAddresses = []net.IP{o.ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestMTLS(t *testing.T) {
	ca := newCA(t, "clients")
	other := newCA(t, "someone else")
	serverCert := ca.issue(t, certOpts{cn: "gateway", usage: x509.ExtKeyUsageServerAuth, ip: net.ParseIP("127.0.0.1")})

	api := securityAPI(t, map[string][]bundle.SecurityRequirement{
		"GET /v1/pets":         {{{Name: "mtls"}}},
		"POST /v1/pets":        {{{Name: "mtls"}, {Name: "key"}}},
		"GET /v1/pets/{petId}": {{{Name: "mtls"}}, {{Name: "key"}}},
	})
	api.SecuritySchemes["mtls"] = bundle.SecurityScheme{Type: bundle.SchemeMTLS}
	b, dir := securityBinding(t, "http://127.0.0.1:1/jwks")
	b.Security["mtls"] = bundle.SecurityBinding{MTLS: &bundle.MTLSBinding{ClientCAFile: "clients.pem"}}
	if err := os.WriteFile(filepath.Join(dir, "clients.pem"), ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}

	up := newUpstream(t)
	gw := startGateway(t, api, b, dir, up, gatewayOptions{tls: &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		// The listener asks for a certificate; the policy verifies it per scheme.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
	}})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}}
	}
	good := ca.issue(t, certOpts{cn: "client-a", usage: x509.ExtKeyUsageClientAuth})
	tests := []struct {
		name, method, path string
		certs              []tls.Certificate
		hdr                map[string]string
		status             int
		identity           string
	}{
		{"trusted client", "GET", "/v1/pets", []tls.Certificate{good}, nil, 200, "mtls/client-a"},
		{"no certificate", "GET", "/v1/pets", nil, nil, 401, ""},
		{"certificate from another CA", "GET", "/v1/pets",
			[]tls.Certificate{other.issue(t, certOpts{cn: "client-a", usage: x509.ExtKeyUsageClientAuth})}, nil, 401, ""},
		{"expired certificate", "GET", "/v1/pets",
			[]tls.Certificate{ca.issue(t, certOpts{cn: "old", usage: x509.ExtKeyUsageClientAuth,
				notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})}, nil, 401, ""},
		{"server-only certificate", "GET", "/v1/pets",
			[]tls.Certificate{ca.issue(t, certOpts{cn: "srv", usage: x509.ExtKeyUsageServerAuth})}, nil, 401, ""},
		{"mtls AND key", "POST", "/v1/pets", []tls.Certificate{good}, map[string]string{"X-Api-Key": "bob-secret-key"}, 200, "mtls/client-a"},
		{"mtls without the key", "POST", "/v1/pets", []tls.Certificate{good}, nil, 401, ""},
		{"mtls OR key: key only", "GET", "/v1/pets/1", nil, map[string]string{"X-Api-Key": "bob-secret-key"}, 200, "key/bob"},
		{"mtls OR key: cert only", "GET", "/v1/pets/1", []tls.Certificate{good}, nil, 200, "mtls/client-a"},
	}
	var passed int64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := doWith(t, client(tt.certs...), tt.method, gw.URL+tt.path, tt.hdr, `{"id":1,"name":"rex"}`)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if tt.status == 200 {
				passed++
				if got := res.echo.Headers["X-Test-Identity"]; got != tt.identity {
					t.Fatalf("identity %q, want %q", got, tt.identity)
				}
			} else if res.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if got := up.hits.Load(); got != passed {
		t.Fatalf("upstream hits %d, want %d", got, passed)
	}
	if got := gw.counter(t, "gatekiln_policy_denied_total", map[string]string{"policy": "mtls"}); got != 4 {
		t.Fatalf("mtls filter refused %v requests, want 4 (the route that needs a certificate in every alternative)", got)
	}
}
