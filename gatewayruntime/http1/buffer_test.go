package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestWriterLikeBufio checks Writer against bufio.Writer: the same bytes
// reach the underlying writer in the same calls (a large write to an empty
// buffer goes straight through).
func TestWriterLikeBufio(t *testing.T) {
	big := strings.Repeat("x", 40)
	tests := []struct {
		name string
		ops  func(put func(string), putByte func(byte), flush func())
	}{
		{"small writes", func(put func(string), _ func(byte), flush func()) {
			put("GET / HTTP/1.1\r\n")
			put("Host: a\r\n\r\n")
			flush()
		}},
		{"fills and spills", func(put func(string), putByte func(byte), flush func()) {
			for i := range 10 {
				put("0123456")
				putByte(byte('a' + i))
			}
			flush()
		}},
		{"large write to an empty buffer", func(put func(string), _ func(byte), flush func()) {
			put(big)
			put("tail")
			flush()
		}},
		{"large write to a used buffer", func(put func(string), _ func(byte), flush func()) {
			put("head")
			put(big)
			flush()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wantW, gotW callRecorder
			want := bufio.NewWriterSize(&wantW, 16)
			tt.ops(func(s string) { _, _ = want.Write([]byte(s)) }, func(c byte) { _ = want.WriteByte(c) }, func() { _ = want.Flush() })
			for _, pool := range []BufferPool{nil, &testPool{size: 16}} {
				gotW = callRecorder{}
				got := NewWriter(&gotW, 16, pool)
				tt.ops(func(s string) { got.PutBytes([]byte(s)) }, got.PutByte, func() { _ = got.Flush() })
				if !equalCalls(gotW.calls, wantW.calls) {
					t.Fatalf("pool %v: writes %q, bufio made %q", pool != nil, gotW.calls, wantW.calls)
				}
			}
		})
	}
}

type callRecorder struct{ calls []string }

func (r *callRecorder) Write(p []byte) (int, error) {
	r.calls = append(r.calls, string(p))
	return len(p), nil
}

func equalCalls(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

type shortWriter struct{ n int }

func (w *shortWriter) Write(p []byte) (int, error) { return min(w.n, len(p)), nil }

func TestWriterShortWriteIsSticky(t *testing.T) {
	w := NewWriter(&shortWriter{n: 3}, 16, nil)
	w.Put("hello")
	if err := w.Flush(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("flush: %v, want a short write", err)
	}
	if w.Buffered() != 2 {
		t.Fatalf("%d bytes left buffered, want the 2 unwritten", w.Buffered())
	}
	if _, err := w.WriteString("more"); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("write after the error: %v", err)
	}
}

// testPool counts the buffers lent and not yet returned.
type testPool struct {
	size      int
	out, lent int
	spare     [][]byte
}

func (p *testPool) Buffer() []byte {
	p.out++
	p.lent++
	if n := len(p.spare); n > 0 {
		b := p.spare[n-1]
		p.spare = p.spare[:n-1]
		return b
	}
	return make([]byte, p.size)
}

func (p *testPool) Recycle(b []byte) {
	p.out--
	p.spare = append(p.spare, b)
}

// readyWaiter records the WaitReadable calls of a Reader's source.
type readyWaiter struct {
	io.Reader
	pool  *testPool
	waits int
	held  int // buffers out during the last wait
}

func (r *readyWaiter) WaitReadable() error {
	r.waits++
	r.held = r.pool.out
	return nil
}

func TestPooledReaderAndWriter(t *testing.T) {
	pool := &testPool{size: 64}
	src := &readyWaiter{Reader: strings.NewReader("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbodyHTTP/1.1 204 No Content\r\n\r\n"), pool: pool}
	r := NewReader(src, 64, 1024, pool)
	if pool.out != 0 {
		t.Fatalf("a new reader holds %d buffers, want none until it reads", pool.out)
	}
	head, err := r.ReadHead()
	if err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
		t.Fatalf("head %q, %v", head, err)
	}
	if src.waits != 1 || src.held != 0 || pool.out != 1 {
		t.Fatalf("waits %d (with %d buffers out), %d out after: want the wait before the buffer was taken", src.waits, src.held, pool.out)
	}
	r.Release()
	if pool.out != 1 {
		t.Fatal("Release gave the buffer back with bytes still in it")
	}
	if b := make([]byte, 4); mustRead(t, r, b) != "body" {
		t.Fatal("body lost")
	}
	// The next head is buffered already: Release keeps it.
	r.Release()
	if pool.out != 1 {
		t.Fatal("Release dropped a buffered head")
	}
	if head, err := r.ReadHead(); err != nil || !bytes.HasPrefix(head, []byte("HTTP/1.1 204")) {
		t.Fatalf("second head %q, %v", head, err)
	}
	r.Release()
	if pool.out != 0 {
		t.Fatalf("%d buffers out after the reader was drained and released", pool.out)
	}
	if _, err := r.ReadHead(); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the end: %v", err)
	}

	var sink bytes.Buffer
	w := NewWriter(&sink, 64, pool)
	w.Release() // nothing borrowed yet: a no-op
	base := pool.out
	w.Put("abc")
	w.Release()
	if pool.out != base+1 {
		t.Fatal("Release gave a writer's buffer back with bytes in it")
	}
	if err := w.Flush(); err != nil || sink.String() != "abc" {
		t.Fatalf("flushed %q, %v", sink.String(), err)
	}
	w.Release()
	if pool.out != base {
		t.Fatal("an empty writer kept its buffer after Release")
	}
	w.PutInt(255, 16)
	_ = w.Flush()
	if sink.String() != "abcff" {
		t.Fatalf("after a new borrow: %q", sink.String())
	}
}

func mustRead(t *testing.T, r *Reader, b []byte) string {
	t.Helper()
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}
