package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The fast heads: net/http's ReadRequest and ReadResponse read a head
// through textproto, which makes a string per line, canonicalizes every key
// by copying it and keeps a reader from a pool; for the small heads of MCP
// traffic that was about a tenth of the data plane's CPU per call. When a
// whole head is already in the connection's buffer (nearly always: it comes
// in one segment) and uses only the plain part of HTTP/1.1 (no
// Transfer-Encoding, no folded lines, no Pragma, no absolute URI, at most one
// Content-Length, at most maxFastFields fields), it is read here from the
// buffer in place: one string for the whole head, keys and values cut from
// it. Anything else goes to net/http as before. Both give the same request
// or response for every head the fast path takes (FuzzFastRequest and
// FuzzFastResponse compare them field by field).

// maxFastFields bounds the fields of a head the fast path takes.
const maxFastFields = 64

// commonKeys are the canonical keys of the fields MCP traffic carries, so
// that a key sent in another case (Node sends them in lower case) costs no
// allocation either.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Connection",
		"Content-Length", "Content-Type", "Cookie", "Date", "Host", "Last-Event-Id", "Mcp-Method",
		"Mcp-Name", "Mcp-Protocol-Version", "Mcp-Session-Id", "Origin", "Referer", "Sec-Fetch-Mode",
		"Server", "Traceparent", "Tracestate", "User-Agent", "Vary", "Www-Authenticate",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "Keep-Alive", "Set-Cookie",
	} {
		m[k] = k
	}
	return m
}()

// headEnd returns the length of the head at the start of b (through its
// blank line), or -1 when b holds no complete head. Lines end in CRLF; a
// bare LF (which net/http also takes) sends the head to net/http.
func headEnd(b []byte) int {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// byteClass[c] says what c may be in a head: a byte of a field name
// (RFC 9110 tchar) and of a field value net/http takes (VCHAR, SP, HTAB,
// obs-text).
var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if httpguts.IsTokenRune(rune(c)) {
			t[c] |= classToken
		}
		if c == '\t' || c >= 0x20 && c != 0x7f {
			t[c] |= classValue
		}
	}
	return t
}()

const (
	classToken = 1 << iota
	classValue
)

func tokenByte(c byte) bool { return byteClass[c]&classToken != 0 }
func valueByte(c byte) bool { return byteClass[c]&classValue != 0 }

// fastFields reads the fields of a head (s from the end of its first line
// through its blank line) into h; ok is false for anything the fast path
// leaves to net/http. With host non-nil, a Host field goes to *host (hasHost
// set), not into h: net/http keeps it out of a request's Header, and leaving
// it out of the map spares the map's growth from 8 fields to 9 (a small map
// holds 8; a client's usual head has 8 fields besides Host).
func fastFields(s string, h http.Header, host *string, hasHost *bool) bool {
	vals := make([]string, 0, fieldCount(s))
	var kb [64]byte
	for n := 0; ; n++ {
		eol := indexCRLF(s)
		if eol < 0 {
			return false
		}
		line := s[:eol]
		s = s[eol+2:]
		if line == "" {
			return true
		}
		if n >= maxFastFields {
			return false
		}
		colon := -1
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == ':' {
				colon = i
				break
			}
			if !tokenByte(c) {
				return false
			}
		}
		if colon <= 0 || colon > len(kb) {
			return false
		}
		name, v := line[:colon], line[colon+1:]
		for i := 0; i < len(v); i++ {
			if !valueByte(v[i]) {
				return false
			}
		}
		// As textproto: leading spaces and tabs go; trailing ones too.
		for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		key := canonicalKey(name, kb[:0])
		switch key {
		case "Transfer-Encoding", "Pragma", "Trailer", "Upgrade":
			return false
		case "Host":
			if host != nil {
				if *hasHost {
					return false // two: net/http refuses them
				}
				*host, *hasHost = v, true
				continue
			}
		case "Content-Length":
			if _, dup := h[key]; dup {
				return false
			}
		}
		if vv, ok := h[key]; ok {
			h[key] = append(vv, v)
			continue
		}
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
}

// hasHostField reports whether fields (as fastFields takes them) has a line
// that starts with "host:", in any case.
func hasHostField(fields string) bool {
	for len(fields) > 0 {
		if len(fields) >= 5 && (fields[0]|0x20) == 'h' && (fields[1]|0x20) == 'o' && (fields[2]|0x20) == 's' && (fields[3]|0x20) == 't' && fields[4] == ':' {
			return true
		}
		eol := indexCRLF(fields)
		if eol < 0 {
			return false
		}
		fields = fields[eol+2:]
	}
	return false
}

// fieldCount is how many field lines s (fields through the blank line)
// holds, to size the header and its values once, as textproto does.
func fieldCount(s string) int {
	n := strings.Count(s, "\r\n") - 1
	return min(max(n, 0), maxFastFields)
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey of a token, name itself
// (no copy) when it is canonical already, or a known key.
func canonicalKey(name string, buf []byte) string {
	upper := true
	canonical := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
			canonical = false
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
			canonical = false
		}
		buf = append(buf, c)
		upper = c == '-'
	}
	if canonical {
		return name
	}
	if k, ok := commonKeys[string(buf)]; ok {
		return k
	}
	return string(buf)
}

