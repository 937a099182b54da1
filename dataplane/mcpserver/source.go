package mcpserver

import (
	"context"

	"github.com/mark3labs/mcp-go/mcp"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Backend is the part of one supervised backend connection the aggregated
// server needs. *backend.Backend satisfies it.
type Backend interface {
	Name() string
	// Prefix is what the server's tool and prompt names are exposed with.
	Prefix() string
	State() mcpmeshv1.BackendState
	Ready() bool
	Tools() []mcp.Tool
	Prompts() []mcp.Prompt
	Resources() []mcp.Resource
	ResourceTemplates() []mcp.ResourceTemplate
	CallTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error)
	GetPrompt(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error)
	ReadResource(ctx context.Context, req mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error)
	// UpstreamPaginates reports whether the backend paginated its list of
	// method (mcp.MethodToolsList, …) when the cached copy was fetched.
	UpstreamPaginates(method mcp.MCPMethod) bool
	// ListPage makes one upstream list call of method with the backend's own
	// cursor ("" for the first page) and returns the page's item keys in
	// upstream order (names, URIs, URI templates) and the upstream nextCursor.
	ListPage(ctx context.Context, method mcp.MCPMethod, cursor string) (keys []string, next string, err error)
}

// Source is where the aggregated server finds its backends.
type Source interface {
	// List returns every configured backend, sorted by name.
	List() []Backend
	// Get returns the backend with the given name.
	Get(name string) (Backend, bool)
}

// Lister is a typed source, such as *backend.Manager, whose methods return a
// concrete backend type; Adapt turns it into a Source.
type Lister[B Backend] interface {
	List() []B
	Get(name string) (B, bool)
}

// Adapt wraps a typed lister as a Source. It exists because Go slices are not
// covariant: a []*backend.Backend is not a []Backend.
func Adapt[B Backend](l Lister[B]) Source { return adapter[B]{l} }

type adapter[B Backend] struct{ l Lister[B] }

func (a adapter[B]) List() []Backend {
	list := a.l.List()
	out := make([]Backend, len(list))
	for i, b := range list {
		out[i] = b
	}
	return out
}

func (a adapter[B]) Get(name string) (Backend, bool) {
	b, ok := a.l.Get(name)
	if !ok {
		return nil, false
	}
	return b, true
}
