package mcpserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds how long a test waits for something that should happen at once.
const wait = 5 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type gateway struct {
	srv *Server
	src *liveSource
	url string
}

// startGateway serves the aggregate of src on a real HTTP server, wired as
// main.go wires it.
func startGateway(t *testing.T, src *liveSource) *gateway {
	t.Helper()
	s, err := New(Options{Source: Adapt[*liveBackend](src), Logger: quietLogger()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.Refresh()
	h := NewHTTP(s, HTTPOptions{Logger: quietLogger()})
	mux := http.NewServeMux()
	h.Register(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close transports: %v", err)
		}
		ts.Close()
	})
	return &gateway{srv: s, src: src, url: ts.URL}
}

type clientKind string

const (
	streamableLegacy clientKind = "streamable-2025-11-25"
	streamableModern clientKind = "streamable-2026-07-28"
	sseLegacy        clientKind = "sse"
)

// connect opens a real mcp-go client of the given kind and returns it with a
// channel of the notification methods it receives, in order.
func (g *gateway) connect(t *testing.T, kind clientKind) (*client.Client, <-chan string) {
	t.Helper()
	var (
		cli *client.Client
		err error
	)
	version := mcp.ProtocolVersion20251125
	switch kind {
	case streamableLegacy:
		cli, err = client.NewStreamableHttpClient(g.url+"/mcp", transport.WithContinuousListening())
	case streamableModern:
		cli, err = client.NewStreamableHttpClient(g.url + "/mcp")
		version = mcp.ProtocolVersion20260728
	case sseLegacy:
		cli, err = client.NewSSEMCPClient(g.url + "/sse")
	}
	if err != nil {
		t.Fatalf("new %s client: %v", kind, err)
	}
	notes := make(chan string, 1000)
	cli.OnNotification(func(n mcp.JSONRPCNotification) {
		select {
		case notes <- n.Method:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		_ = cli.Close()
		if kind == streamableModern {
			<-listening
		}
	})
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start %s client: %v", kind, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcp.Implementation{Name: "test-client", Version: "0"}
	res, err := cli.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("initialize %s client: %v", kind, err)
	}
	if res.Capabilities.Tools == nil || !res.Capabilities.Tools.ListChanged ||
		res.Capabilities.Prompts == nil || !res.Capabilities.Prompts.ListChanged ||
		res.Capabilities.Resources == nil || !res.Capabilities.Resources.ListChanged {
		t.Fatalf("capabilities = %+v, want tools, prompts and resources with listChanged", res.Capabilities)
	}
	if kind == streamableModern {
		if res.ProtocolVersion != mcp.ProtocolVersion20260728 {
			t.Fatalf("negotiated %q, want %q", res.ProtocolVersion, mcp.ProtocolVersion20260728)
		}
		// 2026-07-28 clients get notifications only on a subscriptions/listen
		// stream; wait for its acknowledgement so none is missed.
		go func() {
			defer close(listening)
			_ = cli.Listen(ctx, mcp.SubscriptionFilter{ToolsListChanged: true, PromptsListChanged: true, ResourcesListChanged: true})
		}()
		expectNote(t, notes, mcp.MethodNotificationSubscriptionsAcknowledged)
	} else {
		close(listening)
	}
	return cli, notes
}

// expectNote waits for the next notification and checks its method.
func expectNote(t *testing.T, notes <-chan string, want string) {
	t.Helper()
	select {
	case got := <-notes:
		if got != want {
			t.Fatalf("notification = %q, want %q", got, want)
		}
	case <-time.After(wait):
		t.Fatalf("no %q notification within %s", want, wait)
	}
}

// countUntil counts notifications with method what until marker arrives.
// Notifications to one client travel in order on one stream, so anything sent
// before the marker has arrived by then.
func countUntil(t *testing.T, notes <-chan string, what, marker string) int {
	t.Helper()
	n := 0
	timeout := time.After(wait)
	for {
		select {
		case got := <-notes:
			switch got {
			case marker:
				return n
			case what:
				n++
			}
		case <-timeout:
			t.Fatalf("no %q notification within %s (saw %d %q)", marker, wait, n, what)
		}
	}
}

func toolNames(t *testing.T, cli *client.Client) []string {
	t.Helper()
	res, err := cli.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	if res.NextCursor != "" {
		t.Fatalf("tools/list returned a cursor %q with pagination off", res.NextCursor)
	}
	var out []string
	for _, tl := range res.Tools {
		out = append(out, tl.Name)
	}
	slices.Sort(out)
	return out
}

