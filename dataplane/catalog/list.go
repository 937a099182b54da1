package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Position rule when the lists change mid-walk (a config revision, a backend
// becoming unavailable or changing its own list): a cursor names the server
// of the last item returned, that item's exposed name or URI, and its index
// in the server's items. The next page starts right after that item if the
// server still has it (found by name); otherwise at the saved index within
// that server; and if the server itself is gone, at the first server whose
// name sorts after it. Items removed meanwhile just do not appear; items
// added before the position are not returned by this walk (a new walk sees
// them). Nothing already returned is returned again, with one exception: if,
// in the same change, the last returned item left its server and items were
// inserted before it in that server, resuming at the saved index may repeat
// some of that server's items. A walk keeps the page size it started with.
// Cursors never expire; a cursor signed with another key (another cluster,
// or a rotated secret) is refused.

// Fetcher fetches one upstream page of server's list of kind k, with the
// backend's own cursor ("" for its first page). The router adapts its
// backends to it. A walk that cannot fetch a page serves the rest of that
// server from the catalog and does not report the error: log it in the
// Fetcher.
type Fetcher interface {
	FetchPage(ctx context.Context, server string, k Kind, cursor string) (Page, error)
}

// ListRequest is a client's list request as the router sees it.
type ListRequest struct {
	Cursor   string // the client's cursor ("" first page)
	Paginate bool   // pagination on (setting or ?pagination=true)
	PageSize int    // clamped to 1..MaxPageSize; <= 0 is DefaultPageSize
	Revision uint64 // config revision carried in cursors
	Key      []byte // cursor signing key (HMAC)
	// OldKeys also verify cursors (never sign): the keys of previous
	// cluster secrets still within their grace.
	OldKeys [][]byte
	// Allow, when set, says which servers' items the client may see; the
	// others are left out as if they were not there.
	Allow func(server string) bool
}

// List returns the complete JSON result of a list request of kind k, such as
// {"tools":[...],"nextCursor":"..."}, each item its exposed JSON (name
// prefixed or URI rewritten, everything else as the backend sent it). The
// result is the caller's: it is composed for each call, the catalog keeping
// only the backends' own item bytes.
//
// Without a cursor and without Paginate the result is the whole list. With
// Paginate, or with a cursor (which keeps the page size its walk started
// with), it is one page of a walk over servers by name, then upstream order;
// the position rule above says where a walk resumes when the catalog has
// changed since the cursor was issued. A server that paginates its own list
// (Server.Paged) is followed page by page through f: an upstream page is
// fetched only when the page being served needs its items, once per walk
// whatever the page sizes, and upstream items the catalog lacks are skipped,
// so that every item served is one the catalog routes. f may be nil: the
// walk is then served from the catalog alone.
//
// A malformed, tampered, foreign-kind or foreign-key cursor is a
// *jsonrpc.Error with CodeInvalidParams saying what is wrong.
func (c *Catalog) List(ctx context.Context, k Kind, req ListRequest, f Fetcher) (json.RawMessage, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("list: %s", k)
	}
	l := &c.lists[k]
	size := 0
	var cur *cursor
	switch {
	case req.Cursor != "":
		cc, err := decodeCursor(req.Key, k, req.Cursor)
		for _, old := range req.OldKeys {
			if !errors.Is(err, errBadSignature) {
				break
			}
			cc, err = decodeCursor(old, k, req.Cursor)
		}
		if err != nil {
			return nil, invalidParams(err)
		}
		cur, size = &cc, cc.pageSize
	case req.Paginate:
		size = clampPageSize(req.PageSize)
	}
	field := k.Desc().Field
	if size == 0 {
		out := make([]byte, 0, 16+len(field)+l.size)
		out = append(appendQuoted(append(out, '{'), field), ":["...)
		n := 0
		for _, seg := range l.segs {
			if req.Allow != nil && !req.Allow(seg.server) {
				continue
			}
			for i := seg.start; i < seg.end; i++ {
				if n > 0 {
					out = append(out, ',')
				}
				out = l.items[i].appendTo(out)
				n++
			}
		}
		return append(out, "]}"...), nil
	}
	w := &walk{ctx: ctx, l: l, k: k, f: f, size: size, fellBack: -1, allow: req.Allow}
	avg := 0
	if len(l.items) > 0 {
		avg = l.size/len(l.items) + 1
	}
	w.out = make([]byte, 0, 64+len(field)+min(size, len(l.items))*avg+cursorEstimate)
	w.out = append(appendQuoted(append(w.out, '{'), field), ":["...)
	w.start(cur)
	w.fill()
	if w.err != nil {
		return nil, fmt.Errorf("list %s: %w", k, w.err)
	}
	next, more := w.cursor()
	w.out = append(w.out, ']')
	if more {
		next.kind, next.revision, next.pageSize = k, req.Revision, size
		w.out = append(w.out, `,"nextCursor":"`...)
		w.out = append(w.out, encodeCursor(req.Key, next)...) // base64url: nothing to escape
		w.out = append(w.out, '"')
	}
	return append(w.out, '}'), nil
}

