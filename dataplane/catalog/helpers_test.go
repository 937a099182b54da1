package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
)

var testKey = []byte("cursor-key-for-tests-0123456789ab")

func toolItem(name string) catalog.Item {
	return catalog.Item{Key: name, Raw: json.RawMessage(fmt.Sprintf(`{"name":%q,"description":"generated","inputSchema":{"type":"object"}}`, name))}
}

func promptItem(name string) catalog.Item {
	return catalog.Item{Key: name, Raw: json.RawMessage(fmt.Sprintf(`{"name":%q}`, name))}
}

func resourceItem(uri, name string) catalog.Item {
	return catalog.Item{Key: uri, Raw: json.RawMessage(fmt.Sprintf(`{"uri":%q,"name":%q}`, uri, name))}
}

func templateItem(tpl, name string) catalog.Item {
	return catalog.Item{Key: tpl, Raw: json.RawMessage(fmt.Sprintf(`{"uriTemplate":%q,"name":%q}`, tpl, name))}
}

// backend is a fake upstream server: its lists, and the page size it
// paginates them by (0: not at all). Its pages behave like mcp-go's: a full
// page carries a cursor, so a list that ends on a full page ends with an
// empty one.
type backend struct {
	name, prefix string
	lists        [4][]catalog.Item
	limit        int
}

// mixed is a backend with the given numbers of tools, prompts, resources
// and templates. Every backend with resources also exposes
// file:///shared.txt, so later servers' copies are served under mcpmesh://
// URIs.
func mixed(name string, tools, prompts, resources, templates, limit int) *backend {
	b := &backend{name: name, prefix: name + "__", limit: limit}
	for i := range tools {
		b.lists[catalog.Tools] = append(b.lists[catalog.Tools], toolItem(fmt.Sprintf("t%04d", i)))
	}
	for i := range prompts {
		b.lists[catalog.Prompts] = append(b.lists[catalog.Prompts], promptItem(fmt.Sprintf("p%04d", i)))
	}
	if resources > 0 {
		b.lists[catalog.Resources] = append(b.lists[catalog.Resources], resourceItem("file:///shared.txt", "shared"))
		for i := 1; i < resources; i++ {
			b.lists[catalog.Resources] = append(b.lists[catalog.Resources], resourceItem(fmt.Sprintf("res://%s/%04d", name, i), fmt.Sprintf("r%04d", i)))
		}
	}
	for i := range templates {
		b.lists[catalog.Templates] = append(b.lists[catalog.Templates], templateItem(fmt.Sprintf("tpl://%s/%04d/{x}", name, i), fmt.Sprintf("tp%04d", i)))
	}
	return b
}

// page is upstream page cur of list k.
func (b *backend) page(k catalog.Kind, cur string) (catalog.Page, error) {
	items := b.lists[k]
	if b.limit == 0 {
		if cur != "" {
			return catalog.Page{}, fmt.Errorf("%s does not paginate, got cursor %q", b.name, cur)
		}
		return catalog.Page{Items: items}, nil
	}
	from := 0
	if cur != "" {
		n, err := strconv.Atoi(cur)
		if err != nil || n < 0 || n > len(items) {
			return catalog.Page{}, fmt.Errorf("%s: bad cursor %q", b.name, cur)
		}
		from = n
	}
	to := min(from+b.limit, len(items))
	p := catalog.Page{Items: slices.Clone(items[from:to])}
	if to-from == b.limit {
		p.Next = strconv.Itoa(to)
	}
	return p, nil
}

// server is b as the catalog sees it: every upstream page fetched.
func (b *backend) server() catalog.Server {
	s := catalog.Server{Name: b.name, Prefix: b.prefix}
	for _, k := range catalog.Kinds {
		if b.lists[k] == nil {
			continue
		}
		for cur, first := "", true; first || cur != ""; first = false {
			p, err := b.page(k, cur)
			if err != nil {
				panic(err)
			}
			s.Lists[k] = append(s.Lists[k], p.Items...)
			if p.Next != "" {
				s.Paged[k] = true
			}
			cur = p.Next
		}
		if s.Lists[k] == nil {
			s.Lists[k] = []catalog.Item{}
		}
	}
	return s
}

// fleet is a set of fake backends and the Fetcher over them; it records the
// upstream cursors each walk asks for.
type fleet struct {
	mu       sync.Mutex
	backends map[string]*backend
	asked    map[string][]string // "server kind" → cursors asked
	fail     map[string]bool     // servers whose pages fail
	calls    int
}

func newFleet(bs ...*backend) *fleet {
	f := &fleet{backends: map[string]*backend{}, asked: map[string][]string{}, fail: map[string]bool{}}
	for _, b := range bs {
		f.add(b)
	}
	return f
}

