package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatekiln/gatekiln/gatewayruntime/http1"
)

// response is the http.ResponseWriter of an HTTP/1.1 connection, reused for
// every request on it. The head is committed lazily (first Write, Flush or the
// end of the handler), so a handler that writes nothing gets Content-Length: 0
// and one that sets Content-Length is not chunked.
type response struct {
	c      *conn
	req    *http.Request
	minor  int
	header http.Header

	status      int
	wroteHeader bool // WriteHeader was called (or implied)
	committed   bool // the head is in the write buffer
	bodyAllowed bool
	chunked     bool
	cl          int64 // declared Content-Length, -1 when none
	written     int64
	closeAfter  bool
	hijacked    bool
	// head is where the head starts in the write stream (see Unsend).
	head http1.Mark
	// pinName (canonical) and pinValue are a field set by PinField.
	pinName, pinValue string
}

func (w *response) reset(r *http.Request, h *http1.Request) {
	if w.header == nil {
		w.header = make(http.Header, 8)
	} else if len(w.header) > 0 {
		clear(w.header)
	}
	*w = response{
		c:          w.c,
		req:        r,
		minor:      h.Minor,
		header:     w.header,
		cl:         -1,
		closeAfter: !h.KeepAlive || w.c.srv.draining.Load(),
	}
}

func (w *response) Header() http.Header { return w.header }

// PinField makes the response carry the field name (canonical form): value,
// ahead of and instead of a same-named field of Header() or of an upstream
// head. The gateway pins its X-Request-Id this way: a Header entry would cost
// every proxied request a map insert, walk and clear.
func (w *response) PinField(name, value string) { w.pinName, w.pinValue = name, value }

// appendPinned appends the pinned field, if any.
func (w *response) appendPinned(b []byte) []byte {
	if w.pinName == "" {
		return b
	}
	return appendValues(b, w.pinName, []string{w.pinValue})
}

func (w *response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
}

// writeInformational sends a 1xx head (103 Early Hints) at once.
func (w *response) writeInformational(code int) {
	w.c.bw.Put(statusLine(code))
	w.c.bw.PutBytes(w.appendPinned(w.c.bw.AvailableBuffer()))
	writeHeader(w.c.bw, w.header, w.pinName)
	w.c.bw.Put("\r\n")
	_ = w.c.bw.Flush()
}

// commit writes the head; final says the handler has returned, so a response
// without a declared length and without body bytes gets Content-Length: 0.
func (w *response) commit(final bool) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.committed = true
	w.head = w.c.bw.Mark()
	w.bodyAllowed = http1.BodyAllowed(w.req.Method, w.status)
	h := w.header
	if v := h["Connection"]; len(v) > 0 {
		for _, s := range v {
			if strings.Contains(strings.ToLower(s), "close") {
				w.closeAfter = true
			}
		}
		delete(h, "Connection")
	}
	delete(h, "Transfer-Encoding")
	if v := h["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	} else if len(v) > 1 {
		delete(h, "Content-Length")
	}
	var framing string
	switch {
	case w.status == http.StatusNoContent || w.status == http.StatusNotModified && w.cl < 0:
		delete(h, "Content-Length")
	case !w.bodyAllowed:
		// HEAD: a declared length describes the GET body; keep it.
	case w.cl >= 0:
	case final:
		w.cl = 0
		framing = "Content-Length: 0\r\n"
	case w.minor >= 1:
		w.chunked = true
		framing = "Transfer-Encoding: chunked\r\n"
	default:
		w.closeAfter = true
	}
	bw := w.c.bw
	bw.Put(statusLine(w.status))
	bw.PutBytes(w.appendPinned(bw.AvailableBuffer()))
	writeHeader(bw, h, w.pinName)
	if _, ok := h["Date"]; !ok {
		bw.Put("Date: ")
		bw.Put(httpDate())
		bw.Put("\r\n")
	}
	bw.Put(framing)
	bw.PutBytes(w.appendConnection(bw.AvailableBuffer()))
	bw.Put("\r\n")
}

