// Package http1 reads and checks the HTTP/1.1 wire format (RFC 9112) for the
// gateway's own server and upstream client, which bypass net/http on the hot
// path. It is strict where leniency enables request smuggling or cache
// poisoning: bare LF line endings, obs-fold, whitespace before a field's colon,
// conflicting Content-Length, Transfer-Encoding other than "chunked", and both
// Transfer-Encoding and Content-Length are refused rather than guessed at.
package http1

import (
	"bytes"
	"errors"
	"io"
)

// Error is a malformed message; Status is the response code a server answers with.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func bad(reason string) error { return &Error{Status: 400, Reason: reason} }

// ErrHeadTooLarge is returned when a message head exceeds the reader's limit;
// ErrStartLineTooLarge when the start line alone does (for a request, its
// target: 414, as nginx answers, so a client knows to shorten the URL rather
// than its headers).
var (
	ErrHeadTooLarge      = &Error{Status: 431, Reason: "header fields too large"}
	ErrStartLineTooLarge = &Error{Status: 414, Reason: "request target too long"}
)

// ErrWouldBlock may be returned by a Reader's source when no bytes are
// available yet (a raw read of a non-blocking socket). The Reader passes it on
// without recording it, so the same call can be made again once the source is
// readable: ReadHead rescans what it has.
var ErrWouldBlock = errors.New("http1: no bytes available yet")

// Reader is a buffered reader for one side of a connection. Unlike bufio.Reader
// it hands out a whole message head as one slice, growing its buffer up to the
// head limit, and it never reads ahead beyond what one read call returns.
type Reader struct {
	// OnWait, if set, is called when ReadHead must wait for more bytes: a
	// server starts its header timeout there (slowloris), not for heads that
	// arrived whole.
	OnWait  func()
	rd      io.Reader
	buf     []byte
	r, w    int
	size    int
	maxHead int
	err     error
	pool    BufferPool
	waiter  ReadyWaiter
}

// ReadyWaiter may be implemented by a Reader's source: a Reader without a
// buffer calls WaitReadable before it borrows one to read into, so that no
// buffer is held while the peer has yet to answer (see proxy's exchangeIO).
type ReadyWaiter interface {
	WaitReadable() error
}

// NewReader returns a Reader with an initial buffer of size bytes that accepts
// heads of up to maxHead bytes. With a pool, the buffer is borrowed from it
// while the reader holds bytes (see Release).
func NewReader(rd io.Reader, size, maxHead int, pool BufferPool) *Reader {
	b := &Reader{size: size, maxHead: maxHead, pool: pool}
	if pool == nil {
		b.buf = make([]byte, size)
	}
	b.SetSource(rd)
	return b
}

// Release returns the buffer to the pool when nothing is buffered; the next
// read borrows one again. Slices the reader handed out (heads, lines) must no
// longer be in use.
func (b *Reader) Release() {
	if b.pool != nil && b.r == b.w && b.buf != nil {
		b.pool.Recycle(b.buf)
		b.buf = nil
		b.r, b.w = 0, 0
	}
}

// ensure gives the reader a buffer when it has released its own.
func (b *Reader) ensure() error {
	if b.buf != nil {
		return nil
	}
	if b.waiter != nil {
		if err := b.waiter.WaitReadable(); err != nil {
			b.err = err
			return err
		}
	}
	if b.pool != nil {
		b.buf = b.pool.Buffer()
	} else {
		b.buf = make([]byte, b.size)
	}
	return nil
}

// Buffered returns how many bytes can be read without touching the connection.
func (b *Reader) Buffered() int { return b.w - b.r }

// BufferedBytes returns the buffered bytes without consuming them.
func (b *Reader) BufferedBytes() []byte { return b.buf[b.r:b.w] }

// Discard drops n buffered bytes; n must not exceed Buffered.
func (b *Reader) Discard(n int) { b.r += n }

// fill reads once from the connection into free space, compacting first.
func (b *Reader) fill() error {
	if b.err != nil {
		return b.err
	}
	if err := b.ensure(); err != nil {
		return err
	}
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if b.w == len(b.buf) {
		return errors.New("http1: buffer full")
	}
	n, err := b.rd.Read(b.buf[b.w:])
	b.w += n
	if err != nil {
		if err == ErrWouldBlock { //nolint:errorlint // a sentinel the source returns as is
			return err
		}
		b.err = err
		if n > 0 {
			return nil
		}
		return err
	}
	return nil
}

