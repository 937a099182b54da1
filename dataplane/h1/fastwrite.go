package h1

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// writeRequest writes req as req.Write does (FuzzWriteRequest holds the
// bytes equal), without its fmt calls, header sorting through a pool and
// transfer writer: for a plain request, of a known length, whose fields need
// no cleaning. Any other goes to req.Write.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if !plainRequest(req) {
		return req.Write(bw)
	}
	var keys [32]string
	sorted := keys[:0]
	for k := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		// Insertion sort: a request has a handful of fields.
		i := len(sorted)
		sorted = append(sorted, k)
		for ; i > 0 && sorted[i-1] > k; i-- {
			sorted[i] = sorted[i-1]
		}
		sorted[i] = k
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.URL.Host)
	bw.WriteString("\r\n")
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		bw.WriteString("User-Agent: ")
		bw.WriteString(ua)
		bw.WriteString("\r\n")
	}
	if req.ContentLength > 0 || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	for _, k := range sorted {
		for _, v := range req.Header[k] {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if req.ContentLength == 0 {
		return nil
	}
	n, err := io.Copy(bw, io.LimitReader(req.Body, req.ContentLength+1))
	if cerr := req.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != req.ContentLength {
		return fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
	}
	return nil // an error of the writes above is bufio's, sticky: the caller's Flush returns it
}

// plainRequest says whether writeRequest may write req itself: an
// HTTP/1.1 request with a known length (a body exactly when the length is
// positive), no trailer, not closing, to a plain host, whose header fields
// are valid and need no trimming or newline replacement.
func plainRequest(req *http.Request) bool {
	if req.Close || req.URL == nil || req.Host != "" && req.Host != req.URL.Host || req.URL.Opaque != "" || len(req.TransferEncoding) > 0 || req.Trailer != nil {
		return false
	}
	switch req.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		return false
	}
	if req.ContentLength < 0 || (req.ContentLength > 0) != (req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	if h := req.URL.Host; h == "" || !asciiHost(h) || !httpguts.ValidHostHeader(h) {
		return false
	}
	if ctlByte(req.URL.RequestURI()) {
		return false
	}
	n := 0
	for k, vv := range req.Header {
		if n++; n > 32 || !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !cleanValue(v) {
				return false
			}
		}
	}
	return true
}

// cleanValue: v has no byte req.Write would replace or trim.
func cleanValue(v string) bool {
	if v != "" && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// asciiHost: h needs no Punycode and has no zone.
func asciiHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 0x80 || c == '%' {
			return false
		}
	}
	return true
}

func ctlByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}
