package backend

import (
	"context"
	"fmt"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// Upstream pages, for the aggregated server's paginated walks: the cached
// lists stay complete (every upstream cursor is followed at fetch time), and
// besides them a walk may follow a backend's own pagination page by page.

// pagedSet records, per list method, that the backend answered the last fetch
// of that list with a non-empty nextCursor, i.e. that it paginates it.
type pagedSet uint8

const (
	pagedTools pagedSet = 1 << iota
	pagedPrompts
	pagedResources
	pagedTemplates
)

func pagedBit(method mcp.MCPMethod) pagedSet {
	switch method {
	case mcp.MethodToolsList:
		return pagedTools
	case mcp.MethodPromptsList:
		return pagedPrompts
	case mcp.MethodResourcesList:
		return pagedResources
	case mcp.MethodResourcesTemplatesList:
		return pagedTemplates
	default:
		return 0
	}
}

// notePage records one upstream page of method: a fetch starts with an empty
// cursor, which clears what an earlier fetch recorded.
func (l *lists) notePage(method mcp.MCPMethod, cur, next mcp.Cursor) {
	bit := pagedBit(method)
	if cur == "" {
		l.paged &^= bit
	}
	if next != "" {
		l.paged |= bit
	}
}

// UpstreamPaginates reports whether the backend paginated its list of method
// (mcp.MethodToolsList, MethodPromptsList, MethodResourcesList or
// MethodResourcesTemplatesList) when it was last fetched; false when no
// endpoint is connected (while retrying, a walk is served from the last known
// lists rather than wait for the reconnect).
func (b *Backend) UpstreamPaginates(method mcp.MCPMethod) bool {
	l, ok := b.readyLists()
	return ok && l.paged&pagedBit(method) != 0 && b.Connected()
}

// ListPage makes one upstream list call of method with the upstream cursor
// cur ("" for the first page) through the request path of every request
// (server timeout, endpoint picker, breaker, one retry on a transport
// failure), and returns the page's item keys in upstream order (tool and
// prompt names, resource URIs, template URI templates) and the upstream
// nextCursor, "" on the last page. Upstream cursors are opaque: they are
// passed back as received.
func (b *Backend) ListPage(ctx context.Context, method mcp.MCPMethod, cur string) (keys []string, next string, err error) {
	what := fmt.Sprintf("list page of %s", method)
	p, err := do(ctx, b, what, true, func(ctx context.Context, cli *client.Client) (upstreamPage, error) {
		return listPage(ctx, cli, method, mcp.Cursor(cur))
	})
	if err != nil {
		return nil, "", err
	}
	return p.keys, string(p.next), nil
}

// upstreamPage is one page of a backend's list: its item keys and cursor.
type upstreamPage struct {
	keys []string
	next mcp.Cursor
}

func listPage(ctx context.Context, cli *client.Client, method mcp.MCPMethod, cur mcp.Cursor) (upstreamPage, error) {
	type page = upstreamPage
	switch method {
	case mcp.MethodToolsList:
		var r mcp.ListToolsRequest
		r.Params.Cursor = cur
		res, err := cli.ListToolsByPage(ctx, r)
		if err != nil {
			return page{}, err
		}
		keys := make([]string, len(res.Tools))
		for i, t := range res.Tools {
			keys[i] = t.Name
		}
		return page{keys, res.NextCursor}, nil
	case mcp.MethodPromptsList:
		var r mcp.ListPromptsRequest
		r.Params.Cursor = cur
		res, err := cli.ListPromptsByPage(ctx, r)
		if err != nil {
			return page{}, err
		}
		keys := make([]string, len(res.Prompts))
		for i, p := range res.Prompts {
			keys[i] = p.Name
		}
		return page{keys, res.NextCursor}, nil
	case mcp.MethodResourcesList:
		var r mcp.ListResourcesRequest
		r.Params.Cursor = cur
		res, err := cli.ListResourcesByPage(ctx, r)
		if err != nil {
			return page{}, err
		}
		keys := make([]string, len(res.Resources))
		for i, x := range res.Resources {
			keys[i] = x.URI
		}
		return page{keys, res.NextCursor}, nil
	case mcp.MethodResourcesTemplatesList:
		var r mcp.ListResourceTemplatesRequest
		r.Params.Cursor = cur
		res, err := cli.ListResourceTemplatesByPage(ctx, r)
		if err != nil {
			return page{}, err
		}
		keys := make([]string, len(res.ResourceTemplates))
		for i, x := range res.ResourceTemplates {
			if x.URITemplate != nil && x.URITemplate.Template != nil {
				keys[i] = x.URITemplate.Raw()
			}
		}
		return page{keys, res.NextCursor}, nil
	default:
		return page{}, fmt.Errorf("unknown list method %q", method)
	}
}
