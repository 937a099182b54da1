package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
)

var testSecret = []byte("cluster-secret-for-tests-0123456789")

// pagedGateway is an aggregated server on a real HTTP server with the
// pagination wiring the data plane uses: the request context function on
// both transports, the /sse query carried to /message, and the cursor guards.
type pagedGateway struct {
	srv *Server
	url string
}

type gatewayOpts struct {
	secret   []byte
	enabled  bool
	pageSize uint32
	revision uint64
	noGuards bool // leave bad cursors to the hooks alone, and lists to mcp-go's server
	hooks    *server.Hooks
}

func startPagedGateway(t testing.TB, src Source, o gatewayOpts) *pagedGateway {
	t.Helper()
	s, err := New(Options{Source: src, Logger: quietLogger(), Hooks: o.hooks})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if o.secret == nil {
		o.secret = testSecret
	}
	s.SetConfig(&mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: o.enabled, PageSize: o.pageSize}}, o.secret, o.revision)
	s.Refresh()
	streamable, guarded := s.NewStreamableHTTP(
		server.WithEndpointPath("/mcp"),
		server.WithHTTPContextFunc(PaginationFromRequest),
		server.WithStreamableHTTPLogger(quietLogger()),
	)
	sse := server.NewSSEServer(s.MCPServer(),
		server.WithSSEEndpoint("/sse"),
		server.WithMessageEndpoint("/message"),
		server.WithSSEContextFunc(PaginationFromRequest),
		server.WithAppendQueryToMessageEndpoint(),
	)
	mux := http.NewServeMux()
	var mcpH, msgH http.Handler = streamable, sse.MessageHandler()
	if !o.noGuards {
		mcpH, msgH = guarded, s.SSECursorGuard(sse, msgH)
	}
	mux.Handle("/mcp", mcpH)
	mux.Handle("/sse", sse.SSEHandler())
	mux.Handle("/message", msgH)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		sse.CloseSessions()
		if err := streamable.Shutdown(ctx); err != nil {
			t.Errorf("close streamable sessions: %v", err)
		}
		ts.Close()
	})
	return &pagedGateway{srv: s, url: ts.URL}
}

func (g *pagedGateway) setPaging(enabled bool, size uint32, revision uint64) {
	g.srv.SetConfig(&mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: enabled, PageSize: size}}, testSecret, revision)
}

// dial opens a real mcp-go client of kind on path ("/mcp" or "/sse", with
// any query).
func (g *pagedGateway) dial(t testing.TB, kind clientKind, query string) *client.Client {
	t.Helper()
	var (
		cli *client.Client
		err error
	)
	version := mcp.ProtocolVersion20251125
	switch kind {
	case streamableLegacy:
		cli, err = client.NewStreamableHttpClient(g.url + "/mcp" + query)
	case streamableModern:
		cli, err = client.NewStreamableHttpClient(g.url + "/mcp" + query)
		version = mcp.ProtocolVersion20260728
	case sseLegacy:
		cli, err = client.NewSSEMCPClient(g.url + "/sse" + query)
	}
	if err != nil {
		t.Fatalf("new %s client: %v", kind, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = cli.Close()
	})
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start %s client: %v", kind, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcp.Implementation{Name: "paging-test", Version: "0"}
	if _, err := cli.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s client: %v", kind, err)
	}
	return cli
}

// lister fetches one page of one list kind; it returns the items' keys.
type lister func(ctx context.Context, cli *client.Client, cur mcp.Cursor) ([]string, mcp.Cursor, error)

