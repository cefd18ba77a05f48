package http1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		status int // 0: accepted
		check  func(t *testing.T, r *Request)
	}{
		{"simple", "GET /v1/pets?x=1 HTTP/1.1\r\nHost: api\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.Method != "GET" || r.Target != "/v1/pets?x=1" || r.Host != "api" || !r.KeepAlive || r.ContentLength != -1 || r.Chunked {
				t.Fatalf("%+v", r)
			}
		}},
		{"content length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.ContentLength != 5 {
				t.Fatalf("cl = %d", r.ContentLength)
			}
		}},
		{"identical lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n", 0, nil},
		{"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if !r.Chunked {
				t.Fatal("not chunked")
			}
		}},
		{"connection tokens", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Foo\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.KeepAlive || len(r.Hop) != 1 || r.Hop[0] != "X-Foo" {
				t.Fatalf("%+v", r)
			}
		}},
		{"http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if !r.KeepAlive || r.Minor != 0 {
				t.Fatalf("%+v", r)
			}
		}},
		{"http/1.0 default close", "GET / HTTP/1.0\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.KeepAlive {
				t.Fatal("keep-alive")
			}
		}},
		{"upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.Upgrade != "websocket" {
				t.Fatalf("upgrade = %q", r.Upgrade)
			}
		}},
		{"upgrade without connection token", "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.Upgrade != "" {
				t.Fatalf("upgrade = %q", r.Upgrade)
			}
		}},
		{"expect", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if !r.Expect100 {
				t.Fatal("no expect")
			}
		}},
		{"expect ignored in 1.0", "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.Expect100 {
				t.Fatal("an HTTP/1.0 client would be sent 100 Continue")
			}
		}},
		{"value OWS trimmed", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v \t\r\n\r\n", 0, func(t *testing.T, r *Request) {
			if r.Fields[1].Value != "v" {
				t.Fatalf("%q", r.Fields[1].Value)
			}
		}},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, nil},
		{"absolute form", "GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n", 0, nil},

		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, nil},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, nil},
		{"conflicting CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, nil},
		{"conflicting CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400, nil},
		{"negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, nil},
		{"plus CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400, nil},
		{"huge CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, nil},
		{"gzip TE", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, nil},
		{"TE twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, nil},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, nil},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400, nil},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, nil},
		{"bad host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, nil},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, nil},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400, nil},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, nil},
		{"ctl in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", 400, nil},
		{"bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, nil},
		{"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, nil},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, nil},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, nil},
		{"relative target", "GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, nil},
		{"http/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, nil},
		{"garbage version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400, nil},
		{"bad expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n", 417, nil},
	}
	var req Request
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseRequest(tt.head, &req)
			var e *Error
			switch {
			case tt.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.status != 0 && (!errors.As(err, &e) || e.Status != tt.status):
				t.Fatalf("err = %v, want status %d", err, tt.status)
			}
			if tt.check != nil {
				tt.check(t, &req)
			}
		})
	}
}

func TestReadHead(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		heads []string
		err   string
	}{
		{"two pipelined", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
			[]string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"}, "EOF"},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, "EOF"},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", nil, "bare LF"},
		{"truncated", "GET / HTTP/1.1\r\nHost: a\r\n", nil, "unexpected EOF"},
		{"too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", nil, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time exercises every buffer boundary.
			r := NewReader(iotest.OneByteReader(strings.NewReader(tt.in)), 16, 8192, nil)
			for _, want := range tt.heads {
				head, err := r.ReadHead()
				if err != nil {
					t.Fatal(err)
				}
				if string(head) != want {
					t.Fatalf("head = %q, want %q", head, want)
				}
			}
			_, err := r.ReadHead()
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestChunkedReader(t *testing.T) {
	tests := []struct {
		name, in, want, err, after string
	}{
		{"two chunks", "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT", "hello world", "", "NEXT"},
		{"trailers", "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", "abc", "", ""},
		{"upper hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", "", ""},
		{"bad size", "x\r\n", "", "malformed chunk size", ""},
		{"missing CRLF", "3\r\nabcX\r\n0\r\n\r\n", "", "malformed chunk end", ""},
		{"truncated", "5\r\nhel", "", "unexpected EOF", ""},
		{"huge size", "1000000000000000\r\n", "", "too large", ""},
		{"bare LF", "3\nabc\n0\n\n", "", "bare LF", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(iotest.OneByteReader(strings.NewReader(tt.in)), 8, 64, nil)
			var c ChunkedReader
			c.Reset(r)
			got, err := io.ReadAll(&c)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want || !c.Done() {
				t.Fatalf("got %q, %v, done=%v", got, err, c.Done())
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != tt.after {
				t.Fatalf("after = %q", rest)
			}
		})
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name, head string
		err        string
		check      func(t *testing.T, r *Response)
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Length: 3\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\r\n", "", func(t *testing.T, r *Response) {
			if r.Status != 200 || r.ContentLength != 3 || !r.KeepAlive {
				t.Fatalf("%+v", r)
			}
			var kept []string
			for _, f := range r.Fields {
				if !f.Hop {
					kept = append(kept, string(f.Name))
				}
			}
			if strings.Join(kept, ",") != "Content-Type" {
				t.Fatalf("forwarded fields = %v", kept)
			}
		}},
		{"no reason", "HTTP/1.1 204\r\n\r\n", "", func(t *testing.T, r *Response) {
			if r.Status != 204 {
				t.Fatal(r.Status)
			}
		}},
		{"chunked wins, connection not reused", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", "", func(t *testing.T, r *Response) {
			if !r.Chunked || r.ContentLength != -1 || r.KeepAlive {
				t.Fatalf("%+v", r)
			}
		}},
		{"chunked alone keeps the connection", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "", func(t *testing.T, r *Response) {
			if !r.Chunked || !r.KeepAlive {
				t.Fatalf("%+v", r)
			}
		}},
		{"chunked in 1.0, connection not reused", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n", "", func(t *testing.T, r *Response) {
			if !r.Chunked || r.KeepAlive {
				t.Fatalf("%+v", r)
			}
		}},
		{"1.0 close", "HTTP/1.0 200 OK\r\n\r\n", "", func(t *testing.T, r *Response) {
			if r.KeepAlive {
				t.Fatal("keep-alive")
			}
		}},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "malformed status line", nil},
		{"bad proto", "HTTP/2 200 OK\r\n\r\n", "malformed status line", nil},
		{"conflicting CL", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting", nil},
		{"gzip TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer coding", nil},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "folding", nil},
		{"bare CR in value", "HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: s=1\r\n\r\n", "control character", nil},
		{"NUL in value", "HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "control character", nil},
		{"bare LF in value", "HTTP/1.1 200 OK\r\nX: a\nSet-Cookie: s=1\r\n\r\n", "malformed header field", nil},
		{"bare LF after the status line", "HTTP/1.1 200 OK\nX: a\r\n\r\n", "no status line", nil},
		{"hop-by-hop in any case, and only those", "HTTP/1.1 200 OK\r\ncontent-LENGTH: 2\r\ncOnNeCtIoN: close\r\nTE: x\r\nupgrade: x\r\n" +
			"PROXY-Authorization: x\r\nproxy-authenticate: x\r\nProxy-Connection: x\r\nKEEP-ALIVE: x\r\ntrailer: x\r\n" +
			"Content-Lengths: 1\r\nX-Connection: x\r\nTee: x\r\nUpgrades: x\r\nKeep-Alive2: x\r\n\r\n", "", func(t *testing.T, r *Response) {
			if r.ContentLength != 2 || r.KeepAlive {
				t.Fatalf("%+v", r)
			}
			var kept []string
			for _, f := range r.Fields {
				if !f.Hop {
					kept = append(kept, string(f.Name))
				}
			}
			if got := strings.Join(kept, ","); got != "Content-Lengths,X-Connection,Tee,Upgrades,Keep-Alive2" {
				t.Fatalf("forwarded fields = %v", got)
			}
		}},
		{"DEL in value", "HTTP/1.1 200 OK\r\nX: a\x7fb\r\n\r\n", "control character", nil},
	}
	var resp Response
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ParseResponse([]byte(tt.head), &resp)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, &resp)
		})
	}
}

// FuzzParseRequest checks that any head the parser accepts has a single,
// unambiguous framing and that parsing never panics.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 64, 4096, nil)
		head, err := r.ReadHead()
		if err != nil {
			return
		}
		var req Request
		if err := ParseRequest(string(head), &req); err != nil {
			return
		}
		if req.Chunked && req.ContentLength >= 0 {
			t.Fatal("accepted both chunked and a length")
		}
		if req.Minor == 1 && req.Host == "" && !strings.Contains(string(head), "\r\nHost:") && !strings.Contains(strings.ToLower(string(head)), "\r\nhost:") {
			t.Fatal("accepted HTTP/1.1 without Host")
		}
		if strings.ContainsAny(req.Target, " \r\n") {
			t.Fatalf("target %q", req.Target)
		}
	})
}

