package gateway

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatekiln/gatekiln/gatewayruntime/bundle"
)

func TestProxyForwardsRequestAndResponse(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Up-Hop")
		w.Header().Set("X-Up-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Up", "visible")
		w.Header().Set("X-Request-Id", "upstream-made-this")
		_, _ = io.WriteString(w, "hello")
	})
	h := newHarness(t, testAPI(), bindingTo(up.url+"/base/"))
	r := h.do("GET", "/v1/items/42/parts/a%2Fb?q=1&r=%20", nil, map[string]string{
		"X-Custom":            "kept",
		"Connection":          "X-Hop",
		"X-Hop":               "dropped",
		"Proxy-Authorization": "Basic dropped",
		"X-Request-Id":        "client-id-1",
		"Host":                "api.example.com",
	})
	if r.status != 200 || r.body != "hello" {
		t.Fatalf("reply %d %q", r.status, r.body)
	}
	req, _ := up.request()
	checks := []struct{ what, got, want string }{
		{"upstream request URI", req.RequestURI, "/base/items/42/parts/a%2Fb?q=1&r=%20"},
		{"upstream Host", req.Host, up.addr},
		{"X-Custom", req.Header.Get("X-Custom"), "kept"},
		{"X-Hop", req.Header.Get("X-Hop"), ""},
		{"Proxy-Authorization", req.Header.Get("Proxy-Authorization"), ""},
		{"X-Request-Id upstream", req.Header.Get("X-Request-Id"), "client-id-1"},
		{"X-Forwarded-For", req.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		{"X-Forwarded-Host", req.Header.Get("X-Forwarded-Host"), "api.example.com"},
		{"X-Forwarded-Proto", req.Header.Get("X-Forwarded-Proto"), "http"},
		{"Forwarded (off by default)", req.Header.Get("Forwarded"), ""},
		{"response X-Up", r.header.Get("X-Up"), "visible"},
		{"response X-Up-Hop", r.header.Get("X-Up-Hop"), ""},
		{"response Keep-Alive", r.header.Get("Keep-Alive"), ""},
		{"response X-Request-Id", strings.Join(r.header.Values("X-Request-Id"), ","), "client-id-1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestForwardingFieldsCannotBeSpoofed(t *testing.T) {
	up := newUpstream(t, nil)
	spoof := map[string]string{
		"X-Forwarded-For":    "6.6.6.6",
		"X-Forwarded-Host":   "evil.example",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-Port":   "8443",
		"X-Forwarded-Prefix": "/evil",
		"Forwarded":          "for=6.6.6.6;proto=https",
		"X-Real-Ip":          "6.6.6.6",
		"Host":               "api.example.com",
		// CGI, WSGI and PHP upstreams read these as X-Forwarded-For and
		// X-Request-Id (HTTP_X_FORWARDED_FOR).
		"X_Forwarded_For": "6.6.6.6",
		"X_Request_Id":    "evil",
	}
	tests := []struct {
		name    string
		trusted []string
		rfc7239 bool     // Binding server.forwardedHeader
		omit    []string // spoof fields not sent
		want    map[string]string
	}{
		{"untrusted client", nil, false, nil, map[string]string{
			"X-Forwarded-For":    "127.0.0.1",
			"X-Forwarded-Host":   "api.example.com",
			"X-Forwarded-Proto":  "http",
			"X-Forwarded-Port":   "",
			"X-Forwarded-Prefix": "",
			"Forwarded":          "",
			"X-Real-Ip":          "",
			"X_Forwarded_For":    "",
			"X_Request_Id":       "",
		}},
		{"untrusted client, Forwarded on", nil, true, nil, map[string]string{
			"X-Forwarded-For": "127.0.0.1",
			"Forwarded":       `for=127.0.0.1;host="api.example.com";proto=http`,
			"X-Real-Ip":       "",
		}},
		{"trusted proxy sending only X-Forwarded-*, Forwarded on", []string{"127.0.0.1/32"}, true, []string{"Forwarded"}, map[string]string{
			"X-Forwarded-For": "6.6.6.6, 127.0.0.1",
			// The client, not the proxy in front, for upstreams that read Forwarded.
			"Forwarded": `for=6.6.6.6, for=127.0.0.1;host="evil.example";proto=https`,
		}},
		{"trusted proxy in front", []string{"127.0.0.1/32"}, false, nil, map[string]string{
			"X-Forwarded-For":    "6.6.6.6, 127.0.0.1",
			"X-Forwarded-Host":   "evil.example",
			"X-Forwarded-Proto":  "https",
			"X-Forwarded-Port":   "8443",
			"X-Forwarded-Prefix": "/evil",
			"Forwarded":          `for=6.6.6.6;proto=https, for=127.0.0.1;host="evil.example";proto=https`,
			"X-Real-Ip":          "",
			"X_Forwarded_For":    "",
			"X_Request_Id":       "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bindingTo(up.url)
			b.Server = &bundle.ServerBinding{TrustedProxies: tt.trusted, ForwardedHeader: tt.rfc7239}
			h := newHarness(t, testAPI(), b)
			send := maps.Clone(spoof)
			for _, k := range tt.omit {
				delete(send, k)
			}
			if r := h.do("GET", "/v1/items", nil, send); r.status != 200 {
				t.Fatalf("status %d", r.status)
			}
			req, _ := up.request()
			for k, v := range tt.want {
				if got := strings.Join(req.Header.Values(k), " | "); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestConnectionNominatesOnlyTheClientsFields: the fields a client names in
// Connection are its own hop's and go (RFC 9110 §7.6.1), but naming the
// fields the gateway sets does not take them away from the upstream.
// TestNoHostNoForwardedHost: an HTTP/1.0 request without Host forwards no
// X-Forwarded-Host rather than an empty one.
func TestNoHostNoForwardedHost(t *testing.T) {
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	c := h.dial(t)
	if _, err := io.WriteString(c, "GET /v1/items HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if status, _, err := readAnswer(bufio.NewReader(c)); err != nil || status != 200 {
		t.Fatalf("status %d, %v", status, err)
	}
	req, _ := up.request()
	if v, ok := req.Header["X-Forwarded-Host"]; ok {
		t.Fatalf("X-Forwarded-Host %q forwarded for a request without a host", v)
	}
	if req.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For %q", req.Header.Get("X-Forwarded-For"))
	}
}

func TestConnectionNominatesOnlyTheClientsFields(t *testing.T) {
	up := newUpstream(t, nil)
	b := bindingTo(up.url)
	b.Server = &bundle.ServerBinding{ForwardedHeader: true}
	h := newHarness(t, testAPI(), b)
	r := h.do("GET", "/v1/items", nil, map[string]string{
		"Connection": "keep-alive, X-Secret, X-Request-Id, X-Forwarded-For, Forwarded",
		"X-Secret":   "for the next hop only",
	})
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	req, _ := up.request()
	if v := req.Header.Get("X-Secret"); v != "" {
		t.Errorf("X-Secret = %q reached the upstream", v)
	}
	if got, want := req.Header.Get("X-Request-Id"), r.header.Get("X-Request-Id"); got == "" || got != want {
		t.Errorf("upstream X-Request-Id %q, want the gateway's %q", got, want)
	}
	if v := req.Header.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", v)
	}
	if v := req.Header.Get("Forwarded"); !strings.HasPrefix(v, "for=127.0.0.1") {
		t.Errorf("Forwarded = %q", v)
	}
	if v := req.Header.Get("Connection"); strings.Contains(v, "X-") {
		t.Errorf("Connection = %q still names fields", v)
	}
}

// TestOverrideFieldsAreDropped: the gateway routes and authorizes by the
// request's own method, path and peer, so the fields that would make an
// upstream take the request for another method, path or client never reach it.
func TestOverrideFieldsAreDropped(t *testing.T) {
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	override := map[string]string{
		"X-HTTP-Method-Override": "DELETE",
		"X-HTTP-Method":          "DELETE",
		"X-Method-Override":      "PUT",
		"X_HTTP_Method_Override": "DELETE",
		"X-Original-URL":         "/admin",
		"X-Rewrite-URL":          "/admin",
		"X_Original_URL":         "/admin",
		"True-Client-IP":         "10.0.0.1",
		"Client-IP":              "10.0.0.1",
		"X-Client-IP":            "10.0.0.1",
		"X-Cluster-Client-IP":    "10.0.0.1",
		"X-Client-Cert":          "forged",
		"X-SSL-Client-S-DN":      "CN=admin",
		"X-SSL-Client-Verify":    "SUCCESS",
	}
	if r := h.do("POST", "/v1/items", strings.NewReader("{}"), override); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	req, _ := up.request()
	for k := range override {
		if v := req.Header.Values(k); len(v) > 0 {
			t.Errorf("upstream got %s: %v", k, v)
		}
	}
}

func TestRequestBodies(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("Content-Length")+"|"+strings.Join(r.TransferEncoding, ","))
	})
	api := testAPI()
	h := newHarness(t, api, bindingTo(up.url))
	big := strings.Repeat("0123456789", 200_000) // 2 MB
	tests := []struct {
		name    string
		body    io.Reader
		want    string
		wantLen string
	}{
		{"length", strings.NewReader(big), big, "2000000|"},
		{"chunked", io.MultiReader(strings.NewReader(big)), big, "|chunked"},
		{"empty post", nil, "", "0|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/v1/items", tt.body, nil)
			if r.status != 200 || r.body != tt.wantLen {
				t.Fatalf("reply %d %q", r.status, r.body)
			}
			if _, body := up.request(); body != tt.want {
				t.Fatalf("upstream got %d bytes, want %d", len(body), len(tt.want))
			}
		})
	}
}