var listers = map[listKind]lister{
	kindTools: func(ctx context.Context, cli *client.Client, cur mcp.Cursor) ([]string, mcp.Cursor, error) {
		var req mcp.ListToolsRequest
		req.Params.Cursor = cur
		res, err := cli.ListToolsByPage(ctx, req)
		if err != nil {
			return nil, "", err
		}
		keys := make([]string, len(res.Tools))
		for i, x := range res.Tools {
			keys[i] = x.Name
		}
		return keys, res.NextCursor, nil
	},
	kindPrompts: func(ctx context.Context, cli *client.Client, cur mcp.Cursor) ([]string, mcp.Cursor, error) {
		var req mcp.ListPromptsRequest
		req.Params.Cursor = cur
		res, err := cli.ListPromptsByPage(ctx, req)
		if err != nil {
			return nil, "", err
		}
		keys := make([]string, len(res.Prompts))
		for i, x := range res.Prompts {
			keys[i] = x.Name
		}
		return keys, res.NextCursor, nil
	},
	kindResources: func(ctx context.Context, cli *client.Client, cur mcp.Cursor) ([]string, mcp.Cursor, error) {
		var req mcp.ListResourcesRequest
		req.Params.Cursor = cur
		res, err := cli.ListResourcesByPage(ctx, req)
		if err != nil {
			return nil, "", err
		}
		keys := make([]string, len(res.Resources))
		for i, x := range res.Resources {
			keys[i] = x.URI
		}
		return keys, res.NextCursor, nil
	},
	kindTemplates: func(ctx context.Context, cli *client.Client, cur mcp.Cursor) ([]string, mcp.Cursor, error) {
		var req mcp.ListResourceTemplatesRequest
		req.Params.Cursor = cur
		res, err := cli.ListResourceTemplatesByPage(ctx, req)
		if err != nil {
			return nil, "", err
		}
		keys := make([]string, len(res.ResourceTemplates))
		for i, x := range res.ResourceTemplates {
			keys[i] = x.URITemplate.Raw()
		}
		return keys, res.NextCursor, nil
	},
}

// walk follows nextCursor to the end, sending request i to clis[i%len(clis)],
// and checks every page's size against pageSize (0: one page holds all).
func walk(t testing.TB, kind listKind, pageSize int, clis ...*client.Client) []string {
	t.Helper()
	var all []string
	var cur mcp.Cursor
	for i := 0; ; i++ {
		keys, next, err := listers[kind](context.Background(), clis[i%len(clis)], cur)
		if err != nil {
			t.Fatalf("%s page %d: %v", kind, i, err)
		}
		if pageSize > 0 && len(keys) > pageSize {
			t.Fatalf("%s page %d holds %d items, more than the page size %d", kind, i, len(keys), pageSize)
		}
		if next != "" && pageSize > 0 && len(keys) != pageSize {
			t.Fatalf("%s page %d holds %d items and a cursor; want a full page of %d", kind, i, len(keys), pageSize)
		}
		if next != "" && len(keys) == 0 {
			t.Fatalf("%s page %d is empty but has a cursor", kind, i)
		}
		all = append(all, keys...)
		if next == "" {
			return all
		}
		if i > 100000 {
			t.Fatalf("%s: walk does not end", kind)
		}
		cur = next
	}
}

// newMixed is a backend with the given numbers of tools, prompts, resources
// and templates. Every backend also exposes file:///shared.txt, so later
// servers' copies are served under mcpmesh:// URIs. pageLimit > 0 makes the
// backend paginate its own lists; they are fetched whole, as the backend
// package does.
func newMixed(t testing.TB, name string, tools, prompts, resources, templates, pageLimit int) *liveBackend {
	t.Helper()
	opts := []server.ServerOption{server.WithResourceCapabilities(false, true), server.WithPromptCapabilities(true), server.WithToolCapabilities(true)}
	if pageLimit > 0 {
		opts = append(opts, server.WithPaginationLimit(pageLimit))
	}
	s := server.NewMCPServer(name, "1", opts...)
	ts := make([]server.ServerTool, tools)
	for i := range ts {
		ts[i] = server.ServerTool{
			Tool: mcp.NewTool(fmt.Sprintf("t%04d", i), mcp.WithDescription("generated")),
			Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText("ok"), nil
			},
		}
	}
	s.AddTools(ts...)
	for i := range prompts {
		s.AddPrompt(mcp.NewPrompt(fmt.Sprintf("p%04d", i)), func(context.Context, mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return mcp.NewGetPromptResult("", nil), nil
		})
	}
	read := func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: "x"}}, nil
	}
	if resources > 0 {
		s.AddResource(mcp.NewResource("file:///shared.txt", "shared"), read)
		for i := 1; i < resources; i++ {
			s.AddResource(mcp.NewResource(fmt.Sprintf("res://%s/%04d", name, i), fmt.Sprintf("r%04d", i)), read)
		}
	}
	for i := range templates {
		s.AddResourceTemplate(mcp.NewResourceTemplate(fmt.Sprintf("tpl://%s/%04d/{x}", name, i), fmt.Sprintf("tp%04d", i)), read)
	}
	return connectLive(t, name, s)
}

