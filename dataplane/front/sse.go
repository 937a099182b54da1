package front

import (
	"bytes"
	"context"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// The legacy HTTP+SSE transport (2024-11-05): GET /sse opens a stream whose
// first event names the URL to POST messages to, /message?sessionId=<id>;
// every answer travels on the stream.
//
// The session is minted when /sse opens, before initialize, so its id cannot
// carry what initialize decides (it would have to change, and the /message
// URL cannot). The session therefore lives in memory with its stream on the
// replica that opened it: initialize fills it in, every /message of it reads
// it there, and it ends with the stream (Router.Ended). That costs nothing,
// as the transport is sticky anyway: answers go on the stream, which one
// replica holds, so a load balancer must route /sse and /message of a client
// to the same replica. The id is still sealed, so that a /message that
// reaches another replica is told precisely what went wrong, and it carries
// no expiry in practice: the stream is the session.
//
// Router.Listening is called when initialize succeeds (with the stream's
// context), not when the stream opens, so the router sees an initialized
// session.

func (f *Front) serveSSE(w http.ResponseWriter, r *http.Request) {
	r, ok := f.admit(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r, "GET")
		return
	}
	if !checkStreamAccept(w, r) {
		return
	}
	s := &Session{Paginate: paginate(r), Transport: TransportSSE}
	f.bind(s, r)
	id := f.codec.seal(s)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	l := newListener(f.queueLen)
	l.sess, l.ctx, l.cred = s, ctx, s.Credential
	if !f.openStream(id, l) {
		httpError(w, http.StatusServiceUnavailable, jsonrpc.CodeInternalError, "%v", errClosing)
		return
	}
	defer func() {
		f.closeStream(id, l)
		f.router.Ended(l.session())
	}()
	// The /sse query (e.g. pagination=true) carries over to every message.
	q := r.URL.Query()
	q.Set("sessionId", id)
	sw := startSSE(w)
	if err := sw.event(endpointHead, []byte("/message?"+q.Encode())); err != nil {
		return
	}
	f.runStream(ctx, sw, l)
}

// session returns a copy of the SSE session, safe to hand to the router
// while initialize may change the original.
func (l *listener) session() *Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := *l.sess
	return &s
}

func (f *Front) serveMessage(w http.ResponseWriter, r *http.Request) {
	r, ok := f.admit(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodPost {
		methodNotAllowed(w, r, "POST")
		return
	}
	if !checkPost(w, r, false) {
		return
	}
	id := r.URL.Query().Get("sessionId")
	if id == "" {
		httpError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest,
			"missing sessionId query parameter: POST to the URL of the /sse stream's endpoint event")
		return
	}
	l := f.streams.get(id)
	if l == nil || l.sess == nil {
		if _, ok := f.openSession(w, id); ok {
			httpError(w, http.StatusNotFound, jsonrpc.CodeInvalidRequest,
				"no open /sse stream of this session on this data plane: the SSE transport needs /sse and /message "+
					"of a client routed to the same data plane (sticky sessions), or the stream has ended")
		}
		return
	}
	body, ok := f.readBody(w, r)
	if !ok {
		return
	}
	msg, err := jsonrpc.Parse(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, jsonrpc.ErrorResponse(nil, jsonrpc.AsError(err)))
		return
	}
	ctx := r.Context()
	s := l.session()
	switch {
	case msg.Method == string(mcp.MethodInitialize) && msg.IsRequest():
		answer, ok := f.initialize(ctx, s, &msg)
		if ok {
			// Kept for the stream's life: not an alias of this body.
			s.Capabilities = bytes.Clone(s.Capabilities)
			l.mu.Lock()
			first := l.sess.Protocol == ""
			*l.sess = *s
			l.mu.Unlock()
			if first {
				f.listening(l.ctx, l.session())
			}
		}
		f.reply(l, answer)
	case msg.IsRequest():
		f.reply(l, f.handle(ctx, s, &msg, sseStream{l}))
	case msg.IsNotification():
		f.router.Notify(ctx, s, &msg)
	default:
		f.router.Respond(ctx, s, &msg)
	}
	w.WriteHeader(http.StatusAccepted)
}

func (f *Front) reply(l *listener, answer []byte) {
	if !l.offer(answer) {
		f.log.Debug("answer dropped: the SSE stream has ended or fell behind")
	}
}

// sseStream is the Stream of a /message request: its messages go on the
// session's stream, ahead of the answer.
type sseStream struct{ l *listener }

func (s sseStream) Send(msg []byte) error {
	if !s.l.offer(msg) {
		return errStreamGone
	}
	return nil
}