// TestEarlyAnswerToABody: an upstream that answers a large request before
// reading its body, then closes (which resets the gateway's writes), has
// answered: the client gets that answer, not a 502, whether its body was sent
// with a length or chunked.
func TestEarlyAnswerToABody(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\nX-Up: early\r\n\r\ntoo large")
		time.Sleep(50 * time.Millisecond)
	})
	h := newHarness(t, testAPI(), bindingTo(up))
	big := strings.Repeat("0123456789", 800_000) // 8 MB: more than the socket buffers hold
	for _, framing := range []string{"Content-Length: 8000000\r\n", "Transfer-Encoding: chunked\r\n"} {
		name, _, _ := strings.Cut(framing, ":")
		t.Run(name, func(t *testing.T) {
			c := h.dial(t)
			go func() {
				_, _ = io.WriteString(c, "POST /v1/items HTTP/1.1\r\nHost: gw\r\n"+framing+"\r\n")
				if strings.HasPrefix(framing, "Transfer") {
					_, _ = fmt.Fprintf(c, "%x\r\n%s\r\n0\r\n\r\n", len(big), big)
				} else {
					_, _ = io.WriteString(c, big)
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 413 || string(b) != "too large" || resp.Header.Get("X-Up") != "early" {
				t.Fatalf("got %d %q, want the upstream's early 413", resp.StatusCode, b)
			}
		})
	}
}

// TestSlowUploadIsNotAnUpstreamTimeout: the route timeout runs from the
// request sent to the response head, so a client that takes longer than it
// to upload a body (but keeps sending) is served, and the upstream is not
// blamed.
func TestSlowUploadIsNotAnUpstreamTimeout(t *testing.T) {
	up := newUpstream(t, nil)
	api := testAPI(bundle.Route{Method: "POST", Path: "/v1/items", Timeout: bundle.Duration(300 * time.Millisecond)})
	h := newHarness(t, api, bindingTo(up.url))
	c := h.dial(t)
	if _, err := io.WriteString(c, "POST /v1/items HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for _, b := range "abcdef" {
		time.Sleep(100 * time.Millisecond)
		if _, err := io.WriteString(c, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200: a slow upload is not the upstream's delay", resp.StatusCode)
	}
	if _, body := up.request(); body != "abcdef" {
		t.Fatalf("upstream got %q", body)
	}
	if n := testutil.ToFloat64(h.g.metrics.UpstreamErrorsCounter("backend", up.url, "timeout")); n != 0 {
		t.Fatalf("%v upstream timeouts counted", n)
	}
}

func TestBodyLimit(t *testing.T) {
	up := newUpstream(t, nil)
	api := testAPI(bundle.Route{Method: "POST", Path: "/v1/items", Validation: bundle.Validation{MaxBodyBytes: 10}})
	h := newHarness(t, api, bindingTo(up.url))
	for _, tc := range []struct {
		name string
		body io.Reader
	}{
		{"declared length", strings.NewReader(strings.Repeat("x", 11))},
		{"chunked", io.MultiReader(strings.NewReader(strings.Repeat("x", 100_000)))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			r := h.do("POST", "/v1/items", tc.body, nil)
			if r.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d %q", r.status, r.body)
			}
			problemOf(t, r)
			// The rest of a chunked body is not read: the client must not
			// send another request on this connection (net/http's
			// MaxBytesReader says so too). A small declared one is drained.
			if chunked := tc.name != "declared length"; r.close != chunked {
				t.Fatalf("Connection: close is %v, want %v", r.close, chunked)
			}
			if tc.name == "declared length" && up.hits.Load() != before {
				t.Fatal("a request refused by its declared length reached the upstream")
			}
		})
	}
	if r := h.do("POST", "/v1/items", strings.NewReader("0123456789"), nil); r.status != 200 {
		t.Fatalf("a body at the limit: %d", r.status)
	}
}

