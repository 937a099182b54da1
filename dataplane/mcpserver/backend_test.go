package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
)

// liveBackend adapts a real mcp-go server, reached through a real in-process
// mcp-go client, to the Backend interface. It caches the lists like the real
// backend package does; reload fetches them again.
type liveBackend struct {
	name string
	// prefix, when set, replaces the default "<name>__".
	prefix *string
	srv    *server.MCPServer
	cli    *client.Client

	mu         sync.Mutex
	ready      bool
	tools      []mcp.Tool
	extraTools []mcp.Tool // definitions a real mcp-go server refuses to hold
	prompts    []mcp.Prompt
	resources  []mcp.Resource
	templates  []mcp.ResourceTemplate
	paged      map[mcp.MCPMethod]bool // lists whose first page had a nextCursor
	// pageCalls and pageErrs count ListPage calls and their failures.
	pageCalls, pageErrs atomic.Int64
}

func newLiveBackend(t *testing.T, name string, srv *server.MCPServer) *liveBackend {
	t.Helper()
	cli, err := client.NewInProcessClient(srv)
	if err != nil {
		t.Fatalf("in-process client for %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx := context.Background()
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start client for %s: %v", name, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-test", Version: "0"}
	if _, err := cli.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", name, err)
	}
	b := &liveBackend{name: name, srv: srv, cli: cli, ready: true}
	b.reload(t)
	return b
}

// reload fetches the backend's lists again, as the backend package does
// after a list_changed from upstream.
func (b *liveBackend) reload(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	tools, err := b.cli.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("list tools of %s: %v", b.name, err)
	}
	var prompts []mcp.Prompt
	if p, err := b.cli.ListPrompts(ctx, mcp.ListPromptsRequest{}); err == nil {
		prompts = p.Prompts
	}
	var resources []mcp.Resource
	if r, err := b.cli.ListResources(ctx, mcp.ListResourcesRequest{}); err == nil {
		resources = r.Resources
	}
	var templates []mcp.ResourceTemplate
	if r, err := b.cli.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{}); err == nil {
		templates = r.ResourceTemplates
	}
	// Like the backend package, record which lists the backend paginates.
	paged := map[mcp.MCPMethod]bool{}
	for _, m := range []mcp.MCPMethod{mcp.MethodToolsList, mcp.MethodPromptsList, mcp.MethodResourcesList, mcp.MethodResourcesTemplatesList} {
		if _, next, err := listPage(ctx, b.cli, m, ""); err == nil && next != "" {
			paged[m] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tools, b.prompts, b.resources, b.templates = tools.Tools, prompts, resources, templates
	b.paged = paged
}

func (b *liveBackend) UpstreamPaginates(method mcp.MCPMethod) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready && b.paged[method]
}

func (b *liveBackend) ListPage(ctx context.Context, method mcp.MCPMethod, cursor string) ([]string, string, error) {
	if !b.Ready() {
		return nil, "", errNotConnected
	}
	b.pageCalls.Add(1)
	ctx, cancel := upstreamCtx(ctx)
	defer cancel()
	keys, next, err := listPage(ctx, b.cli, method, mcp.Cursor(cursor))
	if err != nil {
		b.pageErrs.Add(1)
	}
	return keys, next, err
}

// listPage makes one upstream list call, as backend.Backend.ListPage does.
func listPage(ctx context.Context, cli *client.Client, method mcp.MCPMethod, cur mcp.Cursor) ([]string, string, error) {
	var keys []string
	var next mcp.Cursor
	switch method {
	case mcp.MethodToolsList:
		var r mcp.ListToolsRequest
		r.Params.Cursor = cur
		res, err := cli.ListToolsByPage(ctx, r)
		if err != nil {
			return nil, "", err
		}
		for _, x := range res.Tools {
			keys = append(keys, x.Name)
		}
		next = res.NextCursor
	case mcp.MethodPromptsList:
		var r mcp.ListPromptsRequest
		r.Params.Cursor = cur
		res, err := cli.ListPromptsByPage(ctx, r)
		if err != nil {
			return nil, "", err
		}
		for _, x := range res.Prompts {
			keys = append(keys, x.Name)
		}
		next = res.NextCursor
	case mcp.MethodResourcesList:
		var r mcp.ListResourcesRequest
		r.Params.Cursor = cur
		res, err := cli.ListResourcesByPage(ctx, r)
		if err != nil {
			return nil, "", err
		}
		for _, x := range res.Resources {
			keys = append(keys, x.URI)
		}
		next = res.NextCursor
	case mcp.MethodResourcesTemplatesList:
		var r mcp.ListResourceTemplatesRequest
		r.Params.Cursor = cur
		res, err := cli.ListResourceTemplatesByPage(ctx, r)
		if err != nil {
			return nil, "", err
		}
		for _, x := range res.ResourceTemplates {
			keys = append(keys, x.URITemplate.Raw())
		}
		next = res.NextCursor
	default:
		return nil, "", fmt.Errorf("unknown list method %q", method)
	}
	return keys, string(next), nil
}

func (b *liveBackend) setReady(ready bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ready = ready
}

