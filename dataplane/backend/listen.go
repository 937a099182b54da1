package backend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// listenBackoff spaces Listen's reconnects: 250 ms, doubled per fruitless
// attempt up to 10 s, back to the start once a message arrived.
var listenBackoff = resilience.Exponential{Min: 250 * time.Millisecond, Max: 10 * time.Second}

// errNoStream: the backend offers no GET stream (405).
var errNoStream = errors.New("the backend offers no event stream (405)")

// Listen holds the client's upstream event stream until ctx ends, the
// backend closes, or CloseSession ends the client's session. Streamable
// HTTP: the GET stream of the client's session (opened first when it has
// none), read here since mcp-go starts none for a continued session;
// notifications go to OnNotification and requests to OnRequest, tagged with
// the client, and answers are POSTed back on the session. It reconnects with
// backoff, and follows the session when it is replaced (404); a backend that
// offers no GET stream (405) ends it quietly. SSE: the client's stream
// carries all that itself; Listen keeps it open. On a shared server (or one
// that keeps no sessions) the shared connection's stream carries what the
// backend sends: Listen returns at once. It returns nil unless cs is nil.
func (b *Backend) Listen(ctx context.Context, cs *ClientSession) error {
	if cs == nil {
		return fmt.Errorf("backend %q: listen: no client session", b.name)
	}
	if !b.perClient {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()
	lis, unregister := b.ses.addListener(cs.Init.Client, cancel)
	defer unregister()

	fruitless := 0 // attempts since a message arrived
	for ctx.Err() == nil {
		s, err := b.listenSession(ctx, cs)
		switch {
		case err != nil:
			b.logger.Debug("listen: no session for the client", "err", err)
		case s == nil:
			return nil // the server keeps no sessions
		default:
			cctx, ccancel := context.WithCancel(ctx)
			b.ses.setConn(lis, ccancel)
			got, err := b.listenOnce(cctx, s)
			b.ses.setConn(lis, nil)
			moved := cctx.Err() != nil
			ccancel()
			if got {
				fruitless = 0
			}
			switch {
			case ctx.Err() != nil:
				return nil
			case moved:
				continue // the client's session was replaced: follow it now
			case errors.Is(err, errNoStream):
				return nil
			case errors.Is(err, transport.ErrSessionTerminated):
				if b.ses.end(s) {
					release(s)
				}
				b.logger.Info("listen: the backend forgot the client's session", "endpoint", s.ep.label)
			case err != nil:
				b.logger.Debug("listen: event stream failed", "endpoint", s.ep.label, "err", err)
			}
		}
		_ = resilience.Sleep(ctx, b.clock, listenBackoff.Delay(fruitless)) // an ended ctx ends the loop
		fruitless++
	}
	return nil
}

// listenSession finds or opens the session Listen reads, under the server's
// timeout, on the endpoint a request of the client would use. Listening is
// no request: the lease is released with no outcome, so a half-open
// breaker's probe is left to a real request and the failures counted so far
// stay. Only a failed initialize of a session opened here counts (openOn).
func (b *Backend) listenSession(ctx context.Context, cs *ClientSession) (*upSession, error) {
	rctx, cancel := context.WithTimeout(ctx, b.params().timeout)
	defer cancel()
	l, s, err := b.sessionLease(rctx, cs, -1)
	if err != nil {
		return nil, err
	}
	l.release()
	return s, nil
}

// listenOnce reads one connection of the client's event stream until it
// ends, and reports whether any message came on it. For SSE it waits while
// the client's stream is up.
func (b *Backend) listenOnce(ctx context.Context, s *upSession) (got bool, err error) {
	if b.cfg.GetTransport() != mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		select {
		case <-ctx.Done():
			return false, nil
		case <-s.c.dead:
			return false, s.c.deadErr
		}
	}
	e := s.ep
	resp, err := e.sessionDo(ctx, http.MethodGet, s.key.ID, s.c.version, nil)
	if err != nil {
		return false, fmt.Errorf("open event stream: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusMethodNotAllowed:
		return false, errNoStream
	case http.StatusNotFound:
		return false, transport.ErrSessionTerminated
	default:
		return false, fmt.Errorf("open event stream: %s", resp.Status)
	}
	if mt := mediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, fmt.Errorf("open event stream: content type %q", resp.Header.Get("Content-Type"))
	}
	var answers sync.WaitGroup
	defer answers.Wait()
	err = readEvents(resp.Body, jsonrpc.MaxMessage, func(data []byte) {
		got = true
		m, err := jsonrpc.Parse(data)
		if err != nil {
			e.logger.Debug("listen: drop malformed message", "err", err)
			return
		}
		switch {
		case m.IsNotification():
			// This is a client's own session: a list_changed refetches
			// the shared lists and goes to the client too (its session's
			// own items changed), like everything else.
			e.listChanged(m.Method)
			e.deliver(s.client, &m)
		case m.IsRequest():
			answers.Add(1)
			go func() {
				defer answers.Done()
				b.answerOnStream(ctx, s, &m)
			}()
		}
	})
	return got, err
}

