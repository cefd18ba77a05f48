package http1

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Field is one header field of a request, as substrings of the head.
type Field struct {
	Name, Value string
}

// Request is a parsed request head. ParseRequest reuses Fields' storage.
type Request struct {
	Method string
	// Target is the request-target as sent (origin-form "/p?q", "*", or absolute-form).
	Target string
	// Minor is the HTTP/1.x minor version.
	Minor  int
	Fields []Field
	Host   string
	// ContentLength is -1 when the request has none (then Chunked says whether a body follows).
	ContentLength int64
	Chunked       bool
	// KeepAlive says whether the connection may carry another request.
	KeepAlive bool
	// Upgrade is the Upgrade field when Connection names "upgrade".
	Upgrade   string
	Expect100 bool
	// Hop lists the field names the Connection field declares hop-by-hop.
	Hop []string
}

// ParseRequest parses a request head as returned by Reader.ReadHead (as a
// string, so that field names and values are substrings of one allocation).
func ParseRequest(head string, req *Request) error {
	*req = Request{Fields: req.Fields[:0], Hop: req.Hop[:0], ContentLength: -1}
	line, rest, ok := strings.Cut(head, "\r\n")
	if !ok {
		return bad("no request line")
	}
	method, rest1, ok1 := strings.Cut(line, " ")
	target, version, ok2 := strings.Cut(rest1, " ")
	if !ok1 || !ok2 || !IsToken(method) || target == "" || strings.IndexByte(version, ' ') >= 0 {
		return bad("malformed request line")
	}
	if !validTarget(target) {
		return bad("malformed request target")
	}
	switch version {
	case "HTTP/1.1":
		req.Minor = 1
	case "HTTP/1.0":
		req.Minor = 0
	default:
		if len(version) == 8 && strings.HasPrefix(version, "HTTP/") && version[6] == '.' &&
			isDigit(version[5]) && isDigit(version[7]) {
			return &Error{Status: 505, Reason: "HTTP version not supported"}
		}
		return bad("malformed HTTP version")
	}
	req.Method, req.Target = method, target

	var (
		hosts, cls  int
		te          string
		teCount     int
		close, keep bool
		upgrade     bool
	)
	for {
		line, rest, ok = strings.Cut(rest, "\r\n")
		if !ok || line == "" {
			break
		}
		name, value, err := splitField(line)
		if err != nil {
			return err
		}
		req.Fields = append(req.Fields, Field{Name: name, Value: value})
		if !framingField(name) {
			continue
		}
		switch {
		case strings.EqualFold(name, "Host"):
			hosts++
			req.Host = value
		case strings.EqualFold(name, "Content-Length"):
			n, err := parseContentLength(value)
			if err != nil {
				return err
			}
			if cls > 0 && n != req.ContentLength {
				return bad("conflicting Content-Length")
			}
			cls++
			req.ContentLength = n
		case strings.EqualFold(name, "Transfer-Encoding"):
			teCount++
			if te != "" {
				te += ","
			}
			te += value
		case strings.EqualFold(name, "Connection"):
			for _, tok := range tokens(value) {
				switch {
				case strings.EqualFold(tok, "close"):
					close = true
				case strings.EqualFold(tok, "keep-alive"):
					keep = true
				case strings.EqualFold(tok, "upgrade"):
					upgrade = true
				default:
					req.Hop = append(req.Hop, tok)
				}
			}
		case strings.EqualFold(name, "Upgrade"):
			req.Upgrade = value
		case strings.EqualFold(name, "Expect"):
			if !strings.EqualFold(value, "100-continue") {
				return &Error{Status: 417, Reason: "unsupported expectation"}
			}
			// An HTTP/1.0 client cannot be sent a 1xx; its 100-continue is
			// ignored (RFC 9110 §10.1.1).
			req.Expect100 = req.Minor == 1
		}
	}
	if req.Minor == 1 && hosts != 1 {
		return bad("a request needs exactly one Host field")
	}
	if hosts > 1 {
		return bad("more than one Host field")
	}
	if hosts == 1 && !ValidHost(req.Host) {
		return bad("malformed Host field")
	}
	if teCount > 0 {
		if req.Minor == 0 {
			return bad("Transfer-Encoding in an HTTP/1.0 request")
		}
		if cls > 0 {
			return bad("both Transfer-Encoding and Content-Length")
		}
		if !strings.EqualFold(strings.Trim(te, " \t"), "chunked") {
			return &Error{Status: 501, Reason: "unsupported transfer coding"}
		}
		req.Chunked = true
	}
	if !upgrade {
		req.Upgrade = ""
	}
	if req.Minor == 1 {
		req.KeepAlive = !close
	} else {
		req.KeepAlive = keep && !close
	}
	return nil
}

// framingField rules out, by length and first letter, the fields ParseRequest
// does not interpret (most of them), before any case-insensitive comparison.
func framingField(name string) bool {
	switch len(name) {
	case 4, 6, 7, 10, 14, 17: // Host, Expect, Upgrade, Connection, Content-Length, Transfer-Encoding
	default:
		return false
	}
	switch name[0] | 0x20 {
	case 'h', 'e', 'u', 'c', 't':
		return true
	}
	return false
}

