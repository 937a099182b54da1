package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// Protocol revisions the router negotiates in initialize, oldest first. The
// 2026-07-28 stateless revision has no initialize: see modern.go.
var protocols = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}

// LatestProtocol is offered to clients asking for a revision we do not speak.
const LatestProtocol = "2025-11-25"

// Negotiate picks the revision of a client's initialize: its own when we
// speak it, else our latest (the client then decides whether to go on).
func Negotiate(requested string) string {
	for _, p := range protocols {
		if p == requested {
			return p
		}
	}
	return LatestProtocol
}

// capabilities the gateway announces: it relays every feature, so it offers
// them all; a backend that lacks one answers the request with its own error.
const capabilities = `{"tools":{"listChanged":true},"prompts":{"listChanged":true},` +
	`"resources":{"subscribe":true,"listChanged":true},"logging":{},"completions":{},` +
	`"tasks":{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}}`

// Initialize answers a client's initialize.
func (r *Router) Initialize(ctx context.Context, s *front.Session, params json.RawMessage) (json.RawMessage, []byte, error) {
	start := time.Now()
	req := &jsonrpc.Message{Method: "initialize", Params: params}
	var span trace.Span
	if r.tracer != nil {
		ctx, span = r.startServer(ctx, s, req, routed{})
	}
	res, upstream, err := r.initialize(ctx, s, params)
	if span != nil {
		endSpan(span, req.Method, res, err)
	}
	r.done(ctx, s, req, routed{}, start, res, err)
	return res, upstream, err
}

func (r *Router) initialize(ctx context.Context, s *front.Session, params json.RawMessage) (json.RawMessage, []byte, error) {
	requested, _, err := jsonrpc.LookupString(params, "protocolVersion")
	if err != nil {
		return nil, nil, errorf(jsonrpc.CodeInvalidParams, "initialize: params: %v", err)
	}
	v := Negotiate(requested)
	res := fmt.Sprintf(`{"protocolVersion":%s,"capabilities":%s,"serverInfo":{"name":"mcpmesh","version":%s}}`,
		quote(v), capabilities, quote(version.Version))
	// The upstream sessions are opened with the capabilities and client
	// info the front read from params.
	s.Protocol = v
	upstream := r.openUpstreams(ctx, s)
	return json.RawMessage(res), upstream, nil
}

// Handle answers one client request.
func (r *Router) Handle(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	start := time.Now()
	rt := r.routeOf(s, req)
	var span trace.Span
	if r.tracer != nil {
		ctx, span = r.startServer(ctx, s, req, rt)
	}
	res, err := r.dispatch(ctx, s, req, out)
	if span != nil {
		endSpan(span, req.Method, res, err)
	}
	r.done(ctx, s, req, rt, start, res, err)
	return res, err
}

func (r *Router) handle(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	if res, ok, err := r.atHome(ctx, s, req, out); ok {
		return res, err // a shared server's state of this session lives there (peers.go)
	}
	if k, ok := catalog.KindOfMethod(req.Method); ok {
		return r.list(ctx, s, k, req.Params)
	}
	switch req.Method {
	case "ping":
		return json.RawMessage(`{}`), nil
	case "tools/call":
		return r.callTool(ctx, s, req, out)
	case "prompts/get":
		return r.getPrompt(ctx, s, req, out)
	case "resources/read":
		return r.readResource(ctx, s, req, out)
	case "resources/subscribe", "resources/unsubscribe":
		return r.subscribe(ctx, s, req)
	case "completion/complete":
		return r.complete(ctx, s, req, out)
	case "logging/setLevel":
		return r.setLevel(ctx, s, req)
	case "tasks/get", "tasks/result", "tasks/cancel":
		return r.task(ctx, s, req, out)
	case "tasks/list":
		return r.listTasks(ctx, s, req)
	case "initialize":
		return nil, errorf(jsonrpc.CodeInvalidRequest, "initialize: the session is initialized already")
	case "server/discover":
		return nil, errorf(jsonrpc.CodeMethodNotFound,
			"server/discover is part of MCP 2026-07-28: send it with the MCP-Protocol-Version header and _meta of that revision (this request is of a %s session)", LatestProtocol)
	}
	return nil, errorf(jsonrpc.CodeMethodNotFound, "method %q not found", req.Method)
}