// cursorEstimate is room for a typical nextCursor member.
const cursorEstimate = 160

func clampPageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// resume is the index of the first item after c's position (see the
// position rule above).
func (l *list) resume(c cursor) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].server >= c.server })
	if i == len(l.segs) {
		return len(l.items)
	}
	seg := l.segs[i]
	if seg.server != c.server {
		return seg.start
	}
	n := seg.end - seg.start
	if c.last != "" {
		// Unchanged lists hit the first probe.
		if k := c.index - 1; k >= 0 && k < n && l.items[seg.start+k].key == c.last {
			return seg.start + k + 1
		}
		if k := slices.IndexFunc(l.items[seg.start:seg.end], func(e entry) bool { return e.key == c.last }); k >= 0 {
			return seg.start + k + 1
		}
	}
	return seg.start + min(c.index, n)
}

// cursorAfter is the cursor whose page starts at item next.
func (l *list) cursorAfter(next int) cursor {
	last := next - 1
	seg := l.segs[segOf(l.segs, last)]
	return cursor{server: seg.server, index: last - seg.start + 1, last: l.items[last].key}
}

// upstreamItem is the index of the item of segment si that its server
// calls key, which the server sent in one of its own pages.
func (l *list) upstreamItem(k Kind, si int, key string) (int, bool) {
	seg := l.segs[si]
	in := func(exposed string) (int, bool) {
		i, ok := l.index[exposed]
		return int(i), ok && int(i) >= seg.start && int(i) < seg.end
	}
	switch {
	case k.Desc().Prefixed:
		return in(seg.prefix + key)
	case k == Templates:
		if i, ok := in(key); ok {
			return i, true
		}
		mt, err := meshTemplate(seg.server, key)
		if err != nil {
			return 0, false
		}
		return in(mt)
	default:
		if i, ok := in(key); ok {
			return i, true
		}
		return in(meshURI(seg.server, key))
	}
}

// walk serves one page. Outside a paginating server it copies items of the
// catalog from position i on. When it reaches the start of a server that
// paginates its own list, it follows that server's upstream pages instead:
// each upstream key is looked up in the catalog (keys it lacks, filtered or
// changed since the cache was fetched, are skipped) and the next upstream
// page is fetched only when the page needs more items. A page that ends
// inside an upstream page serves the rest of that upstream page from the
// catalog on the next request (the cursor's pending count), so each upstream
// page is requested once per walk whatever the page sizes. If an upstream
// call fails, the rest of that server comes from the catalog, resuming after
// the last item served.
type walk struct {
	ctx  context.Context
	l    *list
	k    Kind
	f    Fetcher
	size int
	out  []byte // the result being built
	n    int    // items in out
	err  error  // the request's ctx ended

	i    int // next item to serve, or resume point in upstream mode
	last int // index of the last item served; -1 before any

	// Upstream mode: following the pages of segment si's server.
	up       bool
	si       int
	pending  int    // items of the current upstream page still to serve from i
	fetch    bool   // an upstream page is still to be fetched…
	next     string // …with this upstream cursor
	fellBack int    // segment that fell back to the catalog in this request

	allow func(server string) bool // ListRequest.Allow
}

// paginating reports whether the walk follows segment si's own pages.
func (w *walk) paginating(si int) bool {
	return w.f != nil && si != w.fellBack && w.l.segs[si].paged
}

