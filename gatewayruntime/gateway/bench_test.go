package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/gatekiln/gatekiln/gatewayruntime/server"
)

// BenchmarkProxy measures one proxied request over loopback: a raw keep-alive
// client, the gateway, and an upstream on the gateway's own HTTP/1.1 server
// with a handler that does not allocate, so allocs/op is the gateway's.
func BenchmarkProxy(b *testing.B) {
	body := []byte(`{"id":1,"username":"user1"}`)
	up := server.New(server.Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
		_, _ = w.Write(body)
	})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = up.Serve(ln) }()
	defer up.Close()
	h := newHarness(b, testAPI(), bindingTo("http://"+ln.Addr().String()))
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /v1/items/42 HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReaderSize(c, 4096)
	read := func() {
		// Head, then the body by Content-Length.
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) == 2 {
				break
			}
			if bytes.HasPrefix(line, []byte("Content-Length: ")) {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(line[16:])))
			}
		}
		if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		_, _ = c.Write(req)
		read()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		read()
	}
}