// splitField splits "Name: value", refusing obs-fold, whitespace before the
// colon, a name that is not a token and control characters in the value.
func splitField(line string) (string, string, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return "", "", bad("obsolete line folding")
	}
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return "", "", bad("malformed header field")
	}
	name := line[:i]
	if !IsToken(name) {
		return "", "", bad("malformed header field name")
	}
	value := TrimOWS(line[i+1:])
	for j := 0; j < len(value); j++ {
		if c := value[j]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "", "", bad("control character in header field value")
		}
	}
	return name, value, nil
}

func parseContentLength(v string) (int64, error) {
	if n, ok := parseDecimal(v); ok {
		return n, nil
	}
	// A list of identical values ("5, 5") is one length (RFC 9110 §8.6).
	var n int64 = -1
	for _, part := range strings.Split(v, ",") {
		part = strings.Trim(part, " \t")
		m, ok := parseDecimal(part)
		if !ok {
			return 0, bad("malformed Content-Length")
		}
		if n >= 0 && m != n {
			return 0, bad("conflicting Content-Length")
		}
		n = m
	}
	return n, nil
}

func parseContentLengthBytes(v []byte) (int64, error) {
	var n int64
	if len(v) == 0 || len(v) > 18 {
		return parseContentLength(string(v))
	}
	for _, c := range v {
		if !isDigit(c) {
			return parseContentLength(string(v))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// tokens splits a comma-separated list, dropping empty elements.
func tokens(v string) []string {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t = strings.Trim(t, " \t"); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func validTarget(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c <= ' ' || c == 0x7f || c == '#' || c >= 0x80 {
			return false
		}
	}
	return t[0] == '/' || t == "*" || strings.HasPrefix(t, "http://") || strings.HasPrefix(t, "https://")
}

// ValidHost reports whether h has only the characters a host[:port] may
// (RFC 3986 reg-name, IP literals, a port).
func ValidHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChar[h[i]] {
			return false
		}
	}
	return true
}

var hostChar = alnumAnd("-._~:[]%!$&'()*+,;=")

// alnumAnd is a byte table of the ASCII letters and digits plus extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range extra {
		t[c] = true
	}
	return t
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// TrimOWS trims optional whitespace (SP, HTAB) from both ends.
func TrimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func trimOWSBytes(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// SafeFieldValue reports whether v can be written as a field value as it is:
// no CR, LF or NUL (which would end the line or be refused by the peer).
func SafeFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// IsToken reports whether s is an RFC 9110 token.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

func isTokenBytes(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

// tokenChar are RFC 9110 tchar.
var tokenChar = alnumAnd("!#$%&'*+-.^_`|~")

// FieldBytes is one header field of a response, aliasing the head.
type FieldBytes struct {
	Name, Value []byte
	// Hop marks a hop-by-hop field (or a framing field) a proxy must not forward.
	Hop bool
}

// Response is a parsed response head. ParseResponse reuses Fields' storage.
type Response struct {
	Status int
	Minor  int
	// ContentLength is -1 when absent.
	ContentLength int64
	Chunked       bool
	KeepAlive     bool
	Fields        []FieldBytes
}

// hopByHop are the fields a proxy never forwards (RFC 9110 §7.6.1), plus the
// framing fields, which the gateway writes itself.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length",
}

// IsHopByHop reports whether a field name is hop-by-hop or framing.
func IsHopByHop(name string) bool {
	for _, h := range hopByHop {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// hopField classifies a response field name: not hop-by-hop, or which one.
type hopField uint8

const (
	notHop hopField = iota
	hopOther
	hopContentLength
	hopTransferEncoding
	hopConnection
)

// hopKind classifies a token name: a lookup by its length, then at most two
// comparisons, since most response fields are not hop-by-hop and this runs
// for every one of them.
func hopKind(name []byte) hopField {
	if len(name) >= len(hopByLen) {
		return notHop
	}
	for _, h := range hopByLen[len(name)] {
		if foldEq(name, h.lower) {
			return h.kind
		}
	}
	return notHop
}

type hopName struct {
	lower string
	kind  hopField
}

// hopByLen holds hopByHop by name length, lower-cased and classified; it is
// as long as the longest name, so a name added to hopByHop needs nothing here.
var hopByLen = func() [][]hopName {
	longest := 0
	for _, h := range hopByHop {
		longest = max(longest, len(h))
	}
	t := make([][]hopName, longest+1)
	for _, h := range hopByHop {
		kind := hopOther
		switch h {
		case "Content-Length":
			kind = hopContentLength
		case "Transfer-Encoding":
			kind = hopTransferEncoding
		case "Connection":
			kind = hopConnection
		}
		t[len(h)] = append(t[len(h)], hopName{strings.ToLower(h), kind})
	}
	return t
}()

// foldEq compares b with lower, a lower-case name of the same length, case
// insensitively. b must be a token: among tchars only the letters map to a
// lower-case letter under |0x20, and only '-' to '-'.
func foldEq(b []byte, lower string) bool {
	for i := 0; i < len(lower); i++ {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// ParseResponse parses an upstream response head.
func ParseResponse(head []byte, resp *Response) error {
	*resp = Response{Fields: resp.Fields[:0], ContentLength: -1}
	i := bytes.IndexByte(head, '\n')
	if i < 1 || head[i-1] != '\r' {
		return bad("no status line")
	}
	line := head[:i-1]
	rest := head[i+1:]
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || (len(line) > 12 && line[12] != ' ') {
		return bad("malformed status line")
	}
	switch line[7] {
	case '0':
		resp.Minor = 0
	case '1':
		resp.Minor = 1
	default:
		return bad("unsupported HTTP version")
	}
	resp.Status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if resp.Status < 100 {
		return bad("malformed status code")
	}
	var (
		cls         int
		chunked     bool
		te          int
		close, keep bool
		hop         [][]byte
	)
	for {
		// Lines end in CRLF: a bare LF is refused here, a bare CR below (a
		// control character in a name or a value).
		j := bytes.IndexByte(rest, '\n')
		if j <= 0 || rest[j-1] != '\r' {
			if j < 0 {
				break
			}
			return bad("malformed header field")
		}
		if j == 1 {
			break // the empty line
		}
		l := rest[:j-1]
		rest = rest[j+1:]
		if l[0] == ' ' || l[0] == '\t' {
			return bad("obsolete line folding")
		}
		c := bytes.IndexByte(l, ':')
		if c <= 0 || !isTokenBytes(l[:c]) {
			return bad("malformed header field")
		}
		name := l[:c]
		value := trimOWSBytes(l[c+1:])
		// A bare CR or a NUL passed on would let an upstream split the
		// client's response or smuggle a field past it (RFC 9110 §5.5: reject
		// the message or replace them).
		if hasCTL(value) {
			return bad("control character in header field value")
		}
		kind := hopKind(name)
		resp.Fields = append(resp.Fields, FieldBytes{Name: name, Value: value, Hop: kind != notHop})
		switch kind {
		case hopContentLength:
			n, err := parseContentLengthBytes(value)
			if err != nil {
				return err
			}
			if cls > 0 && n != resp.ContentLength {
				return bad("conflicting Content-Length")
			}
			cls++
			resp.ContentLength = n
		case hopTransferEncoding:
			te++
			if !bytes.EqualFold(value, []byte("chunked")) {
				return &Error{Status: 502, Reason: "unsupported transfer coding"}
			}
			chunked = true
		case hopConnection:
			for rest := value; len(rest) > 0; {
				var tok []byte
				if i := bytes.IndexByte(rest, ','); i >= 0 {
					tok, rest = rest[:i], rest[i+1:]
				} else {
					tok, rest = rest, nil
				}
				tok = trimOWSBytes(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					close = true
				case bytes.EqualFold(tok, []byte("keep-alive")):
					keep = true
				case len(tok) > 0:
					hop = append(hop, tok)
				}
			}
		}
	}
	if te > 1 {
		return bad("repeated Transfer-Encoding")
	}
	if chunked {
		// RFC 9112 §6.3: Transfer-Encoding overrides Content-Length.
		resp.Chunked = true
		resp.ContentLength = -1
	}
	for _, h := range hop {
		for k := range resp.Fields {
			if bytes.EqualFold(resp.Fields[k].Name, h) {
				resp.Fields[k].Hop = true
			}
		}
	}
	if resp.Minor == 1 {
		resp.KeepAlive = !close
	} else {
		resp.KeepAlive = keep && !close
	}
	if chunked && (cls > 0 || resp.Minor == 0) {
		// Framing an upstream should never send (RFC 9112 §6.1, §6.3): the
		// body is read as chunked, but the connection is not trusted with
		// another request.
		resp.KeepAlive = false
	}
	return nil
}

// hasCTL reports a control character other than HTAB (or DEL) in a field
// value. Eight bytes are ruled out at a time: a word is looked at byte by
// byte only when it may hold one (the test is exact: a byte below 0x20, or a
// 0x7f, sets its lane's high bit; tabs send the word to the byte loop).
func hasCTL(v []byte) bool {
	const ones, highs, spaces, dels = 0x0101010101010101, 0x8080808080808080, 0x2020202020202020, 0x7f7f7f7f7f7f7f7f
	for len(v) >= 8 {
		x := binary.LittleEndian.Uint64(v)
		y := x ^ dels
		if ((x-spaces)&^x|(y-ones)&^y)&highs != 0 {
			break
		}
		v = v[8:]
	}
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// BodyAllowed reports whether a response to method with status carries a body.
func BodyAllowed(method string, status int) bool {
	return method != "HEAD" && status >= 200 && status != 204 && status != 304
}
