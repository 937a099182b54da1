package mcpserver

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// benchGateway serves 10,000 tools from 20 backends (500 each) to one real
// mcp-go client over HTTP, with the lists warm in the backends' caches.
func benchGateway(b *testing.B, enabled bool) (*pagedGateway, *client.Client) {
	return benchGatewayPaged(b, enabled, 0)
}

// benchGatewayPaged is benchGateway with backends that paginate their own
// tools/list by upstreamLimit (0: not at all).
func benchGatewayPaged(b *testing.B, enabled bool, upstreamLimit int) (*pagedGateway, *client.Client) {
	b.Helper()
	src := newLiveSource()
	for i := range 20 {
		src.add(newMixed(b, fmt.Sprintf("srv%02d", i), 500, 0, 0, 0, upstreamLimit))
	}
	g := startPagedGateway(b, Adapt[*liveBackend](src), gatewayOpts{enabled: enabled, pageSize: 100, revision: 1})
	cli := g.dial(b, streamableLegacy, "")
	return g, cli
}

// BenchmarkCursorWalk10k walks all 100 pages of 10,000 tools; one op is one
// full walk. It reports the p99 latency of a page request.
func BenchmarkCursorWalk10k(b *testing.B) { benchWalk10k(b, 0) }

// BenchmarkCursorWalk10kUpstreamPaged is the same walk over backends that
// paginate their own lists by 50: every upstream page is fetched once, on
// demand, during the walk (in-process backends, so an upstream call costs
// mcp-go's handling of it, not a network round trip).
func BenchmarkCursorWalk10kUpstreamPaged(b *testing.B) { benchWalk10k(b, 50) }

func benchWalk10k(b *testing.B, upstreamLimit int) {
	_, cli := benchGatewayPaged(b, true, upstreamLimit)
	ctx := context.Background()
	var pages []time.Duration
	b.ResetTimer()
	for b.Loop() {
		n := 0
		var cur mcp.Cursor
		for {
			start := time.Now()
			var req mcp.ListToolsRequest
			req.Params.Cursor = cur
			res, err := cli.ListToolsByPage(ctx, req)
			pages = append(pages, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			n += len(res.Tools)
			if cur = res.NextCursor; cur == "" {
				break
			}
		}
		if n != 10000 {
			b.Fatalf("walk returned %d tools, want 10000", n)
		}
	}
	b.StopTimer()
	slices.Sort(pages)
	b.ReportMetric(float64(pages[len(pages)*99/100].Nanoseconds()), "p99-ns/page")
	b.ReportMetric(float64(len(pages))/float64(b.N), "pages/op")
}

// BenchmarkListNoPagination10k is one tools/list returning all 10,000 tools.
func BenchmarkListNoPagination10k(b *testing.B) {
	_, cli := benchGateway(b, false)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		res, err := cli.ListToolsByPage(ctx, mcp.ListToolsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Tools) != 10000 || res.NextCursor != "" {
			b.Fatalf("got %d tools and cursor %q, want all 10000 and none", len(res.Tools), res.NextCursor)
		}
	}
}

// BenchmarkOnePage is one page of 100 from the middle of 10,000 tools.
func BenchmarkOnePage(b *testing.B) {
	_, cli := benchGateway(b, true)
	ctx := context.Background()
	var req mcp.ListToolsRequest
	for range 50 {
		res, err := cli.ListToolsByPage(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		req.Params.Cursor = res.NextCursor
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := cli.ListToolsByPage(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Tools) != 100 {
			b.Fatalf("page of %d tools, want 100", len(res.Tools))
		}
	}
}
