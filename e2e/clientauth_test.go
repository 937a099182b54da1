//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

// TestClientOAuth: a data plane started with --oauth-issuer is an OAuth
// resource server. It publishes its Protected Resource Metadata, answers a
// request without a token 401 with a WWW-Authenticate challenge naming it,
// refuses expired, foreign-audience, foreign-key and under-scoped tokens
// with the RFC 6750 error, serves a client with a good token, and never
// passes the token on to the backend. A token with tags (the mcpmesh_tags
// claim) sees and calls only the servers carrying one of them, also when it
// guesses another server's prefixed name.
func TestClientOAuth(t *testing.T) {
	as, err := testauth.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)

	// A real MCP server that records the Authorization headers it is sent.
	var mu sync.Mutex
	var seenAuth []string
	s := server.NewMCPServer("rec", "1.0.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("echo", mcp.WithString("text")), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("echo:" + req.GetString("text", "")), nil
	})
	h := server.NewStreamableHTTPServer(s)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenAuth = append(seenAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	// A cleanup, not a defer: cleanups run after the test's defers, newest
	// first, so the data plane (which holds a stream to it) stops before.
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})

	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	mustCtl(t, cp, "server", "add", "rec", "--url", ts.URL+"/mcp", "--tag", "team-a")
	_, other := startHTTPBackend(t, "other")
	mustCtl(t, cp, "server", "add", "other", "--url", other, "--tag", "team-b")
	dp := startDataPlaneVia(t, cp, "dp", cp.grpcAddr, "--oauth-issuer", as.Issuer(), "--oauth-scopes", "mcp")
	resource := dp.mcpURL()
	metaURL := "http://" + dp.listen + "/.well-known/oauth-protected-resource/mcp"

	var md struct {
		Resource string   `json:"resource"`
		Servers  []string `json:"authorization_servers"`
		Scopes   []string `json:"scopes_supported"`
	}
	if code := getJSON(t, metaURL, &md); code != 200 || md.Resource != resource || len(md.Servers) != 1 || md.Servers[0] != as.Issuer() {
		t.Fatalf("protected resource metadata = %d %+v", code, md)
	}

	post := func(token string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, resource, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("MCP-Protocol-Version", "2026-07-28")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)
	}
	mint := func(c testauth.Claims) string {
		t.Helper()
		tok, err := as.Token(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	foreign, err := as.ForeignToken(testauth.Claims{Audience: resource, Scope: "mcp"})
	if err != nil {
		t.Fatal(err)
	}
	code, challenge, body := post("")
	if code != 401 || !strings.Contains(challenge, `resource_metadata="`+metaURL+`"`) {
		t.Errorf("no token: %d, WWW-Authenticate %q, %s", code, challenge, body)
	}
	for _, tc := range []struct {
		name, token, errCode string
		status               int
	}{
		{"expired", mint(testauth.Claims{Audience: resource, Scope: "mcp", Expiry: time.Now().Add(-time.Minute)}), "invalid_token", 401},
		{"other audience", mint(testauth.Claims{Audience: "http://elsewhere.example/mcp", Scope: "mcp"}), "invalid_token", 401},
		{"foreign key", foreign, "invalid_token", 401},
		{"no scope", mint(testauth.Claims{Audience: resource}), "insufficient_scope", 403},
	} {
		code, challenge, body := post(tc.token)
		if code != tc.status || !strings.Contains(challenge, `error="`+tc.errCode+`"`) {
			t.Errorf("%s: %d, WWW-Authenticate %q, %s", tc.name, code, challenge, body)
		}
	}

	connect := func(token string) *client.Client {
		t.Helper()
		c, err := client.NewStreamableHttpClient(resource, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		init := mcp.InitializeRequest{}
		init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
		init.Params.ClientInfo = mcp.Implementation{Name: "oauth-e2e", Version: "1"}
		if _, err := c.Initialize(ctx, init); err != nil {
			t.Fatalf("initialize with a good token: %v", err)
		}
		return c
	}
	dp.waitState(t, "rec", "healthy")
	dp.waitState(t, "other", "healthy")
	c := connect(mint(testauth.Claims{Audience: resource, Scope: "mcp"}))
	if got := callText(t, c, "rec__echo", map[string]any{"text": "hi"}); got != "echo:hi" {
		t.Errorf("rec__echo = %q", got)
	}
	if names := toolNames(t, c); !has(names, "rec__echo") || !has(names, "other__echo") {
		t.Errorf("a token without tags lists %v, want every server's tools", names)
	}

	tagged := connect(mint(testauth.Claims{Audience: resource, Scope: "mcp", Extra: map[string]any{"mcpmesh_tags": []string{"team-a"}}}))
	names := toolNames(t, tagged)
	for _, n := range names {
		if !strings.HasPrefix(n, "rec__") {
			t.Errorf("a token tagged team-a lists %s", n)
		}
	}
	if !has(names, "rec__echo") {
		t.Errorf("a token tagged team-a lists %v, want rec's tools", names)
	}
	if _, err := callErr(tagged, callTimeout, "other__echo", map[string]any{"text": "hi"}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Errorf("a team-a token calling other__echo = %v, want unknown tool", err)
	}
	if got := callText(t, tagged, "rec__echo", map[string]any{"text": "tagged"}); got != "echo:tagged" {
		t.Errorf("a team-a token calling rec__echo = %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seenAuth) == 0 {
		t.Fatal("the backend saw no request")
	}
	for _, a := range seenAuth {
		if a != "" {
			t.Errorf("the backend was sent an Authorization header %.30q…: the client's token must not pass through", a)
		}
	}
}
