package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

// testCert makes a CA-signed certificate for 127.0.0.1 and returns the cert
// and key PEM and the CA PEM.
func testCert(t testing.TB, cn string) (certPEM, keyPEM, caPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// tlsGateway serves testAPI over TLS (HTTP/2 by ALPN) under b, whose Server
// section it sets to a certificate of its own, with files beside the
// Binding. It returns the gateway, its address and a client that trusts it
// and tries HTTP/2.
func tlsGateway(t *testing.T, b *bundle.Binding, files map[string][]byte) (*Gateway, string, *http.Client) {
	t.Helper()
	cert, key, ca := testCert(t, "gateway")
	b.Server = &bundle.ServerBinding{TLSCertFile: "tls.crt", TLSKeyFile: "tls.key"}
	all := map[string][]byte{"tls.crt": cert, "tls.key": key}
	maps.Copy(all, files)
	dir := newBindingDir(t)
	dir.swap(b, all)
	g, err := New(Config{Bundle: testAPI(), BindingDir: dir.dir, ShutdownDelay: -1, TLSAddr: "unused"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.ServeTLS(ln) }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return g, ln.Addr().String(), &http.Client{Transport: tr}
}

func TestHTTP2BothSides(t *testing.T) {
	// An HTTPS upstream that speaks HTTP/2, verified with the Binding's CA.
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %s", r.Proto, r.URL.RequestURI())
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	upCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})

	b := bindingTo(up.URL + "/base")
	b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{up.URL + "/base"}, CAFile: "upstream-ca.pem", ServerName: "example.com"}
	g, addr, client := tlsGateway(t, b, map[string][]byte{"upstream-ca.pem": upCA})
	if ok, why := g.Ready(); !ok {
		t.Fatalf("not ready: %v", why)
	}
	resp, err := client.Get("https://" + addr + "/v1/items/7?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || string(body) != "HTTP/2.0 /base/items/7?x=1" {
		t.Fatalf("client %s, upstream saw %q", resp.Proto, body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("tls state %+v", resp.TLS)
	}
}

func TestUpstreamTLSIsVerified(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	// No CA in the Binding: the system roots do not know the test CA → 502.
	h := newHarness(t, testAPI(), bindingTo(up.URL+"/internal-base"))
	r := h.do("GET", "/v1/items", nil, nil)
	if r.status != 502 {
		t.Fatalf("status %d: an unverifiable upstream certificate must fail", r.status)
	}
	// The problem names the client's path, never the upstream's.
	if d := problemOf(t, r); d.Instance != "/v1/items" {
		t.Fatalf("instance %q, want /v1/items", d.Instance)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	// An upstream that switches protocols and echoes lines in upper case.
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(r.Header.Get("Connection"), "Upgrade") {
			http.Error(w, "want an upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
		_ = brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = brw.WriteString(strings.ToUpper(line))
			_ = brw.Flush()
		}
	})
	h := newHarness(t, testAPI(), bindingTo(up.url))
	c := h.dial(t)
	_, _ = io.WriteString(c, "GET /v1/items HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade answer %d %v", resp.StatusCode, resp.Header)
	}
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] == "" {
		t.Errorf("upgrade answer request ids %q, want the gateway's one", ids)
	}
	for _, msg := range []string{"hello\n", "second frame\n"} {
		_, _ = io.WriteString(c, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("echo %q, %v", got, err)
		}
	}
}

// TestOnlyWebSocketIsUpgraded: an Upgrade to another protocol (h2c, which
// would make the upstream connection a tunnel that no route, security scheme
// or limit sees) is ignored, even by an upstream that would switch: the
// request is served as a plain one.
func TestOnlyWebSocketIsUpgraded(t *testing.T) {
	// An upstream that switches to whatever it is asked, as a lax one would.
	lax := rawUpstreamReq(t, func(c net.Conn, req *http.Request) {
		if up := req.Header.Get("Upgrade"); up != "" {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+up+"\r\n\r\n")
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain")
	})
	h := newHarness(t, testAPI(), bindingTo(lax))
	for _, tt := range []struct {
		upgrade string
		status  int
	}{
		{"h2c", 200},
		{"websocket, h2c", 200},
		{"TLS/1.2", 200},
		{"WebSocket", 101},
	} {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "GET /v1/items HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "+tt.upgrade+
			"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("Upgrade %s: %v", tt.upgrade, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("Upgrade %s: status %d, want %d", tt.upgrade, resp.StatusCode, tt.status)
		}
	}
}

