package backend

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

func TestListPageFollowsUpstreamPages(t *testing.T) {
	e := newEnv(t)
	// 4 fixed + 7 numbered tools in pages of 3; one prompt, resource and
	// template each, which fit on one page.
	paged := startHTTPBackend(t, newMCPServer("alpha", 3, 7), false)
	whole := startHTTPBackend(t, newMCPServer("beta", 0, 7), false)
	e.apply(paged.server("alpha"), whole.server("beta"))
	a, b := e.backend("alpha"), e.backend("beta")
	e.waitState(a, stateHealthy)
	e.waitState(b, stateHealthy)

	if !a.UpstreamPaginates(mcp.MethodToolsList) {
		t.Error("alpha paginates its tools but UpstreamPaginates says no")
	}
	for _, m := range []mcp.MCPMethod{mcp.MethodPromptsList, mcp.MethodResourcesList, mcp.MethodResourcesTemplatesList} {
		if a.UpstreamPaginates(m) {
			t.Errorf("alpha's %s fits on one page but UpstreamPaginates says yes", m)
		}
	}
	if b.UpstreamPaginates(mcp.MethodToolsList) {
		t.Error("beta does not paginate but UpstreamPaginates says yes")
	}

	// Walking alpha's pages one call at a time gives the cached list, in
	// order, page by page.
	ctx := context.Background()
	var all []string
	pages := 0
	for cur := ""; ; {
		keys, next, err := a.ListPage(ctx, mcp.MethodToolsList, cur)
		if err != nil {
			t.Fatalf("ListPage(%q): %v", cur, err)
		}
		if len(keys) > 3 {
			t.Fatalf("upstream page of %d keys, want at most 3", len(keys))
		}
		pages++
		all = append(all, keys...)
		if next == "" {
			break
		}
		cur = next
	}
	if want := toolNames(a.Tools()); !slices.Equal(all, want) {
		t.Fatalf("pages joined = %v, want the cached list %v", all, want)
	}
	if pages != 4 {
		t.Errorf("walked %d upstream pages, want 4", pages)
	}
	for m, want := range map[mcp.MCPMethod]string{
		mcp.MethodPromptsList:            "greet",
		mcp.MethodResourcesList:          "mem://alpha/readme",
		mcp.MethodResourcesTemplatesList: "mem://alpha/items/{id}",
	} {
		keys, next, err := a.ListPage(ctx, m, "")
		if err != nil || next != "" || !slices.Equal(keys, []string{want}) {
			t.Errorf("ListPage(%s) = %v, %q, %v; want [%s]", m, keys, next, err, want)
		}
	}

	// An upstream failure is an error naming the backend, for the caller
	// to fall back to the cache.
	paged.down.Store(true)
	keys, next, err := a.ListPage(ctx, mcp.MethodToolsList, "")
	if err == nil {
		t.Fatalf("ListPage of a backend answering 503 = %v, %q; want an error", keys, next)
	}
	if !strings.Contains(err.Error(), `backend "alpha"`) || !strings.Contains(err.Error(), "list page of tools/list") {
		t.Errorf("ListPage of a backend answering 503: err = %v, want it to name backend alpha and the list call", err)
	}
	_, _, err = b.ListPage(ctx, "tools/unknown", "")
	if err == nil || errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), `unknown list method "tools/unknown"`) {
		t.Errorf("ListPage of an unknown method: err = %v, want an error naming the method", err)
	}
	// The unknown method was refused before it reached beta: beta still
	// serves its pages.
	if keys, next, err := b.ListPage(ctx, mcp.MethodToolsList, ""); err != nil || next != "" || !slices.Equal(keys, toolNames(b.Tools())) {
		t.Errorf("beta's ListPage after an unknown method = %v, %q, %v; want its whole tool list", keys, next, err)
	}
}
