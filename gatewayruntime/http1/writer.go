package http1

import (
	"bufio"
	"strconv"
)

// Writer buffers outgoing HTTP/1.1 bytes. Its Put methods return nothing on
// purpose: a bufio.Writer's error is sticky and is returned by the Flush that
// every message ends with, which callers check.
type Writer struct{ *bufio.Writer }

// Put writes s.
func (w Writer) Put(s string) { _, _ = w.WriteString(s) }

// PutBytes writes b.
func (w Writer) PutBytes(b []byte) { _, _ = w.Write(b) }

// PutByte writes c.
func (w Writer) PutByte(c byte) { _ = w.WriteByte(c) }

// PutInt writes n in base (10 or 16) into the buffer's free space, without
// allocating.
func (w Writer) PutInt(n int64, base int) {
	_, _ = w.Write(strconv.AppendInt(w.AvailableBuffer(), n, base))
}