// appendConnection appends the Connection field the response needs, if any.
func (w *response) appendConnection(b []byte) []byte {
	// A response before the request body was read (a 413, a 401) whose body
	// will not be drained ends the connection: say so, so that the client
	// does not send its next request on it.
	if w.c.srv.draining.Load() || w.c.srv.closing.Load() || w.c.bodyAbandoned() {
		w.closeAfter = true
	}
	if w.closeAfter {
		return append(b, "Connection: close\r\n"...)
	} else if w.minor == 0 {
		return append(b, "Connection: keep-alive\r\n"...)
	}
	return b
}

// WriteUpstreamHead writes a proxied response head without building a Header
// map: the status line, the fields the handler set on Header() (a gateway or
// filter field replaces the upstream's field of the same name), then the
// upstream's fields minus hop-by-hop ones, then the framing for a body of
// contentLength bytes (-1: unknown, chunked for HTTP/1.1 clients).
func (w *response) WriteUpstreamHead(status int, fields []http1.FieldBytes, contentLength int64) {
	w.wroteHeader, w.committed = true, true
	w.status = status
	w.bodyAllowed = http1.BodyAllowed(w.req.Method, status)
	bw := w.c.bw
	w.head = bw.Mark()
	// Appended in the buffer's free space, written at once.
	b := append(bw.AvailableBuffer(), statusLine(status)...)
	// The handler's fields, remembered so that the upstream's same-named ones
	// are skipped (one map walk, not one per upstream field).
	var setBuf [8]string
	set := setBuf[:0]
	if w.pinName != "" {
		set = append(set, w.pinName)
		b = w.appendPinned(b)
	}
	if len(w.header) > 0 {
		for k, vs := range w.header {
			if k == w.pinName {
				continue
			}
			set = append(set, k)
			b = appendValues(b, k, vs)
		}
	}
	dated := contains(set, []byte("Date"))
	for i := range fields {
		f := &fields[i]
		if f.Hop || (len(set) > 0 && contains(set, f.Name)) {
			continue
		}
		if len(f.Name) == 4 && !dated && equalFold("Date", f.Name) {
			dated = true
		}
		b = append(b, f.Name...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	if !dated {
		// RFC 9110 §6.6.1: a recipient with a clock adds the Date an
		// upstream left out when it forwards the response.
		b = append(b, "Date: "...)
		b = append(b, httpDate()...)
		b = append(b, "\r\n"...)
	}
	switch {
	case status == http.StatusNoContent:
	case !w.bodyAllowed || contentLength >= 0:
		if contentLength >= 0 {
			w.cl = contentLength
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, contentLength, 10)
			b = append(b, "\r\n"...)
		}
	case w.minor >= 1:
		w.chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	default:
		w.closeAfter = true
	}
	b = w.appendConnection(b)
	b = append(b, "\r\n"...)
	_, _ = bw.Write(b)
}

func contains(set []string, name []byte) bool {
	for _, k := range set {
		if equalFold(k, name) {
			return true
		}
	}
	return false
}

func equalFold(a string, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}

// Unsend takes back a committed head when neither it nor a body byte has
// reached the client yet, so that the handler can answer otherwise (the
// proxy: an upstream whose body failed before its first byte gets a 502
// instead of a dropped connection). It reports whether it could.
func (w *response) Unsend() bool {
	if !w.committed || w.hijacked || w.written > 0 || !w.c.bw.Unwrite(w.head) {
		return false
	}
	w.wroteHeader, w.committed = false, false
	w.status, w.cl, w.chunked = 0, -1, false
	return true
}

// ErrBodyNotAllowed is returned by Write for a 204, a 304 or a HEAD request's body.
var ErrBodyNotAllowed = http.ErrBodyNotAllowed

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.committed {
		w.commit(false)
	}
	if !w.bodyAllowed {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		bw.PutInt(int64(len(p)), 16)
		bw.Put("\r\n")
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if err != nil {
		return n, err
	}
	if w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// WriteString avoids a copy for io.WriteString callers.
func (w *response) WriteString(s string) (int, error) {
	if !w.chunked && w.committed && w.bodyAllowed && (w.cl < 0 || w.written+int64(len(s)) <= w.cl) {
		n, err := w.c.bw.WriteString(s)
		w.written += int64(n)
		return n, err
	}
	return w.Write([]byte(s))
}

// ReadFrom lets io.Copy fill the connection's write buffer directly.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w}, src, nil)
}

func (w *response) Flush() {
	_ = w.FlushError()
}

// FlushError is what http.ResponseController.Flush calls.
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.committed {
		w.commit(false)
	}
	return w.c.bw.Flush()
}

