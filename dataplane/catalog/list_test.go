package catalog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// toolSizes are the tool counts of the 20 backends of the big tests: odd
// sizes, empty and one-item servers, 2,000 tools in all.
var toolSizes = []int{0, 1, 99, 101, 333, 7, 250, 2, 13, 64, 100, 128, 200, 45, 3, 150, 77, 19, 111, 297}

// bigFleet has a backend per size; every third paginates its own lists with
// an odd limit, and s02 lists its tools in reverse, as a backend that does
// not sort may, so that the tests see upstream order kept.
func bigFleet() *fleet {
	f := newFleet()
	for i, n := range toolSizes {
		limit := 0
		if i%3 == 0 {
			limit = 17 + i
		}
		b := mixed(fmt.Sprintf("s%02d", i), n, n/3, n/2, n/5, limit)
		if i == 2 {
			slices.Reverse(b.lists[catalog.Tools])
		}
		f.add(b)
	}
	return f
}

func TestWalksEqualTheWholeList(t *testing.T) {
	f := bigFleet()
	c := f.catalog()
	full := map[catalog.Kind][]string{}
	for _, k := range catalog.Kinds {
		full[k] = walk(t, k, 0, f, c)
		if len(full[k]) != c.Count(k) {
			t.Fatalf("%s: whole list of %d items, Count %d", k, len(full[k]), c.Count(k))
		}
	}
	if f.calls != 0 {
		t.Fatalf("whole lists fetched %d upstream pages; they must come from the catalog", f.calls)
	}
	if len(full[catalog.Tools]) != 2000 {
		t.Fatalf("tools/list returned %d tools, want 2000", len(full[catalog.Tools]))
	}
	// Served order: servers by name, then upstream order.
	if got := full[catalog.Tools][:3]; !slices.Equal(got, []string{"s01__t0000", "s02__t0098", "s02__t0097"}) {
		t.Fatalf("first tools = %v, want s01's then s02's in upstream order", got)
	}
	if !slices.Contains(full[catalog.Resources], "mcpmesh://s03/file:%2F%2F%2Fshared.txt") {
		t.Fatalf("resources lack s03's copy of the shared resource under its mcpmesh:// URI")
	}
	for _, size := range []int{1, 7, 100, 1000} {
		for _, k := range catalog.Kinds {
			t.Run(fmt.Sprintf("%s/size-%d", k, size), func(t *testing.T) {
				if got := walk(t, k, size, f, c); !slices.Equal(got, full[k]) {
					t.Fatalf("pages joined hold %d items, want exactly the %d of the whole list (first difference at %d)",
						len(got), len(full[k]), firstDiff(got, full[k]))
				}
			})
		}
	}
}

func TestEmptyLists(t *testing.T) {
	c := catalog.Build(nil)
	for _, k := range catalog.Kinds {
		for _, size := range []int{0, 5} {
			res, err := c.List(context.Background(), k, catalog.ListRequest{Paginate: size > 0, PageSize: size, Key: testKey}, nil)
			if want := `{"` + k.Desc().Field + `":[]}`; err != nil || string(res) != want {
				t.Errorf("%s of nothing (size %d) = %s, %v; want %s", k, size, res, err, want)
			}
		}
	}
	if _, err := c.List(context.Background(), catalog.Kind(9), catalog.ListRequest{}, nil); err == nil {
		t.Error("List of an unknown kind succeeded")
	}
}

func TestPageSizeBounds(t *testing.T) {
	f := newFleet(mixed("big", 1500, 0, 0, 0, 0))
	c := f.catalog()
	for _, tt := range []struct{ setting, want int }{
		{0, catalog.DefaultPageSize}, {-3, catalog.DefaultPageSize}, {1, 1}, {1000, 1000}, {1001, catalog.MaxPageSize}, {1 << 31, catalog.MaxPageSize},
	} {
		r := list(t, c, catalog.Tools, catalog.ListRequest{Paginate: true, PageSize: tt.setting, Key: testKey}, f)
		if len(r.keys) != tt.want || r.next == "" {
			t.Errorf("page size %d: page of %d with cursor %v, want %d with a cursor", tt.setting, len(r.keys), r.next != "", tt.want)
		}
	}
	// A walk keeps the size it started with, even when the request no
	// longer asks for pagination.
	r := list(t, c, catalog.Tools, catalog.ListRequest{Paginate: true, PageSize: 10, Key: testKey}, f)
	r = list(t, c, catalog.Tools, catalog.ListRequest{Cursor: r.next, Paginate: false, PageSize: 500, Key: testKey}, f)
	if len(r.keys) != 10 || r.keys[0] != "big__t0010" {
		t.Errorf("continued walk got %d items from %v, want the walk's page size 10 from big__t0010", len(r.keys), r.keys[:1])
	}
}

