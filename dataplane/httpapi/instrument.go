package httpapi

import (
	"context"
	"net/http"
	"strconv"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Instrument counts every request next serves by route, method and status.
// Wrap the whole mux with it.
func (a *API) Instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := methodLabelHTTP(r.Method)
		inFlight := a.inFlight.WithLabelValues(method)
		inFlight.Inc()
		defer inFlight.Dec()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.httpReqs.WithLabelValues(routeLabel(r), method, strconv.Itoa(rec.code)).Inc()
	})
}

// methodLabelHTTP keeps the method label bounded: a client may send any
// token as an HTTP method.
func methodLabelHTTP(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// statusRecorder remembers the status code. It keeps Flush (SSE and
// streamable HTTP stream through it) and Unwrap (http.ResponseController).
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// MCPHooks count MCP requests by method and outcome: ok, tool_error (a tool
// result with isError) or error (a JSON-RPC error). Pass them to
// mcpserver.Options.Hooks.
func (a *API) MCPHooks() *server.Hooks {
	h := &server.Hooks{}
	h.AddOnSuccess(func(_ context.Context, _ any, method mcp.MCPMethod, _ any, result any) {
		status := "ok"
		if r, ok := result.(*mcp.CallToolResult); ok && r != nil && r.IsError {
			status = "tool_error"
		}
		a.mcpReqs.WithLabelValues(methodLabel(method), status).Inc()
	})
	h.AddOnError(func(_ context.Context, _ any, method mcp.MCPMethod, _ any, _ error) {
		a.mcpReqs.WithLabelValues(methodLabel(method), "error").Inc()
	})
	return h
}

// knownMethods bounds the method label: a client may send any method name.
var knownMethods = map[mcp.MCPMethod]bool{
	mcp.MethodInitialize: true, mcp.MethodPing: true,
	mcp.MethodToolsList: true, mcp.MethodToolsCall: true,
	mcp.MethodPromptsList: true, mcp.MethodPromptsGet: true,
	mcp.MethodResourcesList: true, mcp.MethodResourcesRead: true,
	mcp.MethodResourcesTemplatesList: true,
	mcp.MethodResourcesSubscribe:     true, mcp.MethodResourcesUnsubscribe: true,
	mcp.MethodSetLogLevel: true, mcp.MethodCompletionComplete: true,
	mcp.MethodServerDiscover: true, mcp.MethodSubscriptionsListen: true,
}

func methodLabel(m mcp.MCPMethod) string {
	if knownMethods[m] {
		return string(m)
	}
	return "other"
}