func isErrorResult(res json.RawMessage) bool {
	s, e, ok, err := jsonrpc.Lookup(res, "isError")
	return err == nil && ok && string(res[s:e]) == "true"
}

func (r *Router) list(ctx context.Context, s *front.Session, k catalog.Kind, params json.RawMessage) (json.RawMessage, error) {
	cfg := r.lists.Load()
	var cursor string
	if params != nil {
		c, _, err := jsonrpc.LookupString(params, "cursor")
		if err != nil {
			return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", k.Desc().Method, err)
		}
		cursor = c
	}
	return r.cat.Load().List(ctx, k, catalog.ListRequest{
		Cursor:   cursor,
		Paginate: cfg.paginate || s.Paginate,
		PageSize: cfg.pageSize,
		Revision: cfg.revision,
		Key:      cfg.key,
		OldKeys:  r.oldCursorKeys(),
		Allow:    s.Allow,
	}, fetcher{r})
}

// fetcher lets the catalog's walk read upstream pages.
type fetcher struct{ r *Router }

func (f fetcher) FetchPage(ctx context.Context, server string, k catalog.Kind, cursor string) (catalog.Page, error) {
	b, ok := f.r.servers.Get(server)
	if !ok {
		return catalog.Page{}, fmt.Errorf("server %q is not configured", server)
	}
	return b.FetchPage(ctx, k, cursor)
}

// target is where a routed request goes.
type target struct {
	srv    Server
	route  catalog.Route
	params json.RawMessage // rewritten for the backend
}

func (r *Router) server(name string) (Server, error) {
	b, ok := r.servers.Get(name)
	if !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "server %q is not configured", name)
	}
	return b, nil
}

// unlisted finds the server a name belongs to by its prefix among the
// servers that need OAuth authorization (and so list nothing). Servers with
// an empty prefix cannot be told apart this way and are left out.
func (r *Router) unlisted(name string) (catalog.Route, bool) {
	for _, s := range r.servers.List() {
		if s.State() != mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION {
			continue
		}
		p, ok := s.(interface{ Prefix() string })
		if !ok || p.Prefix() == "" {
			continue
		}
		if rest, found := strings.CutPrefix(name, p.Prefix()); found && rest != "" {
			return catalog.Route{Server: s.Name(), Name: rest}, true
		}
	}
	return catalog.Route{}, false
}

// byName routes a request whose params name a tool or prompt.
// allow, when not nil, is the client's Session.Allow: a server it refuses
// is as if it were not there.
func (r *Router) byName(allow func(string) bool, method string, params json.RawMessage, find func(string) (catalog.Route, bool), what string) (target, error) {
	name, ok, err := jsonrpc.LookupString(params, "name")
	if err != nil || !ok {
		return target{}, errorf(jsonrpc.CodeInvalidParams, "%s: params need a string \"name\"", method)
	}
	rt, ok := find(name)
	if !ok {
		// A server waiting for OAuth authorization lists nothing; a call
		// to one of its names still goes to it, for its clear error.
		rt, ok = r.unlisted(name)
	}
	if !ok || (allow != nil && !allow(rt.Server)) {
		return target{}, errorf(jsonrpc.CodeInvalidParams, "unknown %s %q", what, name)
	}
	b, err := r.server(rt.Server)
	if err != nil {
		return target{}, err
	}
	p := params
	if rt.Name != name {
		if p, err = jsonrpc.Set(params, "name", quote(rt.Name)); err != nil {
			return target{}, errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", method, err)
		}
	}
	return target{srv: b, route: rt, params: p}, nil
}