// TestCursorContinuesOnAnotherReplica alternates the requests of one walk
// between two catalogs built separately from the same servers and key.
func TestCursorContinuesOnAnotherReplica(t *testing.T) {
	f := bigFleet()
	a, b := f.catalog(), f.catalog()
	for _, k := range catalog.Kinds {
		want := walk(t, k, 0, f, a)
		if got := walk(t, k, 37, f, b, a); !slices.Equal(got, want) {
			t.Errorf("%s across replicas: %d items, want the %d of the whole list", k, len(got), len(want))
		}
	}
}

// TestChangeMidWalk changes the backends between pages and checks the
// position rule: no error, no duplicate, everything after the position.
func TestChangeMidWalk(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *fleet)
		// wantAfter are servers whose every item must appear after the change.
		wantAfter []string
		// wantMissing are servers whose items must not appear.
		wantMissing []string
		// ownAll: every item of the cursor's backend not returned before
		// the change must come after it. Not so when the last returned
		// item is gone (the walk resumes at its saved index), nor when the
		// backend paginates itself (its own cursor, an offset here, means
		// something else in the changed list).
		ownAll bool
	}{
		{
			name: "backend removed before the cursor, backends added before and after",
			change: func(f *fleet) {
				f.remove("b02")
				f.add(mixed("b03a", 9, 0, 0, 0, 0))
				f.add(mixed("b07a", 11, 0, 0, 0, 0))
			},
			wantAfter:   []string{"b05", "b06", "b07", "b07a", "b08"},
			wantMissing: []string{"b03a"},
			ownAll:      true,
		},
		{
			name:      "the cursor's own backend removed",
			change:    func(f *fleet) { f.remove("b04") },
			wantAfter: []string{"b05", "b06", "b07", "b08"},
			ownAll:    true,
		},
		{
			name: "items before the position removed from the cursor's backend",
			change: func(f *fleet) {
				b := f.get("b04")
				b.lists[catalog.Tools] = slices.Delete(slices.Clone(b.lists[catalog.Tools]), 0, 4) // the last returned, t0004, stays
			},
			wantAfter: []string{"b05", "b06", "b07", "b08"},
			ownAll:    true,
		},
		{
			name: "the last returned item removed from the cursor's backend",
			change: func(f *fleet) {
				b := f.get("b04")
				b.lists[catalog.Tools] = slices.Delete(slices.Clone(b.lists[catalog.Tools]), 4, 5)
			},
			wantAfter: []string{"b05", "b06", "b07", "b08"},
		},
	}
	for _, tt := range tests {
		for _, limit := range []int{0, 3} {
			t.Run(fmt.Sprintf("%s/upstream-limit-%d", tt.name, limit), func(t *testing.T) {
				f := newFleet()
				for i := 1; i <= 8; i++ {
					f.add(mixed(fmt.Sprintf("b%02d", i), 10, 0, 0, 0, limit))
				}
				c := f.catalog()
				req := catalog.ListRequest{Paginate: true, PageSize: 7, Revision: 1, Key: testKey}
				// Five pages of 7 end inside b04 (items 31..40).
				var got []string
				for range 5 {
					r := list(t, c, catalog.Tools, req, f)
					got, req.Cursor = append(got, r.keys...), r.next
				}
				if last := got[len(got)-1]; last != "b04__t0004" {
					t.Fatalf("test setup: the walk stopped at %s, want b04__t0004", last)
				}
				tt.change(f)
				c = f.catalog()
				req.Revision = 2
				for req.Cursor != "" {
					r := list(t, c, catalog.Tools, req, f)
					got, req.Cursor = append(got, r.keys...), r.next
				}
				seen := map[string]bool{}
				for _, k := range got {
					if seen[k] {
						t.Errorf("%s returned twice", k)
					}
					seen[k] = true
				}
				now := walk(t, catalog.Tools, 7, f, c)
				for _, k := range now {
					srv, _, _ := strings.Cut(k, "__")
					own := srv == "b04" && tt.ownAll && limit == 0
					if (slices.Contains(tt.wantAfter, srv) || own) && !seen[k] {
						t.Errorf("%s (after the position) is missing", k)
					}
				}
				for k := range seen {
					srv, _, _ := strings.Cut(k, "__")
					if slices.Contains(tt.wantMissing, srv) {
						t.Errorf("%s (added before the position) was returned", k)
					}
				}
			})
		}
	}
}

