package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Pagination of the four list methods.
//
// mcp-go v1.2.1 serves the list methods itself and lets nobody replace them;
// its own pagination sorts by name, keys its cursor on an unsigned name and
// ends a walk with an empty page. The gateway therefore takes the lists over
// through mcp-go's hooks: the Before hook checks the client's cursor and
// points mcp-go's cursor past every item (so mcp-go returns nothing), and the
// After hook fills in the page from the gateway's own aggregated lists. Hooks
// cannot return errors, so a bad cursor is refused twice over: the HTTP guards
// (StreamableCursorGuard, SSECursorGuard) answer it with JSON-RPC -32602 and a
// message saying what is wrong before mcp-go sees it, and where no guard runs
// the Before hook hands mcp-go an undecodable cursor, which mcp-go answers with
// -32602 too (with its own, less helpful message). On streamable HTTP the
// guard also hands list requests to a twin of mcp-go's server that holds no
// items, so a page costs a page rather than a sort of the whole list (see
// paginate_http.go); the legacy SSE transport, whose answers travel on a
// stream only the real server holds, is served by the real one.
//
// Position rule when the lists change mid-walk (a config revision, a backend
// becoming unavailable or changing its own list): a cursor names the server
// of the last item returned, that item's exposed name or URI, and its index in
// the server's items. The next page starts right after that item if the
// server still has it (found by name); otherwise at the saved index within
// that server; and if the server itself is gone, at the first server whose
// name sorts after it. Items removed meanwhile just do not appear; items added
// before the position are not returned by this walk (a new walk sees them).
// Nothing already returned is returned again, with one exception: if, in the
// same change, the last returned item left its server and items were inserted
// before it in that server, resuming at the saved index may repeat some of
// that server's items. A walk keeps the page size it started with. Cursors
// never expire; a cursor signed with another secret (another cluster, or a
// rotated secret) is refused.

// sentinelCursor is an mcp-go cursor (base64 of a name) that sorts after
// every name, so mcp-go's own paging returns an empty page for the After hook
// to fill. Names come from JSON and are valid UTF-8, which never holds 0xff.
var sentinelCursor = mcp.Cursor(base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xff, 0xff}))

// poisonCursor is not base64, so mcp-go refuses it with -32602.
const poisonCursor = mcp.Cursor("!invalid cursor")

// pageConfig is what the data plane knows of pagination from the latest
// applied snapshot.
type pageConfig struct {
	enabled  bool
	pageSize int
	secret   []byte
	revision uint64
}

