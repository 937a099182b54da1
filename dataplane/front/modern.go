package front

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// The stateless revision (2026-07-28 and later) on /mcp: no initialize, no
// session, every request carries its protocol version, client capabilities
// and client info in params._meta, and the Mcp-Method / Mcp-Name headers
// repeat what the body says. A request belongs to it when either its _meta or
// its MCP-Protocol-Version header names 2026-07-28 or later (a string
// comparison, as mcp-go does), whatever Mcp-Session-Id it carries.

// Error codes of the stateless revision.
const (
	CodeHeaderMismatch      = mcp.HEADER_MISMATCH                    // -32020
	CodeMissingCapability   = mcp.MISSING_REQUIRED_CLIENT_CAPABILITY // -32021
	CodeUnsupportedProtocol = mcp.UNSUPPORTED_PROTOCOL_VERSION       // -32022
)

// ModernProtocol is the stateless revision this front serves.
const ModernProtocol = mcp.ProtocolVersion20260728

// SupportedVersions are the protocol versions served on /mcp, newest first:
// what server/discover advertises and what a -32022 error lists.
var SupportedVersions = []string{
	mcp.ProtocolVersion20260728,
	mcp.ProtocolVersion20251125,
	mcp.ProtocolVersion20250618,
	mcp.ProtocolVersion20250326,
	mcp.ProtocolVersion20241105,
}

// Stateless reports whether the session is a request of the stateless
// revision (no session id; capabilities and client info from its _meta).
func (s *Session) Stateless() bool { return mcp.IsModernProtocol(s.Protocol) }

// metaVersion reads params._meta[io.modelcontextprotocol/protocolVersion].
func metaVersion(msg *jsonrpc.Message) string {
	meta := metaOf(msg.Params)
	if meta == nil {
		return ""
	}
	v, _, _ := jsonrpc.LookupString(meta, mcp.MetaKeyProtocolVersion)
	return v
}

// metaOf returns params._meta when it is an object.
func metaOf(params json.RawMessage) json.RawMessage {
	if params == nil {
		return nil
	}
	st, en, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil || !ok || params[st] != '{' {
		return nil
	}
	return params[st:en]
}

// isModern reports whether a POSTed message belongs to the stateless revision.
func isModern(r *http.Request, msg *jsonrpc.Message) bool {
	return mcp.IsModernProtocol(r.Header.Get(headerProtocol)) || mcp.IsModernProtocol(metaVersion(msg))
}

// modernGetOrDelete answers a GET or DELETE whose MCP-Protocol-Version header
// names the stateless revision, which has neither: true when it did.
func modernGetOrDelete(w http.ResponseWriter, r *http.Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodDelete) || !mcp.IsModernProtocol(r.Header.Get(headerProtocol)) {
		return false
	}
	w.Header().Set("Allow", http.MethodPost)
	httpError(w, http.StatusMethodNotAllowed, jsonrpc.CodeInvalidRequest,
		"%s is not part of protocol version %s: it has no sessions; server-to-client messages use subscriptions/listen", r.Method, ModernProtocol)
	return true
}

