package catalog_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
)

// realisticServers are 20 servers of 500 tools each, tools the size of
// real ones (a description, an input schema with two properties,
// annotations): 10,000 tools. It returns the total size of their JSON.
func realisticServers() ([]catalog.Server, int) {
	var servers []catalog.Server
	size := 0
	for s := range 20 {
		name := fmt.Sprintf("server-%02d", s)
		srv := catalog.Server{Name: name, Prefix: name + "__"}
		for i := range 500 {
			tool := fmt.Sprintf("tool_%04d", i)
			raw := fmt.Sprintf(`{"name":%q,"title":"Tool %d","description":"Does thing %d of %s with the given query and returns the result as text.",`+
				`"inputSchema":{"type":"object","properties":{"query":{"type":"string","description":"What to look for"},"limit":{"type":"integer","minimum":1}},"required":["query"]},`+
				`"annotations":{"readOnlyHint":true}}`, tool, i, i, name)
			srv.Lists[catalog.Tools] = append(srv.Lists[catalog.Tools], catalog.Item{Key: tool, Raw: json.RawMessage(raw)})
			size += len(raw)
		}
		servers = append(servers, srv)
	}
	return servers, size
}

// TestMemoryOf10000Tools: the catalog copies no item: its entries alias the
// servers' own item JSON, so the servers' lists and the catalog together
// hold each item's JSON once, plus a small entry and a map slot: at 10,000
// tools, within 2x the items' JSON (the data plane's bound is 3x, for
// everything it holds).
func TestMemoryOf10000Tools(t *testing.T) {
	var before, mid, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	servers, size := realisticServers()
	runtime.GC()
	runtime.ReadMemStats(&mid)
	c := catalog.Build(servers)
	runtime.GC()
	runtime.ReadMemStats(&after)
	lists := int64(mid.HeapAlloc) - int64(before.HeapAlloc)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(c)
	runtime.KeepAlive(servers)
	if c.Count(catalog.Tools) != 10000 {
		t.Fatalf("catalog of %d tools, want 10000", c.Count(catalog.Tools))
	}
	ratio := float64(held) / float64(size)
	t.Logf("10,000 tools: items' JSON %d bytes; the lists hold %d bytes, lists and catalog %d bytes: %.2fx", size, lists, held, ratio)
	if ratio > 2 {
		t.Errorf("lists and catalog hold %.2fx the items' JSON, want at most 2x (an item copied into the catalog makes it 2.6x)", ratio)
	}
}

func BenchmarkBuild(b *testing.B) {
	servers, size := realisticServers()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		catalog.Build(servers)
	}
}

func BenchmarkList(b *testing.B) {
	servers, _ := realisticServers()
	c := catalog.Build(servers)
	ctx := b.Context()
	paged := catalog.ListRequest{Paginate: true, PageSize: 100, Revision: 1, Key: testKey}
	mid := paged
	for range 50 { // a cursor in the middle of the list
		res, err := c.List(ctx, catalog.Tools, mid, nil)
		if err != nil {
			b.Fatal(err)
		}
		mid.Cursor = decode(b, catalog.Tools, res).next
	}
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.List(ctx, catalog.Tools, catalog.ListRequest{}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page-100-first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.List(ctx, catalog.Tools, paged, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page-100-middle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.List(ctx, catalog.Tools, mid, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A whole walk of 100 pages.
	b.Run("walk-100x100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := paged
			for {
				res, err := c.List(ctx, catalog.Tools, req, nil)
				if err != nil {
					b.Fatal(err)
				}
				if req.Cursor = nextCursor(res); req.Cursor == "" {
					break
				}
			}
		}
	})
}

// nextCursor reads a result's nextCursor without scanning the items: List
// writes it last, and a cursor holds no quote.
func nextCursor(res json.RawMessage) string {
	i := bytes.LastIndex(res, []byte(`,"nextCursor":"`))
	if i < 0 {
		return ""
	}
	rest := res[i+len(`,"nextCursor":"`):]
	return string(rest[:bytes.IndexByte(rest, '"')])
}
