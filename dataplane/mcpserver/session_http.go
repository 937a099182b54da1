package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// How a streamable HTTP session survives a load balancer that sends each of
// its requests to another replica (2025-11-25 and earlier; 2026-07-28
// requests carry everything in _meta and pass through untouched):
//
//   - initialize: sessionHandler reads the client's protocol version,
//     capabilities and info from the body; the id mcp-go then mints (through
//     sessionResolver) carries them, signed.
//   - any later request, on any replica: sessionHandler verifies the id
//     before mcp-go sees it (a bad one gets a 4xx saying why). mcp-go serves
//     a session it does not know with a fresh, unregistered session object
//     (it never answers "session not found" for an id the manager accepts);
//     restoreSession fills that object with what the id carries, so handlers
//     see the negotiated version and client capabilities as on the replica
//     that ran initialize.
//   - GET (the listening stream) on any replica registers the session with
//     that replica's MCPServer, so the list_changed every replica broadcasts
//     after a config change reaches the client from whichever replica holds
//     its stream.

type requestSessionKey struct{}

// requestSession is what sessionHandler learned about one request. It is also
// the server.SessionIdManager that sessionResolver hands mcp-go for the
// request, so that mcp-go neither verifies the id a second time nor mints an
// initialize id without the client's facts.
type requestSession struct {
	ids *SessionIDManager
	// id is the verified Mcp-Session-Id, "" when the request had none.
	id    string
	facts SessionFacts
	// init, on an initialize request, is what the new id must carry.
	init *SessionFacts
}

func (rs *requestSession) Generate() string {
	if rs.init != nil {
		return rs.ids.Issue(*rs.init)
	}
	return rs.ids.Generate()
}

func (rs *requestSession) Validate(id string) (bool, error) {
	if id != "" && id == rs.id {
		return false, nil
	}
	return rs.ids.Validate(id)
}

func (rs *requestSession) Terminate(id string) (bool, error) { return rs.ids.Terminate(id) }

// sessionResolver gives mcp-go the request's requestSession, or the plain
// manager outside requests (its idle sweeper and CloseSessions call with a
// nil request, and only Terminate, which is a no-op).
type sessionResolver struct{ ids *SessionIDManager }

func (s sessionResolver) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	if r != nil {
		if rs, ok := r.Context().Value(requestSessionKey{}).(*requestSession); ok {
			return rs
		}
	}
	return s.ids
}

// sessionHandler guards mcp-go's streamable HTTP handler; see the comment at
// the top of this file.
type sessionHandler struct {
	ids  *SessionIDManager
	next http.Handler
	log  *slog.Logger
}

func (h *sessionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// 2026-07-28 removed sessions: mcp-go ignores the header on such requests
	// (and answers GET and DELETE with 405), so there is nothing to check.
	if mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
		h.next.ServeHTTP(w, r)
		return
	}
	id := r.Header.Get(server.HeaderKeySessionID)
	switch r.Method {
	case http.MethodPost:
		if id == "" {
			h.servePostWithoutSession(w, r)
			return
		}
	case http.MethodGet:
		if id == "" {
			// A GET may open a stream without a session (mcp-go mints one
			// for it); it receives only broadcasts, which are public.
			h.next.ServeHTTP(w, r)
			return
		}
	case http.MethodDelete:
		if id == "" {
			h.reject(w, r, &SessionIDError{Status: http.StatusBadRequest,
				Reason: "missing " + server.HeaderKeySessionID + " header: DELETE ends the session it names"})
			return
		}
	default:
		h.next.ServeHTTP(w, r)
		return
	}
	facts, err := h.ids.Decode(id)
	if err != nil {
		h.reject(w, r, err)
		return
	}
	if r.Method == http.MethodDelete {
		// Decode just accepted id, so Revoke cannot fail on it.
		_ = h.ids.Revoke(id)
	}
	rs := &requestSession{ids: h.ids, id: id, facts: facts}
	h.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestSessionKey{}, rs)))
}

