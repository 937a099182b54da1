package testauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// TokenInfo is what a valid access token says.
type TokenInfo struct {
	Subject  string
	ClientID string
	Scope    string
}

// Validate checks an access token this server issued through the flow:
// signature, issuer, expiry, audience (the resource it must be bound to),
// and that neither it nor its grant was revoked. Resource servers in the
// same process call it instead of introspection.
func (s *Server) Validate(tok, resource string) (TokenInfo, error) {
	t, err := s.parse(tok, true)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("invalid token: %w", err)
	}
	if aud, _ := t.Audience(); !slices.Contains(aud, resource) {
		return TokenInfo{}, errors.New("token is not bound to this resource")
	}
	jti, _ := t.JwtID()
	s.mu.Lock()
	g := s.accesses[jti]
	revoked := g == nil || g.revoked || s.revokedJ[jti]
	s.mu.Unlock()
	if revoked {
		return TokenInfo{}, errors.New("token was revoked")
	}
	return TokenInfo{Subject: g.subject, ClientID: g.clientID, Scope: g.scope}, nil
}

// BackendOptions configure a protected backend.
type BackendOptions struct {
	// Addr to listen on; empty means a random loopback port.
	Addr string
	// Name is the MCP server name; empty means "protected".
	Name string
	// Scopes listed in the protected resource metadata (scopes_supported).
	Scopes []string
	// NoResourceMetadataHeader leaves resource_metadata out of the 401's
	// WWW-Authenticate, so clients must fall back to the well-known URL.
	NoResourceMetadataHeader bool
}

// WhoamiTool returns the subject of the caller's access token.
const WhoamiTool = "whoami"

// Backend is a running OAuth-protected MCP backend (streamable HTTP at
// /mcp) that accepts access tokens of one authorization server.
type Backend struct {
	ts       *httptest.Server
	as       *Server
	opts     BackendOptions
	mu       sync.Mutex
	rejected int
	accepted int
}

type subjectKey struct{}

// NewBackend starts a protected backend trusting as; Close stops it.
func NewBackend(as *Server, opts BackendOptions) (*Backend, error) {
	if opts.Name == "" {
		opts.Name = "protected"
	}
	b := &Backend{as: as, opts: opts}
	mcpSrv := server.NewMCPServer(opts.Name, "1.0.0", server.WithToolCapabilities(false))
	mcpSrv.AddTool(mcp.NewTool(WhoamiTool, mcp.WithDescription("the subject of the caller's access token"),
		mcp.WithReadOnlyHintAnnotation(true)),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			sub, _ := ctx.Value(subjectKey{}).(string)
			return mcp.NewToolResultText(sub), nil
		})
	h := server.NewStreamableHTTPServer(mcpSrv, server.WithHTTPContextFunc(func(ctx context.Context, r *http.Request) context.Context {
		if sub, ok := r.Context().Value(subjectKey{}).(string); ok {
			return context.WithValue(ctx, subjectKey{}, sub)
		}
		return ctx
	}))
	mux := http.NewServeMux()
	// RFC 9728: path-aware (for the /mcp resource) and at the root.
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", b.serveMetadata)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource", b.serveMetadata)
	mux.Handle("/mcp", b.protect(h))
	b.ts = httptest.NewUnstartedServer(mux)
	if opts.Addr != "" {
		ln, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
		}
		_ = b.ts.Listener.Close()
		b.ts.Listener = ln
	}
	b.ts.Start()
	return b, nil
}

// URL is the MCP endpoint, which is also the resource (RFC 8707) tokens
// must be bound to.
func (b *Backend) URL() string { return b.ts.URL + "/mcp" }

// MetadataURL is the protected resource metadata URL the 401 names.
func (b *Backend) MetadataURL() string { return b.ts.URL + "/.well-known/oauth-protected-resource/mcp" }

// Close stops the backend.
func (b *Backend) Close() { b.ts.Close() }

// Counts returns how many requests were refused (401) and accepted.
func (b *Backend) Counts() (rejected, accepted int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rejected, b.accepted
}

func (b *Backend) serveMetadata(w http.ResponseWriter, r *http.Request) {
	md := map[string]any{
		"resource":                 b.URL(),
		"authorization_servers":    []string{b.as.Issuer()},
		"bearer_methods_supported": []string{"header"},
		"resource_name":            b.opts.Name,
	}
	if len(b.opts.Scopes) > 0 {
		md["scopes_supported"] = b.opts.Scopes
	}
	writeJSON(w, http.StatusOK, md)
}

func (b *Backend) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		var info TokenInfo
		var err error
		if !ok || tok == "" {
			err = errors.New("no bearer token")
		} else {
			info, err = b.as.Validate(tok, b.URL())
		}
		if err != nil {
			b.mu.Lock()
			b.rejected++
			b.mu.Unlock()
			challenge := `Bearer realm="mcp"`
			if !b.opts.NoResourceMetadataHeader {
				challenge += fmt.Sprintf(`, resource_metadata=%q`, b.MetadataURL())
			}
			if ok && tok != "" {
				challenge += `, error="invalid_token"`
			}
			if len(b.opts.Scopes) > 0 {
				challenge += fmt.Sprintf(`, scope=%q`, strings.Join(b.opts.Scopes, " "))
			}
			w.Header().Set("WWW-Authenticate", challenge)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_token", "error_description": err.Error()})
			return
		}
		b.mu.Lock()
		b.accepted++
		b.mu.Unlock()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), subjectKey{}, info.Subject)))
	})
}
