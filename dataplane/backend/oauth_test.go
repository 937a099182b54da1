package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/server"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// oauthBackend is a real streamable HTTP MCP server that accepts only the
// bearer token in valid, answering 401 to anything else, as an OAuth
// protected resource does.
type oauthBackend struct {
	ts    *httptest.Server
	valid atomic.Pointer[string]
	mu    sync.Mutex
	seen  map[string]int // requests per Authorization header
	gets  map[string]int // GETs (event streams) per Authorization header
	inits atomic.Int64
	sse   bool
}

func startOAuthBackend(t *testing.T, valid string) *oauthBackend {
	return startOAuthBackendOf(t, valid, false)
}

// startOAuthBackendOf is startOAuthBackend speaking SSE when sse is set.
func startOAuthBackendOf(t *testing.T, valid string, sse bool) *oauthBackend {
	t.Helper()
	ob := &oauthBackend{seen: map[string]int{}, gets: map[string]int{}, sse: sse}
	ob.valid.Store(&valid)
	var h http.Handler
	var sseSrv *server.SSEServer
	if sse {
		sseSrv = server.NewSSEServer(newMCPServer("oauth", 0))
		h = sseSrv
	} else {
		h = server.NewStreamableHTTPServer(newMCPServer("oauth", 0), legacyOnly)
	}
	ob.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		ob.mu.Lock()
		ob.seen[auth]++
		if r.Method == http.MethodGet {
			ob.gets[auth]++
		}
		ob.mu.Unlock()
		if auth != "Bearer "+*ob.valid.Load() {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if isInitialize(r) {
			ob.inits.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	if sse {
		server.WithBaseURL(ob.ts.URL)(sseSrv)
	}
	t.Cleanup(func() {
		within(t, "closing oauth backend", func() {
			_ = ob.ts.Config.Close()
			ob.ts.Close()
		})
	})
	return ob
}

func (ob *oauthBackend) requests(auth string) int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.seen[auth]
}

func (ob *oauthBackend) total() int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	n := 0
	for _, c := range ob.seen {
		n += c
	}
	return n
}

func (ob *oauthBackend) server(name string) *mcpmeshv1.Server {
	s := &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Session:   mcpmeshv1.SessionMode_SESSION_MODE_SHARED,
		Http:      &mcpmeshv1.HttpConfig{Url: ob.ts.URL + "/mcp", Oauth: &mcpmeshv1.OAuthConfig{Enabled: true}},
	}
	if ob.sse {
		s.Transport, s.Http.Url = mcpmeshv1.Transport_TRANSPORT_SSE, ob.ts.URL+"/sse"
	}
	return s
}

func (ob *oauthBackend) streams(auth string) int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.gets[auth]
}

func (e *env) applyTokens(rev uint64, s *mcpmeshv1.Server, tokens ...string) {
	e.t.Helper()
	snap := &mcpmeshv1.ConfigSnapshot{Revision: rev, Servers: []*mcpmeshv1.Server{s}}
	for _, tok := range tokens {
		snap.OauthTokens = append(snap.OauthTokens, &mcpmeshv1.OAuthAccess{Server: s.GetName(), AccessToken: tok, TokenType: "Bearer"})
	}
	if err := e.m.Apply(snap); err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
}

// refresher is a RefreshFunc that answers the tokens it is given in turn
// and records what it was asked.
type refresher struct {
	mu       sync.Mutex
	answers  []string
	calls    int
	rejected []string
	gate     chan struct{} // when set, each call waits for it to close
}

func (r *refresher) refresh(ctx context.Context, server, rejected string) (string, error) {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.rejected = append(r.rejected, rejected)
	if len(r.answers) == 0 {
		return "", nil
	}
	tok := r.answers[0]
	r.answers = r.answers[1:]
	return tok, nil
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestOAuthNoTokenWaitsForOne(t *testing.T) {
	ob := startOAuthBackend(t, "tok-1")
	e := newEnv(t, func(o *ManagerOptions) { o.PublicURL = "https://dp.example" })
	s := ob.server("web")
	e.applyTokens(1, s)
	b := e.backend("web")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION)

	if n := ob.total(); n != 0 {
		t.Errorf("backend got %d requests while no token was held, want none", n)
	}
	if p := e.clock.PendingDurations(); len(p) != 0 {
		t.Errorf("timers pending while waiting for a token (a retry or probe?): %v", p)
	}
	if len(toolNames(b)) != 0 {
		t.Errorf("tools listed for a server that needs authorization: %v", toolNames(b))
	}
	_, err := callTool(context.Background(), b, "echo")
	if err == nil || !strings.Contains(err.Error(), "server web needs OAuth authorization: open https://dp.example/oauth") {
		t.Fatalf("call while unauthorized: err = %v, want the needs-authorization message", err)
	}
	if !errors.Is(err, ErrNeedsAuthorization) {
		t.Errorf("error %v does not match ErrNeedsAuthorization", err)
	}
	if h := b.Health(); h.GetState() != mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION {
		t.Errorf("health state %v", h.GetState())
	}

	// A token arrives: connect at once, with no clock advance.
	e.applyTokens(2, s, "tok-1")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)
	if got := callText(t, b, "echo", map[string]any{"text": "hi"}); got != "oauth:hi" {
		t.Errorf("echo = %q", got)
	}
	if ob.requests("Bearer tok-1") == 0 || ob.requests("") != 0 {
		t.Errorf("requests by Authorization: %v", ob.seen)
	}
}

