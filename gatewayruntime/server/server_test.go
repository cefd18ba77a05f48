package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/filter"
	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
)

// start serves h on a loopback port and returns its address.
func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Close)
	return s, ln.Addr().String()
}

// dial connects to addr with a 5 s deadline; the test closes it at the end.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// raw sends bytes on a new connection and returns everything read until the
// server closes it (or the deadline).
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Raw-Path", r.URL.RawPath)
		w.Header().Set("X-Query", r.URL.RawQuery)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Header", r.Header.Get("X-Test"))
		w.Header().Set("X-Has-State", fmt.Sprint(filter.StateFrom(r.Context()) != nil))
		_, _ = w.Write(body)
	})
}

func TestServeWithNetHTTPClient(t *testing.T) {
	_, addr := start(t, Config{Handler: echoHandler()})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	tests := []struct {
		name, method, path, body string
		chunked                  bool
		want                     map[string]string
	}{
		{"get", "GET", "/a/b?x=1&y=2", "", false, map[string]string{"X-Method": "GET", "X-Path": "/a/b", "X-Query": "x=1&y=2", "X-Has-State": "true"}},
		{"escaped path", "GET", "/a%2Fb/c%20d", "", false, map[string]string{"X-Path": "/a/b/c d", "X-Raw-Path": "/a%2Fb/c%20d"}},
		{"post length", "POST", "/p", "hello", false, map[string]string{"X-Method": "POST"}},
		{"post chunked", "POST", "/p", strings.Repeat("chunk", 10000), true, map[string]string{"X-Method": "POST"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: the client sends chunked
			}
			req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, body)
			req.Header.Set("X-Test", "v")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != tt.body {
				t.Fatalf("status %d body %q", resp.StatusCode, got)
			}
			for k, v := range tt.want {
				if resp.Header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if resp.Header.Get("X-Header") != "v" || resp.Header.Get("Date") == "" {
				t.Errorf("headers %v", resp.Header)
			}
		})
	}
}