func resultText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "")
}

func callTool(t *testing.T, cli *client.Client, name string, rawArgs string) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	if rawArgs != "" {
		req.Params.Arguments = json.RawMessage(rawArgs)
	}
	res, err := cli.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return res
}

func TestAggregatedLists(t *testing.T) {
	g := startGateway(t, newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil)))
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		t.Run(string(kind), func(t *testing.T) {
			cli, _ := g.connect(t, kind)
			ctx := context.Background()
			if got, want := toolNames(t, cli), []string{"alpha__block", "alpha__echo", "beta__block", "beta__echo"}; !slices.Equal(got, want) {
				t.Errorf("tools = %v, want %v", got, want)
			}
			prompts, err := cli.ListPrompts(ctx, mcp.ListPromptsRequest{})
			if err != nil {
				t.Fatalf("prompts/list: %v", err)
			}
			var pn []string
			for _, p := range prompts.Prompts {
				pn = append(pn, p.Name)
			}
			slices.Sort(pn)
			if want := []string{"alpha__greet", "beta__greet"}; !slices.Equal(pn, want) {
				t.Errorf("prompts = %v, want %v", pn, want)
			}
			resources, err := cli.ListResources(ctx, mcp.ListResourcesRequest{})
			if err != nil {
				t.Fatalf("resources/list: %v", err)
			}
			var uris []string
			for _, r := range resources.Resources {
				uris = append(uris, r.URI)
			}
			slices.Sort(uris)
			wantURIs := []string{"alpha://only", "beta://only", "file:///shared.txt", "mcpmesh://beta/file:%2F%2F%2Fshared.txt"}
			if !slices.Equal(uris, wantURIs) {
				t.Errorf("resources = %v, want %v", uris, wantURIs)
			}
			templates, err := cli.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
			if err != nil {
				t.Fatalf("resources/templates/list: %v", err)
			}
			var raws []string
			for _, tp := range templates.ResourceTemplates {
				raws = append(raws, tp.URITemplate.Raw())
			}
			slices.Sort(raws)
			wantRaws := []string{"file:///docs/{name}", "mcpmesh://beta/file:%2F%2F%2Fdocs%2F{name}"}
			if !slices.Equal(raws, wantRaws) {
				t.Errorf("templates = %v, want %v", raws, wantRaws)
			}
		})
	}
}

func TestCallToolRoutesWithRawArguments(t *testing.T) {
	g := startGateway(t, newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil)))
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		t.Run(string(kind), func(t *testing.T) {
			cli, _ := g.connect(t, kind)
			// 2^53+1 is not a float64: re-encoding decoded arguments would
			// turn it into 9007199254740992.
			const args = `{"n":9007199254740993}`
			for _, srv := range []string{"alpha", "beta"} {
				res := callTool(t, cli, srv+"__echo", args)
				if res.IsError {
					t.Fatalf("%s__echo failed: %s", srv, resultText(t, res))
				}
				if got, want := resultText(t, res), srv+":"+args; got != want {
					t.Errorf("%s__echo = %q, want %q", srv, got, want)
				}
			}
		})
	}
}

func TestResourcesRoutedByURI(t *testing.T) {
	g := startGateway(t, newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil)))
	cli, _ := g.connect(t, streamableLegacy)
	tests := []struct {
		uri      string
		wantText string
	}{
		{"file:///shared.txt", "alpha says file:///shared.txt"},
		{"mcpmesh://beta/file:%2F%2F%2Fshared.txt", "beta says file:///shared.txt"},
		{"beta://only", "beta says beta://only"},
		{"alpha://only", "alpha says alpha://only"},
		// The first server by name keeps a contested template.
		{"file:///docs/readme", "alpha doc file:///docs/readme"},
		// The other copy is reachable through its mcpmesh:// template,
		// expanded the way a client expands it.
		{"mcpmesh://beta/file:%2F%2F%2Fdocs%2Freadme", "beta doc file:///docs/readme"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			req := mcp.ReadResourceRequest{}
			req.Params.URI = tt.uri
			res, err := cli.ReadResource(context.Background(), req)
			if err != nil {
				t.Fatalf("resources/read: %v", err)
			}
			if len(res.Contents) != 1 {
				t.Fatalf("contents = %d items, want 1", len(res.Contents))
			}
			tc, ok := res.Contents[0].(mcp.TextResourceContents)
			if !ok {
				t.Fatalf("content is %T, want text", res.Contents[0])
			}
			if tc.Text != tt.wantText {
				t.Errorf("text = %q, want %q", tc.Text, tt.wantText)
			}
			if tc.URI != tt.uri {
				t.Errorf("content uri = %q, want the uri asked for, %q", tc.URI, tt.uri)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		req := mcp.ReadResourceRequest{}
		req.Params.URI = "nowhere://x"
		if _, err := cli.ReadResource(context.Background(), req); err == nil || !strings.Contains(err.Error(), "nowhere://x") {
			t.Errorf("read unknown resource: err = %v, want one naming the uri", err)
		}
	})
}

