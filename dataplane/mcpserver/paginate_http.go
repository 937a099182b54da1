package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The cursor guards exist because mcp-go v1.2.1 gives list methods no way to
// fail with a message of the gateway's choosing (see paginate.go). They look
// at each POSTed JSON-RPC request before mcp-go does and answer a list request
// whose cursor does not verify with -32602 and the reason; everything else
// passes through untouched.
//
// The streamable guard built by NewStreamableHTTP also makes list requests
// cost a page, not the whole list. mcp-go's list handlers copy and sort every
// registered item on each request (for tools/list, twice over on streamable
// HTTP, whose sessions always carry a session-tools map), only for the After
// hook to replace the page with one cut from the gateway's own list: ~10 ms a
// page at 10,000 tools. So the guard hands list requests to a twin transport:
// mcp-go's own streamable HTTP transport, built with the same options, over
// Server.lister, an MCP server with the same options and hooks but no items.
// Everything around the list (protocol revision checks, session id checks,
// the 2026-07-28 result metadata and status codes, hooks) is mcp-go's own
// code, and the hooks fill in the page as before. The twin serves a legacy
// session as another replica would (the session id carries what it needs;
// see session_http.go): it does not refresh the session's idle timer on the
// main transport, and notifications queued for a session without a GET
// stream go out with its next non-list request instead.

// NewStreamableHTTP builds mcp-go's streamable HTTP transport for s with opts
// and returns it (for Shutdown) with the handler to serve: the transport
// behind the cursor guard, which sends list requests to the twin transport.
func (s *Server) NewStreamableHTTP(opts ...server.StreamableHTTPOption) (*server.StreamableHTTPServer, http.Handler) {
	primary := server.NewStreamableHTTPServer(s.mcp, opts...)
	// The twin never registers a session (no initialize or GET reaches it),
	// so it needs no idle sweeper, and without one it starts no goroutine
	// and needs no Shutdown.
	twin := server.NewStreamableHTTPServer(s.lister, append(slices.Clip(opts), server.WithSessionIdleTTL(0))...)
	return primary, s.streamableGuard(primary, twin)
}

// StreamableCursorGuard wraps the streamable HTTP handler (/mcp). List
// requests stay with next (served through the hooks); NewStreamableHTTP
// builds the faster guard.
func (s *Server) StreamableCursorGuard(next http.Handler) http.Handler {
	return s.streamableGuard(next, nil)
}

// streamableGuard refuses bad cursors and sends the other list requests to
// lists, or to next when lists is nil.
func (s *Server) streamableGuard(next, lists http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := s.peekList(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if resp, bad := s.refusal(req); bad {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_ = json.NewEncoder(w).Encode(resp)
			return
		}
		if lists != nil {
			lists.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SSECursorGuard wraps the message handler (/message) of the legacy SSE
// transport sse, whose responses travel on the session's event stream.
func (s *Server) SSECursorGuard(sse *server.SSEServer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			resp mcp.JSONRPCError
			bad  bool
		)
		if req, ok := s.peekList(r); ok {
			resp, bad = s.refusal(req)
		}
		// An unknown session or a full queue: let mcp-go answer as it
		// always does (the Before hook still refuses the cursor).
		if !bad || sse.SendEventToSession(r.URL.Query().Get("sessionId"), resp) != nil {
			next.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// maxGuardedBody bounds what a guard reads; mcp-go itself reads the rest of
// a larger body, and a list request is never that large.
const maxGuardedBody = 1 << 20

// listRequest is the part of a JSON-RPC list request a guard looks at.
type listRequest struct {
	ID     json.RawMessage `json:"id"`
	Method mcp.MCPMethod   `json:"method"`
	Params struct {
		Cursor string `json:"cursor"`
	} `json:"params"`
	kind listKind
}

var listKinds = map[mcp.MCPMethod]listKind{
	mcp.MethodToolsList:              kindTools,
	mcp.MethodPromptsList:            kindPrompts,
	mcp.MethodResourcesList:          kindResources,
	mcp.MethodResourcesTemplatesList: kindTemplates,
}

// listMethodSuffix ends the method name of every list kind; a body without it
// is not decoded at all, so other requests (tools/call above all) pay only
// for a scan.
var listMethodSuffix = []byte(`/list"`)

// peekList reports whether r is a POSTed JSON-RPC list request and returns
// it. It leaves r.Body readable from the start for whichever handler serves
// r. Whatever it does not recognise (an escaped method name, a body over
// maxGuardedBody) goes to mcp-go's own handler, which serves every list
// correctly through the hooks, only slower.
func (s *Server) peekList(r *http.Request) (listRequest, bool) {
	if r.Method != http.MethodPost || r.Body == nil {
		return listRequest{}, false
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, maxGuardedBody))
	// mcp-go reads what was read here, then the rest, and reports a read
	// error itself.
	r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	if err != nil || len(head) == maxGuardedBody || !bytes.Contains(head, listMethodSuffix) {
		return listRequest{}, false
	}
	var req listRequest
	if json.Unmarshal(head, &req) != nil || len(req.ID) == 0 {
		return listRequest{}, false
	}
	kind, ok := listKinds[req.Method]
	if !ok {
		return listRequest{}, false
	}
	req.kind = kind
	return req, true
}

// refusal returns the error response for a list request whose cursor would
// be refused.
func (s *Server) refusal(req listRequest) (mcp.JSONRPCError, bool) {
	if req.Params.Cursor == "" {
		return mcp.JSONRPCError{}, false
	}
	cerr := s.checkCursor(req.kind, req.Params.Cursor)
	if cerr == nil {
		return mcp.JSONRPCError{}, false
	}
	var id any
	if json.Unmarshal(req.ID, &id) != nil {
		return mcp.JSONRPCError{}, false
	}
	s.log.Debug("refusing list request", "method", string(req.Method), "err", cerr)
	return mcp.JSONRPCError{
		JSONRPC: mcp.JSONRPC_VERSION,
		ID:      mcp.NewRequestId(id),
		Error:   mcp.NewJSONRPCErrorDetails(mcp.INVALID_PARAMS, cerr.Error(), nil),
	}, true
}

type readCloser struct {
	io.Reader
	io.Closer
}
