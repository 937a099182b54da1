//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/internal/testbackend"
)

// roundRobin is a client-side load balancer: every request goes to the next
// replica in the list, as a plain round-robin L7 balancer would send it.
type roundRobin struct {
	mu    sync.Mutex
	hosts []string
	next  int
	hits  map[string]int
	base  http.RoundTripper
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	rr.mu.Lock()
	host := rr.hosts[rr.next%len(rr.hosts)]
	rr.next++
	rr.hits[host]++
	rr.mu.Unlock()
	r := req.Clone(req.Context())
	r.URL.Host = host
	r.Host = host
	return rr.base.RoundTrip(r)
}

func (rr *roundRobin) set(hosts []string) {
	rr.mu.Lock()
	rr.hosts = append([]string(nil), hosts...)
	rr.mu.Unlock()
}

// TestPaginationAcrossReplicas: three data planes behind a round-robin
// balancer; a client walks every page of 2,000+ tools from 22 backends (some
// paginating their own lists) and gets the exact full list, while a data
// plane is added and another removed during the walk.
func TestPaginationAcrossReplicas(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	mustCtl(t, cp, "config", "set", "pagination.enabled", "true")
	mustCtl(t, cp, "config", "set", "pagination.page_size", "37")

	const backends, extra = 22, 95
	want := map[string]bool{}
	fixed := testbackend.FixedTools
	for i := 0; i < backends; i++ {
		name := fmt.Sprintf("b%02d", i)
		args := []string{"--tools", fmt.Sprint(extra)}
		if i%3 == 0 {
			args = append(args, "--page-size", fmt.Sprint(7+i)) // backends that paginate themselves, odd sizes
		}
		_, u := startHTTPBackend(t, name, args...)
		mustCtl(t, cp, "server", "add", name, "--url", u)
		for _, f := range fixed {
			want[name+"__"+f] = true
		}
		for j := 0; j < extra; j++ {
			want[fmt.Sprintf("%s__tool-%04d", name, j)] = true
		}
	}
	if len(want) < 2000 {
		t.Fatalf("test set has only %d tools", len(want))
	}

	// A replica is put behind the balancer once it is ready, as a load
	// balancer's readiness check would ensure. Ready means its lists were
	// rebuilt after every backend's first connect attempt, so its very first
	// answer is the whole list: one list, no retries.
	inSync := func(dp *dataPlane) {
		t.Helper()
		if why := dp.waitReady(t); why != "ok" {
			t.Fatalf("%s ready without waiting for every backend (/readyz %q): a backend's first connect attempt took over the grace period", dp.id, why)
		}
		ready := dp.waitLog(time.Time{}, "msg", "data plane ready")
		after, _ := strconv.ParseInt(fmt.Sprint(ready.Attrs["after_first_snapshot"]), 10, 64)
		t.Logf("measure: %s ready %v after its first snapshot (%d backends; grace 10s)", dp.id, ms(time.Duration(after)), backends)
		got, err := toolNamesErr(mcpClient(t, dp.mcpURL()))
		if err != nil {
			t.Fatalf("%s: first tools/list once ready: %v", dp.id, err)
		}
		if len(got) != len(want) {
			var missing []string
			for n := range want {
				if !has(got, n) {
					missing = append(missing, n)
				}
			}
			sort.Strings(missing)
			t.Fatalf("%s: first tools/list once ready has %d tools, want %d; missing %d, e.g. %v",
				dp.id, len(got), len(want), len(missing), missing[:min(len(missing), 5)])
		}
	}
	dps := []*dataPlane{startDataPlane(t, cp, "dp-a"), startDataPlane(t, cp, "dp-b"), startDataPlane(t, cp, "dp-c")}
	for _, dp := range dps {
		inSync(dp)
	}

	rr := &roundRobin{hits: map[string]int{}, base: http.DefaultTransport}
	rr.set([]string{dps[0].listen, dps[1].listen, dps[2].listen})
	c, err := client.NewStreamableHttpClient("http://"+dps[0].listen+"/mcp",
		transport.WithHTTPBasicClient(&http.Client{Transport: rr}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "rr-walker", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize through the balancer: %v", err)
	}

	var got []string
	pages := 0
	var pageTimes []time.Duration
	var pageLog []string // shown when the walk is wrong
	defer func() {
		if t.Failed() {
			t.Logf("pages:\n%s", strings.Join(pageLog, "\n"))
		}
	}()
	cursor := mcp.Cursor("")
	for {
		req := mcp.ListToolsRequest{}
		req.Params.Cursor = cursor
		start := time.Now()
		pctx, pcancel := context.WithTimeout(context.Background(), rpcTimeout)
		res, err := c.ListToolsByPage(pctx, req)
		pcancel()
		if err != nil {
			t.Fatalf("page %d (cursor %q): %v", pages, cursor, err)
		}
		pageTimes = append(pageTimes, time.Since(start))
		if len(res.Tools) > 37 {
			t.Fatalf("page %d has %d tools, page size is 37", pages, len(res.Tools))
		}
		for _, tl := range res.Tools {
			got = append(got, tl.Name)
		}
		if len(res.Tools) > 0 {
			pageLog = append(pageLog, fmt.Sprintf("page %d: %d tools %s … %s", pages, len(res.Tools), res.Tools[0].Name, res.Tools[len(res.Tools)-1].Name))
		}
		pages++
		switch pages {
		case 10: // scale out: a fourth data plane joins the rotation
			d := startDataPlane(t, cp, "dp-d")
			inSync(d)
			dps = append(dps, d)
			rr.set([]string{dps[0].listen, dps[1].listen, dps[2].listen, d.listen})
		case 25: // scale in: dp-b leaves the rotation and stops
			rr.set([]string{dps[0].listen, dps[2].listen, dps[3].listen})
			dps[1].stop()
		}
		if res.NextCursor == "" {
			break
		}
		cursor = res.NextCursor
		if pages > 1000 {
			t.Fatal("more than 1000 pages: the walk does not end")
		}
	}

	dup := map[string]bool{}
	for _, n := range got {
		if dup[n] {
			t.Errorf("duplicate tool %s in the walk", n)
		}
		dup[n] = true
	}
	for n := range want {
		if !dup[n] {
			t.Errorf("tool %s missing from the walk", n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("walk returned %d tools, want %d", len(got), len(want))
	}
	// Stable order: servers by name.
	servers := make([]string, 0, len(got))
	for _, n := range got {
		servers = append(servers, n[:3])
	}
	if !sort.StringsAreSorted(servers) {
		t.Errorf("walk is not ordered by server name")
	}
	sort.Slice(pageTimes, func(i, j int) bool { return pageTimes[i] < pageTimes[j] })
	rr.mu.Lock()
	hits := fmt.Sprint(rr.hits)
	rr.mu.Unlock()
	t.Logf("measure: round-robin walk of %d tools in %d pages over 3→4→3 data planes; page p50 %v, p99 %v; requests per replica %s",
		len(got), pages, pageTimes[len(pageTimes)/2].Round(time.Microsecond), pageTimes[len(pageTimes)*99/100].Round(time.Microsecond), hits)

	// A tools/call through the balancer lands on any replica and works.
	for i := 0; i < 6; i++ {
		if got := callText(t, c, "b03__echo", map[string]any{"text": "rr"}); got != "rr" {
			t.Errorf("call %d through the balancer = %q", i, got)
		}
	}

	// A tampered cursor is rejected with a clear error, not served.
	req := mcp.ListToolsRequest{}
	req.Params.Cursor = "not-a-cursor"
	gctx, gcancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer gcancel()
	if _, err := c.ListToolsByPage(gctx, req); err == nil {
		t.Errorf("a garbage cursor was accepted")
	} else {
		if !strings.Contains(err.Error(), "invalid cursor") {
			t.Errorf("garbage cursor error = %v, want a message saying the cursor is invalid", err)
		}
	}
}

// TestMeasurePagination10k reports the numbers issue 5 asks for with the real
// binaries: a data plane with 10,000 tools cached (20 backends × 500), its
// RSS, a warm paginated walk (total and p99 per page) and one unpaginated list.
func TestMeasurePagination10k(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	mustCtl(t, cp, "config", "set", "pagination.page_size", "100")
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("k%02d", i)
		_, u := startHTTPBackend(t, name, "--tools", "494")
		mustCtl(t, cp, "server", "add", name, "--url", u)
	}
	dp := startDataPlane(t, cp, "dp-10k")
	dp.waitReady(t)
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "10,000 tools listed", func() error {
		names, err := toolNamesErr(c)
		if err != nil {
			return err
		}
		if len(names) != 10000 {
			return fmt.Errorf("%d tools", len(names))
		}
		return nil
	})

	// One unpaginated list (pagination is off), warm.
	var full []time.Duration
	for i := 0; i < 5; i++ {
		start := time.Now()
		if n := len(toolNames(t, c)); n != 10000 {
			t.Fatalf("unpaginated list has %d tools", n)
		}
		full = append(full, time.Since(start))
	}
	sort.Slice(full, func(i, j int) bool { return full[i] < full[j] })

	// Paginated walks through ?pagination=true on the same data plane.
	pc := mcpClient(t, dp.mcpURL()+"?pagination=true")
	var walks, pages []time.Duration
	for w := 0; w < 4; w++ {
		start := time.Now()
		n := 0
		cursor := mcp.Cursor("")
		for {
			req := mcp.ListToolsRequest{}
			req.Params.Cursor = cursor
			ps := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
			res, err := pc.ListToolsByPage(ctx, req)
			cancel()
			if err != nil {
				t.Fatalf("walk %d page: %v", w, err)
			}
			if w > 0 {
				pages = append(pages, time.Since(ps))
			}
			n += len(res.Tools)
			if res.NextCursor == "" {
				break
			}
			cursor = res.NextCursor
		}
		if n != 10000 {
			t.Fatalf("walk %d returned %d tools, want 10000", w, n)
		}
		if w > 0 { // the first walk warms up
			walks = append(walks, time.Since(start))
		}
	}
	sort.Slice(walks, func(i, j int) bool { return walks[i] < walks[j] })
	sort.Slice(pages, func(i, j int) bool { return pages[i] < pages[j] })
	t.Logf("measure: 10,000 tools: warm paginated walk (100 pages of 100) median %v; page p50 %v, p99 %v; one unpaginated tools/list median %v; data plane RSS %d KiB",
		walks[len(walks)/2].Round(time.Millisecond), pages[len(pages)/2].Round(time.Microsecond),
		pages[len(pages)*99/100].Round(time.Microsecond), full[len(full)/2].Round(time.Millisecond), rssKB(t, dp.pid()))
}
