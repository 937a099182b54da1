package mcpserver

import (
	"context"
	"fmt"
	"github.com/mcpmesh/mcpmesh/internal/states"

	"github.com/mark3labs/mcp-go/mcp"
)

// callTool relays a tools/call to the owning backend. Failures are tool
// results with isError set, so the model sees why the call failed.
func (s *Server) callTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	rt, ok := s.routes.Load().tools[req.Params.Name]
	if !ok {
		return mcp.NewToolResultError(fmt.Sprintf("unknown tool %q", req.Params.Name)), nil
	}
	srv, name := rt.server, rt.name
	b, ok := s.src.Get(srv)
	if !ok {
		return mcp.NewToolResultError(fmt.Sprintf("unknown tool %q: server %q is not configured", req.Params.Name, srv)), nil
	}
	up := mcp.CallToolRequest{Header: nil}
	up.Params.Name = name
	up.Params.Arguments = req.Params.Arguments
	// RawArguments wins when the request is encoded again upstream, so
	// integers above 2^53 and key order survive the hop.
	up.Params.RawArguments = req.Params.RawArguments
	up.Params.Meta = forwardMeta(req.Params.Meta)
	// ctx is the client's request context: a client that cancels or goes
	// away cancels the upstream call with it.
	res, err := b.CallTool(ctx, up)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("call tool %q on server %q: %w", name, srv, err)
		}
		s.log.Debug("tool call failed", "server", srv, "tool", name, "err", err)
		return mcp.NewToolResultError(fmt.Sprintf("call tool %q on server %q (state %s): %v", name, srv, states.Backend(b.State()), err)), nil
	}
	if res == nil {
		return mcp.NewToolResultError(fmt.Sprintf("call tool %q on server %q: backend returned no result", name, srv)), nil
	}
	return res, nil
}

// getPrompt relays a prompts/get to the owning backend.
func (s *Server) getPrompt(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	rt, ok := s.routes.Load().prompts[req.Params.Name]
	if !ok {
		return nil, fmt.Errorf("unknown prompt %q", req.Params.Name)
	}
	srv, name := rt.server, rt.name
	b, ok := s.src.Get(srv)
	if !ok {
		return nil, fmt.Errorf("unknown prompt %q: server %q is not configured", req.Params.Name, srv)
	}
	var up mcp.GetPromptRequest
	up.Params.Name = name
	up.Params.Arguments = req.Params.Arguments
	up.Params.Meta = forwardMeta(req.Params.Meta)
	res, err := b.GetPrompt(ctx, up)
	if err != nil {
		return nil, fmt.Errorf("get prompt %q on server %q (state %s): %w", name, srv, states.Backend(b.State()), err)
	}
	if res == nil {
		return nil, fmt.Errorf("get prompt %q on server %q: backend returned no result", name, srv)
	}
	return res, nil
}

// route finds the backend and upstream URI of an exposed resource URI: an
// exact resource first, then a mcpmesh:// URI, then the templates of servers
// in name order (so a contested template goes to the server that kept it).
func (s *Server) route(uri string) (resourceRoute, bool) {
	rt := s.routes.Load()
	if r, ok := rt.resources[uri]; ok {
		return r, true
	}
	if srv, orig, ok := parseMeshURI(uri); ok {
		return resourceRoute{server: srv, uri: orig}, true
	}
	for _, t := range rt.templates {
		if t.template.Regexp().MatchString(uri) {
			return resourceRoute{server: t.server, uri: uri}, true
		}
	}
	return resourceRoute{}, false
}

// readResource relays a resources/read to the backend that owns the URI.
func (s *Server) readResource(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	exposed := req.Params.URI
	r, ok := s.route(exposed)
	if !ok {
		return nil, fmt.Errorf("read resource %q: no backend serves it", exposed)
	}
	b, ok := s.src.Get(r.server)
	if !ok {
		return nil, fmt.Errorf("read resource %q: server %q is not configured", exposed, r.server)
	}
	var up mcp.ReadResourceRequest
	up.Params.URI = r.uri
	up.Params.Meta = forwardMeta(req.Params.Meta)
	res, err := b.ReadResource(ctx, up)
	if err != nil {
		return nil, fmt.Errorf("read resource %q on server %q (state %s): %w", r.uri, r.server, states.Backend(b.State()), err)
	}
	if res == nil {
		return nil, fmt.Errorf("read resource %q on server %q: backend returned no result", r.uri, r.server)
	}
	if exposed == r.uri {
		return res.Contents, nil
	}
	// The client asked for the mcpmesh:// name; answer in the same terms.
	out := make([]mcp.ResourceContents, len(res.Contents))
	for i, c := range res.Contents {
		switch c := c.(type) {
		case mcp.TextResourceContents:
			if c.URI == r.uri {
				c.URI = exposed
			}
			out[i] = c
		case mcp.BlobResourceContents:
			if c.URI == r.uri {
				c.URI = exposed
			}
			out[i] = c
		default:
			out[i] = c
		}
	}
	return out, nil
}

// forwardMeta keeps the parts of a client's _meta a backend may use: the
// progress token and trace context. The rest (notably a 2026-07-28 client's
// protocol metadata) would make a backend pinned to an older revision answer
// 400.
func forwardMeta(m *mcp.Meta) *mcp.Meta {
	if m == nil {
		return nil
	}
	out := &mcp.Meta{ProgressToken: m.ProgressToken}
	for _, k := range []string{"traceparent", "tracestate", "baggage"} {
		if v, ok := m.AdditionalFields[k]; ok {
			if out.AdditionalFields == nil {
				out.AdditionalFields = map[string]any{}
			}
			out.AdditionalFields[k] = v
		}
	}
	if out.ProgressToken == nil && out.AdditionalFields == nil {
		return nil
	}
	return out
}
