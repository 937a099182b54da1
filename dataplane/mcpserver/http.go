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
	// SessionIdleTTL drops this replica's in-memory state of streamable HTTP
	// sessions idle this long (clients often vanish without DELETE); zero
	// means 30 min. The session itself stays valid: its id is self-contained
	// and the next request, here or on another replica, carries on.
	SessionIdleTTL time.Duration
	// SessionMaxAge is how long after initialize a session id is accepted;
	// zero means DefaultSessionMaxAge (7 days). Stateless ids cannot expire
	// on idleness, since no replica knows when another last saw them.
	SessionMaxAge time.Duration
	// SessionSecretGrace is how long session ids signed with the previous
	// cluster secret stay valid after SetSessionSecret changed it; zero means
	// DefaultSessionSecretGrace (1 h).
	SessionSecretGrace time.Duration
	// ContextFunc, when set, runs on every MCP request of both transports
	// (after the session was restored), e.g. to read per-connection options
	// from the URL.
	ContextFunc func(ctx context.Context, r *http.Request) context.Context
	// Now is the clock of session expiry and secret grace; tests inject one.
	// Defaults to time.Now.
	Now func() time.Time
	// SSEKeepAlive is the interval of SSE keep-alive pings; zero means 25 s.
	SSEKeepAlive time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// HTTP serves one aggregated server over streamable HTTP (/mcp) and the
// legacy HTTP+SSE transport (/sse and /message).
//
// Streamable HTTP works behind any load balancer: session ids are signed with
// the cluster secret and carry what another replica needs (see session.go),
// and 2026-07-28 requests carry everything themselves.
//
// Legacy SSE does not, and cannot: its /message POSTs are answered on the
// /sse stream, which lives in the one replica that opened it, so a load
// balancer in front of several data planes must route /sse and /message of a
// client to the same replica (sticky sessions, e.g. on the sessionId query
// parameter or the client address).
type HTTP struct {
	streamable *server.StreamableHTTPServer
	mcp        http.Handler // streamable, behind the session id check
	sse        *server.SSEServer
	message    http.Handler // SSE /message, behind the cursor guard
	ids        *SessionIDManager
	log        *slog.Logger
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
	ids := NewSessionIDManager(SessionIDOptions{
		MaxAge:      opts.SessionMaxAge,
		SecretGrace: opts.SessionSecretGrace,
		Now:         opts.Now,
	})
	streamable, guarded := s.NewStreamableHTTP(
		server.WithEndpointPath("/mcp"),
		server.WithSessionIdleTTL(opts.SessionIdleTTL),
		server.WithStreamableHTTPLogger(opts.Logger),
		server.WithSessionIdManagerResolver(sessionResolver{ids: ids}),
		server.WithHTTPContextFunc(sessionContext(opts.ContextFunc)),
	)
	sseOpts := []server.SSEOption{
		server.WithSSEEndpoint("/sse"),
		server.WithMessageEndpoint("/message"),
		server.WithKeepAlive(true),
		server.WithKeepAliveInterval(opts.SSEKeepAlive),
		// Carry /sse?pagination=true over to every /message request.
		server.WithAppendQueryToMessageEndpoint(),
	}
	if opts.ContextFunc != nil {
		sseOpts = append(sseOpts, server.WithSSEContextFunc(server.SSEContextFunc(opts.ContextFunc)))
	}
	sse := server.NewSSEServer(s.mcp, sseOpts...)
	return &HTTP{
		streamable: streamable,
		// Session ids are checked first; then bad list cursors get a clear -32602
		// before mcp-go sees them.
		mcp:     &sessionHandler{ids: ids, next: guarded, log: opts.Logger},
		sse:     sse,
		message: s.SSECursorGuard(sse, sse.MessageHandler()),
		ids:     ids,
		log:     opts.Logger,
	}
}

// SetSessionSecret makes secret (the cluster secret of the config snapshot)
// the key of new session ids. Until the first call ids are signed with a
// random per-process key, valid on this replica only. After a change, ids
// signed with the previous key stay valid for SessionSecretGrace. Calling it
// with every snapshot is cheap: the same secret is a no-op.
func (h *HTTP) SetSessionSecret(secret []byte) {
	if len(secret) == 0 {
		h.log.Warn("config snapshot carries no cluster secret; session ids stay valid on this data plane only")
		return
	}
	if h.ids.SetSecret(secret) {
		h.log.Info("session id key changed; ids signed with the previous key are accepted for the grace period",
			"grace", h.ids.grace)
	}
}

// Register mounts /mcp, /sse and /message on mux.
func (h *HTTP) Register(mux *http.ServeMux) {
	mux.Handle("/mcp", h.mcp)
	mux.Handle("/sse", h.sse.SSEHandler())
	mux.Handle("/message", h.message)
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
