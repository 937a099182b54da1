package mcpserver

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"sort"
	"strconv"
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

// segment is one server's run of items in an aggregated list.
type segment struct {
	server     string
	start, end int
}

// pagedList is one aggregated list in served order (servers by name, then
// upstream order) with each item's exposed key (name, URI or URI template).
type pagedList[T any] struct {
	items []T
	keys  []string
	segs  []segment
}

// add appends an item of server srv; servers must come in order.
func (l *pagedList[T]) add(srv, key string, item T) {
	n := len(l.items)
	l.items = append(l.items, item)
	l.keys = append(l.keys, key)
	if k := len(l.segs); k > 0 && l.segs[k-1].server == srv {
		l.segs[k-1].end = n + 1
		return
	}
	l.segs = append(l.segs, segment{server: srv, start: n, end: n + 1})
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
// is empty on the last page.
func page[T any](l *pagedList[T], kind listKind, p *pagePlan) ([]T, mcp.Cursor) {
	start := 0
	if p.cursor != nil {
		start = l.resume(*p.cursor)
	}
	end := len(l.items)
	if p.size > 0 && end-start > p.size {
		end = start + p.size
	}
	// A list result holds a required array: never nil.
	out := make([]T, end-start)
	copy(out, l.items[start:end])
	if end == len(l.items) {
		return out, ""
	}
	c := l.cursorAfter(end)
	c.kind, c.revision, c.pageSize = kind, p.cfg.revision, p.size
	return out, mcp.Cursor(encodeCursor(p.cfg.secret, c))
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
	h.AddAfterListTools(func(_ context.Context, _ any, req *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.Tools, res.NextCursor = page(&s.lists.Load().tools, kindTools, p)
		}
	})
	h.AddBeforeListPrompts(func(ctx context.Context, _ any, req *mcp.ListPromptsRequest) {
		s.before(ctx, kindPrompts, req, &req.Params.Cursor)
	})
	h.AddAfterListPrompts(func(_ context.Context, _ any, req *mcp.ListPromptsRequest, res *mcp.ListPromptsResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.Prompts, res.NextCursor = page(&s.lists.Load().prompts, kindPrompts, p)
		}
	})
	h.AddBeforeListResources(func(ctx context.Context, _ any, req *mcp.ListResourcesRequest) {
		s.before(ctx, kindResources, req, &req.Params.Cursor)
	})
	h.AddAfterListResources(func(_ context.Context, _ any, req *mcp.ListResourcesRequest, res *mcp.ListResourcesResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.Resources, res.NextCursor = page(&s.lists.Load().resources, kindResources, p)
		}
	})
	h.AddBeforeListResourceTemplates(func(ctx context.Context, _ any, req *mcp.ListResourceTemplatesRequest) {
		s.before(ctx, kindTemplates, req, &req.Params.Cursor)
	})
	h.AddAfterListResourceTemplates(func(_ context.Context, _ any, req *mcp.ListResourceTemplatesRequest, res *mcp.ListResourceTemplatesResult) {
		if p := s.plans.take(req); p != nil && res != nil {
			res.ResourceTemplates, res.NextCursor = page(&s.lists.Load().templates, kindTemplates, p)
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
