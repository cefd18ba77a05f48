package server

import (
	"errors"
	"io"

	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
)

var continue100 = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// sendContinue answers "Expect: 100-continue" the first time the handler reads
// the body, as net/http does: a request refused before that never makes the
// client send its body.
func (c *conn) sendContinue() error {
	if c.resp.wroteHeader {
		return nil
	}
	if _, err := c.bw.Write(continue100); err != nil {
		return err
	}
	return c.bw.Flush()
}

// bodyLength is a request body delimited by Content-Length.
type bodyLength struct {
	c         *conn
	left      int64
	expect100 bool
	err       error
}

func (b *bodyLength) reset(n int64, expect100 bool) {
	b.left, b.expect100, b.err = n, expect100, nil
}

func (b *bodyLength) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if b.expect100 {
		b.expect100 = false
		if err := b.c.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	b.c.extendBodyDeadline()
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
		return n, err
	}
	if b.left == 0 {
		return n, io.EOF
	}
	return n, nil
}

// Close does not close the connection: the server reads past what is left.
func (b *bodyLength) Close() error { return nil }

// bodyChunked is a chunked request body.
type bodyChunked struct {
	c         *conn
	cr        http1.ChunkedReader
	expect100 bool
	err       error
}

func (b *bodyChunked) reset(expect100 bool) {
	b.cr.Reset(b.c.br)
	b.expect100, b.err = expect100, nil
}

func (b *bodyChunked) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.expect100 {
		b.expect100 = false
		if err := b.c.sendContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	b.c.extendBodyDeadline()
	n, err := b.cr.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

func (b *bodyChunked) Close() error { return nil }
