package http1

import (
	"bytes"
	"errors"
	"io"
)

// maxChunkLine bounds a chunk-size line with its extensions, and a trailer line.
const maxChunkLine = 4096

// ChunkedReader decodes a chunked body (RFC 9112 §7.1) from a Reader. Chunk
// extensions are ignored; trailer fields are read and dropped.
type ChunkedReader struct {
	r *Reader
	// left is the unread size of the current chunk; -1 before the first chunk.
	left int64
	done bool
	err  error
}

// Reset starts decoding a new body from r.
func (c *ChunkedReader) Reset(r *Reader) {
	*c = ChunkedReader{r: r, left: -1}
}

// Done reports whether the terminating chunk and trailers have been read, so
// the connection is positioned at the next message.
func (c *ChunkedReader) Done() bool { return c.done }

// Ready reports whether the next Read can return data (or the end) from what
// is already buffered, without waiting for the connection. A proxy flushes
// what it has relayed before a Read that would wait.
func (c *ChunkedReader) Ready() bool {
	if c.done || c.err != nil {
		return true
	}
	b := c.r.BufferedBytes()
	if c.left > 0 {
		return len(b) > 0
	}
	if c.left == 0 {
		if len(b) < 2 {
			return false
		}
		b = b[2:]
	}
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return false
	}
	if i == 1 && b[0] == '0' || i > 1 && b[0] == '0' && (b[1] == ';' || b[1] == ' ' || b[1] == '\t') {
		// The last chunk: ready once the trailer section has ended.
		return bytes.Contains(b[i:], []byte("\r\n\r\n"))
	}
	return len(b) > i+2
}

func (c *ChunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	if c.left <= 0 {
		if c.left == 0 {
			// The CRLF after a chunk's data.
			line, err := c.r.ReadLine(2)
			if err != nil {
				return 0, c.fail(err)
			}
			if len(line) != 0 {
				return 0, c.fail(bad("malformed chunk end"))
			}
		}
		n, err := c.readSize()
		if err != nil {
			return 0, c.fail(err)
		}
		if n == 0 {
			if err := c.readTrailers(); err != nil {
				return 0, c.fail(err)
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, c.fail(err)
	}
	return n, nil
}

func (c *ChunkedReader) fail(err error) error {
	c.err = err
	return err
}

func (c *ChunkedReader) readSize() (int64, error) {
	line, err := c.r.ReadLine(maxChunkLine)
	if err != nil {
		return 0, err
	}
	var n int64
	digits := 0
	for _, b := range line {
		var v byte
		switch {
		case b >= '0' && b <= '9':
			v = b - '0'
		case b >= 'a' && b <= 'f':
			v = b - 'a' + 10
		case b >= 'A' && b <= 'F':
			v = b - 'A' + 10
		case b == ';' || b == ' ' || b == '\t':
			if digits == 0 {
				return 0, bad("malformed chunk size")
			}
			return n, nil
		default:
			return 0, bad("malformed chunk size")
		}
		digits++
		if digits > 15 {
			return 0, bad("chunk size too large")
		}
		n = n<<4 | int64(v)
	}
	if digits == 0 {
		return 0, bad("malformed chunk size")
	}
	return n, nil
}

func (c *ChunkedReader) readTrailers() error {
	for i := 0; ; i++ {
		if i > 100 {
			return bad("too many trailer fields")
		}
		line, err := c.r.ReadLine(maxChunkLine)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}