// connectLive is newLiveBackend for benchmarks too, and it fetches lists the
// way the backend package does: every upstream cursor followed.
func connectLive(t testing.TB, name string, srv *server.MCPServer) *liveBackend {
	t.Helper()
	cli, err := client.NewInProcessClient(srv)
	if err != nil {
		t.Fatalf("in-process client for %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx := context.Background()
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start client for %s: %v", name, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-test", Version: "0"}
	if _, err := cli.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", name, err)
	}
	b := &liveBackend{name: name, srv: srv, cli: cli, ready: true}
	fetchAll(t, b)
	return b
}

// fetchAll reloads b following every upstream cursor.
func fetchAll(t testing.TB, b *liveBackend) {
	t.Helper()
	ctx := context.Background()
	var tools []mcp.Tool
	var prompts []mcp.Prompt
	var resources []mcp.Resource
	var templates []mcp.ResourceTemplate
	// Like the backend package, record which lists the backend paginates.
	paged := map[mcp.MCPMethod]bool{}
	for cur := mcp.Cursor(""); ; {
		var req mcp.ListToolsRequest
		req.Params.Cursor = cur
		res, err := b.cli.ListToolsByPage(ctx, req)
		if err != nil {
			t.Fatalf("list tools of %s: %v", b.name, err)
		}
		if tools = append(tools, res.Tools...); res.NextCursor == "" {
			break
		}
		paged[mcp.MethodToolsList] = true
		cur = res.NextCursor
	}
	for cur := mcp.Cursor(""); ; {
		var req mcp.ListPromptsRequest
		req.Params.Cursor = cur
		res, err := b.cli.ListPromptsByPage(ctx, req)
		if err != nil {
			t.Fatalf("list prompts of %s: %v", b.name, err)
		}
		if prompts = append(prompts, res.Prompts...); res.NextCursor == "" {
			break
		}
		paged[mcp.MethodPromptsList] = true
		cur = res.NextCursor
	}
	for cur := mcp.Cursor(""); ; {
		var req mcp.ListResourcesRequest
		req.Params.Cursor = cur
		res, err := b.cli.ListResourcesByPage(ctx, req)
		if err != nil {
			t.Fatalf("list resources of %s: %v", b.name, err)
		}
		if resources = append(resources, res.Resources...); res.NextCursor == "" {
			break
		}
		paged[mcp.MethodResourcesList] = true
		cur = res.NextCursor
	}
	for cur := mcp.Cursor(""); ; {
		var req mcp.ListResourceTemplatesRequest
		req.Params.Cursor = cur
		res, err := b.cli.ListResourceTemplatesByPage(ctx, req)
		if err != nil {
			t.Fatalf("list templates of %s: %v", b.name, err)
		}
		if templates = append(templates, res.ResourceTemplates...); res.NextCursor == "" {
			break
		}
		paged[mcp.MethodResourcesTemplatesList] = true
		cur = res.NextCursor
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tools, b.prompts, b.resources, b.templates = tools, prompts, resources, templates
	b.paged = paged
}

// toolSizes are the tool counts of the 20 backends of the big tests: odd
// sizes, empty and one-item servers, 2,000 tools in all.
var toolSizes = []int{0, 1, 99, 101, 333, 7, 250, 2, 13, 64, 100, 128, 200, 45, 3, 150, 77, 19, 111, 297}

// smallToolSizes are odd sizes too, 300 tools in all: mcp-go's tools/list
// costs O(all tools) per request whatever the page size (it copies and sorts
// every tool), so a walk of 2,000 single-tool pages under -race alone would
// take 20 s.
var smallToolSizes = []int{0, 1, 9, 11, 33, 7, 25, 2, 13, 6, 10, 12, 20, 4, 3, 15, 77, 19, 11, 22}

func bigSource(t testing.TB) (*liveSource, int) { return sourceOf(t, toolSizes) }

func sourceOf(t testing.TB, sizes []int) (*liveSource, int) {
	t.Helper()
	src := newLiveSource()
	total := 0
	for i, n := range sizes {
		// Every third backend paginates its own lists with an odd limit.
		limit := 0
		if i%3 == 0 {
			limit = 17 + i
		}
		b := newMixed(t, fmt.Sprintf("s%02d", i), n, n/3, n/2, n/5, limit)
		if i == 2 {
			// mcp-go backends list by name; this one lists in reverse,
			// as a backend in another language may, so the tests see that
			// the gateway keeps upstream order.
			slices.Reverse(b.tools)
		}
		src.add(b)
		total += n
	}
	return src, total
}

func TestPaginationWalksEqualFullList(t *testing.T) {
	src, total := bigSource(t)
	if total != 2000 {
		t.Fatalf("test setup: %d tools, want 2000", total)
	}
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{})
	ctx := context.Background()
	cli := g.dial(t, streamableLegacy, "")

	full := map[listKind][]string{}
	for kind := range listers {
		keys, next, err := listers[kind](ctx, cli, "")
		if err != nil {
			t.Fatalf("%s without pagination: %v", kind, err)
		}
		if next != "" {
			t.Fatalf("%s without pagination returned a cursor", kind)
		}
		full[kind] = keys
	}
	if len(full[kindTools]) != total {
		t.Fatalf("tools/list returned %d tools, want %d", len(full[kindTools]), total)
	}
	// The served order is servers by name, then upstream order.
	if got := full[kindTools][:3]; !slices.Equal(got, []string{"s01__t0000", "s02__t0098", "s02__t0097"}) {
		t.Fatalf("first tools = %v, want s01's then s02's in upstream order", got)
	}
	if !slices.Contains(full[kindResources], "mcpmesh://s03/file:%2F%2F%2Fshared.txt") {
		t.Fatalf("resources lack s03's copy of the shared resource under its mcpmesh:// URI")
	}

	for _, size := range []int{1, 7, 100, 1000} {
		g.setPaging(true, uint32(size), 5)
		for kind := range listers {
			if kind == kindTools && size == 1 {
				continue // below, on 300 tools
			}
			t.Run(fmt.Sprintf("%s/size-%d", kind, size), func(t *testing.T) {
				if got := walk(t, kind, size, cli); !slices.Equal(got, full[kind]) {
					t.Fatalf("pages joined hold %d items, want exactly the %d of the full list (first difference at %d)",
						len(got), len(full[kind]), firstDiff(got, full[kind]))
				}
			})
		}
	}
}