// finish completes the response after the handler returned.
func (w *response) finish() error {
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		w.c.bw.Put("0\r\n\r\n")
	}
	if w.bodyAllowed && w.cl >= 0 && w.written < w.cl {
		// The handler wrote less than it declared: the client must see the
		// connection end rather than wait for the rest.
		w.closeAfter = true
	}
	// Bytes already in stand for a pipelined request, whose response can go
	// out with this one, unless they are the rest of this request's body,
	// whose drain may wait for the client.
	if w.c.br.Buffered() == 0 || w.closeAfter || !w.c.bodyRead() {
		return w.c.bw.Flush()
	}
	return nil
}

// Status returns the status sent (0 before the head is decided).
func (w *response) Status() int { return w.status }

// Written returns the body bytes written.
func (w *response) Written() int64 { return w.written }

func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed {
		return nil, nil, errors.New("server: hijack after the response head was written")
	}
	if w.c.inline {
		// The handler runs inside the connection's raw read (serveInline),
		// which requests with an Upgrade field never do.
		return nil, nil, errors.New("server: hijack of a request without an Upgrade field")
	}
	c := w.c
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	if w.pinName != "" {
		// The hijacker writes the head from Header() (ReverseProxy's 101).
		w.header[w.pinName] = []string{w.pinValue}
	}
	w.hijacked = true
	_ = c.nc.SetDeadline(time.Time{})
	// The connection stays tracked until the handler returns (serve), so
	// that Shutdown waits for an upgraded connection (a WebSocket) within
	// its grace, as for any request in flight, and Close closes it.
	buffered := bytes.Clone(c.br.BufferedBytes())
	c.br.Discard(len(buffered))
	var rd io.Reader = c.nc
	if len(buffered) > 0 {
		rd = io.MultiReader(bytes.NewReader(buffered), c.nc)
	}
	return c.nc, bufio.NewReadWriter(bufio.NewReader(rd), bufio.NewWriter(c.nc)), nil
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// EnableFullDuplex serves http.ResponseController: this server always lets a
// handler read the request body after writing the response.
func (w *response) EnableFullDuplex() error { return nil }

// writeHeader writes h's fields except skip (a pinned field's name),
// replacing CR and LF in values (header injection) and skipping names that
// are not tokens.
func writeHeader(bw *http1.Writer, h http.Header, skip string) {
	for k, vs := range h {
		if k != skip {
			writeValues(bw, k, vs)
		}
	}
}

func writeValues(bw *http1.Writer, k string, vs []string) {
	_, _ = bw.Write(appendValues(bw.AvailableBuffer(), k, vs))
}

// appendValues appends k's field lines; a value's CR, LF and NUL become spaces.
func appendValues(b []byte, k string, vs []string) []byte {
	if !validFieldName(k) {
		return b
	}
	for _, v := range vs {
		b = append(b, k...)
		b = append(b, ": "...)
		if !http1.SafeFieldValue(v) {
			v = strings.Map(func(r rune) rune {
				if r == '\r' || r == '\n' || r == 0 {
					return ' '
				}
				return r
			}, v)
		}
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	return b
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

var statusLines = func() (t [600]string) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			t[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return t
}()

func statusLine(code int) string {
	if code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " \r\n"
}

// httpDate returns the current time in IMF-fixdate, formatted once per second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &cachedDate{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	sec  int64
	text string
}

var dateCache atomic.Pointer[cachedDate]