// TestBodyLimitReachesAnUploadingClient: a client still sending a large
// body when the gateway answers 413 gets the 413, not a reset: the gateway
// closes its side and reads on until the client closes (lingeringClose).
func TestBodyLimitReachesAnUploadingClient(t *testing.T) {
	up := newUpstream(t, nil)
	api := testAPI(bundle.Route{Method: "POST", Path: "/v1/items", Validation: bundle.Validation{MaxBodyBytes: 1 << 10}})
	h := newHarness(t, api, bindingTo(up.url))
	for _, chunked := range []bool{false, true} {
		for i := range 10 {
			var body io.Reader = bytes.NewReader(make([]byte, 8<<20))
			if chunked {
				body = io.MultiReader(body)
			}
			req, err := http.NewRequest("POST", h.url+"/v1/items", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("chunked %v, attempt %d: %v", chunked, i, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("chunked %v, attempt %d: status %d", chunked, i, resp.StatusCode)
			}
		}
	}
}

// rawUpstream serves each connection with fn, after reading its first request.
func rawUpstream(t *testing.T, fn func(c net.Conn)) string {
	t.Helper()
	return rawUpstreamReq(t, func(c net.Conn, _ *http.Request) { fn(c) })
}

// rawUpstreamReq serves each connection with fn, given its first request.
func rawUpstreamReq(t *testing.T, fn func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				fn(c, req)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestErrorsAreProblems(t *testing.T) {
	slow := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	garbage := rawUpstream(t, func(c net.Conn) { _, _ = io.WriteString(c, "NOT HTTP AT ALL\r\n\r\n") })
	// A bare CR in a field value would split the response at some clients.
	splitting := rawUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: session=evil\r\nContent-Length: 2\r\n\r\nok")
	})
	// An upstream whose body fails at its first byte, which came with the
	// head: nothing has reached the client, which gets a 502 rather than a
	// dropped connection. (A head whose body is not there yet goes to the
	// client at once, for streams; a failure after that drops the
	// connection, see TestUpstreamBreakingOffMidBodyIsNotAWholeResponse.)
	badChunk := rawUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	})
	nul := rawUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok")
	})
	tests := []struct {
		name    string
		api     *bundle.Bundle
		binding *bundle.Binding
		method  string
		path    string
		status  int
		allow   string
	}{
		{"upstream refuses", testAPI(), bindingTo("http://" + closedAddr(t)), "GET", "/v1/items", 502, ""},
		{"upstream speaks garbage", testAPI(), bindingTo(garbage), "GET", "/v1/items", 502, ""},
		{"upstream field with a bare CR", testAPI(), bindingTo(splitting), "GET", "/v1/items", 502, ""},
		{"upstream field with a NUL", testAPI(), bindingTo(nul), "GET", "/v1/items", 502, ""},
		{"upstream body malformed from its first byte", testAPI(), bindingTo(badChunk), "GET", "/v1/items", 502, ""},
		{"upstream too slow", testAPI(bundle.Route{Method: "GET", Path: "/v1/items", Timeout: bundle.Duration(200 * time.Millisecond)}),
			bindingTo(slow.url), "GET", "/v1/items", 504, ""},
		{"route without endpoint", testAPI(bundle.Route{Method: "GET", Path: "/v1/items", Endpoint: "-"}), bindingTo(), "GET", "/v1/items", 503, ""},
		{"endpoint without url", testAPI(), bindingTo(), "GET", "/v1/items", 503, ""},
		{"no such path", testAPI(), bindingTo(slow.url), "GET", "/v1/nothing", 404, ""},
		{"trailing slash", testAPI(), bindingTo(slow.url), "GET", "/v1/items/", 404, ""},
		{"no such method", testAPI(), bindingTo(slow.url), "PATCH", "/v1/items/1", 405, "DELETE, GET, HEAD, OPTIONS, PUT"},
		{"dot segment", testAPI(), bindingTo(slow.url), "GET", "/v1/items/%2e%2e", 400, ""},
		{"dot segment behind a backslash", testAPI(), bindingTo(slow.url), "GET", "/v1/items/1%5C..%5Cadmin", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.api, tt.binding)
			r := h.do(tt.method, tt.path, nil, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %q", r.status, tt.status, r.body)
			}
			d := problemOf(t, r)
			for _, leak := range []string{"127.0.0.1", "refused", "dial", "timeout", "NOT HTTP", "malformed status"} {
				if strings.Contains(d.Detail, leak) {
					t.Fatalf("detail %q names upstream internals", d.Detail)
				}
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Fatalf("Allow = %q, want %q", r.header.Get("Allow"), tt.allow)
			}
		})
	}
}

