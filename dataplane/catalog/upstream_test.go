package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
)

func TestUpstreamPagesFollowedLazily(t *testing.T) {
	// a: pages of 3 (3,3,3,1); b: pages of 7 ending on a full page, followed
	// by an empty one; d does not paginate; c: pages of 50, last, so that
	// the end of the walk is inside its pages.
	f := newFleet(mixed("a", 10, 0, 0, 0, 3), mixed("b", 21, 0, 0, 0, 7), mixed("d", 4, 0, 0, 0, 0), mixed("c", 120, 0, 0, 0, 50))
	upstream := map[string][]string{}
	for _, n := range []string{"a", "b", "c"} {
		upstream[n] = upstreamCursors(f.get(n), catalog.Tools)
	}
	if len(upstream["a"]) != 4 || len(upstream["b"]) != 4 || len(upstream["c"]) != 3 {
		t.Fatalf("test setup: upstream page sequences %v", upstream)
	}
	c := f.catalog()
	full := walk(t, catalog.Tools, 0, f, c)
	if len(full) != 10+21+4+120 {
		t.Fatalf("whole tools/list returned %d tools, want 155", len(full))
	}
	if f.calls != 0 {
		t.Fatalf("the whole list fetched %d upstream pages; it must come from the catalog", f.calls)
	}

	for _, size := range []int{1, 5, 100} {
		t.Run(fmt.Sprintf("size-%d", size), func(t *testing.T) {
			req := catalog.ListRequest{Paginate: true, PageSize: size, Revision: 1, Key: testKey}
			// Lazy: the first page asks only the first backend, for as many
			// of its pages as the page needs.
			first := list(t, c, catalog.Tools, req, f)
			wantFirst := map[int][]string{1: upstream["a"][:1], 5: upstream["a"][:2], 100: upstream["a"]}
			if got := f.take("a", catalog.Tools); !slices.Equal(got, wantFirst[size]) {
				t.Fatalf("after the first page, a was asked for pages %q, want %q", got, wantFirst[size])
			}
			if size < 100 {
				for _, n := range []string{"b", "c"} {
					if got := f.take(n, catalog.Tools); len(got) != 0 {
						t.Fatalf("after the first page, %s was asked for pages %q, want none yet", n, got)
					}
				}
			}
			got := slices.Clone(first.keys)
			for req.Cursor = first.next; req.Cursor != ""; {
				r := list(t, c, catalog.Tools, req, f)
				if len(r.keys) == 0 || len(r.keys) > size || (r.next != "" && len(r.keys) != size) {
					t.Fatalf("page of %d items (cursor %v) with page size %d", len(r.keys), r.next != "", size)
				}
				got, req.Cursor = append(got, r.keys...), r.next
			}
			if !slices.Equal(got, full) {
				t.Fatalf("pages joined hold %d items, want exactly the %d of the whole list (first difference at %d)",
					len(got), len(full), firstDiff(got, full))
			}
			// Every upstream page requested exactly once per walk, in
			// order: no cursor dropped, none repeated.
			for _, n := range []string{"a", "b", "c"} {
				asked := f.take(n, catalog.Tools)
				if n == "a" {
					asked = append(slices.Clone(wantFirst[size]), asked...)
				}
				if !slices.Equal(asked, upstream[n]) {
					t.Errorf("walk asked %s for pages %q, want each of %q once", n, asked, upstream[n])
				}
			}
			if got := f.take("d", catalog.Tools); len(got) != 0 {
				t.Errorf("walk asked d, which does not paginate, for pages %q", got)
			}
		})
	}

	t.Run("upstream changed since the catalog was built", func(t *testing.T) {
		// New tools upstream that the catalog does not hold: the walk skips
		// them, so every item served is one the catalog routes, and the
		// walk still equals the whole list.
		b := f.get("c")
		tools := slices.Clone(b.lists[catalog.Tools])
		tools = slices.Insert(tools, 50, toolItem("t0049a"))
		tools = slices.Insert(tools, 1, toolItem("t0000a"))
		b.lists[catalog.Tools] = tools
		for _, size := range []int{1, 5, 100} {
			if got := walk(t, catalog.Tools, size, f, c); !slices.Equal(got, full) {
				t.Fatalf("size %d: pages joined hold %d items, want exactly the %d of the whole list (first difference at %d)",
					size, len(got), len(full), firstDiff(got, full))
			}
			if asked := f.take("c", catalog.Tools); len(asked) != 3 { // 122 tools upstream, in pages of 50
				t.Fatalf("size %d: walk asked c for %d pages %q, want 3", size, len(asked), asked)
			}
		}
	})
}