// TestOAuthBearerOnEveryRequest: POSTs and the event stream (GET) of both
// HTTP transports carry the token, and a reconnect of the stream does too.
func TestOAuthBearerOnEveryRequest(t *testing.T) {
	for _, sse := range []bool{false, true} {
		name := "streamable"
		if sse {
			name = "sse"
		}
		t.Run(name, func(t *testing.T) {
			ob := startOAuthBackendOf(t, "tok-1", sse)
			e := newEnv(t)
			s := ob.server("web")
			e.applyTokens(1, s, "tok-1")
			b := e.backend("web")
			e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)
			if got := callText(t, b, "echo", map[string]any{"text": "x"}); got != "oauth:x" {
				t.Errorf("echo = %q", got)
			}
			e.waitFor("an event stream with the token", func() bool { return ob.streams("Bearer tok-1") > 0 })
			if n := ob.requests("Bearer tok-1"); n < 2 {
				t.Errorf("%d requests with the token", n)
			}
			ob.mu.Lock()
			for auth, n := range ob.seen {
				if auth != "Bearer tok-1" {
					t.Errorf("%d requests with Authorization %q", n, auth)
				}
			}
			ob.mu.Unlock()
		})
	}
}

func TestOAuthTokenChangeKeepsConnection(t *testing.T) {
	ob := startOAuthBackend(t, "tok-1")
	e := newEnv(t)
	s := ob.server("web")
	e.applyTokens(1, s, "tok-1")
	b := e.backend("web")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)
	inits := ob.inits.Load()

	ob.valid.Store(ptr("tok-2"))
	e.applyTokens(2, s, "tok-2")
	if got := callText(t, b, "echo", map[string]any{"text": "again"}); got != "oauth:again" {
		t.Errorf("echo = %q", got)
	}
	if cur, _ := e.m.Get("web"); cur != b {
		t.Error("the backend was replaced for a token change")
	}
	if n := ob.inits.Load(); n != inits {
		t.Errorf("initialize requests %d -> %d: the token change reconnected", inits, n)
	}
	if ob.requests("Bearer tok-2") == 0 {
		t.Error("the new token was never sent")
	}
}

func TestOAuthRefreshOn401(t *testing.T) {
	ob := startOAuthBackend(t, "tok-1")
	r := &refresher{answers: []string{"tok-2"}}
	e := newEnv(t, func(o *ManagerOptions) { o.Refresh = r.refresh })
	s := ob.server("web")
	e.applyTokens(1, s, "tok-1")
	b := e.backend("web")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)

	// The authorization server rotates the token: the backend refuses the
	// old one, concurrent calls share one refresh and succeed.
	r.gate = make(chan struct{})
	ob.valid.Store(ptr("tok-2"))
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := callToolArgs(context.Background(), b, "echo", map[string]any{"text": "x"})
			errs <- err
		}()
	}
	e.waitFor("refused requests", func() bool { return ob.requests("Bearer tok-1") > 1 })
	close(r.gate)
	for range n {
		if err := recvWithin(t, errs, "call"); err != nil {
			t.Errorf("call after a refused token: %v", err)
		}
	}
	r.mu.Lock()
	calls, rejected := r.calls, r.rejected
	r.mu.Unlock()
	if calls != 1 {
		t.Errorf("refresh called %d times for one refused token, want 1", calls)
	}
	if len(rejected) > 0 && rejected[0] != sha("tok-1") {
		t.Errorf("rejected_token_sha256 = %q, want sha256 of the refused token", rejected[0])
	}
	if b.State() != mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY {
		t.Errorf("state %v after a refresh", b.State())
	}

	// The grant is gone: the refresh gives nothing, the server needs
	// authorization and is not retried.
	ob.valid.Store(ptr("tok-3"))
	if _, err := callTool(context.Background(), b, "echo"); !errors.Is(err, ErrNeedsAuthorization) {
		t.Errorf("call with a dead grant: err = %v, want ErrNeedsAuthorization", err)
	}
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION)
	// The same (refused) token in a later snapshot does not revive it.
	e.applyTokens(2, s, "tok-2")
	if b.State() != mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION {
		t.Errorf("state %v after a snapshot with the refused token", b.State())
	}
	e.applyTokens(3, s, "tok-3")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)
}

func ptr[T any](v T) *T { return &v }