// byURI routes a request whose params carry a resource URI.
func (r *Router) byURI(allow func(string) bool, method string, params json.RawMessage) (target, string, error) {
	uri, ok, err := jsonrpc.LookupString(params, "uri")
	if err != nil || !ok {
		return target{}, "", errorf(jsonrpc.CodeInvalidParams, "%s: params need a string \"uri\"", method)
	}
	rt, ok := r.cat.Load().Resource(uri)
	if ok && allow != nil && !allow(rt.Server) {
		return target{}, uri, &jsonrpc.Error{Code: jsonrpc.CodeResourceNotFound, Message: fmt.Sprintf("resource %q not found: no backend lists it or a template matching it", uri)}
	}
	if !ok {
		// A URI no list names (a resource a server makes up on demand)
		// can only go to the one server that offers resources, if there
		// is just one; otherwise nobody can say whose it is.
		srv, found := r.onlyResourceServer()
		if !found || (allow != nil && !allow(srv)) {
			return target{}, uri, &jsonrpc.Error{Code: jsonrpc.CodeResourceNotFound, Message: fmt.Sprintf("resource %q not found: no backend lists it or a template matching it", uri)}
		}
		rt = catalog.Route{Server: srv, Name: uri}
	}
	b, err := r.server(rt.Server)
	if err != nil {
		return target{}, uri, err
	}
	p := params
	if rt.Name != uri {
		if p, err = jsonrpc.Set(params, "uri", quote(rt.Name)); err != nil {
			return target{}, uri, errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", method, err)
		}
	}
	return target{srv: b, route: rt, params: p}, uri, nil
}

func (r *Router) callTool(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	cat := r.cat.Load()
	t, err := r.byName(s.Allow, req.Method, req.Params, cat.Tool, "tool")
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) && je.Code == jsonrpc.CodeInvalidParams && t.srv == nil {
			// An unknown tool is a tool error, so the model reads why.
			return toolError(je.Message), nil
		}
		return nil, err
	}
	res, err := r.forward(ctx, s, req, out, t, backend.Request{
		Method: req.Method, Retry: t.srv.ToolRetryable(t.route.Name), What: "call tool", Name: t.route.Name,
	})
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) || ctx.Err() != nil {
			return nil, err
		}
		r.log.Debug("tool call failed", "server", t.route.Server, "tool", t.route.Name, "err", err)
		return toolError(fmt.Sprintf("call tool %q on server %q (state %s): %v", t.route.Name, t.route.Server, states.Backend(t.srv.State()), err)), nil
	}
	if _, _, ok, _ := jsonrpc.Lookup(req.Params, "task"); ok {
		// A task-augmented call answers with the task it created.
		res = r.rewriteTaskIDs(t.route.Server, res)
	}
	return res, nil
}

// toolError is a tools/call result that reports a failure to the model.
func toolError(msg string) json.RawMessage {
	return json.RawMessage(`{"content":[{"type":"text","text":` + string(quote(msg)) + `}],"isError":true}`)
}

func (r *Router) getPrompt(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	t, err := r.byName(s.Allow, req.Method, req.Params, r.cat.Load().Prompt, "prompt")
	if err != nil {
		return nil, err
	}
	res, err := r.forward(ctx, s, req, out, t, backend.Request{Method: req.Method, Retry: true, What: "get prompt", Name: t.route.Name})
	return res, upstreamErr(err, "get prompt %q on server %q (state %s)", t)
}

func (r *Router) readResource(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	t, exposed, err := r.byURI(s.Allow, req.Method, req.Params)
	if err != nil {
		return nil, err
	}
	res, err := r.forward(ctx, s, req, out, t, backend.Request{Method: req.Method, Retry: true, What: "read resource", Name: t.route.Name})
	if err != nil {
		return nil, upstreamErr(err, "read resource %q on server %q (state %s)", t)
	}
	if exposed != t.route.Name {
		res = catalog.RewriteReadResult(res, t.route.Name, exposed)
	}
	return res, nil
}