func TestPaginationSinglePageWalkOfTools(t *testing.T) {
	src, total := sourceOf(t, smallToolSizes)
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{})
	cli := g.dial(t, streamableLegacy, "")
	full := walk(t, kindTools, 0, cli)
	if len(full) != total {
		t.Fatalf("tools/list returned %d tools, want %d", len(full), total)
	}
	g.setPaging(true, 1, 5)
	if got := walk(t, kindTools, 1, cli); !slices.Equal(got, full) {
		t.Fatalf("pages joined hold %d items, want exactly the %d of the full list (first difference at %d)",
			len(got), len(full), firstDiff(got, full))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestPaginationClientKinds walks with each kind of client, including the
// legacy SSE transport whose /message requests get the query appended.
func TestPaginationClientKinds(t *testing.T) {
	src := newLiveSource(newMixed(t, "a", 30, 3, 5, 2, 0), newMixed(t, "b", 25, 4, 6, 3, 0))
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 4})
	want := walk(t, kindTools, 0, g.dial(t, streamableLegacy, ""))
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		t.Run(string(kind), func(t *testing.T) {
			cli := g.dial(t, kind, "")
			for lk := range listers {
				walk(t, lk, 4, cli)
			}
			if got := walk(t, kindTools, 4, cli); !slices.Equal(got, want) {
				t.Fatalf("paged tools = %v, want %v", got, want)
			}
		})
	}
}

