package mcpserver

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// pageLog records the cursors of the tools/list requests a backend server
// receives, through a hook on that server.
type pageLog struct {
	mu      sync.Mutex
	cursors []mcp.Cursor
}

func (p *pageLog) hooks() *server.Hooks {
	h := &server.Hooks{}
	h.AddBeforeListTools(func(_ context.Context, _ any, req *mcp.ListToolsRequest) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.cursors = append(p.cursors, req.Params.Cursor)
	})
	return h
}

// take returns the cursors recorded since the last take.
func (p *pageLog) take() []mcp.Cursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.cursors
	p.cursors = nil
	return out
}

// countedServer is an mcp-go server with n tools t0000…, paginating its
// tools/list by limit (0: not at all), whose tools/list requests are logged.
func countedServer(name string, n, limit int) (*server.MCPServer, *pageLog) {
	log := &pageLog{}
	opts := []server.ServerOption{server.WithToolCapabilities(true), server.WithPromptCapabilities(true), server.WithResourceCapabilities(false, true), server.WithHooks(log.hooks())}
	if limit > 0 {
		opts = append(opts, server.WithPaginationLimit(limit))
	}
	s := server.NewMCPServer(name, "1", opts...)
	tools := make([]server.ServerTool, n)
	for i := range tools {
		tools[i] = server.ServerTool{
			Tool: mcp.NewTool(fmt.Sprintf("t%04d", i)),
			Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(name), nil
			},
		}
	}
	s.AddTools(tools...)
	return s, log
}

// pageOnce fetches one page of tools through cli.
func pageOnce(t *testing.T, cli *client.Client, cur mcp.Cursor) ([]string, mcp.Cursor) {
	t.Helper()
	keys, next, err := listers[kindTools](context.Background(), cli, cur)
	if err != nil {
		t.Fatalf("tools/list page: %v", err)
	}
	return keys, next
}

func TestUpstreamPagesFollowedLazily(t *testing.T) {
	type spec struct {
		name         string
		tools, limit int
	}
	// a: pages of 3 (3,3,3,1); b: pages of 7 ending on a full page, which
	// mcp-go follows with an empty page; c: pages of 50; d and e do not
	// paginate. c comes last so the end of the walk is inside its pages.
	specs := []spec{{"a", 10, 3}, {"b", 21, 7}, {"d", 4, 0}, {"c", 120, 50}}
	src := newLiveSource()
	logs := map[string]*pageLog{}
	upstream := map[string][]mcp.Cursor{} // each backend's own cursor sequence
	for _, sp := range specs {
		s, log := countedServer(sp.name, sp.tools, sp.limit)
		src.add(connectLive(t, sp.name, s))
		logs[sp.name] = log
		upstream[sp.name] = log.take() // connectLive fetched every page once
	}
	if len(upstream["a"]) != 4 || len(upstream["b"]) != 4 || len(upstream["c"]) != 3 || len(upstream["d"]) != 1 {
		t.Fatalf("test setup: upstream page sequences %v", upstream)
	}
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{revision: 1})
	cli := g.dial(t, streamableLegacy, "")
	full := walk(t, kindTools, 0, cli)
	if len(full) != 10+21+4+120 {
		t.Fatalf("unpaginated tools/list returned %d tools, want 155", len(full))
	}
	for _, log := range logs {
		if got := log.take(); len(got) != 0 {
			t.Fatalf("unpaginated tools/list called a backend (%v); it must be served from the cache", got)
		}
	}

	for _, size := range []int{1, 5, 100} {
		t.Run(fmt.Sprintf("size-%d", size), func(t *testing.T) {
			g.setPaging(true, uint32(size), 1)
			// Lazy: the first page asks only the first backend, for as many
			// of its pages as the page needs.
			first, next := pageOnce(t, cli, "")
			wantFirst := map[int][]mcp.Cursor{1: upstream["a"][:1], 5: upstream["a"][:2], 100: nil}
			if size < 100 {
				if got := logs["a"].take(); !slices.Equal(got, wantFirst[size]) {
					t.Fatalf("after the first page, a was asked for pages %q, want %q", got, wantFirst[size])
				}
				for _, n := range []string{"b", "c"} {
					if got := logs[n].take(); len(got) != 0 {
						t.Fatalf("after the first page, %s was asked for pages %q, want none yet", n, got)
					}
				}
			}
			// The rest of the walk, from the first page's cursor.
			got := slices.Clone(first)
			for cur := next; cur != ""; {
				var keys []string
				keys, cur = pageOnce(t, cli, cur)
				if len(keys) == 0 || len(keys) > size || (cur != "" && len(keys) != size) {
					t.Fatalf("page of %d items (cursor %v) with page size %d", len(keys), cur != "", size)
				}
				got = append(got, keys...)
			}
			if !slices.Equal(got, full) {
				t.Fatalf("pages joined hold %d items, want exactly the %d of the full list (first difference at %d)",
					len(got), len(full), firstDiff(got, full))
			}
			// Every upstream page requested exactly once per walk, in order:
			// no cursor dropped, none repeated. d does not paginate and is
			// served from the cache.
			for _, n := range []string{"a", "b", "c"} {
				asked := logs[n].take()
				if n == "a" && size < 100 {
					asked = append(slices.Clone(wantFirst[size]), asked...)
				}
				if !slices.Equal(asked, upstream[n]) {
					t.Errorf("walk asked %s for pages %q, want each of %q once", n, asked, upstream[n])
				}
			}
			if got := logs["d"].take(); len(got) != 0 {
				t.Errorf("walk asked d, which does not paginate, for pages %q", got)
			}
		})
	}

	t.Run("upstream changed since the cache", func(t *testing.T) {
		// New tools upstream that the aggregate does not hold (no refresh):
		// the walk skips them, so every item served is one tools/call can
		// route, and the walk still equals the aggregate's full list.
		b, _ := src.Get("c")
		b.srv.AddTools(server.ServerTool{Tool: mcp.NewTool("t0000a"), Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("new"), nil
		}}, server.ServerTool{Tool: mcp.NewTool("t0049a"), Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("new"), nil
		}})
		for _, size := range []int{1, 5, 100} {
			g.setPaging(true, uint32(size), 1)
			if got := walk(t, kindTools, size, cli); !slices.Equal(got, full) {
				t.Fatalf("size %d: pages joined hold %d items, want exactly the %d of the full list (first difference at %d)",
					size, len(got), len(full), firstDiff(got, full))
			}
			if asked := logs["c"].take(); len(asked) != 3 { // 122 tools upstream, in pages of 50
				t.Fatalf("size %d: walk asked c for %d pages %q, want 3", size, len(asked), asked)
			}
		}
	})
}

