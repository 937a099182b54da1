package testbackend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/internal/testbackend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T, opts testbackend.Options) *client.Client {
	t.Helper()
	c, err := client.NewInProcessClient(testbackend.New(opts))
	if err != nil {
		t.Fatalf("new in-process client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	initialize(t, c)
	return c
}

func initialize(t *testing.T, c *client.Client) *mcp.InitializeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "testbackend-test", Version: "0"}
	res, err := c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return res
}

func toolNames(tools []mcp.Tool) []string {
	out := make([]string, 0, len(tools))
	for _, t := range tools {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

func wantTools(extra int) []string {
	want := append([]string(nil), testbackend.FixedTools...)
	for i := 0; i < extra; i++ {
		want = append(want, testbackend.GeneratedToolName(i))
	}
	sort.Strings(want)
	return want
}

func TestListToolsWithoutPaging(t *testing.T) {
	c := newClient(t, testbackend.Options{Name: "a", Tools: 25})
	res, err := c.ListToolsByPage(t.Context(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	if res.NextCursor != "" {
		t.Errorf("nextCursor = %q without paging, want none", res.NextCursor)
	}
	if got, want := toolNames(res.Tools), wantTools(25); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tools = %v, want %v", got, want)
	}
}

func TestListToolsWithPaging(t *testing.T) {
	const extra, pageSize = 25, 7
	c := newClient(t, testbackend.Options{Name: "a", Tools: extra, PageSize: pageSize})
	var all []mcp.Tool
	var req mcp.ListToolsRequest
	pages := 0
	for {
		res, err := c.ListToolsByPage(t.Context(), req)
		if err != nil {
			t.Fatalf("list tools page %d: %v", pages, err)
		}
		pages++
		if len(res.Tools) > pageSize {
			t.Fatalf("page %d has %d tools, page size is %d", pages, len(res.Tools), pageSize)
		}
		all = append(all, res.Tools...)
		if res.NextCursor == "" {
			break
		}
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		req.Params.Cursor = res.NextCursor
	}
	total := len(testbackend.FixedTools) + extra
	if minPages := (total + pageSize - 1) / pageSize; pages < minPages {
		t.Errorf("got %d pages, want at least %d", pages, minPages)
	}
	if got, want := toolNames(all), wantTools(extra); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tools over all pages = %v, want %v", got, want)
	}
}

func callTool(t *testing.T, c *client.Client, name string, args any) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.CallTool(t.Context(), req)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("result has %d content items, want 1: %+v", len(res.Content), res.Content)
	}
	tc, ok := mcp.AsTextContent(res.Content[0])
	if !ok {
		t.Fatalf("result content is %T, want text", res.Content[0])
	}
	return tc.Text
}