// TestReverseProxyPathForwarding checks the net/http path (an HTTPS upstream)
// rewrites the forwarding fields as the fast path does: spoofed ones dropped.
func TestReverseProxyPathForwarding(t *testing.T) {
	var got http.Header
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("X-Request-Id", "from-upstream")
		_, _ = io.WriteString(w, r.URL.RequestURI())
	}))
	t.Cleanup(up.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw})
	b := bindingTo(up.URL)
	b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{up.URL + "/base"}, CAFile: "ca.pem", ServerName: "example.com"}
	dir := newBindingDir(t)
	dir.swap(b, map[string][]byte{"ca.pem": ca})
	g, err := New(Config{Bundle: testAPI(), BindingDir: dir.dir, ShutdownDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/v1/items/a%2Fb?q=1", nil)
	req.Host = "api.example.com"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("Forwarded", "for=6.6.6.6")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "dropped")
	req.Header.Set("X-Http-Method-Override", "DELETE")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "/base/items/a%2Fb?q=1" {
		t.Fatalf("upstream request URI %q", body)
	}
	want := map[string]string{
		"X-Forwarded-For":        "127.0.0.1",
		"X-Forwarded-Host":       "api.example.com",
		"X-Forwarded-Proto":      "http",
		"Forwarded":              "", // off by default
		"X-Hop":                  "",
		"X-Http-Method-Override": "",
	}
	for k, v := range want {
		if g := strings.Join(got.Values(k), " | "); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] == "from-upstream" {
		t.Errorf("response request ids %v", ids)
	}
}

func TestTLSListenerNeedsACertificate(t *testing.T) {
	up := newUpstream(t, nil)
	dir := newBindingDir(t)
	dir.swap(bindingTo(up.url), nil)
	g, err := New(Config{Bundle: testAPI(), BindingDir: dir.dir, ShutdownDelay: -1, TLSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	if ok, why := g.Ready(); ok || !strings.Contains(strings.Join(why, ";"), "no TLS certificate") {
		t.Fatalf("ready %v %v", ok, why)
	}
}

// TestHTTP2ClientToPlainUpstream covers the fast client answering through a
// net/http ResponseWriter (HTTP/2), including a streamed, chunked body.
func TestHTTP2ClientToPlainUpstream(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Up", "1")
		w.Header().Set("Connection", "X-Up-Hop")
		w.Header().Set("X-Up-Hop", "no")
		_, _ = io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		_, _ = fmt.Fprintf(w, "part2 %s %s", r.Header.Get("X-Forwarded-Proto"), r.URL.RequestURI())
	})
	_, addr, client := tlsGateway(t, bindingTo(up.url), nil)
	resp, err := client.Post("https://"+addr+"/v1/items?x=%20", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 || string(body) != "part1,part2 https /items?x=%20" {
		t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if resp.Header.Get("X-Up") != "1" || resp.Header.Get("X-Up-Hop") != "" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("headers %v", resp.Header)
	}
	if _, got := up.request(); got != "body" {
		t.Fatalf("upstream body %q", got)
	}
}

// TestClientCancelIsNotAnUpstreamFailure: HTTP/2 clients that reset their
// streams while the upstream works (a rapid-reset client does so by the
// thousand) neither count against the upstream, whose circuit would open for
// everyone, nor leave it working for nobody: the upstream's request is
// cancelled too. Over a plain upstream (the gateway's own proxy) and an
// HTTPS one (net/http's).
func TestClientCancelIsNotAnUpstreamFailure(t *testing.T) {
	var cancelled atomic.Int64
	// arrived: a slow request reached the upstream, which now works on it.
	arrived := make(chan struct{}, 16)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") == "" {
			return
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled.Add(1)
		case <-time.After(5 * time.Second):
		}
	})
	plain := httptest.NewServer(slow)
	t.Cleanup(plain.Close)
	tlsUp := httptest.NewUnstartedServer(slow)
	tlsUp.EnableHTTP2 = true
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	upCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw})

	for _, tt := range []struct{ name, url string }{{"plain upstream", plain.URL}, {"https upstream", tlsUp.URL}} {
		t.Run(tt.name, func(t *testing.T) {
			b := bindingTo(tt.url)
			b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{tt.url}, CAFile: "upstream-ca.pem",
				CircuitBreaker: &bundle.CircuitBreaker{ConsecutiveFailures: 2}}
			_, addr, client := tlsGateway(t, b, map[string][]byte{"upstream-ca.pem": upCA})
			base := "https://" + addr + "/v1/items"
			before := cancelled.Load()
			const n = 5
			for range n {
				// The client resets its stream once the upstream works on the
				// request (a fixed delay could end before, under load: the
				// request cancelled before it reached the upstream).
				ctx, cancel := context.WithCancel(context.Background())
				answered := make(chan int, 1) // the status, or 0 for an error
				go func() {
					req, _ := http.NewRequestWithContext(ctx, "GET", base+"?slow=1", nil)
					resp, err := client.Do(req)
					if err != nil {
						answered <- 0
						return
					}
					resp.Body.Close()
					answered <- resp.StatusCode
				}()
				select {
				case <-arrived:
				case status := <-answered:
					cancel()
					t.Fatalf("a slow request ended (status %d; 0: an error) before it reached the upstream", status)
				case <-time.After(10 * time.Second):
					cancel()
					t.Fatal("a slow request did not reach the upstream in 10s")
				}
				cancel()
				if status := <-answered; status != 0 {
					t.Fatalf("a slow request answered %d", status)
				}
			}
			resp, err := client.Get(base)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				t.Fatalf("after %d cancelled requests: %s %d, want HTTP/2 200 (the circuit must stay closed)", n, resp.Proto, resp.StatusCode)
			}
			deadline := time.Now().Add(3 * time.Second)
			for cancelled.Load()-before < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := cancelled.Load() - before; got != n {
				t.Fatalf("the upstream saw %d of %d cancelled requests end; the others worked on for nobody", got, n)
			}
		})
	}
}
