package mcpserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The cursor guards exist because mcp-go v1.2.1 gives list methods no way to
// fail with a message of the gateway's choosing (see paginate.go). They look
// at each POSTed JSON-RPC request before mcp-go does and answer a list request
// whose cursor does not verify with -32602 and the reason; everything else
// passes through untouched.

// StreamableCursorGuard wraps the streamable HTTP handler (/mcp).
func (s *Server) StreamableCursorGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok := s.refuseCursor(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(resp)
	})
}

// SSECursorGuard wraps the message handler (/message) of the legacy SSE
// transport sse, whose responses travel on the session's event stream.
func (s *Server) SSECursorGuard(sse *server.SSEServer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, ok := s.refuseCursor(r)
		// An unknown session or a full queue: let mcp-go answer as it
		// always does (the Before hook still refuses the cursor).
		if !ok || sse.SendEventToSession(r.URL.Query().Get("sessionId"), resp) != nil {
			next.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// maxGuardedBody bounds what a guard reads; mcp-go itself reads the rest of
// a larger body, and a list request is never that large.
const maxGuardedBody = 1 << 20

// cursorRequest is the part of a JSON-RPC request a guard looks at.
type cursorRequest struct {
	ID     json.RawMessage `json:"id"`
	Method mcp.MCPMethod   `json:"method"`
	Params struct {
		Cursor string `json:"cursor"`
	} `json:"params"`
}

var listKinds = map[mcp.MCPMethod]listKind{
	mcp.MethodToolsList:              kindTools,
	mcp.MethodPromptsList:            kindPrompts,
	mcp.MethodResourcesList:          kindResources,
	mcp.MethodResourcesTemplatesList: kindTemplates,
}

// refuseCursor returns the error response for r when it is a list request
// with a bad cursor. It leaves r.Body readable from the start for next.
func (s *Server) refuseCursor(r *http.Request) (mcp.JSONRPCError, bool) {
	if r.Method != http.MethodPost || r.Body == nil {
		return mcp.JSONRPCError{}, false
	}
	head, err := io.ReadAll(io.LimitReader(r.Body, maxGuardedBody))
	// mcp-go reads what was read here, then the rest, and reports a read
	// error itself.
	r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	if err != nil || len(head) == maxGuardedBody || !bytes.Contains(head, []byte(`"cursor"`)) {
		return mcp.JSONRPCError{}, false
	}
	var req cursorRequest
	if json.Unmarshal(head, &req) != nil || len(req.ID) == 0 || req.Params.Cursor == "" {
		return mcp.JSONRPCError{}, false
	}
	kind, ok := listKinds[req.Method]
	if !ok {
		return mcp.JSONRPCError{}, false
	}
	cerr := s.checkCursor(kind, req.Params.Cursor)
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