// TestMalformedRequestsAreProblems: requests the server refuses before any
// handler runs get the same problem documents as the gateway's other errors:
// a request id (in the body and in X-Request-Id), no-store, nosniff, a Date,
// and the connection closed.
func TestMalformedRequestsAreProblems(t *testing.T) {
	h := newHarness(t, testAPI(), bindingTo(closedAddr(t)), func(c *Config) { c.Server.MaxHeaderBytes = 1024 })
	tests := []struct {
		name, req string
		status    int
		detail    string
	}{
		{"two Host fields", "GET /v1/items HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "a request needs exactly one Host field"},
		{"bare LF", "GET /v1/items HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF in message head"},
		{"head too large", "GET /v1/items HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 2048) + "\r\n\r\n", 431, ""},
		{"unknown version", "GET /v1/items HTTP/1.7\r\nHost: a\r\n\r\n", 505, ""},
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.dial(t)
			if _, err := io.WriteString(c, tt.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := reply{resp.StatusCode, resp.Header, string(b), resp.Close}
			if r.status != tt.status || !r.close {
				t.Fatalf("status %d, close %v: %q", r.status, r.close, r.body)
			}
			d := problemOf(t, r)
			if tt.detail != "" && d.Detail != tt.detail {
				t.Errorf("detail %q, want %q", d.Detail, tt.detail)
			}
			for k, want := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			if _, err := http.ParseTime(r.header.Get("Date")); err != nil {
				t.Errorf("Date %q: %v", r.header.Get("Date"), err)
			}
			if ids[d.RequestID] {
				t.Errorf("request id %q used twice", d.RequestID)
			}
			ids[d.RequestID] = true
		})
	}
}

func TestUpstreamBreakingOffMidBodyIsNotAWholeResponse(t *testing.T) {
	cut := rawUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
	})
	h := newHarness(t, testAPI(), bindingTo(cut))
	resp, err := client.Get(h.url + "/v1/items")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %q, err %v: want an unexpected EOF", b, err)
	}
}