// statusOf is the HTTP status of a JSON error answer in the stateless
// revision.
func statusOf(code int) int {
	switch code {
	case jsonrpc.CodeMethodNotFound:
		return http.StatusNotFound
	case CodeHeaderMismatch, CodeMissingCapability, CodeUnsupportedProtocol,
		jsonrpc.CodeInvalidRequest, jsonrpc.CodeInvalidParams, jsonrpc.CodeParseError:
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// serveModern serves one POSTed message of the stateless revision.
func (f *Front) serveModern(w http.ResponseWriter, r *http.Request, msg *jsonrpc.Message) {
	fail := func(e *jsonrpc.Error) {
		writeJSON(w, statusOf(e.Code), jsonrpc.ErrorResponse(msg.ID, e))
	}
	if msg.IsResponse() || (msg.Method == "" && msg.Error != nil) {
		fail(jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"invalid request: a client does not answer the server in protocol version %s (server-to-client requests were replaced by input_required results)", ModernProtocol))
		return
	}
	s, e := readModern(r, msg)
	if e != nil {
		fail(e)
		return
	}
	s.Relayed = r.Header.Get(HeaderRelayed) != ""
	f.bind(s, r)
	traceContext(s, r)
	s.Paginate = paginate(r)
	ctx := r.Context()
	if msg.IsNotification() {
		f.router.Notify(ctx, s, msg)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if msg.Method == string(mcp.MethodSubscriptionsListen) {
		// A listen stream lasts until the client goes; Close ends it too.
		var stop func()
		var ok bool
		ctx, stop, ok = f.listens.add(ctx)
		if !ok {
			fail(jsonrpc.Errorf(jsonrpc.CodeInternalError, "%v", errClosing))
			return
		}
		defer stop()
	}
	ps := newPostStream(w, f.keepAlive)
	result, err := f.router.Handle(ctx, s, msg, ps)
	if err != nil {
		je := jsonrpc.AsError(err)
		ps.finishStatus(jsonrpc.ErrorResponse(msg.ID, je), statusOf(je.Code))
		return
	}
	if result == nil {
		result = json.RawMessage(`{"resultType":"complete"}`)
	}
	buf := answerPool.Get().(*[]byte)
	answer := jsonrpc.AppendResponse((*buf)[:0], msg.ID, result)
	ps.finishStatus(answer, http.StatusOK) // which copies it, as Write does
	if cap(answer) <= maxPooledAnswer {
		*buf = answer[:0]
		answerPool.Put(buf)
	}
}

// answerPool holds the buffers answers are encoded in before they are
// written; maxPooledAnswer bounds those kept.
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledAnswer = 64 << 10

// readModern validates a stateless message in the order mcp-go does, and
// reads its session from the _meta.
func readModern(r *http.Request, msg *jsonrpc.Message) (*Session, *jsonrpc.Error) {
	mismatch := func(format string, args ...any) *jsonrpc.Error {
		return jsonrpc.Errorf(CodeHeaderMismatch, format, args...)
	}
	if r.Header.Get(headerLastEventID) != "" {
		return nil, mismatch("Last-Event-ID is not supported in protocol version %s: streams are not resumable; re-issue the request with a new id", ModernProtocol)
	}
	header := r.Header.Get(headerProtocol)
	meta := metaOf(msg.Params)
	var version string
	if meta != nil {
		version, _, _ = jsonrpc.LookupString(meta, mcp.MetaKeyProtocolVersion)
	}
	switch {
	case header == "":
		return nil, mismatch("the %s header is required on requests carrying _meta %s", headerProtocol, mcp.MetaKeyProtocolVersion)
	case version == "":
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "missing or invalid params._meta[%q]: required in protocol version %s", mcp.MetaKeyProtocolVersion, header)
	case header != version:
		return nil, mismatch("the %s header %q does not match params._meta[%q] %q", headerProtocol, header, mcp.MetaKeyProtocolVersion, version)
	case version != ModernProtocol:
		data, _ := json.Marshal(struct {
			Supported []string `json:"supported"`
			Requested string   `json:"requested"`
		}{SupportedVersions, version})
		return nil, &jsonrpc.Error{Code: CodeUnsupportedProtocol, Data: data,
			Message: fmt.Sprintf("unsupported protocol version %q: this data plane speaks %s", version, strings.Join(SupportedVersions, ", "))}
	}
	s := &Session{Protocol: ModernProtocol, Transport: TransportStreamableHTTP}
	if msg.IsNotification() {
		return s, nil
	}
	st, en, ok, _ := jsonrpc.Lookup(meta, mcp.MetaKeyClientCapabilities)
	if !ok || meta[st] != '{' {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "missing or invalid params._meta[%q]: an object, required on every request", mcp.MetaKeyClientCapabilities)
	}
	if en-st > MaxCapabilities {
		return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "client capabilities are %d bytes; this gateway carries at most %d", en-st, MaxCapabilities)
	}
	s.Capabilities = meta[st:en]
	if st, en, ok, _ := jsonrpc.Lookup(meta, mcp.MetaKeyClientInfo); ok && meta[st] == '{' {
		name, _, _ := jsonrpc.LookupString(meta[st:en], "name")
		v, _, _ := jsonrpc.LookupString(meta[st:en], "version")
		s.ClientName, s.ClientVersion = cut(name, maxClientField), cut(v, maxClientField)
	}
	if level, _, _ := jsonrpc.LookupString(meta, mcp.MetaKeyLogLevel); level != "" {
		s.LogLevel = cut(level, maxClientField)
	}
	if e := checkStandardHeaders(r, msg); e != nil {
		return nil, e
	}
	return s, nil
}