func TestBadCursorsRefused(t *testing.T) {
	f := newFleet(mixed("a", 30, 3, 5, 2, 0))
	c := f.catalog()
	req := catalog.ListRequest{Paginate: true, PageSize: 4, Key: testKey}
	valid := list(t, c, catalog.Tools, req, f).next
	foreignReq := req
	foreignReq.Key = []byte("another cluster")
	foreign := list(t, c, catalog.Tools, foreignReq, f).next
	templates := list(t, c, catalog.Templates, catalog.ListRequest{Paginate: true, PageSize: 1, Key: testKey}, f).next
	tampered := []byte(valid)
	tampered[5] ^= 'A' ^ 'B'
	if tampered[5] == valid[5] {
		tampered[5] = 'C'
	}
	tests := []struct {
		name   string
		kind   catalog.Kind
		cursor string
		want   string
	}{
		{"malformed", catalog.Tools, "not a cursor!", "invalid cursor: not issued by this gateway"},
		{"mcp-go's own", catalog.Tools, "YV9fdDAwMDM=", "invalid cursor"},
		{"line break", catalog.Tools, valid[:4] + "\n" + valid[4:], "invalid cursor: not issued by this gateway"},
		{"too short", catalog.Tools, "AwE", "invalid cursor: too short"},
		{"tampered", catalog.Tools, string(tampered), "invalid cursor: signature mismatch"},
		{"truncated", catalog.Tools, valid[:len(valid)-2], "invalid cursor"},
		{"foreign key", catalog.Tools, foreign, "invalid cursor: signature mismatch"},
		{"wrong kind", catalog.Prompts, valid, "invalid cursor: issued for tools/list, not prompts/list"},
		{"wrong kind resources", catalog.Resources, templates, "issued for resources/templates/list, not resources/list"},
		{"too long", catalog.Tools, strings.Repeat("A", 4097), "invalid cursor: longer than 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req
			r.Cursor = tt.cursor
			_, err := c.List(context.Background(), tt.kind, r, f)
			var je *jsonrpc.Error
			if !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams || !strings.Contains(je.Message, tt.want) {
				t.Fatalf("err = %v, want JSON-RPC -32602 with %q", err, tt.want)
			}
		})
	}
	// The valid cursor works.
	r := req
	r.Cursor = valid
	if got := list(t, c, catalog.Tools, r, f).keys; len(got) != 4 || got[0] != "a__t0004" {
		t.Fatalf("valid cursor: keys %v; want the 4 tools after a__t0003", got)
	}
}

// TestPagesHoldTheWholeListsBytes: a page's items are the same bytes as the
// whole list's, and a caller appending to a whole list cannot change the
// catalog.
func TestPagesHoldTheWholeListsBytes(t *testing.T) {
	f := bigFleet()
	c := f.catalog()
	for _, k := range catalog.Kinds {
		res, err := c.List(context.Background(), k, catalog.ListRequest{}, f)
		if err != nil {
			t.Fatal(err)
		}
		whole := decode(t, k, res)
		_ = append(res, "garbage"...)
		var paged []json.RawMessage
		req := catalog.ListRequest{Paginate: true, PageSize: 13, Key: testKey}
		for {
			r := list(t, c, k, req, f)
			paged = append(paged, r.raws...)
			if req.Cursor = r.next; req.Cursor == "" {
				break
			}
		}
		if len(paged) != len(whole.raws) {
			t.Fatalf("%s: %d paged items, %d in the whole list", k, len(paged), len(whole.raws))
		}
		for i := range paged {
			if !bytes.Equal(paged[i], whole.raws[i]) {
				t.Fatalf("%s item %d: paged %s, whole %s", k, i, paged[i], whole.raws[i])
			}
		}
		if again, _ := c.List(context.Background(), k, catalog.ListRequest{}, f); !bytes.Equal(again, res) || !json.Valid(again) {
			t.Fatalf("%s: the whole list changed after a caller appended to it", k)
		}
	}
}

// TestListAllow: a client allowed some servers only sees their items, in
// the whole list and across every page of a walk (servers that paginate
// their own lists too), and the walk ends.
func TestListAllow(t *testing.T) {
	f := newFleet(mixed("a", 5, 0, 0, 0, 0), mixed("b", 7, 0, 0, 0, 3), mixed("c", 4, 0, 0, 0, 0), mixed("d", 2, 0, 0, 0, 0))
	cat := f.catalog()
	allow := func(s string) bool { return s == "b" || s == "d" }
	want := 9
	names := func(res []byte) ([]string, string) {
		var out struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
			Next string `json:"nextCursor"`
		}
		if err := json.Unmarshal(res, &out); err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, tl := range out.Tools {
			n = append(n, tl.Name)
		}
		return n, out.Next
	}
	res, err := cat.List(context.Background(), catalog.Tools, catalog.ListRequest{Allow: allow}, f)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := names(res)
	if len(all) != want {
		t.Fatalf("whole list = %v, want %d tools of b and d", all, want)
	}
	for _, size := range []int{1, 2, 4, 50} {
		var got []string
		cur := ""
		for pages := 0; ; pages++ {
			if pages > 50 {
				t.Fatalf("page size %d: the walk does not end", size)
			}
			res, err := cat.List(context.Background(), catalog.Tools, catalog.ListRequest{
				Cursor: cur, Paginate: true, PageSize: size, Key: []byte("k"), Allow: allow,
			}, f)
			if err != nil {
				t.Fatal(err)
			}
			n, next := names(res)
			got = append(got, n...)
			if next == "" {
				break
			}
			cur = next
		}
		if len(got) != want {
			t.Errorf("page size %d: walked %v, want %d tools", size, got, want)
		}
		for _, n := range got {
			if !strings.HasPrefix(n, "b__") && !strings.HasPrefix(n, "d__") {
				t.Errorf("page size %d: %s of a server not allowed", size, n)
			}
		}
	}
}