func indexCRLF(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' {
			if s[i+1] != '\n' {
				return -2 // a bare CR: net/http's to judge
			}
			return i
		}
		if s[i] == '\n' {
			return -2
		}
	}
	return -1
}

// contentLength is net/http's reading of the one Content-Length of h: -1
// when there is none; ok false when it is malformed (net/http's to report).
func contentLength(h http.Header) (int64, bool) {
	cl, ok := h["Content-Length"]
	if !ok {
		return -1, true
	}
	if cl[0] == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(cl[0], 10, 63)
	if err != nil {
		return 0, false
	}
	return int64(n), true
}

// fastRequest reads the request whose head is buf (a complete head, see
// headEnd), its body to come from br; nil for a head the fast path leaves to
// net/http.
func fastRequest(buf []byte, br io.Reader) *http.Request {
	s := string(buf)
	eol := indexCRLF(s)
	if eol < 0 {
		return nil
	}
	line := s[:eol]
	sp1 := indexByte(line, ' ')
	if sp1 <= 0 {
		return nil
	}
	method := line[:sp1]
	for i := 0; i < len(method); i++ {
		if c := method[i]; c < 'A' || c > 'Z' {
			return nil
		}
	}
	rest := line[sp1+1:]
	sp2 := indexByte(rest, ' ')
	if sp2 <= 0 {
		return nil
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil
	}
	if target[0] != '/' || method == "CONNECT" {
		return nil
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return nil
		}
	}
	fields := s[eol+2:]
	n := fieldCount(fields)
	if n > 0 && hasHostField(fields) {
		n-- // Host stays out of the map
	}
	h := make(http.Header, n)
	var host string
	var hasHost bool
	if !fastFields(fields, h, &host, &hasHost) {
		return nil
	}
	cl, ok := contentLength(h)
	if !ok {
		return nil
	}
	u, err := url.ParseRequestURI(target)
	if err != nil || u.Host != "" {
		return nil
	}
	req := &http.Request{
		Method: method, URL: u, Proto: proto, ProtoMajor: 1, ProtoMinor: minor,
		Header: h, RequestURI: target, Close: closes(minor, h),
		Host: host, // net/http's ReadRequest too keeps it out of Header
	}
	if cl <= 0 {
		req.Body = http.NoBody
		req.ContentLength = 0
	} else {
		req.ContentLength = cl
		req.Body = &fixedBody{r: br, n: cl}
	}
	return req
}

// closes is net/http's shouldClose for HTTP/1.minor.
func closes(minor int, h http.Header) bool {
	conv := h["Connection"]
	hasClose := httpguts.HeaderValuesContainsToken(conv, "close")
	if minor == 0 {
		return hasClose || !httpguts.HeaderValuesContainsToken(conv, "keep-alive")
	}
	return hasClose
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// fixedBody is a body of a known length, as net/http's: reading past what
// the stream holds is io.ErrUnexpectedEOF, not a short body taken for whole.
type fixedBody struct {
	r io.Reader
	n int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF && b.n > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && b.n == 0:
		err = io.EOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// fastResponse reads the response to req whose head is buf (a complete
// head), its body to come from br; nil for a head the fast path leaves to
// net/http. It takes only responses of a known length with a body allowed
// (not to HEAD; not 1xx, 204 or 304) and no Connection field.
func fastResponse(buf []byte, br io.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	s := string(buf)
	eol := indexCRLF(s)
	if eol < 0 {
		return nil
	}
	line := s[:eol]
	if len(line) < len("HTTP/1.1 200") || line[:len("HTTP/1.1 ")] != "HTTP/1.1 " {
		return nil
	}
	status := line[len("HTTP/1.1 "):]
	code := 0
	for i := 0; i < 3; i++ {
		c := status[i]
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if len(status) > 3 && status[3] != ' ' {
		return nil
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	h := make(http.Header, fieldCount(s[eol+2:]))
	if !fastFields(s[eol+2:], h, nil, nil) {
		return nil
	}
	if _, ok := h["Connection"]; ok {
		return nil
	}
	n, ok := contentLength(h)
	if !ok || n < 0 {
		return nil
	}
	resp := &http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: n, Request: req,
	}
	if n == 0 {
		resp.Body = http.NoBody
	} else {
		resp.Body = &fixedBody{r: br, n: n}
	}
	return resp
}

// readResponseHead reads the response to req from br: on the fast path when
// its whole head comes in the first read (nearly always), else with
// net/http.
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if _, err := br.Peek(1); err == nil {
		buf, _ := br.Peek(br.Buffered())
		if end := headEnd(buf); end > 0 {
			if resp := fastResponse(buf[:end], br, req); resp != nil {
				_, _ = br.Discard(end)
				return resp, nil
			}
		}
	}
	return http.ReadResponse(br, req)
}