// checkStandardHeaders checks Mcp-Method and Mcp-Name against the body as
// the client sent it (the names it sees, before any prefix is taken off).
func checkStandardHeaders(r *http.Request, msg *jsonrpc.Message) *jsonrpc.Error {
	method := r.Header.Get(mcp.HeaderMethod)
	if method == "" {
		return jsonrpc.Errorf(CodeHeaderMismatch, "the %s header is required in protocol version %s", mcp.HeaderMethod, ModernProtocol)
	}
	if method != msg.Method {
		return jsonrpc.Errorf(CodeHeaderMismatch, "the %s header %q does not match the request's method %q", mcp.HeaderMethod, method, msg.Method)
	}
	var key string
	switch msg.Method {
	case "tools/call", "prompts/get":
		key = "name"
	case "resources/read":
		key = "uri"
	default:
		return nil
	}
	raw := r.Header.Get(mcp.HeaderName)
	if raw == "" {
		return jsonrpc.Errorf(CodeHeaderMismatch, "the %s header is required on %s", mcp.HeaderName, msg.Method)
	}
	name, ok := mcp.DecodeHeaderValue(raw)
	if !ok {
		return jsonrpc.Errorf(CodeHeaderMismatch, "the %s header is not valid =?base64?…?= encoding", mcp.HeaderName)
	}
	var body string
	if msg.Params != nil {
		body, _, _ = jsonrpc.LookupString(msg.Params, key)
	}
	if name != body {
		return jsonrpc.Errorf(CodeHeaderMismatch, "the %s header %q does not match params.%s %q", mcp.HeaderName, name, key, body)
	}
	return nil
}

// finishStatus writes the answer of a stateless request: with status when
// it is still a JSON body, as the last event of its stream otherwise.
func (p *postStream) finishStatus(answer []byte, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
	if p.sse {
		_ = p.sw.event(messageHead, answer) // the client is gone: nobody to tell
		return
	}
	writeJSON(p.w, status, answer)
}

// listenSet holds the cancel functions of open subscriptions/listen
// requests, which Close ends.
type listenSet struct {
	mu     sync.Mutex
	next   uint64
	cancel map[uint64]context.CancelFunc
}

// add registers a listen request: its ctx ends when the client goes or at
// Close; stop unregisters it. ok is false after Close.
func (l *listenSet) add(ctx context.Context) (context.Context, func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel == nil {
		l.cancel = map[uint64]context.CancelFunc{}
	}
	if l.next == ^uint64(0) {
		return ctx, func() {}, false // closed
	}
	ctx, cancel := context.WithCancel(ctx)
	l.next++
	n := l.next
	l.cancel[n] = cancel
	return ctx, func() {
		cancel()
		l.mu.Lock()
		delete(l.cancel, n)
		l.mu.Unlock()
	}, true
}

// close ends every open listen request and refuses new ones.
func (l *listenSet) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next = ^uint64(0)
	for _, c := range l.cancel {
		c()
	}
}