func TestWireBehaviour(t *testing.T) {
	h := http.NewServeMux()
	h.HandleFunc("/cl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	})
	h.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "b")
	})
	h.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	h.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	h.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
	})
	h.HandleFunc("/body", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	h.HandleFunc("/ignorebody", func(w http.ResponseWriter, r *http.Request) {})
	h.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	_, addr := start(t, Config{Handler: h, MaxHeaderBytes: 1024})
	tests := []struct {
		name string
		req  string
		want []string // substrings, in order
		not  []string
	}{
		{"content length kept", "GET /cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n", "\r\n\r\nok"}, []string{"chunked"}},
		{"flush makes chunked", "GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"Transfer-Encoding: chunked\r\n", "\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"}, nil},
		{"empty handler gets length 0", "GET /empty HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "Content-Length: 0\r\n"}, nil},
		{"204 has no framing", "GET /nocontent HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 204 No Content\r\n"}, []string{"Content-Length", "chunked"}},
		{"head has no body", "HEAD /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n"}, []string{"\r\n\r\n1"}},
		{"pipelined", "GET /cl HTTP/1.1\r\nHost: a\r\n\r\nGET /cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"\r\n\r\nokHTTP/1.1 200 OK\r\n", "Connection: close\r\n"}, nil},
		{"http/1.0 closes", "GET /stream HTTP/1.0\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "Connection: close\r\n", "\r\nab"}, []string{"chunked"}},
		{"http/1.0 keep-alive", "GET /cl HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /cl HTTP/1.0\r\n\r\n",
			[]string{"Connection: keep-alive\r\n", "okHTTP/1.1 200 OK"}, nil},
		{"handler asks to close", "GET /close HTTP/1.1\r\nHost: a\r\n\r\nGET /cl HTTP/1.1\r\nHost: a\r\n\r\n",
			[]string{"Connection: close\r\n"}, []string{"ok"}},
		{"unread body is skipped", "POST /ignorebody HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK", "\r\n\r\nok"}, nil},
		{"chunked body", "POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
			[]string{"abcde"}, nil},
		{"expect continue", "POST /body HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
			[]string{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", "hi"}, nil},
		{"no continue when the body is not read", "POST /ignorebody HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
			// The client still holds its body: the connection cannot carry
			// another request, and the response says so.
			[]string{"HTTP/1.1 200 OK", "Connection: close\r\n"}, []string{"100 Continue"}},
		{"a large unread body ends the connection", "POST /ignorebody HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\nstart",
			[]string{"HTTP/1.1 200 OK", "Connection: close\r\n"}, nil},
		{"a small unread body does not", "POST /ignorebody HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]string{"HTTP/1.1 200 OK\r\n", "Content-Length: 0\r\n\r\nHTTP/1.1 200 OK"}, nil},
		{"malformed", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
			[]string{"HTTP/1.1 400 Bad Request\r\n", "application/problem+json", "Connection: close", "both Transfer-Encoding and Content-Length"}, nil},
		{"bad escape", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 400 Bad Request\r\n"}, nil},
		{"oversized head", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n",
			[]string{"HTTP/1.1 431 Request Header Fields Too Large\r\n"}, nil},
		{"oversized target", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: a\r\n\r\n",
			[]string{"HTTP/1.1 414 Request URI Too Long\r\n", "application/problem+json"}, nil},
		{"oversized target, line unfinished", "GET /" + strings.Repeat("a", 5000),
			[]string{"HTTP/1.1 414 Request URI Too Long\r\n"}, nil},
		{"unsupported version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 505 "}, nil},
		{"absolute form", "GET http://b.example/cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", []string{"HTTP/1.1 200 OK\r\n", "\r\n\r\nok"}, nil},
		{"absolute form with a malformed host", "GET http://a\"b<x>/cl HTTP/1.1\r\nHost: a\r\n\r\n",
			[]string{"HTTP/1.1 400 Bad Request\r\n", "malformed host"}, []string{"ok"}},
		{"no continue for HTTP/1.0", "POST /body HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
			[]string{"HTTP/1.1 200 OK", "hi"}, []string{"100 Continue"}},
		{"abort closes without response", "GET /panic HTTP/1.1\r\nHost: a\r\n\r\n", nil, []string{"HTTP/1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := raw(t, addr, tt.req)
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("missing %q in\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Fatalf("unexpected %q in\n%s", n, got)
				}
			}
		})
	}
}

func TestSlowHeadersAreRefused(t *testing.T) {
	var rejected []int
	var mu sync.Mutex
	_, addr := start(t, Config{Handler: echoHandler(), ReadHeaderTimeout: 200 * time.Millisecond,
		Rejected: func(s int) string { mu.Lock(); rejected = append(rejected, s); mu.Unlock(); return "" }})
	c := dial(t, addr)
	// A slowloris client: one header line, then nothing.
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n")
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 408 ") {
		t.Fatalf("got %q", b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rejected) != 1 || rejected[0] != 408 {
		t.Fatalf("rejected = %v", rejected)
	}
}

func TestIdleConnectionIsClosed(t *testing.T) {
	_, addr := start(t, Config{Handler: echoHandler(), IdleTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after idle timeout: %v, want EOF", err)
	}
}

func TestHijack(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo:" + line)
		_ = brw.Flush()
	})
	_, addr := start(t, Config{Handler: h})
	// The bytes after the head arrive with it and must reach the hijacker.
	got := raw(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nhello\n")
	if !strings.HasSuffix(got, "\r\n\r\necho:hello\n") {
		t.Fatalf("got %q", got)
	}
}

func TestTLSWithHTTP1AndHTTP2(t *testing.T) {
	var protos sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, r.TLS != nil)
		_, _ = io.WriteString(w, r.Proto)
	})
	s := New(Config{Handler: h})
	t.Cleanup(s.Close)
	ts := httptest.NewUnstartedServer(nil) // only for its certificate
	ts.EnableHTTP2 = true
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ts.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.ServeTLS(ln, &tls.Config{Certificates: []tls.Certificate{cert}}) }()
	url := "https://" + ln.Addr().String() + "/"
	for _, tc := range []struct {
		name  string
		h2    bool
		proto string
	}{{"http/1.1", false, "HTTP/1.1"}, {"h2", true, "HTTP/2.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}, ForceAttemptHTTP2: tc.h2}
			if !tc.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(url)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != tc.proto || string(b) != tc.proto {
				t.Fatalf("client proto %s, handler saw %q", resp.Proto, b)
			}
			if v, _ := protos.Load(tc.proto); v != true {
				t.Fatalf("handler saw no TLS state for %s", tc.proto)
			}
		})
	}
}