func TestTools(t *testing.T) {
	c := newClient(t, testbackend.Options{Name: "replica-1", Tools: 2})
	tests := []struct {
		tool    string
		args    any
		want    string
		wantErr bool
	}{
		{tool: "echo", args: map[string]any{"text": "héllo"}, want: "héllo"},
		{tool: "echo", args: map[string]any{}, wantErr: true},
		{tool: "add", args: map[string]any{"a": 2, "b": 40.5}, want: "42.5"},
		{tool: "add", args: map[string]any{"a": "x", "b": 1}, wantErr: true},
		{tool: "whoami", want: fmt.Sprintf("replica-1 pid=%d", os.Getpid())},
		{tool: "sleep", args: map[string]any{"ms": 1}, want: "slept 1"},
		{tool: "sleep", args: map[string]any{"ms": -1}, wantErr: true},
		{tool: "fail", wantErr: true},
		// Raw JSON arguments: 2^64+1 does not fit a float64 and must come back verbatim.
		{tool: "big_int", args: json.RawMessage(`{"n": 18446744073709551617}`), want: "18446744073709551617"},
		{tool: "big_int", args: json.RawMessage(`{"n": 9007199254740993}`), want: "9007199254740993"},
		{tool: "big_int", args: map[string]any{}, wantErr: true},
		{tool: "tool-0001", want: "tool-0001"},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			res := callTool(t, c, tt.tool, tt.args)
			if res.IsError != tt.wantErr {
				t.Fatalf("isError = %v, want %v (content %+v)", res.IsError, tt.wantErr, res.Content)
			}
			if !tt.wantErr {
				if got := text(t, res); got != tt.want {
					t.Errorf("text = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestAddAnnotations(t *testing.T) {
	c := newClient(t, testbackend.Options{})
	res, err := c.ListTools(t.Context(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	for _, tool := range res.Tools {
		if tool.Name != "add" {
			continue
		}
		a := tool.Annotations
		if a.ReadOnlyHint == nil || !*a.ReadOnlyHint || a.IdempotentHint == nil || !*a.IdempotentHint {
			t.Errorf("add annotations = %+v, want readOnlyHint and idempotentHint true", a)
		}
		return
	}
	t.Fatal("tool add not listed")
}

func TestSleepHonoursCancellation(t *testing.T) {
	c := newClient(t, testbackend.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = "sleep"
	req.Params.Arguments = map[string]any{"ms": 60_000}
	start := time.Now()
	_, err := c.CallTool(ctx, req)
	if err == nil {
		t.Fatal("sleep 60s with a 50ms deadline succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelled sleep returned after %v", d)
	}
}

func TestResourcesAndPrompt(t *testing.T) {
	c := newClient(t, testbackend.Options{Name: "b"})
	ctx := t.Context()

	rl, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil || len(rl.Resources) != 1 || rl.Resources[0].URI != testbackend.ReadmeURI {
		t.Fatalf("list resources = %+v, %v; want one %s", rl, err, testbackend.ReadmeURI)
	}
	tl, err := c.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(tl.ResourceTemplates) != 1 {
		t.Fatalf("list templates = %+v, %v; want one", tl, err)
	}
	if got := tl.ResourceTemplates[0].URITemplate.Raw(); got != testbackend.ItemTemplate {
		t.Errorf("template = %q, want %q", got, testbackend.ItemTemplate)
	}

	for uri, want := range map[string]string{
		testbackend.ReadmeURI: testbackend.Readme("b"),
		"demo://items/42":     "item 42 from b",
	} {
		req := mcp.ReadResourceRequest{}
		req.Params.URI = uri
		res, err := c.ReadResource(ctx, req)
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		tc, ok := res.Contents[0].(mcp.TextResourceContents)
		if len(res.Contents) != 1 || !ok || tc.Text != want {
			t.Errorf("read %s = %+v, want text %q", uri, res.Contents, want)
		}
	}

	pl, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil || len(pl.Prompts) != 1 || pl.Prompts[0].Name != testbackend.GreetPrompt {
		t.Fatalf("list prompts = %+v, %v; want %s", pl, err, testbackend.GreetPrompt)
	}
	preq := mcp.GetPromptRequest{}
	preq.Params.Name = testbackend.GreetPrompt
	preq.Params.Arguments = map[string]string{"name": "Ada"}
	pr, err := c.GetPrompt(ctx, preq)
	if err != nil {
		t.Fatalf("get prompt: %v", err)
	}
	tc, ok := mcp.AsTextContent(pr.Messages[0].Content)
	if !ok || tc.Text != "Hello, Ada!" {
		t.Errorf("prompt message = %+v, want Hello, Ada!", pr.Messages)
	}
	preq.Params.Arguments = nil
	if _, err := c.GetPrompt(ctx, preq); err == nil {
		t.Error("greet without name succeeded")
	}
}

// TestBinaryOverStdio builds demo-backend and talks to it the way a data
// plane does with a stdio backend.
func TestBinaryOverStdio(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "demo-backend")
	build := exec.Command("go", "build", "-o", bin, "./cmd/demo-backend")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build demo-backend: %v\n%s", err, out)
	}
	c, err := client.NewStdioMCPClient(bin, nil, "--name", "stdio-1", "--tools", "3", "--page-size", "4")
	if err != nil {
		t.Fatalf("start demo-backend: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "testbackend-test", Version: "0"}
	res, err := c.Initialize(ctx, req)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if res.ServerInfo.Name != "stdio-1" {
		t.Errorf("server name = %q, want stdio-1", res.ServerInfo.Name)
	}
	tools, err := c.ListTools(ctx, mcp.ListToolsRequest{}) // follows the 4-item pages
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	if got, want := toolNames(tools.Tools), wantTools(3); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tools = %v, want %v", got, want)
	}
	call := mcp.CallToolRequest{}
	call.Params.Name = "whoami"
	out, err := c.CallTool(ctx, call)
	if err != nil {
		t.Fatalf("call whoami: %v", err)
	}
	got := text(t, out)
	if !strings.HasPrefix(got, "stdio-1 pid=") || got == fmt.Sprintf("stdio-1 pid=%d", os.Getpid()) {
		t.Errorf("whoami = %q, want the child's name and pid", got)
	}
	if err := c.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Logf("close: %v", err)
	}
}

func TestWideEcho(t *testing.T) {
	if got := toolNames(listAll(t, newClient(t, testbackend.Options{}))); slices.Contains(got, testbackend.WideEchoTool) {
		t.Fatalf("%s listed without WideEcho: %v", testbackend.WideEchoTool, got)
	}
	c := newClient(t, testbackend.Options{WideEcho: true})
	var wide *mcp.Tool
	tools := listAll(t, c)
	for i := range tools {
		if tools[i].Name == testbackend.WideEchoTool {
			wide = &tools[i]
		}
	}
	if wide == nil {
		t.Fatalf("%s not listed: %v", testbackend.WideEchoTool, toolNames(tools))
	}
	if n := len(wide.InputSchema.Properties); n != testbackend.WideEchoParams {
		t.Errorf("%s has %d parameters, want %d", wide.Name, n, testbackend.WideEchoParams)
	}
	if got := text(t, callTool(t, c, testbackend.WideEchoTool, map[string]any{"text": "hi", "p07": "x"})); got != "hi" {
		t.Errorf("%s text = %q, want hi", testbackend.WideEchoTool, got)
	}
	if res := callTool(t, c, testbackend.WideEchoTool, map[string]any{}); !res.IsError {
		t.Errorf("%s without text: not an error result", testbackend.WideEchoTool)
	}
}

func listAll(t *testing.T, c *client.Client) []mcp.Tool {
	t.Helper()
	res, err := c.ListTools(t.Context(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	return res.Tools
}
