package front

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// The streamable HTTP transport (2025-03-26, 2025-06-18, 2025-11-25 and the
// stateless 2026-07-28) on /mcp.

func (f *Front) serveMCP(w http.ResponseWriter, r *http.Request) {
	r, ok := f.admit(w, r)
	if !ok || modernGetOrDelete(w, r) {
		return
	}
	switch r.Method {
	case http.MethodPost:
		f.servePost(w, r)
	case http.MethodGet:
		f.serveListen(w, r)
	case http.MethodDelete:
		f.serveDelete(w, r)
	default:
		methodNotAllowed(w, r, "GET, POST, DELETE")
	}
}

func (f *Front) servePost(w http.ResponseWriter, r *http.Request) {
	if !checkPost(w, r, true) {
		return
	}
	key, ok := f.inflight.acquire(w, r)
	if !ok {
		return
	}
	defer f.inflight.release(key)
	body, ok := f.readBody(w, r)
	if !ok {
		return
	}
	if i := skipSpace(body); i < len(body) && body[i] == '[' {
		f.serveBatch(w, r, body)
		return
	}
	msg, err := jsonrpc.Parse(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, jsonrpc.ErrorResponse(nil, jsonrpc.AsError(err)))
		return
	}
	if isModern(r, &msg) {
		f.serveModern(w, r, &msg)
		return
	}
	if msg.Method == string(mcp.MethodInitialize) && msg.IsRequest() {
		// Always a new session, whatever Mcp-Session-Id the request carries:
		// a client re-initializes after its session was refused.
		f.serveInitialize(w, r, &msg)
		return
	}
	s, ok := f.session(w, r, &msg)
	if !ok {
		return
	}
	s.Relayed = r.Header.Get(HeaderRelayed) != ""
	f.bind(s, r)
	traceContext(s, r)
	ctx := r.Context()
	switch {
	case msg.IsRequest():
		ps := newPostStream(w, f.keepAlive)
		ps.finish(f.handle(ctx, s, &msg, ps))
	case msg.IsNotification():
		f.router.Notify(ctx, s, &msg)
		w.WriteHeader(http.StatusAccepted)
	default:
		f.router.Respond(ctx, s, &msg)
		w.WriteHeader(http.StatusAccepted)
	}
}

// handle runs one request through the router and encodes its answer.
func (f *Front) handle(ctx context.Context, s *Session, msg *jsonrpc.Message, out Stream) []byte {
	result, err := f.router.Handle(ctx, s, msg, out)
	if err != nil {
		return jsonrpc.ErrorResponse(msg.ID, jsonrpc.AsError(err))
	}
	if result == nil {
		result = json.RawMessage("{}")
	}
	return jsonrpc.Response(msg.ID, result)
}

// session finds the session of a request that is not initialize: decoded
// from its id, or an id-less one for discovery (see stateless). Otherwise it
// answers the error.
func (f *Front) session(w http.ResponseWriter, r *http.Request, msg *jsonrpc.Message) (*Session, bool) {
	id := r.Header.Get(headerSession)
	if id == "" {
		if stateless(msg) {
			return &Session{Protocol: r.Header.Get(headerProtocol), Paginate: paginate(r), Transport: TransportStreamableHTTP}, true
		}
		httpError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest,
			"missing %s header: send initialize first and repeat the session id it returns on every request", headerSession)
		return nil, false
	}
	return f.openMCP(w, r, id)
}

// requireSession decodes the session id of a request that must carry one
// (why says what it needs it for, in the 400 when it has none), answering
// the error otherwise.
func (f *Front) requireSession(w http.ResponseWriter, r *http.Request, why string) (*Session, bool) {
	id := r.Header.Get(headerSession)
	if id == "" {
		httpError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "missing %s header: %s", headerSession, why)
		return nil, false
	}
	return f.openMCP(w, r, id)
}

// openMCP decodes the id of a /mcp request, refusing one of an SSE session:
// its stream and state live with the /sse stream (see sse.go).
func (f *Front) openMCP(w http.ResponseWriter, r *http.Request, id string) (*Session, bool) {
	s, ok := f.openSession(w, id)
	if !ok {
		return nil, false
	}
	if s.Transport != TransportStreamableHTTP {
		httpError(w, http.StatusNotFound, jsonrpc.CodeInvalidRequest,
			"session id rejected: it belongs to the legacy SSE transport (/sse and /message), not /mcp; initialize a new session")
		return nil, false
	}
	s.Paginate = paginate(r)
	return s, true
}

// openSession decodes id or answers 404 saying why not.
func (f *Front) openSession(w http.ResponseWriter, id string) (*Session, bool) {
	s, err := f.codec.open(id)
	if err == nil {
		return s, true
	}
	if s != nil {
		// Authentic but expired: the session ended.
		f.router.Ended(s)
	}
	f.log.Debug("MCP request refused: bad session id", "err", err)
	httpError(w, http.StatusNotFound, jsonrpc.CodeInvalidRequest, "%v", err)
	return nil, false
}