// SetConfig applies the pagination settings, cluster secret and revision of a
// snapshot. An empty secret keeps the current one (a random secret of this
// process until a snapshot brings the cluster's), so cursors stay verifiable.
func (s *Server) SetConfig(settings *mcpmeshv1.Settings, secret []byte, revision uint64) {
	p := settings.GetPagination()
	size := int(p.GetPageSize())
	switch {
	case size <= 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	cfg := &pageConfig{enabled: p.GetEnabled(), pageSize: size, revision: revision}
	if len(secret) > 0 {
		cfg.secret = slices.Clone(secret)
	} else {
		cfg.secret = s.pageCfg.Load().secret
	}
	s.pageCfg.Store(cfg)
}

// Secret returns a copy of the key that signs cursors: the cluster secret of
// the latest snapshot, or this process's random one before any. Session ids
// may be signed with it too.
func (s *Server) Secret() []byte { return slices.Clone(s.pageCfg.Load().secret) }

func newPageConfig() *pageConfig {
	secret := make([]byte, 32)
	// crypto/rand.Read never returns an error (it crashes the program if
	// the system has no randomness).
	_, _ = rand.Read(secret)
	return &pageConfig{pageSize: DefaultPageSize, secret: secret}
}

type paginationKey struct{}

// PaginationFromRequest records in ctx whether the request URL asks for
// pagination (?pagination=true), for the list hooks to read. It has the
// signature of mcp-go's HTTPContextFunc and SSEContextFunc; with the SSE
// transport, WithAppendQueryToMessageEndpoint carries the /sse query to
// every /message request.
func PaginationFromRequest(ctx context.Context, r *http.Request) context.Context {
	if r == nil || r.URL == nil {
		return ctx
	}
	if on, err := strconv.ParseBool(r.URL.Query().Get("pagination")); err == nil && on {
		return context.WithValue(ctx, paginationKey{}, true)
	}
	return ctx
}

func paginationRequested(ctx context.Context) bool {
	on, _ := ctx.Value(paginationKey{}).(bool)
	return on
}

// segment is one server's run of items in an aggregated list. prefix is
// what the server's names are exposed with ("" for URI-keyed lists).
type segment struct {
	server, prefix string
	start, end     int
}

// pagedList is one aggregated list in served order (servers by name, then
// upstream order) with each item's exposed key (name, URI or URI template).
type pagedList[T any] struct {
	items []T
	keys  []string
	segs  []segment
	// upIdx maps a segment's number to its upstreamIndex, built the first
	// time a walk follows that server's own pages.
	upIdx sync.Map
}

// add appends an item of server srv, whose names carry prefix; servers must
// come in order.
func (l *pagedList[T]) add(srv, prefix, key string, item T) {
	n := len(l.items)
	l.items = append(l.items, item)
	l.keys = append(l.keys, key)
	if k := len(l.segs); k > 0 && l.segs[k-1].server == srv {
		l.segs[k-1].end = n + 1
		return
	}
	l.segs = append(l.segs, segment{server: srv, prefix: prefix, start: n, end: n + 1})
}

// resume is the index of the first item after c's position (see the position
// rule above).
func (l *pagedList[T]) resume(c cursor) int {
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
		if k := c.index - 1; k >= 0 && k < n && l.keys[seg.start+k] == c.last {
			return seg.start + k + 1
		}
		if k := slices.Index(l.keys[seg.start:seg.end], c.last); k >= 0 {
			return seg.start + k + 1
		}
	}
	return seg.start + min(c.index, n)
}

// cursorAfter is the cursor whose page starts at item next.
func (l *pagedList[T]) cursorAfter(next int) cursor {
	last := next - 1
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].end > last })
	seg := l.segs[i]
	return cursor{server: seg.server, index: last - seg.start + 1, last: l.keys[last]}
}

// upstreamIndex maps the keys a backend uses in its own list (names without
// the server prefix, original URIs and URI templates) to the index of the
// aggregate's item in the server's segment.
type upstreamIndex map[string]int

// upstreamIndexOf returns segment si's index, building it on first use. A
// resource or template exposed under a mcpmesh:// rewrite is found under its
// original key and under the rewrite (an upstream key could be either).
func (l *pagedList[T]) upstreamIndexOf(si int) upstreamIndex {
	if v, ok := l.upIdx.Load(si); ok {
		return v.(upstreamIndex)
	}
	seg := l.segs[si]
	idx := make(upstreamIndex, seg.end-seg.start)
	for k, key := range l.keys[seg.start:seg.end] {
		if name, ok := strings.CutPrefix(key, seg.prefix); ok && seg.prefix != "" {
			idx[name] = k
		}
		if srv, orig, ok := parseMeshURI(key); ok && srv == seg.server {
			idx[orig] = k
		}
		if _, taken := idx[key]; !taken {
			idx[key] = k
		}
	}
	v, _ := l.upIdx.LoadOrStore(si, idx)
	return v.(upstreamIndex)
}

// lists is the immutable set of aggregated lists of one refresh.
type lists struct {
	tools     pagedList[mcp.Tool]
	prompts   pagedList[mcp.Prompt]
	resources pagedList[mcp.Resource]
	templates pagedList[mcp.ResourceTemplate]
}

// pagePlan is what the Before hook decided for one list request.
type pagePlan struct {
	size   int // 0: the whole list
	cursor *cursor
	cfg    *pageConfig
}