func TestUpstreamPageFailureFallsBackToCatalog(t *testing.T) {
	f := newFleet(mixed("a", 10, 0, 0, 0, 3), mixed("b", 8, 0, 0, 0, 3))
	c := f.catalog()
	req := catalog.ListRequest{Paginate: true, PageSize: 2, Revision: 1, Key: testKey}
	first := list(t, c, catalog.Tools, req, f)
	if !slices.Equal(first.keys, []string{"a__t0000", "a__t0001"}) {
		t.Fatalf("first page = %v", first.keys)
	}
	if got := f.take("a", catalog.Tools); len(got) != 1 {
		t.Fatalf("first page asked a for pages %q, want its first only", got)
	}
	// a goes away mid-walk: its next upstream page cannot be fetched.
	f.fail["a"] = true
	got := slices.Clone(first.keys)
	for req.Cursor = first.next; req.Cursor != ""; {
		r := list(t, c, catalog.Tools, req, f)
		if len(r.keys) == 0 || len(r.keys) > 2 || (r.next != "" && len(r.keys) != 2) {
			t.Fatalf("page of %d items (cursor %v) with page size 2", len(r.keys), r.next != "")
		}
		got, req.Cursor = append(got, r.keys...), r.next
	}
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("a__t%04d", i))
	}
	for i := range 8 {
		want = append(want, fmt.Sprintf("b__t%04d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walk with a failing backend = %v, want the catalog's list %v", got, want)
	}
	if asked := f.take("a", catalog.Tools); len(asked) != 1 {
		t.Fatalf("after its failure, a was asked for pages %q; want the one failed call only", asked)
	}
	// b still paginates upstream and is followed after a's fallback.
	if asked := f.take("b", catalog.Tools); len(asked) != 3 {
		t.Fatalf("walk asked b for %d pages %q, want 3", len(asked), asked)
	}
}

func TestUpstreamPagesAllKinds(t *testing.T) {
	// Upstream pages of 3, 7 and 50, and one backend that does not
	// paginate; every backend also has file:///shared.txt, so the later
	// ones' copies are served under mcpmesh:// URIs, found by their
	// upstream URI.
	f := newFleet(
		mixed("a", 10, 8, 11, 5, 3),
		mixed("b", 21, 14, 22, 9, 7),
		mixed("c", 6, 2, 3, 1, 0),
		mixed("d", 120, 101, 130, 100, 50), // templates end on a full upstream page
	)
	// b's templates are contested too: its copies are exposed under
	// mcpmesh:// templates and found by their upstream form.
	f.get("b").lists[catalog.Templates] = append(slices.Clone(f.get("a").lists[catalog.Templates]), f.get("b").lists[catalog.Templates]...)
	c := f.catalog()
	for _, k := range catalog.Kinds {
		full := walk(t, k, 0, f, c)
		for _, size := range []int{1, 5, 100} {
			if got := walk(t, k, size, f, c); !slices.Equal(got, full) {
				t.Fatalf("%s size %d: pages joined hold %d items, want exactly the %d of the whole list (first difference at %d)",
					k, size, len(got), len(full), firstDiff(got, full))
			}
			for _, n := range []string{"a", "b", "d"} {
				want := upstreamCursors(f.get(n), k)
				if asked := f.take(n, k); !slices.Equal(asked, want) {
					t.Fatalf("%s size %d: walk asked %s for pages %q, want each of %q once", k, size, n, asked, want)
				}
			}
		}
	}
	if asked := f.take("c", catalog.Tools); len(asked) != 0 {
		t.Errorf("c does not paginate but was asked for pages %q", asked)
	}
}

// cancelled is a Fetcher whose calls find their request gone.
type cancelled struct{ cancel context.CancelFunc }

func (c cancelled) FetchPage(ctx context.Context, _ string, _ catalog.Kind, _ string) (catalog.Page, error) {
	c.cancel()
	return catalog.Page{}, ctx.Err()
}

func TestListEndsWithItsRequest(t *testing.T) {
	f := newFleet(mixed("a", 10, 0, 0, 0, 3))
	c := f.catalog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.List(ctx, catalog.Tools, catalog.ListRequest{Paginate: true, PageSize: 2, Key: testKey}, cancelled{cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("List whose request was cancelled: err = %v, want context.Canceled", err)
	}
	// Without a Fetcher the walk is served from the catalog alone.
	if got := walk(t, catalog.Tools, 4, nil, c); len(got) != 10 {
		t.Fatalf("walk without a Fetcher: %d items, want 10", len(got))
	}
}