func TestPaginationOptInPerConnection(t *testing.T) {
	src := newLiveSource(newMixed(t, "a", 30, 3, 5, 2, 0), newMixed(t, "b", 25, 4, 6, 3, 0))
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: false, pageSize: 10})
	plain := g.dial(t, streamableLegacy, "")
	want := walk(t, kindTools, 0, plain)
	if len(want) != 55 {
		t.Fatalf("unpaginated tools/list returned %d tools, want 55 in one page", len(want))
	}
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		t.Run(string(kind), func(t *testing.T) {
			cli := g.dial(t, kind, "?pagination=true")
			keys, next, err := listers[kindTools](context.Background(), cli, "")
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			if len(keys) != 10 || next == "" {
				t.Fatalf("opted-in client got %d tools and cursor %q, want a page of 10 and a cursor", len(keys), next)
			}
			if got := walk(t, kindTools, 10, cli); !slices.Equal(got, want) {
				t.Fatalf("paged tools differ from the full list")
			}
		})
	}
	// The opt-in is per connection: the other client still gets it whole.
	if got := walk(t, kindTools, 0, plain); len(got) != 55 {
		t.Fatalf("client without ?pagination=true got %d tools in its first page, want 55", len(got))
	}
}

func TestPageSizeBounds(t *testing.T) {
	src := newLiveSource(newBig(t, "big", 1500))
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{})
	cli := g.dial(t, streamableLegacy, "")
	for _, tt := range []struct {
		setting uint32
		want    int
	}{{0, DefaultPageSize}, {1, 1}, {1000, 1000}, {1001, MaxPageSize}, {1 << 31, MaxPageSize}} {
		g.setPaging(true, tt.setting, 1)
		keys, next, err := listers[kindTools](context.Background(), cli, "")
		if err != nil {
			t.Fatalf("page size %d: %v", tt.setting, err)
		}
		if len(keys) != tt.want || next == "" {
			t.Errorf("page size setting %d: page of %d with cursor %v, want %d with a cursor", tt.setting, len(keys), next != "", tt.want)
		}
	}
	// A walk keeps the size it started with when the setting changes.
	g.setPaging(true, 10, 1)
	_, next, err := listers[kindTools](context.Background(), cli, "")
	if err != nil {
		t.Fatal(err)
	}
	g.setPaging(false, 500, 2)
	keys, _, err := listers[kindTools](context.Background(), cli, next)
	if err != nil {
		t.Fatalf("continue after the setting changed: %v", err)
	}
	if len(keys) != 10 {
		t.Errorf("continued walk got %d items, want the walk's page size 10", len(keys))
	}
}

// TestCursorContinuesOnAnotherReplica alternates the requests of one walk
// between two data planes that share the secret and the backends.
func TestCursorContinuesOnAnotherReplica(t *testing.T) {
	src, _ := bigSource(t)
	a := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 37, revision: 9})
	b := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 37, revision: 9})
	ca, cb := a.dial(t, streamableLegacy, ""), b.dial(t, streamableModern, "")
	a.setPaging(false, 37, 9)
	for kind := range listers {
		want := walk(t, kind, 0, ca)
		if got := walk(t, kind, 37, cb, ca); !slices.Equal(got, want) {
			t.Errorf("%s across replicas: %d items, want the %d of the full list", kind, len(got), len(want))
		}
	}
}