func TestHeadAndOptions(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		if r.Method != http.MethodHead {
			_, _ = io.WriteString(w, "hello")
		}
	})
	h := newHarness(t, testAPI(), bindingTo(up.url))
	r := h.do("HEAD", "/v1/items/1", nil, nil)
	if req, _ := up.request(); r.status != 200 || req.Method != "HEAD" || r.body != "" || r.header.Get("Content-Length") != "5" {
		t.Fatalf("HEAD: %d %q %v (upstream saw %s)", r.status, r.body, r.header, req.Method)
	}
	before := up.hits.Load()
	r = h.do("OPTIONS", "/v1/items/1", nil, nil)
	if r.status != 204 || r.header.Get("Allow") != "DELETE, GET, HEAD, OPTIONS, PUT" || up.hits.Load() != before {
		t.Fatalf("OPTIONS: %d %v", r.status, r.header)
	}
}

func TestRequestID(t *testing.T) {
	up := newUpstream(t, nil)
	h := newHarness(t, testAPI(), bindingTo(up.url))
	for _, tc := range []struct {
		name, sent string
		keep       bool
	}{
		{"kept", "abc-123_x.y:z", true},
		{"made when missing", "", false},
		{"replaced when unsafe", "bad id <script>", false},
		{"replaced when long", strings.Repeat("a", 200), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.sent != "" {
				hdr["X-Request-Id"] = tc.sent
			}
			r := h.do("GET", "/v1/items", nil, hdr)
			got := r.header.Get("X-Request-Id")
			req, _ := up.request()
			if got == "" || req.Header.Get("X-Request-Id") != got || (got == tc.sent) != tc.keep {
				t.Fatalf("sent %q, client got %q, upstream got %q", tc.sent, got, req.Header.Get("X-Request-Id"))
			}
			// One value each way: a replaced id does not travel beside the new one.
			if n, m := len(r.header.Values("X-Request-Id")), len(req.Header.Values("X-Request-Id")); n != 1 || m != 1 {
				t.Fatalf("client got %d ids, upstream %d", n, m)
			}
		})
	}
}