// stateless reports whether a message without a session may be answered
// without one: server/discover and subscriptions/listen of a client that did
// not say it speaks the stateless revision (modern.go serves those that do),
// which the router answers -32601.
func stateless(msg *jsonrpc.Message) bool {
	return msg.Method == string(mcp.MethodServerDiscover) || msg.Method == string(mcp.MethodSubscriptionsListen)
}

func (f *Front) serveInitialize(w http.ResponseWriter, r *http.Request, msg *jsonrpc.Message) {
	s := &Session{Paginate: paginate(r), Transport: TransportStreamableHTTP}
	f.bind(s, r)
	traceContext(s, r)
	answer, ok := f.initialize(r.Context(), s, msg)
	if ok {
		w.Header().Set(headerSession, f.codec.seal(s))
	}
	writeJSON(w, http.StatusOK, answer)
}

// initialize reads the client's initialize params into s, runs the router's
// Initialize and records its upstream state and protocol version in s. It
// returns the answer and whether the session was established.
func (f *Front) initialize(ctx context.Context, s *Session, msg *jsonrpc.Message) ([]byte, bool) {
	if e := readInitialize(msg.Params, s); e != nil {
		return jsonrpc.ErrorResponse(msg.ID, e), false
	}
	result, upstream, err := f.router.Initialize(ctx, s, msg.Params)
	if err != nil {
		return jsonrpc.ErrorResponse(msg.ID, jsonrpc.AsError(err)), false
	}
	if len(upstream) > MaxUpstream {
		f.log.Error("router's session state too large for a session id", "bytes", len(upstream), "max", MaxUpstream)
		return jsonrpc.ErrorResponse(msg.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError,
			"initialize: the gateway's session state is %d bytes, more than the %d a session id carries", len(upstream), MaxUpstream)), false
	}
	s.Upstream = upstream
	if v, ok, _ := jsonrpc.LookupString(result, "protocolVersion"); ok && v != "" {
		s.Protocol = internProtocol([]byte(v))
	}
	return jsonrpc.Response(msg.ID, result), true
}

// readInitialize reads what a session carries from initialize params: the
// requested version (negotiated as mcp-go does), client info, capabilities.
func readInitialize(params json.RawMessage, s *Session) *jsonrpc.Error {
	var requested string
	if params != nil {
		bad := func(what string, err error) *jsonrpc.Error {
			return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid initialize params: %s: %v", what, err)
		}
		v, _, err := jsonrpc.LookupString(params, "protocolVersion")
		if err != nil {
			return bad("protocolVersion", err)
		}
		requested = v
		st, en, ok, err := jsonrpc.Lookup(params, "clientInfo")
		if err != nil {
			return bad("clientInfo", err)
		}
		if ok && params[st] == '{' {
			info := params[st:en]
			name, _, err1 := jsonrpc.LookupString(info, "name")
			version, _, err2 := jsonrpc.LookupString(info, "version")
			if err1 == nil {
				err1 = err2
			}
			if err1 != nil {
				return bad("clientInfo", err1)
			}
			s.ClientName, s.ClientVersion = cut(name, maxClientField), cut(version, maxClientField)
		}
		st, en, ok, _ = jsonrpc.Lookup(params, "capabilities")
		if ok {
			caps := params[st:en]
			if caps[0] != '{' {
				return jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid initialize params: capabilities must be an object")
			}
			if len(caps) > MaxCapabilities {
				return jsonrpc.Errorf(jsonrpc.CodeInvalidParams,
					"initialize: client capabilities are %d bytes; this gateway carries at most %d", len(caps), MaxCapabilities)
			}
			s.Capabilities = caps
		}
	}
	s.Protocol = mcp.NegotiateLegacyVersion(requested)
	return nil
}