func (b *liveBackend) Name() string { return b.name }

func (b *liveBackend) Prefix() string {
	if b.prefix != nil {
		return *b.prefix
	}
	return names.DefaultPrefix(b.name)
}

func (b *liveBackend) State() mcpmeshv1.BackendState {
	if b.Ready() {
		return mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
	}
	return mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
}

func (b *liveBackend) Ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready
}

func (b *liveBackend) Tools() []mcp.Tool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(slices.Clone(b.tools), b.extraTools...)
}

func (b *liveBackend) Prompts() []mcp.Prompt {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.prompts)
}

func (b *liveBackend) Resources() []mcp.Resource {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.resources)
}

func (b *liveBackend) ResourceTemplates() []mcp.ResourceTemplate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.templates)
}

var errNotConnected = errors.New("backend not connected")

// upstreamCtx keeps the client's cancellation and deadline but drops its
// values. The in-process transport hands ctx straight to the backend's
// HandleMessage, which would otherwise read the gateway's own downstream HTTP
// headers from it as if they were the backend request's; a real transport
// sends its own headers over the wire.
func upstreamCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	up, cancel := context.WithCancel(context.Background())
	if d, ok := ctx.Deadline(); ok {
		var cancelDeadline context.CancelFunc
		up, cancelDeadline = context.WithDeadline(up, d)
		prev := cancel
		cancel = func() { cancelDeadline(); prev() }
	}
	stop := context.AfterFunc(ctx, cancel)
	return up, func() { stop(); cancel() }
}

func (b *liveBackend) CallTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	if !b.Ready() {
		return nil, errNotConnected
	}
	ctx, cancel := upstreamCtx(ctx)
	defer cancel()
	return b.cli.CallTool(ctx, req)
}

func (b *liveBackend) GetPrompt(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	if !b.Ready() {
		return nil, errNotConnected
	}
	ctx, cancel := upstreamCtx(ctx)
	defer cancel()
	return b.cli.GetPrompt(ctx, req)
}

func (b *liveBackend) ReadResource(ctx context.Context, req mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	if !b.Ready() {
		return nil, errNotConnected
	}
	ctx, cancel := upstreamCtx(ctx)
	defer cancel()
	return b.cli.ReadResource(ctx, req)
}

// liveSource is a mutable set of live backends.
type liveSource struct {
	mu       sync.Mutex
	backends map[string]*liveBackend
}

func newLiveSource(bs ...*liveBackend) *liveSource {
	s := &liveSource{backends: map[string]*liveBackend{}}
	for _, b := range bs {
		s.backends[b.name] = b
	}
	return s
}

func (s *liveSource) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.backends, name)
}

func (s *liveSource) add(b *liveBackend) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backends[b.name] = b
}

// List and Get return the concrete type, like *backend.Manager; the tests go
// through Adapt as main.go does.
func (s *liveSource) List() []*liveBackend {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*liveBackend, 0, len(s.backends))
	for _, b := range s.backends {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *liveBackend) int { return strings.Compare(a.name, b.name) })
	return out
}

func (s *liveSource) Get(name string) (*liveBackend, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.backends[name]
	return b, ok
}

// newAlpha is a backend with an echo tool (returns its raw arguments), a tool
// that blocks until cancelled, a prompt, resources and a template.
func newAlpha(t *testing.T, name string, blocked chan<- struct{}, cancelled chan<- error) *liveBackend {
	t.Helper()
	s := server.NewMCPServer(name, "1")
	s.AddTool(mcp.NewTool("echo", mcp.WithNumber("n")), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(name + ":" + string(req.Params.RawArguments)), nil
	})
	s.AddTool(mcp.NewTool("block"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if blocked != nil {
			blocked <- struct{}{}
		}
		<-ctx.Done()
		if cancelled != nil {
			cancelled <- ctx.Err()
		}
		return nil, ctx.Err()
	})
	s.AddPrompt(mcp.NewPrompt("greet", mcp.WithArgument("who")), func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return mcp.NewGetPromptResult("greeting", []mcp.PromptMessage{
			mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent(name+" greets "+req.Params.Arguments["who"])),
		}), nil
	})
	for _, uri := range []string{"file:///shared.txt", name + "://only"} {
		s.AddResource(mcp.NewResource(uri, name+" "+uri), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: name + " says " + req.Params.URI}}, nil
		})
	}
	s.AddResourceTemplate(mcp.NewResourceTemplate("file:///docs/{name}", name+" docs"), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: name + " doc " + req.Params.URI}}, nil
	})
	return newLiveBackend(t, name, s)
}

// newBig is a backend with n tools.
func newBig(t *testing.T, name string, n int) *liveBackend {
	t.Helper()
	s := server.NewMCPServer(name, "1")
	tools := make([]server.ServerTool, n)
	for i := range tools {
		tools[i] = server.ServerTool{
			Tool: mcp.NewTool(fmt.Sprintf("tool-%04d", i), mcp.WithDescription("generated")),
			Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText("ok"), nil
			},
		}
	}
	s.AddTools(tools...)
	return newLiveBackend(t, name, s)
}
