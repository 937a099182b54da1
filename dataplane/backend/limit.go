package backend

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// boundTransport bounds what a backend's HTTP answers can make the data plane
// hold: a JSON answer of more than max bytes, or an event of an event stream
// (a GET stream, an SSE answer, the legacy SSE stream) of more than max, ends
// its body with an error naming the limit. mcp-go reads whole answers and
// lines without a bound; our own reads (poster) are bounded already, so an
// answer of a known length within the limit is passed through untouched,
// costing nothing on the hot path.
type boundTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		return resp, err
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &eventBound{ReadCloser: resp.Body, max: t.max}
		return resp, nil
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("response larger than %d bytes (Content-Length %d)", t.max, resp.ContentLength)
	}
	if resp.ContentLength < 0 {
		resp.Body = &sizeBound{ReadCloser: resp.Body, left: t.max, max: t.max}
	}
	return resp, nil
}

// errTooLarge is what a bounded body's Read returns past its limit.
type errTooLarge struct {
	what string
	max  int64
}

func (e *errTooLarge) Error() string {
	if e.what == "event" {
		return fmt.Sprintf("%v: larger than %d bytes", errEventTooLarge, e.max)
	}
	return fmt.Sprintf("response larger than %d bytes", e.max)
}

// Is makes an event past the limit an errEventTooLarge, as our own stream
// readers report it.
func (e *errTooLarge) Is(target error) bool { return e.what == "event" && target == errEventTooLarge }

// sizeBound fails a body longer than its limit.
type sizeBound struct {
	io.ReadCloser
	left int64 // bytes still allowed
	max  int64
	err  error
}

func (b *sizeBound) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte past the limit tells a body that is too long
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		b.err = &errTooLarge{what: "answer", max: b.max}
		return 0, b.err
	}
	b.left -= int64(n)
	return n, err
}

// eventBound fails an event stream one of whose events (the bytes up to a
// blank line) is longer than max.
type eventBound struct {
	io.ReadCloser
	max     int64
	inEvent int64 // bytes of the current event so far
	inLine  int64 // bytes of the current line so far, without its \r
	err     error
}

func (b *eventBound) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.ReadCloser.Read(p)
	if b.scan(p[:n]) {
		b.err = &errTooLarge{what: "event", max: b.max}
		return 0, b.err
	}
	return n, err
}

// scan follows the event boundaries in p and reports an event past max.
func (b *eventBound) scan(p []byte) bool {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.inEvent += int64(len(p))
			b.inLine += int64(len(p))
			if len(p) > 0 && p[len(p)-1] == '\r' {
				b.inLine-- // a \r before the \n of the next read
			}
			return b.inEvent > b.max
		}
		line := int64(i)
		if i > 0 && p[i-1] == '\r' {
			line--
		}
		if b.inLine+line == 0 {
			b.inEvent = 0 // a blank line ends the event
		} else {
			b.inEvent += int64(i) + 1
		}
		b.inLine = 0
		if b.inEvent > b.max {
			return true
		}
		p = p[i+1:]
	}
	return false
}