// postProbe is the part of a JSON-RPC message the handler needs to decide
// what a POST without a session id is. Params stay raw: only initialize's are
// decoded, so odd params of other methods cannot derail the probe.
type postProbe struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

type initializeProbe struct {
	ProtocolVersion string                 `json:"protocolVersion"`
	ClientInfo      mcp.Implementation     `json:"clientInfo"`
	Capabilities    mcp.ClientCapabilities `json:"capabilities"`
}

type metaProbe struct {
	Meta *mcp.Meta `json:"_meta"`
}

func (h *sessionHandler) servePostWithoutSession(w http.ResponseWriter, r *http.Request) {
	// mcp-go reads the whole body too; it gets the same bytes back.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "mcpmesh: read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var p postProbe
	if json.Unmarshal(body, &p) != nil || p.Method == "" {
		// Not a JSON-RPC object (mcp-go answers a parse error) or a
		// JSON-RPC response (which mcp-go checks itself).
		h.next.ServeHTTP(w, r)
		return
	}
	if p.Method == string(mcp.MethodInitialize) {
		var init initializeProbe
		if len(p.Params) > 0 && json.Unmarshal(p.Params, &init) != nil {
			// mcp-go answers invalid params with the details.
			h.next.ServeHTTP(w, r)
			return
		}
		rs := &requestSession{ids: h.ids, init: &SessionFacts{
			// The version mcp-go's initialize handler will answer with.
			ProtocolVersion: mcp.NegotiateLegacyVersion(init.ProtocolVersion),
			ClientInfo:      init.ClientInfo,
			Capabilities:    init.Capabilities,
		}}
		h.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestSessionKey{}, rs)))
		return
	}
	var meta metaProbe
	if len(p.Params) > 0 && json.Unmarshal(p.Params, &meta) == nil && mcp.IsModernProtocol(meta.Meta.ProtocolVersion()) {
		// A 2026-07-28 request without the header: mcp-go rejects it with
		// a message naming the missing header.
		h.next.ServeHTTP(w, r)
		return
	}
	h.reject(w, r, &SessionIDError{Status: http.StatusBadRequest,
		Reason: "missing " + server.HeaderKeySessionID + " header: send initialize first and repeat the session id it returns on every request"})
}

func (h *sessionHandler) reject(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusNotFound
	var se *SessionIDError
	if errors.As(err, &se) {
		status = se.Status
	}
	h.log.Debug("refused MCP request: bad session id", "method", r.Method, "status", status, "err", err)
	http.Error(w, "mcpmesh: "+err.Error(), status)
}

// restoreSession gives a session object that this replica did not see
// initialized the facts its signed id carries. The protocol version is set
// last and marks the object as restored (or initialized here, in which case
// it already knows at least as much as the id).
func restoreSession(sess server.ClientSession, f SessionFacts) {
	versioned, ok := sess.(interface {
		server.SessionWithProtocolVersion
		SetProtocolVersion(string)
	})
	if !ok || versioned.ProtocolVersion() != "" {
		return
	}
	if withInfo, ok := sess.(server.SessionWithClientInfo); ok {
		withInfo.SetClientInfo(f.ClientInfo)
		withInfo.SetClientCapabilities(f.Capabilities)
	}
	versioned.SetProtocolVersion(f.ProtocolVersion)
}

// sessionContext is the streamable transport's context func: it restores the
// request's session, then runs the caller's ContextFunc.
func sessionContext(extra func(context.Context, *http.Request) context.Context) server.HTTPContextFunc {
	return func(ctx context.Context, r *http.Request) context.Context {
		if rs, ok := r.Context().Value(requestSessionKey{}).(*requestSession); ok && rs.id != "" {
			if sess := server.ClientSessionFromContext(ctx); sess != nil {
				restoreSession(sess, rs.facts)
			}
		}
		if extra != nil {
			ctx = extra(ctx, r)
		}
		return ctx
	}
}