// answerOnStream answers a request that came on a client's GET stream and
// POSTs the answer back on its session.
func (b *Backend) answerOnStream(ctx context.Context, s *upSession, m *jsonrpc.Message) {
	var body []byte
	if res, jerr := s.ep.answer(ctx, s.client, m); jerr != nil {
		body = jsonrpc.ErrorResponse(m.ID, jerr)
	} else {
		body = jsonrpc.Response(m.ID, res)
	}
	pctx, cancel := context.WithTimeout(ctx, b.params().timeout)
	defer cancel()
	resp, err := s.ep.sessionDo(pctx, http.MethodPost, s.key.ID, s.c.version, body)
	if err != nil {
		s.ep.logger.Debug("listen: post answer", "method", m.Method, "err", err)
		return
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		s.ep.logger.Debug("listen: answer refused", "method", m.Method, "status", resp.Status)
	}
}

// errEventTooLarge: an SSE line or event is larger than allowed.
var errEventTooLarge = errors.New("event stream: event too large")

// readEvents parses a text/event-stream and calls fn with the data of each
// "message" event (events of other names are skipped), at most max bytes
// each. It returns nil when the stream ends, else the read error. fn owns
// the slice it gets.
func readEvents(r io.Reader, max int, fn func(data []byte)) error {
	_, err := scanEvents(r, max, nil, func(event string, data []byte) bool {
		if event == "" || event == "message" {
			fn(data)
		}
		return true
	})
	return err
}

// sseCursor is where a response stream stands, for resuming it the
// 2025-11-25 way (post.go): the id of the last event dispatched and the
// reconnection time the server asked for.
type sseCursor struct {
	lastID   string
	retry    time.Duration
	hasRetry bool
}

// scanEvents parses a text/event-stream and calls fn with the name ("" when
// unnamed) and data of each event that has data, at most max bytes each,
// until fn returns false or the stream ends. With cur set it reads the way
// mcp-go's streamable HTTP client reads a response stream: it records id
// and retry in cur (an id counts once its event is dispatched), and
// dispatches an event left unfinished at EOF (without recording its id);
// otherwise, as the SSE spec says, such an event is dropped. ended reports
// that the stream ended (EOF, or fn stopped it) rather than failed. fn owns
// the slice it gets.
func scanEvents(r io.Reader, max int, cur *sseCursor, fn func(event string, data []byte) bool) (ended bool, err error) {
	br := bufio.NewReaderSize(r, 32*1024)
	var data []byte
	hasData := false
	event := ""
	id, hasID := "", false
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 { // +2: the line's own CRLF
			return false, errEventTooLarge
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if err != nil { // EOF: a partial last line counts for nothing
			if cur != nil && len(data) > 0 {
				fn(event, data)
			}
			return true, nil
		}
		l := bytes.TrimRight(line, "\r\n")
		line = line[:0]
		switch {
		case len(l) == 0:
			if cur != nil && hasID {
				cur.lastID = id
			}
			hasID = false
			if hasData && (cur == nil || len(data) > 0) && !fn(event, data) {
				return true, nil
			}
			data, hasData, event = nil, false, ""
		case l[0] == ':': // comment, keep-alive
		default:
			field, value, _ := bytes.Cut(l, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				event = string(value)
			case "data":
				if hasData {
					data = append(data, '\n')
				}
				if len(data)+len(value) > max {
					return false, errEventTooLarge
				}
				data = append(data, value...)
				hasData = true
			case "id":
				if bytes.IndexByte(value, 0) < 0 {
					id, hasID = string(value), true
				}
			case "retry":
				if ms, err := strconv.ParseUint(string(value), 10, 31); err == nil && cur != nil {
					cur.retry, cur.hasRetry = time.Duration(ms)*time.Millisecond, true
				}
			}
		}
	}
}
