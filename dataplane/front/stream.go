package front

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// listener is one open GET or SSE stream of a session on this replica. The
// stream's handler goroutine is its only writer; everyone else offers
// messages to its bounded queue, and a stream that falls behind is stopped
// (the client reconnects) rather than allowed to grow memory.
type listener struct {
	queue chan []byte
	gone  chan struct{}
	once  sync.Once

	// cred is the Authorization header the stream was opened with ("" when
	// clients do not authenticate): Reauthorize checks it again.
	cred string

	// Legacy SSE only: the session lives here (see sse.go).
	mu   sync.Mutex
	sess *Session
	ctx  context.Context // the stream's, for Router.Listening after initialize
}

func newListener(n int) *listener {
	return &listener{queue: make(chan []byte, n), gone: make(chan struct{})}
}

// offer queues msg without blocking; false when the stream is gone or full
// (then it is stopped).
func (l *listener) offer(msg []byte) bool {
	select {
	case <-l.gone:
		return false
	default:
	}
	select {
	case l.queue <- msg:
		return true
	default:
		l.stop()
		return false
	}
}

// stop ends the stream: replaced by a newer one, too slow, DELETE or Close.
func (l *listener) stop() { l.once.Do(func() { close(l.gone) }) }

// registry maps session ids to their open stream on this replica.
type registry struct {
	mu sync.RWMutex
	m  map[string]*listener
}

func (r *registry) get(id string) *listener {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[id]
}

// put registers l, stopping the stream it replaces: a client that reopens
// its GET stream (after a network change its old connection may look alive
// for a while) gets the new one, rather than a 409 until the old one dies.
func (r *registry) put(id string, l *listener) {
	r.mu.Lock()
	old := r.m[id]
	r.m[id] = l
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

func (r *registry) remove(id string, l *listener) {
	r.mu.Lock()
	if r.m[id] == l {
		delete(r.m, id)
	}
	r.mu.Unlock()
}

func (r *registry) each(fn func(*listener)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, l := range r.m {
		fn(l)
	}
}

// openStream registers a stream handler: false after Close. Registering
// under f.mu means Close, which sets closed under it and then stops every
// registered stream, cannot miss one.
func (f *Front) openStream(id string, l *listener) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	f.streams.put(id, l)
	return true
}

func (f *Front) closeStream(id string, l *listener) {
	f.streams.remove(id, l)
	l.stop()
	f.wg.Done()
}

// Reauthorize checks the credential of every open stream again and ends
// those it no longer admits (a revoked or expired client key, an expired
// token): a request is authenticated when it arrives, a stream only when it
// opens, so without this a revoked key would keep receiving messages on an
// open stream. It returns how many streams it ended.
func (f *Front) Reauthorize() int {
	if f.auth == nil {
		return 0
	}
	var open []*listener
	f.streams.each(func(l *listener) {
		if l.cred != "" {
			open = append(open, l)
		}
	})
	ended := 0
	for _, l := range open {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", l.cred)
		if _, status, _, msg := f.auth(r); status != 0 {
			f.log.Info("client stream ended: its credential is no longer accepted", "reason", msg)
			l.stop()
			ended++
		}
	}
	return ended
}

// runStream writes l's messages and keep-alives to the SSE response until
// the client goes, the stream is stopped, or a write fails.
func (f *Front) runStream(ctx context.Context, sw sseWriter, l *listener) {
	t := time.NewTicker(f.keepAlive)
	defer t.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-l.gone:
			return
		case msg := <-l.queue:
			err = sw.event(messageHead, msg)
		case <-t.C:
			err = sw.keepAlive()
		}
		if err != nil {
			f.log.Debug("MCP stream closed: write failed", "err", err)
			return
		}
	}
}

// sseWriter frames server-sent events on a response.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startSSE sends the headers of an event stream.
func startSSE(w http.ResponseWriter) sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Proxies such as nginx buffer responses unless told not to.
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	// A stream outlives any server write timeout meant for plain answers.
	_ = rc.SetWriteDeadline(time.Time{})
	w.WriteHeader(http.StatusOK)
	return sseWriter{w: w, rc: rc}
}

var (
	messageHead      = []byte("event: message\ndata: ")
	endpointHead     = []byte("event: endpoint\ndata: ")
	dataNext         = []byte("\ndata: ")
	eventEnd         = []byte("\n\n")
	keepAliveComment = []byte(": keep-alive\n\n")
)

// event writes one event and flushes it. JSON holds line breaks only as
// whitespace (strings escape them), so a message with any is sent as several
// data lines, which the client joins with "\n".
func (s sseWriter) event(head, data []byte) error {
	w := s.w
	_, _ = w.Write(head)
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			_, _ = w.Write(data)
			break
		}
		_, _ = w.Write(data[:i])
		_, _ = w.Write(dataNext)
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	if _, err := w.Write(eventEnd); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s sseWriter) keepAlive() error {
	if _, err := s.w.Write(keepAliveComment); err != nil {
		return err
	}
	return s.rc.Flush()
}

var errAnswered = errors.New("the request was already answered")

var errStreamGone = errors.New("the SSE stream has ended or fell too far behind")