func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	s, addr := start(t, Config{Handler: h})
	// An idle keep-alive connection and a request in flight.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	ibr := bufio.NewReader(idle)
	resp, err := http.ReadResponse(ibr, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	type result struct {
		body  string
		err   error
		close bool
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{string(b), err, resp.Close}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// The idle connection is closed; the listener refuses new connections.
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ibr.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if i > 100 {
			t.Fatal("listener still accepting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	r := <-done
	if r.err != nil || r.body != "done" || !r.close {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

func TestStateIsResetBetweenRequests(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := filter.StateFrom(r.Context())
		_, _ = fmt.Fprintf(w, "%q", st.RequestID)
		st.RequestID = "set-by-" + r.URL.Path
	})
	_, addr := start(t, Config{Handler: h})
	// The server hands the same State to each request; the gateway Resets it,
	// here the handler sees what the previous request left only because nobody did.
	got := raw(t, addr, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, `""`) || !strings.Contains(got, `"set-by-/1"`) {
		t.Fatalf("got %q", got)
	}
}

// The next request can arrive while the handler of the previous one runs
// (a pipelining client, or one whose bytes come in separate segments): the
// wait that follows the response must not miss it.
func TestRequestArrivingDuringTheHandler(t *testing.T) {
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	_, addr := start(t, Config{Handler: h})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		<-started
		// Sent while the handler runs, in parts.
		_, _ = io.WriteString(c, "GET /next HTTP/1.1\r\n")
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(c, "Host: a\r\n\r\n")
		time.Sleep(5 * time.Millisecond)
		release <- struct{}{}
		for _, want := range []string{"/slow", "/next"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d, %s: %v", i, want, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != want {
				t.Fatalf("round %d: got %q, want %q", i, b, want)
			}
		}
	}
}

// Requests with and without bodies alternate on one connection (the server
// serves the first kind inside the socket's raw read and the second outside).
func TestBodiesAndBodylessRequestsAlternate(t *testing.T) {
	_, addr := start(t, Config{Handler: echoHandler()})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	reqs := []struct{ wire, body string }{
		{"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		{"GET /c HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"POST /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "abc"},
		{"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi", "hi"},
		{"GET /f HTTP/1.1\r\nHost: a\r\n\r\n", ""},
	}
	for _, rq := range reqs {
		_, _ = io.WriteString(c, rq.wire)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", rq.wire, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != rq.body || resp.Header.Get("X-Path") != strings.Fields(rq.wire)[1] {
			t.Fatalf("%q: body %q, path %q", rq.wire, b, resp.Header.Get("X-Path"))
		}
	}
}

func TestHijackNeedsAnUpgradeField(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := http.NewResponseController(w).Hijack(); err == nil {
			t.Error("hijack of a request without Upgrade succeeded")
		}
		_, _ = io.WriteString(w, "not hijacked")
	})
	_, addr := start(t, Config{Handler: h})
	if got := raw(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !strings.Contains(got, "not hijacked") {
		t.Fatalf("got %q", got)
	}
}