// planPage decides how to serve a list request with the given cursor.
func (s *Server) planPage(ctx context.Context, kind listKind, raw mcp.Cursor) (*pagePlan, error) {
	cfg := s.pageCfg.Load()
	p := &pagePlan{cfg: cfg}
	if raw != "" {
		// A cursor continues its walk with its own page size, even if the
		// setting changed or this request did not ask for pagination.
		c, err := decodeCursor(cfg.secret, kind, string(raw))
		if err != nil {
			return nil, err
		}
		if c.revision != cfg.revision {
			s.log.Debug("continuing a list walk started at another config revision",
				"method", kind.String(), "cursor_revision", c.revision, "revision", cfg.revision)
		}
		p.cursor, p.size = &c, c.pageSize
		return p, nil
	}
	if cfg.enabled || paginationRequested(ctx) {
		p.size = cfg.pageSize
	}
	return p, nil
}

// page cuts plan's page out of l and returns it with the next cursor, which
// is empty on the last page. Servers that paginate their own list are
// followed page by page (see walk).
func page[T any](ctx context.Context, s *Server, l *pagedList[T], kind listKind, p *pagePlan) ([]T, mcp.Cursor) {
	if p.size == 0 {
		// A list result holds a required array: never nil.
		out := make([]T, len(l.items))
		copy(out, l.items)
		return out, ""
	}
	w := &pageWalk[T]{ctx: ctx, s: s, l: l, kind: kind, size: p.size, fellBack: -1, out: make([]T, 0, min(p.size, len(l.items)))}
	w.start(p.cursor)
	w.fill()
	c, more := w.cursor()
	if !more {
		return w.out, ""
	}
	c.kind, c.revision, c.pageSize = kind, p.cfg.revision, p.size
	return w.out, mcp.Cursor(encodeCursor(p.cfg.secret, c))
}

// walk serves one page. Outside a paginating server it copies items of the
// aggregate from position i on. When it reaches the start of a server that
// paginates its own list (the backend saw a nextCursor when it fetched it),
// it follows that server's upstream pages instead: each upstream key is
// looked up in the aggregate (keys the aggregate lacks, filtered or changed
// since the cache was fetched, are skipped, so every item served is one
// tools/call can route) and the next upstream page is fetched only when the
// page needs more items. A page that ends inside an upstream page serves the
// rest of that upstream page from the aggregate on the next request, so each
// upstream page is requested once per walk whatever the page sizes. If an
// upstream call fails, the rest of that server comes from the cache, resuming
// after the last item served, and the client's list call still succeeds.
type pageWalk[T any] struct {
	ctx  context.Context
	s    *Server
	l    *pagedList[T]
	kind listKind
	size int
	out  []T

	i    int // next item of the aggregate to serve, or resume point in upstream mode
	last int // aggregate index of the last item served; -1 before any

	// Upstream mode: following the pages of segment si's server b.
	up       bool
	si       int
	b        Backend
	pending  int    // items of the current upstream page still to serve from i
	fetch    bool   // an upstream page is still to be fetched…
	next     string // …with this upstream cursor
	fellBack int    // segment that fell back to the cache in this request
}

// paginating returns segment si's backend when the walk can follow its own
// pages: it is ready and paginated its list when last fetched.
func (w *pageWalk[T]) paginating(si int) (Backend, bool) {
	if si == w.fellBack {
		return nil, false
	}
	b, ok := w.s.src.Get(w.l.segs[si].server)
	if !ok || !b.Ready() || !b.UpstreamPaginates(w.kind.method()) {
		return nil, false
	}
	return b, true
}

// segOf is the segment holding item i.
func (w *pageWalk[T]) segOf(i int) int {
	return sort.Search(len(w.l.segs), func(k int) bool { return w.l.segs[k].end > i })
}

