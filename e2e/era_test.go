//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// Both protocol eras through one data plane (README "Protocol eras"): the
// default mcp-go client ends up on the 2026-07-28 stateless revision (its
// server/discover probe succeeds) and gets list_changed through
// subscriptions/listen; a client that asks for 2025-11-25 gets a session.
func TestProtocolEras(t *testing.T) {
	cp := startControlPlane(t, t.TempDir(), "", "")
	dp := startDataPlane(t, cp, "dp-era")
	mustCtl(t, cp, "server", "add", "local", "--", bin("demo-backend"), "--name", "local")

	modern := mcpClient(t, dp.mcpURL())
	if v, sid := modern.ProtocolVersion(), modern.GetSessionId(); v != mcp.ProtocolVersion20260728 || sid != "" {
		t.Fatalf("default mcp-go client: protocol %q, session %q; want 2026-07-28 without a session", v, sid)
	}
	legacy, err := client.NewStreamableHttpClient(dp.mcpURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { legacy.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if err := legacy.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-e2e-legacy", Version: "1"}
	if _, err := legacy.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	if v, sid := legacy.ProtocolVersion(), legacy.GetSessionId(); v != mcp.ProtocolVersion20251125 || sid == "" {
		t.Fatalf("pinned client: protocol %q, session %q; want a 2025-11-25 session", v, sid)
	}

	for name, c := range map[string]*client.Client{"2026-07-28": modern, "2025-11-25": legacy} {
		eventually(t, waitTimeout, name+" client lists the backend's tools", func() error {
			return toolsListed(c, []string{"local__echo"})
		})
		if got := callText(t, c, "local__echo", map[string]any{"text": "hi"}); got == "" {
			t.Errorf("%s: echo answered nothing", name)
		}
	}

	// list_changed reaches the stateless client on its subscriptions/listen
	// stream (a session client gets it on its GET stream, as before).
	changed := make(chan string, 16)
	modern.OnNotification(func(n mcp.JSONRPCNotification) { changed <- n.Method })
	stop, err := modern.ListenAsync(context.Background(), mcp.SubscriptionFilter{ToolsListChanged: true}, func(err error) { t.Errorf("listen: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// The acknowledgement comes first: the stream is registered then.
	if got := waitNotification(t, changed); got != string(mcp.MethodNotificationSubscriptionsAcknowledged) {
		t.Fatalf("first on the listen stream: %s", got)
	}
	mustCtl(t, cp, "server", "add", "other", "--", bin("demo-backend"), "--name", "other")
	for {
		if got := waitNotification(t, changed); got == string(mcp.MethodNotificationToolsListChanged) {
			break
		}
	}
	eventually(t, waitTimeout, "the new server's tools listed", func() error {
		return toolsListed(modern, []string{"local__echo", "other__echo"})
	})
}

func waitNotification(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("no notification arrived")
		return ""
	}
}