// complete routes completion/complete by its ref: a prompt name or a
// resource (template) URI.
func (r *Router) complete(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	rs, re, ok, err := jsonrpc.Lookup(req.Params, "ref")
	if err != nil || !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "completion/complete: params need a \"ref\" object")
	}
	ref := req.Params[rs:re]
	typ, _, _ := jsonrpc.LookupString(ref, "type")
	cat := r.cat.Load()
	var (
		key   string
		route catalog.Route
		found bool
	)
	switch typ {
	case "ref/prompt":
		key = "name"
		name, _, _ := jsonrpc.LookupString(ref, "name")
		route, found = cat.Prompt(name)
		if !found {
			return nil, errorf(jsonrpc.CodeInvalidParams, "completion/complete: unknown prompt %q", name)
		}
	case "ref/resource":
		key = "uri"
		uri, _, _ := jsonrpc.LookupString(ref, "uri")
		route, found = cat.Template(uri)
		if !found {
			route, found = cat.Resource(uri)
		}
		if !found {
			return nil, errorf(jsonrpc.CodeInvalidParams, "completion/complete: unknown resource template %q", uri)
		}
	default:
		return nil, errorf(jsonrpc.CodeInvalidParams, "completion/complete: ref.type must be \"ref/prompt\" or \"ref/resource\", not %q", typ)
	}
	if s.Allow != nil && !s.Allow(route.Server) {
		return nil, errorf(jsonrpc.CodeInvalidParams, "completion/complete: unknown %s", typ[len("ref/"):])
	}
	b, err := r.server(route.Server)
	if err != nil {
		return nil, err
	}
	newRef, err := jsonrpc.Set(ref, key, quote(route.Name))
	if err != nil {
		return nil, errorf(jsonrpc.CodeInvalidParams, "completion/complete: ref: %v", err)
	}
	t := target{srv: b, route: route, params: jsonrpc.Splice(req.Params, rs, re, newRef)}
	res, err := r.forward(ctx, s, req, out, t, backend.Request{Method: req.Method, Retry: true, What: "complete"})
	return res, upstreamErr(err, "complete %q on server %q (state %s)", t)
}

// upstreamErr names the backend in a transport failure; a JSON-RPC error
// of the backend reaches the client as it is.
func upstreamErr(err error, format string, t target) error {
	if err == nil {
		return nil
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		return je
	}
	msg := fmt.Sprintf(format, t.route.Name, t.route.Server, states.Backend(t.srv.State()))
	return &jsonrpc.Error{Code: jsonrpc.CodeUnavailable, Message: msg + ": " + err.Error()}
}

// forward sends a routed request upstream as the client's call: the client
// can cancel it, its progress notifications and the backend's requests
// during it find their way back to this client.
func (r *Router) forward(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream, t target, br backend.Request) (json.RawMessage, error) {
	c, ctx, done := r.relay.begin(ctx, s, req.ID, out, t.route.Server)
	defer done()
	params, err := r.relay.rewriteProgress(c, t.params)
	if err != nil {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params._meta: %v", req.Method, err)
	}
	br.Params = params
	br.Client = r.clientSession(s, t.srv)
	br.Caller = r.callerOf(s)
	var res json.RawMessage
	if r.tracer != nil {
		res, err = r.tracedRequest(ctx, req.Method, t, br)
	} else {
		res, err = t.srv.Request(ctx, br)
	}
	if err != nil {
		return nil, err
	}
	return r.bridgeInput(ctx, s, t, br, res)
}

