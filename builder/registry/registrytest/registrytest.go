// Package registrytest starts real OCI registries on 127.0.0.1 for tests:
// Debian's docker-registry (distribution 2.8) as a child process, plain or
// with htpasswd auth and TLS signed by a CA made for the test, and
// go-containerregistry's in-process registry for unit tests. It also counts
// the requests a client makes, so tests can assert round trips and uploads.
package registrytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/crypto/bcrypt"

	"github.com/gatekiln/gatekiln/builder/registry"
)

// Binary is the registry executable from Debian's docker-registry package.
const Binary = "docker-registry"

// Options chooses how the registry is served.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1, localhost and Addr's IP, signed
	// by a CA generated for this registry (Registry.CACert).
	TLS bool
	// Auth requires HTTP basic auth (htpasswd, bcrypt) for every request.
	Auth bool
	// Username and Password default to "gatekiln" and a random password.
	Username, Password string
	// Addr is the listen address; default a free port on 127.0.0.1.
	Addr string
	// Dir is the working directory (storage, config, certificates);
	// default a new temporary directory.
	Dir string
}

// Registry is a running registry.
type Registry struct {
	// Host is host:port, what image references start with.
	Host string
	// URL is scheme://host:port.
	URL string
	// CACert is the PEM of the CA that signed the server certificate (TLS only),
	// and CACertFile where it is written.
	CACert     []byte
	CACertFile string
	// Username and Password are the credentials (Auth only).
	Username, Password string
	// Dir holds the storage, the config and the certificates.
	Dir string

	cmd  *exec.Cmd
	done chan struct{}
	logs *bytes.Buffer
	stop func()
}

// Start runs docker-registry for the duration of the test. It fails the test
// with a clear message when the Debian package is not installed.
func Start(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	r, err := Launch(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start registry: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

// Launch runs docker-registry until Close. Use Start in tests.
func Launch(ctx context.Context, opts Options) (*Registry, error) {
	bin, err := exec.LookPath(Binary)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install the Debian package docker-registry (listed in hack/apt-packages.txt): %w", Binary, err)
	}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "registrytest-")
		if err != nil {
			return nil, err
		}
		opts.Dir = d
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	r := &Registry{Dir: opts.Dir}
	if opts.Auth {
		r.Username, r.Password = opts.Username, opts.Password
		if r.Username == "" {
			r.Username = "gatekiln"
		}
		if r.Password == "" {
			r.Password = randomString()
		}
	}
	// A port picked by the kernel can be taken again before the registry binds
	// it; a few attempts make that race harmless.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := opts.Addr
		if addr == "" {
			if addr, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		if err := r.configure(opts, addr); err != nil {
			return nil, err
		}
		lastErr = r.run(ctx, bin)
		if lastErr == nil {
			return r, nil
		}
		if opts.Addr != "" {
			break
		}
	}
	return nil, lastErr
}

// Close stops the registry and waits for it to exit.
func (r *Registry) Close() {
	if r.stop != nil {
		r.stop()
	}
}

// Logs returns what the registry wrote so far (for failure messages).
func (r *Registry) Logs() string { return r.logs.String() }

// Config returns the registry.Config a client needs: the CA, the credentials,
// and plain HTTP allowed only when the registry serves plain HTTP.
func (r *Registry) Config() registry.Config {
	c := registry.Config{CABundle: r.CACert, Keychain: authn.NewMultiKeychain()}
	if r.Username != "" {
		cfg, err := registry.DockerConfigFor(map[string]authn.Basic{r.Host: {Username: r.Username, Password: r.Password}})
		if err != nil {
			panic(err) // marshalling a map of strings cannot fail
		}
		c.DockerConfig = cfg
	}
	if !strings.HasPrefix(r.URL, "https://") {
		c.Insecure = []string{r.Host}
	}
	return c
}

// DockerConfig returns a docker config.json with this registry's credentials
// (empty for a registry without auth).
func (r *Registry) DockerConfig() []byte { return r.Config().DockerConfig }

func (r *Registry) configure(opts Options, addr string) error {
	r.Host = addr
	scheme := "http"
	var tlsSection, authSection string
	if opts.TLS {
		scheme = "https"
		if r.CACert == nil {
			if err := r.writeCertificates(); err != nil {
				return err
			}
		}
		tlsSection = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n",
			filepath.Join(r.Dir, "server.crt"), filepath.Join(r.Dir, "server.key"))
	}
	if opts.Auth {
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			return err
		}
		htpasswd := filepath.Join(r.Dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			return err
		}
		authSection = fmt.Sprintf("auth:\n  htpasswd:\n    realm: gatekiln-test\n    path: %s\n", htpasswd)
	}
	r.URL = scheme + "://" + addr
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: registrytest
%s%shealth:
  storagedriver:
    enabled: false
`, filepath.Join(r.Dir, "storage"), addr, tlsSection, authSection)
	return os.WriteFile(filepath.Join(r.Dir, "config.yml"), []byte(config), 0o600)
}

// run starts the process and waits until /v2/ answers (200, or 401 with auth).
func (r *Registry) run(ctx context.Context, bin string) error {
	r.logs = &bytes.Buffer{}
	cmd := exec.Command(bin, "serve", filepath.Join(r.Dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	r.stop = func() {
		_ = cmd.Process.Kill()
		<-done
	}

	client := &http.Client{Timeout: 2 * time.Second, Transport: r.clientTransport()}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("registry exited at start: %s", r.logs.String())
		case <-ctx.Done():
			r.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := client.Get(r.URL + "/v2/")
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
			return nil
		}
	}
	r.stop()
	return fmt.Errorf("registry at %s not ready after 15s: %s", r.URL, r.logs.String())
}

// clientTransport trusts the registry's CA (if any) and nothing else extra.
func (r *Registry) clientTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if r.CACert != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.CACert)
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return t
}

// writeCertificates creates a CA and a server certificate for 127.0.0.1 and
// localhost, valid for a day.
func (r *Registry) writeCertificates() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "registrytest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	// A registry on another address (a bridge a cluster's node pulls from)
	// is named by it too.
	if host, _, err := net.SplitHostPort(r.Host); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
			ips = append(ips, ip)
		}
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	r.CACert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	r.CACertFile = filepath.Join(r.Dir, "ca.crt")
	files := map[string][]byte{
		r.CACertFile:                       r.CACert,
		filepath.Join(r.Dir, "server.crt"): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		filepath.Join(r.Dir, "server.key"): pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// InProcess serves go-containerregistry's in-memory registry over plain HTTP
// on 127.0.0.1 for the duration of the test. For unit tests; use Start to
// test against distribution itself.
func InProcess(tb testing.TB) *Registry {
	tb.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(discardLogger())))
	tb.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	return &Registry{Host: host, URL: srv.URL, logs: &bytes.Buffer{}}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

func randomString() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(errors.Join(errors.New("crypto/rand"), err))
	}
	return fmt.Sprintf("%x", b)
}