// httpLive is a live backend reached over real streamable HTTP, so that a
// test can take its server down under the gateway.
func httpLive(t *testing.T, name string, s *server.MCPServer) (*liveBackend, *httptest.Server) {
	t.Helper()
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(func() {
		_ = ts.Config.Close()
		ts.Close()
	})
	cli, err := client.NewStreamableHttpClient(ts.URL + "/mcp")
	if err != nil {
		t.Fatalf("client for %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = cli.Close()
	})
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start client for %s: %v", name, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-test", Version: "0"}
	if _, err := cli.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", name, err)
	}
	b := &liveBackend{name: name, srv: s, cli: cli, ready: true}
	fetchAll(t, b)
	return b, ts
}

func TestUpstreamPageFailureFallsBackToCache(t *testing.T) {
	sa, logA := countedServer("a", 10, 3)
	a, ts := httpLive(t, "a", sa)
	sb, logB := countedServer("b", 8, 3)
	src := newLiveSource(a, connectLive(t, "b", sb))
	logA.take()
	logB.take()
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 2, revision: 1})
	cli := g.dial(t, streamableLegacy, "")

	first, cur := pageOnce(t, cli, "")
	if !slices.Equal(first, []string{"a__t0000", "a__t0001"}) {
		t.Fatalf("first page = %v", first)
	}
	if got := logA.take(); len(got) != 1 {
		t.Fatalf("first page asked a for pages %q, want its first only", got)
	}
	// a goes away mid-walk: its next upstream page cannot be fetched.
	_ = ts.Config.Close()
	ts.Close()

	got := slices.Clone(first)
	for cur != "" {
		var keys []string
		keys, cur = pageOnce(t, cli, cur)
		if len(keys) == 0 || len(keys) > 2 || (cur != "" && len(keys) != 2) {
			t.Fatalf("page of %d items (cursor %v) with page size 2", len(keys), cur != "")
		}
		got = append(got, keys...)
	}
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("a__t%04d", i))
	}
	for i := range 8 {
		want = append(want, fmt.Sprintf("b__t%04d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walk with a failing backend = %v, want the cached list %v", got, want)
	}
	if n := len(logA.take()); n != 0 {
		t.Fatalf("a's server saw %d list requests after it was closed", n)
	}
	if a.pageErrs.Load() == 0 {
		t.Fatal("no upstream page call of a failed: the test did not exercise the fallback")
	}
	// b still paginates upstream and is followed after a's fallback.
	if asked := logB.take(); len(asked) != 3 {
		t.Fatalf("walk asked b for %d pages %q, want 3", len(asked), asked)
	}
}

func TestUpstreamPagesAllKinds(t *testing.T) {
	// Upstream pages of 3, 7 and 50 (and one backend that does not
	// paginate); every backend also has file:///shared.txt, so the later
	// ones' copies are served under mcpmesh:// URIs, found by their
	// upstream URI.
	src := newLiveSource(
		newMixed(t, "a", 10, 8, 11, 5, 3),
		newMixed(t, "b", 21, 14, 22, 9, 7),
		newMixed(t, "c", 6, 2, 3, 1, 0),
		newMixed(t, "d", 120, 101, 130, 100, 50), // templates end on a full upstream page
	)
	for _, name := range []string{"a", "b", "d"} {
		b, _ := src.Get(name)
		for _, kind := range []listKind{kindTools, kindPrompts, kindResources, kindTemplates} {
			if !b.UpstreamPaginates(kind.method()) {
				t.Fatalf("test setup: %s does not paginate its %s", name, kind)
			}
		}
	}
	g := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{revision: 1})
	cli := g.dial(t, streamableLegacy, "")
	for kind := range listers {
		full := walk(t, kind, 0, cli)
		for _, size := range []int{1, 5, 100} {
			g.setPaging(true, uint32(size), 1)
			if got := walk(t, kind, size, cli); !slices.Equal(got, full) {
				t.Fatalf("%s size %d: pages joined hold %d items, want exactly the %d of the full list (first difference at %d)",
					kind, size, len(got), len(full), firstDiff(got, full))
			}
			g.setPaging(false, uint32(size), 1)
		}
	}
	for _, name := range []string{"a", "b", "d"} {
		b, _ := src.Get(name)
		// 4 kinds × 3 walks, each at least one upstream page.
		if calls, errs := b.pageCalls.Load(), b.pageErrs.Load(); calls < 12 || errs != 0 {
			t.Errorf("%s: %d upstream page calls, %d failed; want at least 12, none failed", name, calls, errs)
		}
	}
	if c, _ := src.Get("c"); c.pageCalls.Load() != 0 {
		t.Errorf("c does not paginate but was asked for %d upstream pages", c.pageCalls.Load())
	}
}