// setLevel records the client's logging level (notifications/message are
// filtered by it) and asks every backend that logs for the most verbose
// level any client of this replica wants.
func (r *Router) setLevel(ctx context.Context, s *front.Session, req *jsonrpc.Message) (json.RawMessage, error) {
	level, ok, err := jsonrpc.LookupString(req.Params, "level")
	if err != nil || !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "logging/setLevel: params need a string \"level\"")
	}
	rank, ok := levelRank[level]
	if !ok {
		return nil, errorf(jsonrpc.CodeInvalidParams, "logging/setLevel: unknown level %q (want one of debug, info, notice, warning, error, critical, alert, emergency)", level)
	}
	upstream := r.relay.setLevel(s, rank)
	params := json.RawMessage(`{"level":` + string(quote(levelNames[upstream])) + `}`)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	own := json.RawMessage(`{"level":` + string(quote(level)) + `}`)
	for _, b := range r.servers.List() {
		if !hasCapability(b.Capabilities(), "logging") {
			continue
		}
		br := backend.Request{Method: req.Method, Params: params, Retry: true, What: "set log level"}
		if cs := r.clientSession(s, b); cs != nil {
			// The client's own upstream session takes the client's own level.
			br.Params, br.Client = own, cs
		}
		if _, err := b.Request(ctx, br); err != nil {
			r.log.Debug("set log level upstream", "server", b.Name(), "err", err)
		}
	}
	return json.RawMessage(`{}`), nil
}

func hasCapability(caps json.RawMessage, name string) bool {
	if caps == nil {
		return false
	}
	_, _, ok, err := jsonrpc.Lookup(caps, name)
	return err == nil && ok
}

// subscribe forwards resources/subscribe and unsubscribe. The upstream
// session is shared by this replica's clients, so it is subscribed while
// any of them is.
func (r *Router) subscribe(ctx context.Context, s *front.Session, req *jsonrpc.Message) (json.RawMessage, error) {
	t, exposed, err := r.byURI(s.Allow, req.Method, req.Params)
	if err != nil {
		return nil, err
	}
	on := req.Method == "resources/subscribe"
	if cs := r.clientSession(s, t.srv); cs != nil {
		// The client's own upstream session: its updates come back to it alone.
		_, err = t.srv.Request(ctx, backend.Request{Method: req.Method, Params: t.params, Retry: true, What: req.Method, Client: cs})
		if err != nil {
			return nil, upstreamErr(err, req.Method+" %q on server %q (state %s)", t)
		}
		return json.RawMessage(`{}`), nil
	}
	if !r.relay.subscription(s, exposed, t.route, on) {
		return json.RawMessage(`{}`), nil // the upstream session is subscribed already (or still)
	}
	_, err = t.srv.Request(ctx, backend.Request{Method: req.Method, Params: t.params, Retry: true, What: req.Method})
	if err != nil && on {
		r.relay.subscription(s, exposed, t.route, false)
	}
	if err != nil {
		return nil, upstreamErr(err, req.Method+" %q on server %q (state %s)", t)
	}
	return json.RawMessage(`{}`), nil
}

func backendUnsubscribe(params json.RawMessage) backend.Request {
	return backend.Request{Method: "resources/unsubscribe", Params: params, Retry: true, What: "resources/unsubscribe"}
}

// onlyResourceServer is the one ready server that announced resources, if
// exactly one did.
func (r *Router) onlyResourceServer() (string, bool) {
	name := ""
	for _, b := range r.servers.List() {
		if hasCapability(b.Capabilities(), "resources") {
			if name != "" {
				return "", false
			}
			name = b.Name()
		}
	}
	return name, name != ""
}

// oldCursorKeys are the cursor keys of the previous cluster secrets still
// within their grace, so that a rotation does not break walks under way.
func (r *Router) oldCursorKeys() [][]byte {
	prev := r.keys.Accepted(keys.CursorLabel)
	if len(prev) == 0 {
		return nil
	}
	out := make([][]byte, len(prev))
	for i, p := range prev {
		out[i] = p.Bytes
	}
	return out
}