// Fill blocks until at least one byte is buffered (used to wait for the next
// request on an idle connection before starting the header timeout).
func (b *Reader) Fill() error {
	for b.w == b.r {
		if err := b.fill(); err != nil {
			return err
		}
	}
	return nil
}

// ReadHead returns the next message head: the start line through the empty
// line, CRLFs included. Empty lines before the start line are skipped (RFC 9112
// §2.2). The slice aliases the buffer and is valid until the next call on b.
func (b *Reader) ReadHead() ([]byte, error) {
	scanned := 0 // bytes of buf[b.r:] already scanned for line ends
	lineStart := 0
	for {
		data := b.buf[b.r:b.w]
		for scanned < len(data) {
			i := bytes.IndexByte(data[scanned:], '\n')
			if i < 0 {
				scanned = len(data)
				break
			}
			i += scanned
			if i == 0 || data[i-1] != '\r' {
				return nil, bad("bare LF in message head")
			}
			scanned = i + 1
			if i-1 == lineStart {
				if lineStart == 0 {
					// A leading empty line: skip it.
					b.r += i + 1
					data = b.buf[b.r:b.w]
					scanned, lineStart = 0, 0
					continue
				}
				if i+1 > b.maxHead {
					return nil, ErrHeadTooLarge
				}
				head := data[:i+1]
				b.r += i + 1
				return head, nil
			}
			if lineStart == 0 && i+1 > b.maxHead {
				return nil, ErrStartLineTooLarge
			}
			lineStart = i + 1
		}
		if len(data) >= b.maxHead {
			if lineStart == 0 {
				return nil, ErrStartLineTooLarge
			}
			return nil, ErrHeadTooLarge
		}
		if b.buf != nil && b.r+len(data) == len(b.buf) && b.r == 0 {
			b.grow()
		}
		if b.OnWait != nil {
			b.OnWait()
		}
		if err := b.fill(); err != nil {
			if errors.Is(err, io.EOF) && len(data) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

func (b *Reader) grow() {
	n := 2 * len(b.buf)
	if n > b.maxHead+4 {
		n = b.maxHead + 4
	}
	if n <= len(b.buf) {
		n = len(b.buf) + 1
	}
	nb := make([]byte, n)
	copy(nb, b.buf[b.r:b.w])
	b.w -= b.r
	b.r = 0
	b.buf = nb
}

// Read reads buffered bytes first, then from the connection. A read larger
// than the buffer bypasses it.
func (b *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.err
		}
		if len(p) >= b.size {
			n, err := b.rd.Read(p)
			if err != nil {
				b.err = err
			}
			return n, err
		}
		b.r, b.w = 0, 0
		if err := b.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// ReadLine returns one CRLF-terminated line without its CRLF, for chunk sizes
// and trailers. Lines longer than limit are refused.
func (b *Reader) ReadLine(limit int) ([]byte, error) {
	scanned := 0
	for {
		data := b.buf[b.r:b.w]
		if i := bytes.IndexByte(data[scanned:], '\n'); i >= 0 {
			i += scanned
			if i == 0 || data[i-1] != '\r' {
				return nil, bad("bare LF in chunked framing")
			}
			b.r += i + 1
			return data[:i-1], nil
		}
		scanned = len(data)
		if len(data) > limit {
			return nil, bad("line too long in chunked framing")
		}
		if b.buf != nil && b.r+len(data) == len(b.buf) && b.r == 0 {
			b.grow()
		}
		if err := b.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// SetSource changes where the reader reads from, keeping what it has buffered.
func (b *Reader) SetSource(rd io.Reader) {
	b.rd = rd
	b.waiter, _ = rd.(ReadyWaiter)
}

// Reset points the reader at a new connection and drops buffered bytes.
func (b *Reader) Reset(rd io.Reader) {
	b.SetSource(rd)
	b.r, b.w = 0, 0
	b.err = nil
}