// TestPinnedField: a pinned field is written once, ahead of the handler's
// fields, replacing a same-named Header entry and an upstream head's field,
// and does not outlive its request.
func TestPinnedField(t *testing.T) {
	type pinner interface{ PinField(name, value string) }
	type upstreamHead interface {
		WriteUpstreamHead(status int, fields []http1.FieldBytes, contentLength int64)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/unpinned" {
			w.(pinner).PinField("X-Request-Id", "pinned-"+r.URL.Path[1:])
		}
		w.Header().Set("X-Request-Id", "from-the-map")
		w.Header().Set("X-Other", "kept")
		if r.URL.Path == "/upstream" {
			w.(upstreamHead).WriteUpstreamHead(200, []http1.FieldBytes{
				{Name: []byte("x-request-id"), Value: []byte("from-upstream")},
				{Name: []byte("X-Up"), Value: []byte("1")},
			}, 0)
		}
	})
	_, addr := start(t, Config{Handler: h})
	got := raw(t, addr, "GET /plain HTTP/1.1\r\nHost: a\r\n\r\nGET /upstream HTTP/1.1\r\nHost: a\r\n\r\n"+
		"GET /unpinned HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	heads := strings.Split(got, "HTTP/1.1 200 OK\r\n")[1:]
	if len(heads) != 3 {
		t.Fatalf("want 3 responses, got %q", got)
	}
	for i, want := range []struct{ id, more string }{
		{"pinned-plain", "X-Other: kept\r\n"},
		{"pinned-upstream", "X-Up: 1\r\n"},
		{"from-the-map", "X-Other: kept\r\n"},
	} {
		head := heads[i]
		if n := strings.Count(strings.ToLower(head), "x-request-id:"); n != 1 {
			t.Errorf("response %d: %d request id fields in %q", i, n, head)
		}
		if !strings.Contains(head, "X-Request-Id: "+want.id+"\r\n") || !strings.Contains(head, want.more) {
			t.Errorf("response %d: want X-Request-Id %s and %q in %q", i, want.id, want.more, head)
		}
	}
	if !strings.HasPrefix(heads[0], "X-Request-Id: pinned-plain\r\n") {
		t.Errorf("the pinned field is not first: %q", heads[0])
	}
}

// TestUpstreamHeadDate: a forwarded head carries exactly one Date, the
// upstream's when it sent one (in any case), the gateway's clock's otherwise
// (RFC 9110 §6.6.1).
func TestUpstreamHeadDate(t *testing.T) {
	type upstreamHead interface {
		WriteUpstreamHead(status int, fields []http1.FieldBytes, contentLength int64)
	}
	tests := []struct {
		path   string
		fields []http1.FieldBytes
		want   string // "" : the gateway's date
	}{
		{"/none", []http1.FieldBytes{{Name: []byte("X-Up"), Value: []byte("1")}}, ""},
		{"/upstream", []http1.FieldBytes{{Name: []byte("Date"), Value: []byte("Tue, 01 Jan 2030 00:00:00 GMT")}}, "Tue, 01 Jan 2030 00:00:00 GMT"},
		{"/lower", []http1.FieldBytes{{Name: []byte("date"), Value: []byte("Wed, 02 Jan 2030 00:00:00 GMT")}}, "Wed, 02 Jan 2030 00:00:00 GMT"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.(upstreamHead).WriteUpstreamHead(200, tt.fields, 0)
			})
			_, addr := start(t, Config{Handler: h})
			got := raw(t, addr, "GET "+tt.path+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			head, _, _ := strings.Cut(got, "\r\n\r\n")
			var dates []string
			for _, line := range strings.Split(head, "\r\n")[1:] {
				if name, value, _ := strings.Cut(line, ": "); strings.EqualFold(name, "Date") {
					dates = append(dates, value)
				}
			}
			if len(dates) != 1 {
				t.Fatalf("want one Date field, got %q in %q", dates, head)
			}
			if tt.want != "" && dates[0] != tt.want {
				t.Fatalf("Date %q, want the upstream's %q", dates[0], tt.want)
			}
			if tt.want == "" {
				if d, err := http.ParseTime(dates[0]); err != nil || time.Since(d).Abs() > time.Minute {
					t.Fatalf("Date %q is not now (%v)", dates[0], err)
				}
			}
		})
	}
}

