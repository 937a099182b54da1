//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// TestClientKeys: a data plane started with --client-keys answers a request
// without a key, or with a wrong one, 401 with a WWW-Authenticate challenge;
// a key issued with mcpctl client-key create --tag team-a sees and calls only
// team-a's servers, also when it guesses another server's prefixed name; once
// the key is revoked, the snapshot that follows makes the data plane refuse
// it.
func TestClientKeys(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	_, a := startHTTPBackend(t, "a")
	mustCtl(t, cp, "server", "add", "alpha", "--url", a, "--tag", "team-a")
	_, b := startHTTPBackend(t, "b")
	mustCtl(t, cp, "server", "add", "beta", "--url", b, "--tag", "team-b")
	dp := startDataPlaneVia(t, cp, "dp", cp.grpcAddr, "--client-keys")
	dp.waitState(t, "alpha", "healthy")
	dp.waitState(t, "beta", "healthy")

	var key struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(mustCtl(t, cp, "client-key", "create", "--tag", "team-a", "-o", "json")), &key); err != nil {
		t.Fatal(err)
	}
	post := func(token string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, dp.mcpURL(), strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
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
	if code, ch, body := post(""); code != 401 || !strings.HasPrefix(ch, "Bearer") || !strings.Contains(body, "API key") {
		t.Errorf("no key: %d, WWW-Authenticate %q, %s", code, ch, body)
	}
	if code, ch, body := post("mcpk_" + key.ID + "_" + strings.Repeat("0", 64)); code != 401 || !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("forged key: %d, WWW-Authenticate %q, %s", code, ch, body)
	}
	// The key reaches the data plane with the snapshot its creation caused.
	eventually(t, waitTimeout, "the new key is accepted", func() error {
		if code, _, body := post(key.Secret); code == 401 || code == 403 { // past auth, ping without _meta is a 400
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	c, err := client.NewStreamableHttpClient(dp.mcpURL(), transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + key.Secret}))
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
	init.Params.ClientInfo = mcp.Implementation{Name: "keys-e2e", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize with a key: %v", err)
	}
	names := toolNames(t, c)
	for _, n := range names {
		if !strings.HasPrefix(n, "alpha__") {
			t.Errorf("a team-a key lists %s", n)
		}
	}
	if !has(names, "alpha__echo") {
		t.Errorf("a team-a key lists %v, want alpha's tools", names)
	}
	if got := callText(t, c, "alpha__echo", map[string]any{"text": "hi"}); !strings.Contains(got, "hi") {
		t.Errorf("alpha__echo = %q", got)
	}
	if _, err := callErr(c, callTimeout, "beta__echo", map[string]any{"text": "hi"}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Errorf("a team-a key calling beta__echo = %v, want unknown tool", err)
	}

	mustCtl(t, cp, "client-key", "revoke", key.ID)
	eventually(t, waitTimeout, "the revoked key is refused", func() error {
		code, ch, body := post(key.Secret)
		if code != 401 {
			return fmt.Errorf("still %d", code)
		}
		if !strings.Contains(ch, `error="invalid_token"`) {
			return errors.New("401 without invalid_token: " + ch + " " + body)
		}
		return nil
	})
}
