package mcpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// HTTPOptions configure the MCP HTTP transports.
type HTTPOptions struct {
	// SessionIdleTTL drops the state of streamable HTTP sessions that were
	// idle this long (clients often vanish without DELETE); zero means 30 min.
	SessionIdleTTL time.Duration
	// SSEKeepAlive is the interval of SSE keep-alive pings; zero means 25 s.
	SSEKeepAlive time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// HTTP serves one aggregated server over streamable HTTP (/mcp) and the
// legacy HTTP+SSE transport (/sse and /message).
type HTTP struct {
	streamable *server.StreamableHTTPServer
	sse        *server.SSEServer
}

// NewHTTP builds the transports for s. Close stops what they started.
func NewHTTP(s *Server, opts HTTPOptions) *HTTP {
	if opts.SessionIdleTTL <= 0 {
		opts.SessionIdleTTL = 30 * time.Minute
	}
	if opts.SSEKeepAlive <= 0 {
		opts.SSEKeepAlive = 25 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &HTTP{
		streamable: server.NewStreamableHTTPServer(s.mcp,
			server.WithEndpointPath("/mcp"),
			server.WithSessionIdleTTL(opts.SessionIdleTTL),
			server.WithStreamableHTTPLogger(opts.Logger),
		),
		sse: server.NewSSEServer(s.mcp,
			server.WithSSEEndpoint("/sse"),
			server.WithMessageEndpoint("/message"),
			server.WithKeepAlive(true),
			server.WithKeepAliveInterval(opts.SSEKeepAlive),
		),
	}
}

// Register mounts /mcp, /sse and /message on mux.
func (h *HTTP) Register(mux *http.ServeMux) {
	mux.Handle("/mcp", h.streamable)
	mux.Handle("/sse", h.sse.SSEHandler())
	mux.Handle("/message", h.sse.MessageHandler())
}

// Close ends every open session, so that the long-lived GET and SSE streams
// return and an http.Server.Shutdown after it does not wait for them, and
// stops the idle-session sweeper.
func (h *HTTP) Close(ctx context.Context) error {
	h.sse.CloseSessions()
	// The streamable server owns no http.Server here, so Shutdown only closes
	// sessions and stops the sweeper.
	if err := h.streamable.Shutdown(ctx); err != nil {
		return fmt.Errorf("close streamable HTTP sessions: %w", err)
	}
	return nil
}