// TestResponsesAreNotHeldBack: a response goes out before the server waits
// for more from the client or ends the connection, whatever bytes follow the
// request: a stray CRLF (RFC 9112 §2.2), part of the next head, the rest of a
// body the handler did not read, or the client's FIN. The timeouts are long,
// so a response held back until one of them fires misses the test's deadline.
func TestResponsesAreNotHeldBack(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		echoHandler().ServeHTTP(w, r)
	})
	_, addr := start(t, Config{Handler: h, ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute, BodyIdleTimeout: time.Minute})
	tests := []struct {
		name      string
		send      string
		closeSend bool
		want      []string // status lines, in order
	}{
		{"stray CRLF after a body", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\r\n", false, []string{"200"}},
		{"stray CRLF after a GET", "GET /a HTTP/1.1\r\nHost: a\r\n\r\n\r\n", false, []string{"200"}},
		{"stray CRLF, then FIN", "GET /a HTTP/1.1\r\nHost: a\r\n\r\n\r\n", true, []string{"200"}},
		{"part of the next head", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHo", false, []string{"200"}},
		{"part of the next head, then FIN", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HT", true, []string{"200"}},
		{"two whole requests", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", false, []string{"200", "200"}},
		{"body the handler did not read, not all sent", "POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", false, []string{"404"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			if tt.closeSend {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			br := bufio.NewReader(c)
			for i, want := range tt.want {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v (want %s)", i+1, err, want)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if got := strconv.Itoa(resp.StatusCode); got != want {
					t.Fatalf("response %d: status %s, want %s", i+1, got, want)
				}
			}
		})
	}
}

// TestDrainSaysClose: between Drain (SIGTERM) and Shutdown the server still
// serves, new connections included, but every response tells its client to
// close, so keep-alive clients move away before their connection is closed
// under a request.
func TestDrainSaysClose(t *testing.T) {
	s, addr := start(t, Config{Handler: echoHandler()})
	get := func() (status int, closes bool) {
		t.Helper()
		c := dial(t, addr)
		_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Close
	}
	if _, closes := get(); closes {
		t.Fatal("Connection: close before Drain")
	}
	s.Drain()
	if status, closes := get(); status != 200 || !closes {
		t.Fatalf("after Drain: %d, close %v; want 200 and Connection: close", status, closes)
	}
}

// TestShutdownWaitsForUpgradedConnections: a hijacked connection (a
// WebSocket tunnel) is in flight like a request: Shutdown waits for it within
// its grace instead of returning (and the process exiting) under it.
func TestShutdownWaitsForUpgradedConnections(t *testing.T) {
	hijacked := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		close(hijacked)
		_, _ = io.Copy(io.Discard, brw) // until the client closes the tunnel
	})
	s, addr := start(t, Config{Handler: h})
	c := dial(t, addr)
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	<-hijacked
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned under an open tunnel: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown did not return once the tunnel closed")
	}
}

// TestRefusalReachesAClientStillSending: a refused request whose client is
// still sending (a head far over the limit) must still get its answer.
// Closing with unread bytes makes the kernel send a reset, and a Go client
// still writing then reports the failed write instead of the 431.
func TestRefusalReachesAClientStillSending(t *testing.T) {
	_, addr := start(t, Config{Handler: echoHandler(), MaxHeaderBytes: 4 << 10})
	for i := range 20 {
		req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Big", strings.Repeat("a", 1<<20))
		tr := &http.Transport{}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("attempt %d: status %d", i, resp.StatusCode)
		}
	}
}