// TestConfigChangeMidWalk changes the backends between pages and checks the
// position rule: no error, no duplicate, everything after the position.
func TestConfigChangeMidWalk(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, src *liveSource)
		// wantAfter are servers whose every item must appear after the change.
		wantAfter []string
		// wantMissing are servers whose items must not appear.
		wantMissing []string
	}{
		{
			name: "backend removed before the cursor, backends added before and after",
			change: func(t *testing.T, src *liveSource) {
				src.remove("b02")
				src.add(newMixed(t, "b03a", 9, 0, 0, 0, 0))
				src.add(newMixed(t, "b07a", 11, 0, 0, 0, 0))
			},
			wantAfter:   []string{"b05", "b06", "b07", "b07a", "b08"},
			wantMissing: []string{"b03a"},
		},
		{
			name:      "the cursor's own backend removed",
			change:    func(t *testing.T, src *liveSource) { src.remove("b04") },
			wantAfter: []string{"b05", "b06", "b07", "b08"},
		},
		{
			name: "items before the position removed from the cursor's backend",
			change: func(t *testing.T, src *liveSource) {
				b, _ := src.Get("b04")
				b.mu.Lock()
				b.tools = slices.Delete(b.tools, 0, 4) // the last returned, t0004, stays
				b.mu.Unlock()
			},
			wantAfter: []string{"b05", "b06", "b07", "b08"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newLiveSource()
			for i := 1; i <= 8; i++ {
				src.add(newMixed(t, fmt.Sprintf("b%02d", i), 10, 0, 0, 0, 0))
			}
			g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 7, revision: 1})
			cli := g.dial(t, streamableLegacy, "")
			ctx := context.Background()
			// Five pages of 7 end inside b04 (items 31..40).
			var got []string
			var cur mcp.Cursor
			for range 5 {
				keys, next, err := listers[kindTools](ctx, cli, cur)
				if err != nil {
					t.Fatal(err)
				}
				got, cur = append(got, keys...), next
			}
			if last := got[len(got)-1]; !strings.HasPrefix(last, "b04__") {
				t.Fatalf("test setup: the walk stopped at %s, want inside b04", last)
			}
			tt.change(t, src)
			g.srv.Refresh()
			g.setPaging(true, 7, 2)
			for cur != "" {
				keys, next, err := listers[kindTools](ctx, cli, cur)
				if err != nil {
					t.Fatalf("page after the change: %v", err)
				}
				got, cur = append(got, keys...), next
			}
			seen := map[string]bool{}
			for _, k := range got {
				if seen[k] {
					t.Errorf("%s returned twice", k)
				}
				seen[k] = true
			}
			now := walk(t, kindTools, 7, cli)
			for _, k := range now {
				srv, _, _ := strings.Cut(k, names.Separator)
				if slices.Contains(tt.wantAfter, srv) && !seen[k] {
					t.Errorf("%s (after the position) is missing", k)
				}
			}
			for k := range seen {
				srv, _, _ := strings.Cut(k, names.Separator)
				if slices.Contains(tt.wantMissing, srv) {
					t.Errorf("%s (added before the position) was returned", k)
				}
			}
			// b04's items that were not returned before the change come
			// after the position and must all be there.
			for _, k := range now {
				if strings.HasPrefix(k, "b04__") && !seen[k] {
					t.Errorf("%s of the cursor's own backend is missing", k)
				}
			}
		})
	}
}