func (f *fleet) add(b *backend) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.backends[b.name] = b
}

func (f *fleet) remove(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.backends, name)
}

func (f *fleet) get(name string) *backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backends[name]
}

// catalog builds a catalog of the fleet's current lists.
func (f *fleet) catalog() *catalog.Catalog {
	f.mu.Lock()
	defer f.mu.Unlock()
	var servers []catalog.Server
	for _, b := range f.backends {
		servers = append(servers, b.server())
	}
	return catalog.Build(servers)
}

func (f *fleet) FetchPage(_ context.Context, server string, k catalog.Kind, cur string) (catalog.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	key := server + " " + k.String()
	f.asked[key] = append(f.asked[key], cur)
	b, ok := f.backends[server]
	if !ok || f.fail[server] {
		return catalog.Page{}, errors.New("backend unavailable")
	}
	return b.page(k, cur)
}

// take returns the cursors asked of server's list k since the last take.
func (f *fleet) take(server string, k catalog.Kind) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := server + " " + k.String()
	out := f.asked[key]
	delete(f.asked, key)
	return out
}

// upstreamCursors is the sequence of cursors a full upstream walk of b's
// list k asks for.
func upstreamCursors(b *backend, k catalog.Kind) []string {
	var out []string
	for cur, first := "", true; first || cur != ""; first = false {
		out = append(out, cur)
		p, err := b.page(k, cur)
		if err != nil {
			panic(err)
		}
		cur = p.Next
	}
	return out
}

// result is a decoded list result.
type result struct {
	keys []string
	raws []json.RawMessage
	next string
}

// decode reads a list result of kind k, checking that it is valid JSON of
// the expected shape.
func decode(t testing.TB, k catalog.Kind, res json.RawMessage) result {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(res, &top); err != nil {
		t.Fatalf("%s result is not a JSON object: %v\n%s", k, err, res)
	}
	d := k.Desc()
	var r result
	if err := json.Unmarshal(top[d.Field], &r.raws); err != nil || r.raws == nil {
		t.Fatalf("%s result: %q is not an array (%v): %s", k, d.Field, err, res)
	}
	for _, raw := range r.raws {
		var item map[string]json.RawMessage
		if err := json.Unmarshal(raw, &item); err != nil {
			t.Fatalf("%s item is not an object: %v", k, err)
		}
		var key string
		if err := json.Unmarshal(item[d.Key], &key); err != nil {
			t.Fatalf("%s item has no %q string: %s", k, d.Key, raw)
		}
		r.keys = append(r.keys, key)
	}
	if nc, ok := top["nextCursor"]; ok {
		if err := json.Unmarshal(nc, &r.next); err != nil || r.next == "" {
			t.Fatalf("%s result: bad nextCursor %s", k, nc)
		}
	}
	for m := range top {
		if m != d.Field && m != "nextCursor" {
			t.Fatalf("%s result has a member %q", k, m)
		}
	}
	return r
}

// list is one List call that must succeed.
func list(t testing.TB, c *catalog.Catalog, k catalog.Kind, req catalog.ListRequest, f catalog.Fetcher) result {
	t.Helper()
	res, err := c.List(context.Background(), k, req, f)
	if err != nil {
		t.Fatalf("%s (cursor %q): %v", k, req.Cursor, err)
	}
	return decode(t, k, res)
}

// walk follows nextCursor to the end from a first page of size pageSize (0:
// no pagination, one page holds all), catalogs[i%len] serving request i, and
// checks every page's size.
func walk(t testing.TB, k catalog.Kind, pageSize int, f catalog.Fetcher, cats ...*catalog.Catalog) []string {
	t.Helper()
	var all []string
	req := catalog.ListRequest{Paginate: pageSize > 0, PageSize: pageSize, Revision: 1, Key: testKey}
	for i := 0; ; i++ {
		r := list(t, cats[i%len(cats)], k, req, f)
		if pageSize > 0 && len(r.keys) > pageSize {
			t.Fatalf("%s page %d holds %d items, more than the page size %d", k, i, len(r.keys), pageSize)
		}
		if r.next != "" && pageSize > 0 && len(r.keys) != pageSize {
			t.Fatalf("%s page %d holds %d items and a cursor; want a full page of %d", k, i, len(r.keys), pageSize)
		}
		if r.next != "" && len(r.keys) == 0 {
			t.Fatalf("%s page %d is empty but has a cursor", k, i)
		}
		if pageSize == 0 && r.next != "" {
			t.Fatalf("%s without pagination returned a cursor", k)
		}
		all = append(all, r.keys...)
		if r.next == "" {
			return all
		}
		if i > 100000 {
			t.Fatalf("%s: walk does not end", k)
		}
		req.Cursor = r.next
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