// serveBatch answers a JSON-RPC batch (2025-03-26 only; 2025-06-18 removed
// batching) element by element, in order.
func (f *Front) serveBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	// Batches are rare: splitting the array with encoding/json is the
	// simple way, and each element is then parsed once as usual.
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		writeJSON(w, http.StatusBadRequest, jsonrpc.ErrorResponse(nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error: %v", err)))
		return
	}
	if len(elems) == 0 {
		httpError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest, "invalid request: empty batch")
		return
	}
	s, ok := f.requireSession(w, r, "a batch belongs to a session (and initialize must not be batched)")
	if !ok {
		return
	}
	if s.Protocol != mcp.ProtocolVersion20250326 {
		httpError(w, http.StatusBadRequest, jsonrpc.CodeInvalidRequest,
			"JSON-RPC batches are not part of protocol version %s (2025-06-18 removed them); send one message per POST", s.Protocol)
		return
	}
	ctx := r.Context()
	// Keep-alives start with the first request: a batch of notifications
	// and responses only is answered 202, however long it takes.
	ps := &postStream{w: w, every: f.keepAlive}
	for _, raw := range elems {
		msg, err := jsonrpc.Parse(raw)
		switch {
		case err != nil:
			ps.answer(jsonrpc.ErrorResponse(nil, jsonrpc.AsError(err)))
		case msg.Method == string(mcp.MethodInitialize):
			if msg.IsRequest() {
				ps.answer(jsonrpc.ErrorResponse(msg.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: initialize must not be part of a batch")))
			}
		case msg.IsRequest():
			ps.arm()
			ps.answer(f.handle(ctx, s, &msg, ps))
		case msg.IsNotification():
			f.router.Notify(ctx, s, &msg)
		default:
			f.router.Respond(ctx, s, &msg)
		}
	}
	ps.finishBatch()
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// postStream is the answer of one POST: one JSON body unless the router
// calls Send, which turns it into an event stream, or the answer takes
// longer than the keep-alive interval: then it becomes an event stream with
// a keep-alive comment every interval, so that a proxy or load balancer
// that cuts idle connections (60 s is a common default) does not cut a
// long tool call.
type postStream struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	sw   sseWriter
	sse  bool
	done bool
	// pending holds a batch's answers until the body is written.
	pending [][]byte

	every time.Duration
	ka    *time.Timer
}

// newPostStream starts the answer of a POST with keep-alives every interval.
func newPostStream(w http.ResponseWriter, every time.Duration) *postStream {
	p := &postStream{w: w, every: every}
	p.arm()
	return p
}

// arm starts the keep-alives, once.
func (p *postStream) arm() {
	p.mu.Lock() // the first keep-alive reads p.ka
	defer p.mu.Unlock()
	if p.ka == nil && !p.done {
		p.ka = time.AfterFunc(p.every, p.keepAlive)
	}
}

// keepAlive writes a keep-alive comment, turning the answer into an event
// stream first, and arms the next one.
func (p *postStream) keepAlive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	if !p.sse {
		if err := p.toSSE(); err != nil {
			return
		}
	}
	if p.sw.keepAlive() == nil {
		p.ka.Reset(p.every)
	}
}

// end marks the answer written (under p.mu) and stops the keep-alives.
func (p *postStream) end() {
	p.done = true
	if p.ka != nil {
		p.ka.Stop()
	}
}

func (p *postStream) Send(msg []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return errAnswered
	}
	if !p.sse {
		if err := p.toSSE(); err != nil {
			return err
		}
	}
	return p.sw.event(messageHead, msg)
}

// toSSE starts the event stream, with the answers of the batch so far.
func (p *postStream) toSSE() error {
	p.sse = true
	p.sw = startSSE(p.w)
	for _, a := range p.pending {
		if err := p.sw.event(messageHead, a); err != nil {
			return err
		}
	}
	p.pending = nil
	return nil
}

// finish writes the answer of a single request.
func (p *postStream) finish(answer []byte) { p.finishStatus(answer, http.StatusOK) }

// answer adds the answer of one batch element.
func (p *postStream) answer(a []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sse {
		_ = p.sw.event(messageHead, a)
		return
	}
	p.pending = append(p.pending, a)
}

// finishBatch writes what is left of a batch's answer.
func (p *postStream) finishBatch() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
	switch {
	case p.sse:
	case len(p.pending) == 0:
		// Only notifications and responses.
		p.w.WriteHeader(http.StatusAccepted)
	default:
		writeJSON(p.w, http.StatusOK, append(append([]byte{'['}, bytes.Join(p.pending, []byte{','})...), ']'))
	}
}

// serveListen opens the session's GET stream. A second GET of the same
// session on this replica replaces the first (see registry.put).
func (f *Front) serveListen(w http.ResponseWriter, r *http.Request) {
	if !checkStreamAccept(w, r) {
		return
	}
	s, ok := f.requireSession(w, r, "GET opens the stream of a session")
	if !ok {
		return
	}
	s.Peer = r.Header.Get(HeaderPeer)
	f.bind(s, r)
	l := newListener(f.queueLen)
	l.cred = s.Credential
	if !f.openStream(s.ID, l) {
		httpError(w, http.StatusServiceUnavailable, jsonrpc.CodeInternalError, "%v", errClosing)
		return
	}
	defer f.closeStream(s.ID, l)
	sw := startSSE(w)
	if err := sw.rc.Flush(); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	f.listening(ctx, s)
	f.runStream(ctx, sw, l)
}

// serveDelete ends a session on this replica.
func (f *Front) serveDelete(w http.ResponseWriter, r *http.Request) {
	s, ok := f.requireSession(w, r, "DELETE ends the session it names")
	if !ok {
		return
	}
	s.Peer = r.Header.Get(HeaderPeer)
	f.bind(s, r)
	f.codec.revoke(s)
	if l := f.streams.get(s.ID); l != nil {
		l.stop()
	}
	f.router.Ended(s)
	w.Header().Set("Content-Length", strconv.Itoa(0))
	w.WriteHeader(http.StatusOK)
}