func TestGetPrompt(t *testing.T) {
	g := startGateway(t, newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil)))
	cli, _ := g.connect(t, streamableLegacy)
	req := mcp.GetPromptRequest{}
	req.Params.Name = "beta__greet"
	req.Params.Arguments = map[string]string{"who": "you"}
	res, err := cli.GetPrompt(context.Background(), req)
	if err != nil {
		t.Fatalf("prompts/get: %v", err)
	}
	if len(res.Messages) != 1 {
		t.Fatalf("messages = %d, want 1", len(res.Messages))
	}
	if tc, ok := res.Messages[0].Content.(mcp.TextContent); !ok || tc.Text != "beta greets you" {
		t.Errorf("message = %#v, want text %q", res.Messages[0].Content, "beta greets you")
	}
	req.Params.Name = "beta__nope"
	if _, err := cli.GetPrompt(context.Background(), req); err == nil || !strings.Contains(err.Error(), "beta__nope") {
		t.Errorf("get unknown prompt: err = %v, want one naming it", err)
	}
}

func TestToolErrors(t *testing.T) {
	alpha := newAlpha(t, "alpha", nil, nil)
	g := startGateway(t, newLiveSource(alpha, newAlpha(t, "beta", nil, nil)))
	cli, _ := g.connect(t, streamableLegacy)

	t.Run("unknown tool", func(t *testing.T) {
		req := mcp.CallToolRequest{}
		req.Params.Name = "nosuch__tool"
		_, err := cli.CallTool(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), "nosuch__tool") {
			t.Fatalf("err = %v, want one naming nosuch__tool", err)
		}
	})
	t.Run("backend not ready", func(t *testing.T) {
		// The tool is still listed (no refresh yet), as in the moment
		// between a backend failing and the lists catching up.
		alpha.setReady(false)
		defer alpha.setReady(true)
		res := callTool(t, cli, "alpha__echo", `{}`)
		text := resultText(t, res)
		if !res.IsError || !strings.Contains(text, `"alpha"`) || !strings.Contains(text, "unavailable") {
			t.Fatalf("result = %v %q, want an error naming the backend and its state", res.IsError, text)
		}
	})
	t.Run("backend removed", func(t *testing.T) {
		g.src.remove("beta")
		defer g.src.add(alpha) // keep alpha; beta stays gone for this gateway
		res := callTool(t, cli, "beta__echo", `{}`)
		text := resultText(t, res)
		if !res.IsError || !strings.Contains(text, "beta__echo") || !strings.Contains(text, `"beta"`) {
			t.Fatalf("result = %v %q, want an error naming the tool and the server", res.IsError, text)
		}
	})
}

func TestInvalidToolSkipped(t *testing.T) {
	alpha := newAlpha(t, "alpha", nil, nil)
	// x-mcp-header on an object property is invalid; mcp-go would panic on
	// registering it, so it cannot come from a real server in this test.
	alpha.extraTools = []mcp.Tool{
		mcp.NewToolWithRawSchema("bad", "", json.RawMessage(`{"type":"object","properties":{"o":{"type":"object","x-mcp-header":"Obj"}}}`)),
		mcp.NewToolWithRawSchema("raw", "", json.RawMessage(`{"type":"object","properties":{"q":{"type":"string","x-custom":1}}}`)),
	}
	g := startGateway(t, newLiveSource(alpha))
	cli, _ := g.connect(t, streamableLegacy)
	res, err := cli.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	var rawSchema string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if tl.Name == "alpha__raw" {
			b, _ := json.Marshal(tl.InputSchema)
			rawSchema = string(b)
		}
	}
	slices.Sort(names)
	if want := []string{"alpha__block", "alpha__echo", "alpha__raw"}; !slices.Equal(names, want) {
		t.Errorf("tools = %v, want %v (the invalid tool skipped, the rest served)", names, want)
	}
	// The raw schema is served as the backend gave it, unknown keys included.
	if !strings.Contains(rawSchema, "x-custom") {
		t.Errorf("alpha__raw schema = %s, want the raw schema with x-custom", rawSchema)
	}
}