// TestHasCTL compares the word-at-a-time test with a byte loop, for every
// byte value at every position of values of several lengths.
func TestHasCTL(t *testing.T) {
	slow := func(v []byte) bool {
		for _, c := range v {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return true
			}
		}
		return false
	}
	for _, n := range []int{1, 7, 8, 9, 16, 23} {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				v := []byte(strings.Repeat("a\x80~ ", 6)[:n])
				v[pos] = byte(c)
				if got, want := hasCTL(v), slow(v); got != want {
					t.Fatalf("hasCTL(%q) = %v, want %v", v, got, want)
				}
			}
		}
	}
}

// TestWriterUnwrite: what was written after a Mark can be dropped until
// any of it goes out, not after.
func TestWriterUnwrite(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, 16, nil)
	w.Put("keep")
	m := w.Mark()
	w.Put("drop")
	if !w.Unwrite(m) {
		t.Fatal("Unwrite of buffered bytes failed")
	}
	w.Put("-next")
	m = w.Mark()
	w.Put("0123456789abcdef") // spills: part of it goes out
	if w.Unwrite(m) {
		t.Fatal("Unwrite after bytes went out succeeded")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "keep-next0123456789abcdef" {
		t.Fatalf("wrote %q", got)
	}
}

// TestHopKind: every hop-by-hop name is classified in any case, framing
// fields by their own kind, and other names (also of the same lengths, and
// longer than any) are not hop-by-hop.
func TestHopKind(t *testing.T) {
	for _, tt := range []struct {
		name string
		want hopField
	}{
		{"Connection", hopConnection},
		{"CONNECTION", hopConnection},
		{"content-length", hopContentLength},
		{"Transfer-Encoding", hopTransferEncoding},
		{"te", hopOther},
		{"Trailer", hopOther},
		{"upgrade", hopOther},
		{"Keep-Alive", hopOther},
		{"Proxy-Connection", hopOther},
		{"Proxy-Authenticate", hopOther},
		{"proxy-authorization", hopOther},
		{"Tx", notHop},
		{"Content-Type", notHop},
		{"Content-Language", notHop},
		{"X-Request-Id", notHop},
		{"Proxy-Authorization-Extra", notHop},
		{"", notHop},
	} {
		if got := hopKind([]byte(tt.name)); got != tt.want {
			t.Errorf("hopKind(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
	for _, h := range hopByHop {
		if hopKind([]byte(strings.ToUpper(h))) == notHop {
			t.Errorf("%s is not classified", h)
		}
	}
}