func (w *walk) start(c *cursor) {
	w.last = -1
	if c == nil {
		return
	}
	w.i = w.l.resume(*c)
	if !c.upstream {
		return
	}
	segs := w.l.segs
	si := sort.Search(len(segs), func(k int) bool { return segs[k].server >= c.server })
	if si == len(segs) || segs[si].server != c.server || !w.paginating(si) || (w.allow != nil && !w.allow(c.server)) {
		// The server is gone (resume found the next one), or no longer
		// paginates: the rest of it from the catalog.
		return
	}
	w.up, w.si = true, si
	w.pending, w.next, w.fetch = c.pending, c.upNext, c.upNext != ""
}

// fill serves items until the page is full or the list ends.
func (w *walk) fill() {
	for w.n < w.size && w.err == nil {
		if w.up {
			w.stepUpstream()
			continue
		}
		if w.i >= len(w.l.items) {
			return
		}
		si := segOf(w.l.segs, w.i)
		seg := w.l.segs[si]
		if w.allow != nil && !w.allow(seg.server) {
			w.i = seg.end // not the client's to see
			continue
		}
		if w.i == seg.start && w.paginating(si) {
			w.up, w.si = true, si
			w.pending, w.next, w.fetch = 0, "", true
			continue
		}
		w.take(w.i, min(w.size-w.n, seg.end-w.i))
	}
}

// take serves n items from i.
func (w *walk) take(i, n int) {
	for j := range w.l.items[i : i+n] {
		e := &w.l.items[i+j]
		if w.n > 0 {
			w.out = append(w.out, ',')
		}
		w.out = e.appendTo(w.out)
		w.n++
	}
	w.last = i + n - 1
	w.i = i + n
}

// stepUpstream makes one step of upstream mode: serve pending items, fetch
// the next upstream page, or leave the finished server.
func (w *walk) stepUpstream() {
	seg := w.l.segs[w.si]
	if w.pending > 0 {
		n := min(w.pending, w.size-w.n, seg.end-w.i)
		if n <= 0 {
			w.pending = 0
			return
		}
		w.take(w.i, n)
		w.pending -= n
		return
	}
	if !w.fetch {
		w.up, w.i = false, seg.end
		return
	}
	idx, ok := w.fetchPage()
	if !ok {
		return
	}
	for k, i := range idx {
		if w.n == w.size {
			w.pending = len(idx) - k
			return
		}
		w.take(i, 1)
	}
}

// fetchPage fetches the upstream page w.next and returns the indices of its
// items. On failure it leaves upstream mode.
func (w *walk) fetchPage() ([]int, bool) {
	seg := w.l.segs[w.si]
	p, err := w.f.FetchPage(w.ctx, seg.server, w.k, w.next)
	if err == nil && len(p.Next) > maxUpstreamCursor {
		err = fmt.Errorf("upstream cursor of %d bytes is longer than %d", len(p.Next), maxUpstreamCursor)
	}
	if err != nil {
		if w.ctx.Err() != nil {
			w.err = fmt.Errorf("fetch a page of server %q: %w", seg.server, w.ctx.Err())
		}
		w.up, w.fellBack = false, w.si
		if w.i < seg.start {
			w.i = seg.start
		}
		return nil, false
	}
	w.next, w.fetch = p.Next, p.Next != ""
	idx := make([]int, 0, len(p.Items))
	for _, it := range p.Items {
		if i, ok := w.l.upstreamItem(w.k, w.si, it.Key); ok {
			idx = append(idx, i)
		}
	}
	return idx, true
}

// cursor returns the position after the page and whether anything is left.
func (w *walk) cursor() (cursor, bool) {
	if w.up && w.pending == 0 && w.fetch && w.last+1 >= w.l.segs[w.si].end && w.si == len(w.l.segs)-1 {
		// Everything of the last server is served but its upstream list
		// goes on (mcp-go ends a full last page with a cursor and then an
		// empty page): look ahead now, so that the last page carries no
		// cursor. The pages fetched here are not fetched again.
		for w.up && w.pending == 0 && w.fetch && w.err == nil {
			if idx, ok := w.fetchPage(); ok {
				w.pending = len(idx)
			}
		}
	}
	if w.up && w.pending == 0 && !w.fetch {
		w.up, w.i = false, w.l.segs[w.si].end
	}
	if w.up {
		c := w.l.cursorAfter(w.last + 1)
		c.upstream, c.pending, c.upNext = true, w.pending, w.next
		return c, true
	}
	if w.i >= len(w.l.items) || w.i == 0 {
		return cursor{}, false
	}
	return w.l.cursorAfter(w.i), true
}