func (w *pageWalk[T]) start(c *cursor) {
	w.last = -1
	if c == nil {
		return
	}
	w.i = w.l.resume(*c)
	if !c.upstream {
		return
	}
	si := sort.Search(len(w.l.segs), func(k int) bool { return w.l.segs[k].server >= c.server })
	if si == len(w.l.segs) || w.l.segs[si].server != c.server {
		return // the server is gone: resume found the next one
	}
	b, ok := w.paginating(si)
	if !ok {
		return // the rest of the server from the cache
	}
	w.up, w.si, w.b = true, si, b
	w.pending, w.next, w.fetch = c.pending, c.upNext, c.upNext != ""
}

// fill serves items until the page is full or the list ends.
func (w *pageWalk[T]) fill() {
	for len(w.out) < w.size {
		if w.up {
			w.stepUpstream()
			continue
		}
		if w.i >= len(w.l.items) {
			return
		}
		si := w.segOf(w.i)
		seg := w.l.segs[si]
		if w.i == seg.start {
			if b, ok := w.paginating(si); ok {
				w.up, w.si, w.b = true, si, b
				w.pending, w.next, w.fetch = 0, "", true
				continue
			}
		}
		w.take(w.i, min(w.size-len(w.out), seg.end-w.i))
	}
}

// take appends n items of the aggregate from i.
func (w *pageWalk[T]) take(i, n int) {
	w.out = append(w.out, w.l.items[i:i+n]...)
	w.last = i + n - 1
	w.i = i + n
}

// stepUpstream makes one step of upstream mode: serve pending items, fetch
// the next upstream page, or leave the finished server.
func (w *pageWalk[T]) stepUpstream() {
	seg := w.l.segs[w.si]
	if w.pending > 0 {
		n := min(w.pending, w.size-len(w.out), seg.end-w.i)
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
	for k, ai := range idx {
		if len(w.out) == w.size {
			w.pending = len(idx) - k
			return
		}
		w.take(ai, 1)
	}
}

// fetchPage fetches the upstream page w.next and returns the aggregate
// indices of its items. On failure it leaves upstream mode.
func (w *pageWalk[T]) fetchPage() ([]int, bool) {
	seg := w.l.segs[w.si]
	method := w.kind.method()
	keys, next, err := w.b.ListPage(w.ctx, method, w.next)
	if err == nil && len(next) > maxUpstreamCursor {
		err = fmt.Errorf("upstream cursor of %d bytes is longer than %d", len(next), maxUpstreamCursor)
	}
	if err != nil {
		w.s.log.Warn("following a backend's list pages failed; serving the rest of its list from the cache",
			"server", seg.server, "method", method, "err", err)
		w.up, w.fellBack = false, w.si
		if w.i < seg.start {
			w.i = seg.start
		}
		return nil, false
	}
	w.next, w.fetch = next, next != ""
	ui := w.l.upstreamIndexOf(w.si)
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		if j, ok := ui[k]; ok {
			idx = append(idx, seg.start+j)
		}
	}
	return idx, true
}

