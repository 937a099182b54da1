//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// sampler answers every sampling request with a fixed text.
type sampler struct{ text string }

func (s sampler) CreateMessage(_ context.Context, _ mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	return &mcp.CreateMessageResult{
		SamplingMessage: mcp.SamplingMessage{Role: mcp.RoleAssistant, Content: mcp.NewTextContent(s.text)},
		Model:           "e2e-model",
		StopReason:      "endTurn",
	}, nil
}

// samplingClient connects an mcp-go client with a sampling handler, asking
// for protocol version ("" lets it choose: 2026-07-28 through the gateway).
func samplingClient(t *testing.T, url, version, text string) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url)
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithSamplingHandler(sampler{text}))
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-e2e-sampler", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestModernBackends puts the data plane in front of two mcp-go backends
// that serve MCP 2026-07-28 (demo-backend --modern): the data plane reaches
// them statelessly (server/discover, per-request _meta), and clients of
// both eras list and call through it; the lists carry the backends'
// minimum TTL; a backend's list_changed (over subscriptions/listen) reaches
// clients of both eras; and an input_required sampling is bridged for a
// 2025-11-25 client that can sample, refused with an error naming what is
// missing for one that cannot, and passed through to a 2026-07-28 client.
func TestModernBackends(t *testing.T) {
	cp := startControlPlane(t, t.TempDir(), "", "")
	dp := startDataPlane(t, cp, "dp-modern")
	_, urlA := startHTTPBackend(t, "ma", "--modern", "--input-tools", "--cache-ttl-ms", "60000", "--cache-scope", "public")
	_, urlB := startHTTPBackend(t, "mb", "--modern", "--cache-ttl-ms", "30000", "--cache-scope", "public")
	mustCtl(t, cp, "server", "add", "ma", "--url", urlA)
	mustCtl(t, cp, "server", "add", "mb", "--url", urlB)
	for _, name := range []string{"ma", "mb"} {
		if h := dp.waitState(t, name, "healthy"); h.Protocol != mcp.ProtocolVersion20260728 {
			t.Errorf("/health: %s reached with %q, want 2026-07-28", name, h.Protocol)
		}
	}
	// The era each endpoint chose is in the log.
	dp.waitLog(time.Time{}, "msg", "backend connected", "server", "ma", "protocol", mcp.ProtocolVersion20260728)

	modern := mcpClient(t, dp.mcpURL())
	legacy := samplingClient(t, dp.mcpURL(), mcp.ProtocolVersion20251125, "from the legacy client")
	if v := legacy.ProtocolVersion(); v != mcp.ProtocolVersion20251125 || legacy.GetSessionId() == "" {
		t.Fatalf("legacy client: protocol %q, session %q; want a 2025-11-25 session", v, legacy.GetSessionId())
	}
	if v := modern.ProtocolVersion(); v != mcp.ProtocolVersion20260728 {
		t.Fatalf("default client: protocol %q, want 2026-07-28", v)
	}
	for name, c := range map[string]*client.Client{"2026-07-28": modern, "2025-11-25": legacy} {
		eventually(t, waitTimeout, name+" client lists both backends' tools", func() error {
			return toolsListed(c, []string{"ma__echo", "ma__ask_sample", "ma__grow", "mb__echo"})
		})
		if got := callText(t, c, "mb__echo", map[string]any{"text": "hi " + name}); got != "hi "+name {
			t.Errorf("%s client: mb__echo = %q", name, got)
		}
	}

	// The list's hint is the minimum of the backends' (30 s, both public).
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	tools, err := modern.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if tools.TTLMs == nil || *tools.TTLMs != 30000 || tools.CacheScope != mcp.CacheScopePublic {
		t.Errorf("tools/list hint ttlMs %v cacheScope %q; want 30000 public", tools.TTLMs, tools.CacheScope)
	}

	// list_changed from a backend (over the data plane's subscriptions/listen
	// to it) reaches a 2026 client on its listen stream, and both eras then
	// list the new tool.
	modernNotes := make(chan string, 32)
	modern.OnNotification(func(n mcp.JSONRPCNotification) { modernNotes <- n.Method })
	stop, err := modern.ListenAsync(context.Background(), mcp.SubscriptionFilter{ToolsListChanged: true}, func(err error) { t.Errorf("listen: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if got := waitNotification(t, modernNotes); got != string(mcp.MethodNotificationSubscriptionsAcknowledged) {
		t.Fatalf("first on the listen stream: %s", got)
	}
	if got := callText(t, legacy, "ma__grow", nil); got != "grown-1" {
		t.Fatalf("grow = %q", got)
	}
	for {
		got := waitNotification(t, modernNotes)
		if got == string(mcp.MethodNotificationToolsListChanged) {
			break
		}
		t.Logf("2026 client got %s", got)
	}
	for name, c := range map[string]*client.Client{"2026-07-28": modern, "2025-11-25": legacy} {
		if err := toolsListed(c, []string{"ma__grown-1"}); err != nil {
			t.Errorf("%s client after list_changed: %v", name, err)
		}
	}

	// input_required, bridged for a 2025-11-25 client with a sampling handler.
	if got := callText(t, legacy, "ma__ask_sample", map[string]any{"prompt": "say hi"}); got != "sampled: from the legacy client (state ok)" {
		t.Errorf("2025 client: ask_sample = %q", got)
	}
	// One without the capability gets an error naming it.
	bare := mcpClientVersion(t, dp.mcpURL(), mcp.ProtocolVersion20251125)
	_, err = callErr(bare, callTimeout, "ma__ask_sample", map[string]any{"prompt": "say hi"})
	if err == nil || !strings.Contains(err.Error(), "sampling/createMessage") || !strings.Contains(err.Error(), `"sampling" capability`) {
		t.Errorf("2025 client without sampling: %v; want an error naming sampling/createMessage and the capability", err)
	}
	// A 2026-07-28 client answers input_required itself.
	modernSampler := samplingClient(t, dp.mcpURL(), "", "from the modern client")
	if got := callText(t, modernSampler, "ma__ask_sample", map[string]any{"prompt": "say hi"}); got != "sampled: from the modern client (state ok)" {
		t.Errorf("2026 client: ask_sample = %q", got)
	}
}