func TestBackendRemovalNotifiesOnce(t *testing.T) {
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		t.Run(string(kind), func(t *testing.T) {
			alpha := newAlpha(t, "alpha", nil, nil)
			// beta has tools only, so its removal changes the tool list alone.
			g := startGateway(t, newLiveSource(alpha, newBig(t, "beta", 3)))
			cli, notes := g.connect(t, kind)

			g.src.remove("beta")
			g.srv.Refresh()
			g.srv.Refresh() // nothing changed: nothing is sent
			if got, want := toolNames(t, cli), []string{"alpha__block", "alpha__echo"}; !slices.Equal(got, want) {
				t.Errorf("tools after removal = %v, want %v", got, want)
			}

			// A prompt-only change marks the end: every notification of the
			// refreshes above was sent before it, on the same stream.
			alpha.srv.AddPrompt(mcp.NewPrompt("later"), func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return mcp.NewGetPromptResult("", nil), nil
			})
			alpha.reload(t)
			g.srv.Refresh()
			if n := countUntil(t, notes, mcp.MethodNotificationToolsListChanged, mcp.MethodNotificationPromptsListChanged); n != 1 {
				t.Errorf("tools/list_changed received %d times for one refresh, want 1", n)
			}

			// A backend coming back (ready again) brings its items back.
			alpha.setReady(false)
			g.srv.Refresh()
			expectNote(t, notes, mcp.MethodNotificationToolsListChanged)
			if got := toolNames(t, cli); len(got) != 0 {
				t.Errorf("tools while alpha is unavailable = %v, want none", got)
			}
			alpha.setReady(true)
			g.srv.Refresh()
			if got, want := toolNames(t, cli), []string{"alpha__block", "alpha__echo"}; !slices.Equal(got, want) {
				t.Errorf("tools after recovery = %v, want %v", got, want)
			}
		})
	}
}

func TestLargeListReturnedWhole(t *testing.T) {
	g := startGateway(t, newLiveSource(newBig(t, "big", 2000)))
	cli, _ := g.connect(t, streamableLegacy)
	if got := toolNames(t, cli); len(got) != 2000 || got[0] != "big__tool-0000" || got[1999] != "big__tool-1999" {
		t.Fatalf("tools/list returned %d tools, want all 2000 in one page", len(got))
	}
}

func TestClientCancellationReachesBackend(t *testing.T) {
	blocked := make(chan struct{}, 1)
	cancelled := make(chan error, 1)
	g := startGateway(t, newLiveSource(newAlpha(t, "alpha", blocked, cancelled)))
	cli, _ := g.connect(t, streamableLegacy)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		req := mcp.CallToolRequest{}
		req.Params.Name = "alpha__block"
		_, err := cli.CallTool(ctx, req)
		done <- err
	}()
	select {
	case <-blocked:
	case <-time.After(wait):
		t.Fatal("the call never reached the backend")
	}
	cancel()
	select {
	case err := <-cancelled:
		if err == nil {
			t.Fatal("backend handler returned without a context error")
		}
	case <-time.After(wait):
		t.Fatal("client cancellation did not reach the backend call")
	}
	if err := <-done; err == nil {
		t.Error("cancelled call returned no error")
	}
}

func TestNewRequiresSource(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Source") {
		t.Fatalf("New without a source: err = %v, want one naming Source", err)
	}
}

// Compile-time check that the test adapter satisfies the interface the real
// backend implements.
var _ Backend = (*liveBackend)(nil)

var _ = server.ServerTool{}

// TestConcurrentRefreshAndCalls runs refreshes that flip a backend in and
// out while a client calls tools; run with -race.
func TestConcurrentRefreshAndCalls(t *testing.T) {
	alpha := newAlpha(t, "alpha", nil, nil)
	beta := newBig(t, "beta", 5)
	g := startGateway(t, newLiveSource(alpha, beta))
	cli, _ := g.connect(t, streamableLegacy)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			beta.setReady(i%2 == 0)
			g.srv.Refresh()
		}
	}()
	for range 20 {
		if res := callTool(t, cli, "alpha__echo", `{"n":1}`); res.IsError {
			t.Fatalf("alpha__echo failed during refreshes: %s", resultText(t, res))
		}
	}
	<-done
}