// cursor returns the position after the page and whether anything is left.
func (w *pageWalk[T]) cursor() (cursor, bool) {
	if w.up && w.pending == 0 && w.fetch && w.last+1 >= w.l.segs[w.si].end && w.si == len(w.l.segs)-1 {
		// Everything of the last server is served but its upstream list
		// goes on (mcp-go ends a full last page with a cursor and then an
		// empty page): look ahead now, so that the last page carries no
		// cursor. The pages fetched here are not fetched again.
		for w.up && w.pending == 0 && w.fetch {
			idx, ok := w.fetchPage()
			if ok {
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

// plans carries each list request's plan from the Before to the After hook;
// both get the same request pointer.
type plans struct{ m sync.Map }

func (ps *plans) take(req any) *pagePlan {
	v, ok := ps.m.LoadAndDelete(req)
	if !ok {
		return nil
	}
	return v.(*pagePlan)
}

// before runs in a Before hook: it plans the page and points mcp-go's cursor
// so that mcp-go returns nothing (or, for a bad cursor, fails with -32602).
func (s *Server) before(ctx context.Context, kind listKind, req any, cur *mcp.Cursor) {
	p, err := s.planPage(ctx, kind, *cur)
	if err != nil {
		s.log.Debug("refusing list request", "method", kind.String(), "err", err)
		*cur = poisonCursor
		return
	}
	s.plans.m.Store(req, p)
	*cur = sentinelCursor
}

// paginationHooks returns hooks, a copy of base with the gateway's list
// hooks added (base itself is left alone: it belongs to the caller).
func (s *Server) paginationHooks(base *server.Hooks) *server.Hooks {
	h := &server.Hooks{}
	if base != nil {
		*h = *base
		// Appending to a shared slice could write into base's array.
		h.OnBeforeListTools = slices.Clip(h.OnBeforeListTools)
		h.OnAfterListTools = slices.Clip(h.OnAfterListTools)
		h.OnBeforeListPrompts = slices.Clip(h.OnBeforeListPrompts)
		h.OnAfterListPrompts = slices.Clip(h.OnAfterListPrompts)
		h.OnBeforeListResources = slices.Clip(h.OnBeforeListResources)
		h.OnAfterListResources = slices.Clip(h.OnAfterListResources)
		h.OnBeforeListResourceTemplates = slices.Clip(h.OnBeforeListResourceTemplates)
		h.OnAfterListResourceTemplates = slices.Clip(h.OnAfterListResourceTemplates)
		h.OnError = slices.Clip(h.OnError)
	}
	h.AddBeforeListTools(func(ctx context.Context, _ any, req *mcp.ListToolsRequest) {
		s.before(ctx, kindTools, req, &req.Params.Cursor)
	})
	h.AddAfterListTools(func(ctx context.Context, _ any, req *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.Tools, res.NextCursor = page(ctx, s, &s.lists.Load().tools, kindTools, p)
		}
	})
	h.AddBeforeListPrompts(func(ctx context.Context, _ any, req *mcp.ListPromptsRequest) {
		s.before(ctx, kindPrompts, req, &req.Params.Cursor)
	})
	h.AddAfterListPrompts(func(ctx context.Context, _ any, req *mcp.ListPromptsRequest, res *mcp.ListPromptsResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.Prompts, res.NextCursor = page(ctx, s, &s.lists.Load().prompts, kindPrompts, p)
		}
	})
	h.AddBeforeListResources(func(ctx context.Context, _ any, req *mcp.ListResourcesRequest) {
		s.before(ctx, kindResources, req, &req.Params.Cursor)
	})
	h.AddAfterListResources(func(ctx context.Context, _ any, req *mcp.ListResourcesRequest, res *mcp.ListResourcesResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.Resources, res.NextCursor = page(ctx, s, &s.lists.Load().resources, kindResources, p)
		}
	})
	h.AddBeforeListResourceTemplates(func(ctx context.Context, _ any, req *mcp.ListResourceTemplatesRequest) {
		s.before(ctx, kindTemplates, req, &req.Params.Cursor)
	})
	h.AddAfterListResourceTemplates(func(ctx context.Context, _ any, req *mcp.ListResourceTemplatesRequest, res *mcp.ListResourceTemplatesResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.ResourceTemplates, res.NextCursor = page(ctx, s, &s.lists.Load().templates, kindTemplates, p)
		}
	})
	// A list that failed after its Before hook never reaches After.
	h.AddOnError(func(_ context.Context, _ any, method mcp.MCPMethod, req any, _ error) {
		switch method {
		case mcp.MethodToolsList, mcp.MethodPromptsList, mcp.MethodResourcesList, mcp.MethodResourcesTemplatesList:
			s.plans.take(req)
		}
	})
	return h
}

// checkCursor reports why a client's cursor for kind would be refused, or nil.
func (s *Server) checkCursor(kind listKind, raw string) error {
	_, err := decodeCursor(s.pageCfg.Load().secret, kind, raw)
	return err
}
