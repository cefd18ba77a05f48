package http1

import (
	"io"
	"strconv"
)

// BufferPool lends I/O buffers. A Reader or Writer given one holds a buffer
// only while it has bytes in it (see their Release methods), so that the
// buffers a busy process touches are the few most recently returned ones,
// still in the CPU cache, rather than one cold buffer per connection (what
// nginx gets from allocating its buffers per request). Idle connections then
// hold no buffer at all.
type BufferPool interface {
	// Buffer returns a buffer; its length is the size to use.
	Buffer() []byte
	// Recycle takes back a buffer that Buffer returned, once unused.
	Recycle(b []byte)
}

// Writer buffers outgoing HTTP/1.1 bytes, like bufio.Writer (large writes
// to an empty buffer go straight through; errors are sticky). Its Put
// methods return nothing on purpose: the error is returned by the Flush that
// every message ends with, which callers check.
type Writer struct {
	wr   io.Writer
	buf  []byte
	n    int
	size int
	err  error
	pool BufferPool
	// out counts the bytes handed to wr.
	out uint64
}

// A Mark is a point of the stream a Writer writes (see Unwrite).
type Mark struct {
	out uint64
	n   int
}

// Mark returns the point the next write starts at.
func (w *Writer) Mark() Mark { return Mark{out: w.out, n: w.n} }

// Unwrite drops what was written after m, when none of it has been handed
// to the underlying writer yet; it reports whether it could.
func (w *Writer) Unwrite(m Mark) bool {
	if w.err != nil || w.out != m.out || w.n < m.n {
		return false
	}
	w.n = m.n
	return true
}

// NewWriter returns a Writer to w with a buffer of size bytes, borrowed from
// pool when it is not nil (see Release).
func NewWriter(w io.Writer, size int, pool BufferPool) *Writer {
	bw := &Writer{wr: w, size: size, pool: pool}
	if pool == nil {
		bw.buf = make([]byte, size)
	}
	return bw
}

// ensure gives the writer a buffer when it has released its own.
func (w *Writer) ensure() {
	if w.buf == nil {
		if w.pool != nil {
			w.buf = w.pool.Buffer()
		} else {
			w.buf = make([]byte, w.size)
		}
	}
}

// Release returns the buffer to the pool when it is empty; the next write
// borrows one again. The caller must know that no bytes of it are still
// referenced (a write held for later, see proxy's exchangeIO).
func (w *Writer) Release() {
	if w.pool != nil && w.n == 0 && w.buf != nil {
		w.pool.Recycle(w.buf)
		w.buf = nil
	}
}

// Buffered returns the number of bytes written into the buffer.
func (w *Writer) Buffered() int { return w.n }

// Available returns the free space of the buffer.
func (w *Writer) Available() int {
	w.ensure()
	return len(w.buf) - w.n
}

// AvailableBuffer returns an empty slice of the buffer's free space, to
// append to and pass to Write at once.
func (w *Writer) AvailableBuffer() []byte {
	w.ensure()
	return w.buf[w.n:][:0]
}

// Flush writes the buffered bytes.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.n == 0 {
		return nil
	}
	n, err := w.wr.Write(w.buf[:w.n])
	w.out += uint64(n)
	if n < w.n && err == nil {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 && n < w.n {
			copy(w.buf, w.buf[n:w.n])
		}
		w.n -= n
		w.err = err
		return err
	}
	w.n = 0
	return nil
}

// Write writes p; a write larger than the free space of an empty buffer
// goes straight to the underlying writer.
func (w *Writer) Write(p []byte) (int, error) {
	w.ensure()
	nn := 0
	for len(p) > len(w.buf)-w.n && w.err == nil {
		var n int
		if w.n == 0 {
			n, w.err = w.wr.Write(p)
			w.out += uint64(n)
		} else {
			n = copy(w.buf[w.n:], p)
			w.n += n
			_ = w.Flush()
		}
		nn += n
		p = p[n:]
	}
	if w.err != nil {
		return nn, w.err
	}
	n := copy(w.buf[w.n:], p)
	w.n += n
	return nn + n, nil
}

// WriteString writes s.
func (w *Writer) WriteString(s string) (int, error) {
	w.ensure()
	nn := 0
	for len(s) > len(w.buf)-w.n && w.err == nil {
		n := copy(w.buf[w.n:], s)
		w.n += n
		nn += n
		s = s[n:]
		_ = w.Flush()
	}
	if w.err != nil {
		return nn, w.err
	}
	n := copy(w.buf[w.n:], s)
	w.n += n
	return nn + n, nil
}

// WriteByte writes c.
func (w *Writer) WriteByte(c byte) error {
	w.ensure()
	if w.err != nil {
		return w.err
	}
	if w.n == len(w.buf) && w.Flush() != nil {
		return w.err
	}
	w.buf[w.n] = c
	w.n++
	return nil
}

// Put writes s.
func (w *Writer) Put(s string) { _, _ = w.WriteString(s) }

// PutBytes writes b.
func (w *Writer) PutBytes(b []byte) { _, _ = w.Write(b) }

// PutByte writes c.
func (w *Writer) PutByte(c byte) { _ = w.WriteByte(c) }

// PutInt writes n in base (10 or 16) into the buffer's free space, without
// allocating.
func (w *Writer) PutInt(n int64, base int) {
	_, _ = w.Write(strconv.AppendInt(w.AvailableBuffer(), n, base))
}