func TestBadCursorsRefused(t *testing.T) {
	src := newLiveSource(newMixed(t, "a", 30, 3, 5, 2, 0))
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 4})
	unguarded := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 4, noGuards: true})
	valid := encodeCursor(testSecret, cursor{kind: kindTools, pageSize: 4, server: "a", index: 4, last: "a__t0003"})
	tampered := []byte(valid)
	tampered[3] ^= 'A' ^ 'B'
	if tampered[3] == valid[3] {
		tampered[3] = 'C'
	}
	tests := []struct {
		name   string
		kind   listKind
		cursor string
		want   string
	}{
		{"malformed", kindTools, "not a cursor!", "invalid cursor: not issued by this gateway"},
		{"mcp-go's own", kindTools, "YV9fdDAwMDM=", "invalid cursor"},
		{"too short", kindTools, "AQE", "invalid cursor: too short"},
		{"tampered", kindTools, string(tampered), "invalid cursor: signature mismatch"},
		{"foreign", kindTools, encodeCursor([]byte("another cluster"), cursor{kind: kindTools, pageSize: 4, server: "a", index: 4}), "invalid cursor: signature mismatch"},
		{"wrong kind", kindPrompts, valid, "invalid cursor: issued for tools/list, not prompts/list"},
		{"wrong kind resources", kindResources, encodeCursor(testSecret, cursor{kind: kindTemplates, pageSize: 4, server: "a"}), "not resources/list"},
		{"too long", kindTools, strings.Repeat("A", maxCursorLen+1), "invalid cursor: longer than"},
		{"issued before upstream pages were followed", kindTools, versionOneCursor(valid), "invalid cursor: unsupported version 1"},
	}
	for _, kind := range []clientKind{streamableLegacy, streamableModern, sseLegacy} {
		cli := g.dial(t, kind, "")
		bare := unguarded.dial(t, kind, "")
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				_, _, err := listers[tt.kind](context.Background(), cli, mcp.Cursor(tt.cursor))
				if !errors.Is(err, mcp.ErrInvalidParams) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want -32602 with %q", err, tt.want)
				}
				// Without the guards the hooks still refuse it with -32602.
				if _, _, err := listers[tt.kind](context.Background(), bare, mcp.Cursor(tt.cursor)); !errors.Is(err, mcp.ErrInvalidParams) {
					t.Fatalf("unguarded: err = %v, want -32602", err)
				}
			})
		}
		// The valid cursor works on the same connection.
		if keys, _, err := listers[kindTools](context.Background(), cli, mcp.Cursor(valid)); err != nil || len(keys) != 4 || keys[0] != "a__t0004" {
			t.Fatalf("%s: valid cursor: keys %v, err %v; want the 4 tools after a__t0003", kind, keys, err)
		}
	}
}

// TestResumeRule pins the position rule on a list directly.
func TestResumeRule(t *testing.T) {
	var l pagedList[string]
	for _, it := range []struct{ srv, key string }{
		{"a", "a1"}, {"a", "a2"}, {"c", "c1"}, {"c", "c2"}, {"c", "c3"}, {"e", "e1"},
	} {
		l.add(it.srv, names.DefaultPrefix(it.srv), it.key, it.key)
	}
	tests := []struct {
		name string
		c    cursor
		want int
	}{
		{"unchanged", cursor{server: "c", index: 2, last: "c2"}, 4},
		{"last item moved", cursor{server: "c", index: 1, last: "c2"}, 4},
		{"last item gone: saved index", cursor{server: "c", index: 2, last: "cX"}, 4},
		{"saved index past the server's end", cursor{server: "c", index: 9, last: "cX"}, 5},
		{"server gone: next server by name", cursor{server: "b", index: 1, last: "b1"}, 2},
		{"server gone, none after it", cursor{server: "f", index: 1, last: "f1"}, 6},
		{"end of a server", cursor{server: "a", index: 2, last: "a2"}, 2},
		{"no last key", cursor{server: "c", index: 1}, 3},
	}
	for _, tt := range tests {
		if got := l.resume(tt.c); got != tt.want {
			t.Errorf("%s: resume(%+v) = %d, want %d", tt.name, tt.c, got, tt.want)
		}
	}
	for next := 1; next < len(l.items); next++ {
		c := l.cursorAfter(next)
		if got := l.resume(c); got != next {
			t.Errorf("resume(cursorAfter(%d) = %+v) = %d", next, c, got)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{kind: kindResources, revision: 1 << 40, pageSize: 1000, server: "github", index: 12345, last: "file:///x y"}
	got, err := decodeCursor(testSecret, kindResources, encodeCursor(testSecret, c))
	if err != nil || got != c {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, err)
	}
	long := c
	long.last = strings.Repeat("x", maxCursorKey+1)
	got, err = decodeCursor(testSecret, kindResources, encodeCursor(testSecret, long))
	if err != nil || got.last != "" || got.index != c.index {
		t.Fatalf("an over-long key is left out: got %+v, %v", got, err)
	}
	for _, size := range []int{0, MaxPageSize + 1} {
		bad := c
		bad.pageSize = size
		if _, err := decodeCursor(testSecret, kindResources, encodeCursor(testSecret, bad)); !errors.Is(err, errInvalidCursor) || !strings.Contains(err.Error(), "page size") {
			t.Errorf("page size %d: err = %v, want an invalid cursor error about the page size", size, err)
		}
	}
}

// versionOneCursor turns a current cursor without upstream state into the
// version 1 form (no flags byte), signed with testSecret: what a data plane
// issued before walks followed upstream pages. Those are refused.
func versionOneCursor(s string) string {
	raw, err := cursorEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	payload := slices.Clone(raw[:len(raw)-cursorMACSize-1]) // without the flags byte
	payload[0] = 1
	return cursorEncoding.EncodeToString(append(payload, cursorMAC(testSecret, payload)...))
}

func TestUpstreamCursorRoundTrip(t *testing.T) {
	c := cursor{kind: kindTools, revision: 7, pageSize: 5, server: "github", index: 3, last: "github__t0002",
		upstream: true, pending: 4, upNext: "dDAwMDY="}
	got, err := decodeCursor(testSecret, kindTools, encodeCursor(testSecret, c))
	if err != nil || got != c {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, err)
	}
	// The upstream list ended: no next upstream cursor, pending items only.
	c.upNext = ""
	if got, err := decodeCursor(testSecret, kindTools, encodeCursor(testSecret, c)); err != nil || got != c {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", c, got, err)
	}
}