// TestLocationIsMapped: a Location in the upstream's own terms (its origin
// and base path) reaches the client in the gateway's (its base path), on
// the fast path and on the net/http path (an HTTPS upstream).
func TestLocationIsMapped(t *testing.T) {
	// The upstream's origin is the one it was asked at (the gateway sends the
	// upstream URL's host as Host).
	locate := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := "http://" + r.Host
		if r.TLS != nil {
			origin = "https://" + r.Host
		}
		w.Header().Set("Location", strings.ReplaceAll(r.URL.Query().Get("loc"), "ORIGIN", origin))
		w.WriteHeader(http.StatusCreated)
	})
	plain := newUpstream(t, locate)
	secure := httptest.NewTLSServer(locate)
	t.Cleanup(secure.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw})

	for _, path := range []struct{ name, upstream string }{{"fast path", "plain"}, {"net/http path", "https"}} {
		t.Run(path.name, func(t *testing.T) {
			var h *harness
			if path.upstream == "plain" {
				h = newHarness(t, testAPI(), bindingTo(plain.url+"/base/"))
			} else {
				b := bindingTo(secure.URL + "/base")
				b.Endpoints["backend"] = bundle.EndpointBinding{URLs: []string{secure.URL + "/base"}, CAFile: "ca.pem", ServerName: "example.com"}
				h = newHarnessFiles(t, testAPI(), b, map[string][]byte{"ca.pem": ca})
			}
			for _, tc := range []struct{ loc, want string }{
				{"ORIGIN/base/items/7?x=1", "/v1/items/7?x=1"},
				{"/base/items/7", "/v1/items/7"},
				{"/elsewhere/7", "/elsewhere/7"},
				{"https://other.example/base/items/7", "https://other.example/base/items/7"},
			} {
				r := h.do("POST", "/v1/items?loc="+url.QueryEscape(tc.loc), nil, nil)
				if r.status != http.StatusCreated || r.header.Get("Location") != tc.want {
					t.Errorf("upstream Location %q: client got %d %q, want %q", tc.loc, r.status, r.header.Get("Location"), tc.want)
				}
			}
		})
	}
}