func TestSecretAndConfig(t *testing.T) {
	s, err := New(Options{Source: Adapt[*liveBackend](newLiveSource()), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	own := s.Secret()
	if len(own) != 32 {
		t.Fatalf("secret before any snapshot has %d bytes, want a random 32", len(own))
	}
	s.SetConfig(nil, nil, 3)
	if !slices.Equal(s.Secret(), own) {
		t.Fatal("a snapshot without a secret replaced the process secret")
	}
	s.SetConfig(nil, testSecret, 4)
	got := s.Secret()
	if !slices.Equal(got, testSecret) {
		t.Fatalf("Secret() = %q, want the cluster secret", got)
	}
	got[0] ^= 1 // a copy: the caller cannot change the key
	if !slices.Equal(s.Secret(), testSecret) {
		t.Fatal("Secret() returned the key itself, not a copy")
	}
}

func FuzzDecodeCursor(f *testing.F) {
	for _, c := range []cursor{
		{kind: kindTools, pageSize: 1, server: "a", index: 1, last: "a__x"},
		{kind: kindTemplates, revision: 99, pageSize: 1000, server: "srv-1", index: 0},
		{kind: kindResources, pageSize: 100, server: "s", index: 7, last: "mcpmesh://s/file:%2F%2Fx"},
		{kind: kindTools, pageSize: 5, server: "a", index: 3, last: "a__t0002", upstream: true, pending: 2, upNext: "dDAwMDY="},
		{kind: kindPrompts, pageSize: 1, server: "b", index: 9, last: "b__p", upstream: true},
	} {
		f.Add(encodeCursor(testSecret, c), uint8(c.kind))
	}
	f.Add("", uint8(1))
	f.Add("AQE", uint8(1))
	f.Add("YV9fdDAwMDM=", uint8(2))
	f.Fuzz(func(t *testing.T, s string, k uint8) {
		kind := listKind(k%4 + 1)
		c, err := decodeCursor(testSecret, kind, s)
		if err != nil {
			if !errors.Is(err, errInvalidCursor) {
				t.Fatalf("error %v does not wrap errInvalidCursor", err)
			}
			return
		}
		// Only a cursor this gateway signed decodes, and it is exactly what
		// the gateway would issue for that position.
		if c.kind != kind || c.pageSize < 1 || c.pageSize > MaxPageSize {
			t.Fatalf("decoded %+v for kind %s", c, kind)
		}
		if again := encodeCursor(testSecret, c); again != s {
			t.Fatalf("decoded %q to %+v, which encodes to %q", s, c, again)
		}
		if _, err := decodeCursor([]byte("other"), kind, s); err == nil {
			t.Fatalf("%q verified with another secret", s)
		}
	})
}
