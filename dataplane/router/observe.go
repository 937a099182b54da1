package router

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
	"github.com/mcpmesh/mcpmesh/internal/tracing"
)

// Observation of a client request: Options.Observe (metrics), the access
// log (one line per request) and, when a tracer is set, a server span per
// request and a client span per upstream call, with the attributes of the
// OpenTelemetry MCP semantic conventions. Everything here is on the request
// path: attributes are built with slog.Attr and attribute.KeyValue, never
// with fmt or maps, and nothing of tracing runs without a tracer.

// Outcomes of a request, as metrics and the access log spell them.
const (
	OutcomeOK        = "ok"
	OutcomeToolError = "tool_error"
	OutcomeError     = "error"
)

// maxLoggedTarget bounds a tool name, prompt name or URI in a log line or
// span (clients may send any); maxLoggedID bounds a request id.
const (
	maxLoggedTarget = 256
	maxLoggedID     = 64
	maxLoggedError  = 512
)

// routed is where a request goes, as far as observing it needs: the server
// ("" when the gateway answers it itself or the name is unknown) and the
// tool or prompt name or the URI the client asked for.
type routed struct {
	server string
	target string
	kind   targetKind
}

type targetKind uint8

const (
	targetNone targetKind = iota
	targetTool
	targetPrompt
	targetURI
)

// routeOf reads the target of a request the way the handlers route it (a
// second lookup of one member, far cheaper than the forwarding), without
// its errors: a request that does not route has no server.
func (r *Router) routeOf(s *front.Session, req *jsonrpc.Message) routed {
	var rt routed
	var key string
	switch req.Method {
	case "tools/call":
		rt.kind, key = targetTool, "name"
	case "prompts/get":
		rt.kind, key = targetPrompt, "name"
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		rt.kind, key = targetURI, "uri"
	default:
		return rt
	}
	v, ok, err := jsonrpc.LookupString(req.Params, key)
	if err != nil || !ok {
		return routed{}
	}
	rt.target = v
	cat := r.cat.Load()
	var route catalog.Route
	switch rt.kind {
	case targetTool:
		route, ok = cat.Tool(v)
	case targetPrompt:
		route, ok = cat.Prompt(v)
	default:
		route, ok = cat.Resource(v)
		if !ok {
			route.Server, ok = r.onlyResourceServer()
		}
	}
	if ok && (s.Allow == nil || s.Allow(route.Server)) {
		rt.server = route.Server
	}
	return rt
}

// outcome says how a request ended and its JSON-RPC error code (0 unless
// OutcomeError).
func outcome(method string, res json.RawMessage, err error) (string, int) {
	switch {
	case err != nil:
		return OutcomeError, jsonrpc.AsError(err).Code
	case method == "tools/call" && isErrorResult(res):
		return OutcomeToolError, 0
	}
	return OutcomeOK, 0
}

// done observes one answered request. err is the request's error as the
// client gets it (nil on success and on a tool error).
func (r *Router) done(ctx context.Context, s *front.Session, req *jsonrpc.Message, rt routed, start time.Time, res json.RawMessage, err error) {
	d := time.Since(start)
	status, code := outcome(req.Method, res, err)
	r.observe(req.Method, rt.server, status, d)
	if r.access == nil {
		return
	}
	level := slog.LevelInfo
	if code == jsonrpc.CodeUnavailable || code == jsonrpc.CodeInternalError {
		level = slog.LevelWarn // the gateway or a backend failed, not the client
	}
	if !r.access.Handler().Enabled(ctx, level) {
		return
	}
	// 12 attributes at most: one array, no growth.
	var buf [12]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", req.Method),
		slog.String("server", rt.server),
		slog.Duration("duration", d),
		slog.String("outcome", status),
		slog.String("id", idText(req.ID)),
		slog.String("session", s.Ref()),
	)
	switch rt.kind {
	case targetTool:
		attrs = append(attrs, slog.String("tool", bounded(rt.target, maxLoggedTarget)))
	case targetPrompt:
		attrs = append(attrs, slog.String("prompt", bounded(rt.target, maxLoggedTarget)))
	case targetURI:
		attrs = append(attrs, slog.String("uri", bounded(rt.target, maxLoggedTarget)))
	}
	if s.Principal != "" {
		attrs = append(attrs, slog.String("credential", s.Principal))
	}
	if s.Transport != "" {
		attrs = append(attrs, slog.String("transport", s.Transport))
	}
	if status != OutcomeOK && rt.server != "" {
		if b, ok := r.servers.Get(rt.server); ok {
			attrs = append(attrs, slog.String("backend_state", states.Backend(b.State())))
		}
	}
	if err != nil {
		attrs = append(attrs, slog.Int("code", code), slog.String("err", bounded(jsonrpc.AsError(err).Message, maxLoggedError)))
	}
	// Straight to the handler with no PC: Logger.LogAttrs would walk the
	// stack for a source location the line never shows.
	rec := slog.NewRecord(time.Now(), level, "mcp request", 0)
	rec.AddAttrs(attrs...)
	_ = r.access.Handler().Handle(ctx, rec)
}

// idText is a request id as logged: a string id without its quotes, bounded.
func idText(id json.RawMessage) string {
	if len(id) >= 2 && id[0] == '"' {
		if v, ok := unquoteID(id); ok {
			return bounded(v, maxLoggedID)
		}
	}
	return bounded(string(id), maxLoggedID)
}

func unquoteID(id json.RawMessage) (string, bool) {
	var v string
	for _, c := range id[1 : len(id)-1] {
		if c == '\\' {
			if err := json.Unmarshal(id, &v); err != nil {
				return "", false
			}
			return v, true
		}
	}
	return string(id[1 : len(id)-1]), true
}

func bounded(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return textlimit.Truncate(s, n)
}

// Attribute keys of the OpenTelemetry MCP semantic conventions.
const (
	attrMethod      = attribute.Key("mcp.method.name")
	attrSession     = attribute.Key("mcp.session.id")
	attrProtocol    = attribute.Key("mcp.protocol.version")
	attrResourceURI = attribute.Key("mcp.resource.uri")
	attrTool        = attribute.Key("gen_ai.tool.name")
	attrPrompt      = attribute.Key("gen_ai.prompt.name")
	attrOperation   = attribute.Key("gen_ai.operation.name")
	attrRequestID   = attribute.Key("jsonrpc.request.id")
	attrTransport   = attribute.Key("network.transport")
	attrNetProtocol = attribute.Key("network.protocol.name")
	attrStatusCode  = attribute.Key("rpc.response.status_code")
	attrErrorType   = attribute.Key("error.type")
	// attrServer names the backend a request was routed to.
	attrServer = attribute.Key("mcpmesh.server")
)

// spanName is "{mcp.method.name} {target}" with a tool or prompt name as
// the target (never a URI: too many distinct names).
func spanName(method string, rt routed, target string) string {
	if target == "" || (rt.kind != targetTool && rt.kind != targetPrompt) {
		return method
	}
	return method + " " + bounded(target, maxLoggedTarget)
}

func targetAttr(kind targetKind, target string) attribute.KeyValue {
	target = bounded(target, maxLoggedTarget)
	switch kind {
	case targetTool:
		return attrTool.String(target)
	case targetPrompt:
		return attrPrompt.String(target)
	}
	return attrResourceURI.String(target)
}

// startServer starts the span of a client request, child of the trace
// context the client sent (traceparent header, else params._meta).
func (r *Router) startServer(ctx context.Context, s *front.Session, req *jsonrpc.Message, rt routed) (context.Context, trace.Span) {
	parent, state := s.TraceParent, s.TraceState
	if parent == "" {
		parent, state = metaTrace(req.Params)
	}
	ctx = tracing.Extract(ctx, parent, state)
	attrs := make([]attribute.KeyValue, 0, 9)
	attrs = append(attrs,
		attrMethod.String(req.Method),
		attrRequestID.String(idText(req.ID)),
		attrTransport.String("tcp"),
		attrNetProtocol.String("http"),
	)
	if ref := s.Ref(); ref != "" {
		attrs = append(attrs, attrSession.String(ref))
	}
	if s.Protocol != "" {
		attrs = append(attrs, attrProtocol.String(s.Protocol))
	}
	if rt.kind != targetNone {
		attrs = append(attrs, targetAttr(rt.kind, rt.target))
	}
	if rt.kind == targetTool {
		attrs = append(attrs, attrOperation.String("execute_tool"))
	}
	if rt.server != "" {
		attrs = append(attrs, attrServer.String(rt.server))
	}
	return r.tracer.Start(ctx, spanName(req.Method, rt, rt.target), trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// endSpan records how the request went and ends the span.
func endSpan(span trace.Span, method string, res json.RawMessage, err error) {
	status, code := outcome(method, res, err)
	switch status {
	case OutcomeError:
		span.SetAttributes(attrStatusCode.String(strconv.Itoa(code)), attrErrorType.String(strconv.Itoa(code)))
		span.SetStatus(codes.Error, bounded(jsonrpc.AsError(err).Message, maxLoggedError))
	case OutcomeToolError:
		span.SetAttributes(attrErrorType.String(OutcomeToolError))
		span.SetStatus(codes.Error, "tool error")
	}
	span.End()
}

// startUpstream starts the client span of a request forwarded to t and
// returns the W3C context the backend is to get (header and _meta).
func (r *Router) startUpstream(ctx context.Context, method string, t target) (context.Context, trace.Span, string, string) {
	kind := targetNone
	switch method {
	case "tools/call":
		kind = targetTool
	case "prompts/get":
		kind = targetPrompt
	case "resources/read":
		kind = targetURI
	}
	rt := routed{server: t.route.Server, target: t.route.Name, kind: kind}
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs, attrMethod.String(method), attrServer.String(t.route.Server))
	if kind != targetNone {
		attrs = append(attrs, targetAttr(kind, t.route.Name))
	}
	ctx, span := r.tracer.Start(ctx, spanName(method, rt, t.route.Name), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	parent, state := tracing.Inject(ctx)
	return ctx, span, parent, state
}

// endUpstream ends an upstream span: a JSON-RPC error of the backend or a
// transport failure is an error.
func endUpstream(span trace.Span, err error) {
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			span.SetAttributes(attrStatusCode.String(strconv.Itoa(je.Code)), attrErrorType.String(strconv.Itoa(je.Code)))
		} else {
			span.SetAttributes(attrErrorType.String("transport"))
		}
		span.SetStatus(codes.Error, bounded(err.Error(), maxLoggedError))
	}
	span.End()
}

// metaTrace reads params._meta.traceparent and tracestate.
func metaTrace(params json.RawMessage) (string, string) {
	ms, me, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil || !ok || params[ms] != '{' {
		return "", ""
	}
	meta := params[ms:me]
	parent, _, _ := jsonrpc.LookupString(meta, "traceparent")
	state, _, _ := jsonrpc.LookupString(meta, "tracestate")
	return parent, state
}

// withMetaTrace sets params._meta.traceparent (and tracestate, when there
// is one) without decoding the rest of params.
func withMetaTrace(params json.RawMessage, parent, state string) (json.RawMessage, error) {
	if parent == "" {
		return params, nil
	}
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage(`{}`)
	}
	ms, me, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil {
		return nil, err
	}
	if !ok || params[ms] != '{' {
		meta := `{"traceparent":` + string(quote(parent))
		if state != "" {
			meta += `,"tracestate":` + string(quote(state))
		}
		return jsonrpc.Set(params, "_meta", []byte(meta+"}"))
	}
	meta, err := jsonrpc.Set(params[ms:me], "traceparent", quote(parent))
	if err != nil {
		return nil, err
	}
	if state != "" {
		if meta, err = jsonrpc.Set(meta, "tracestate", quote(state)); err != nil {
			return nil, err
		}
	}
	return jsonrpc.Splice(params, ms, me, meta), nil
}

// tracedRequest is t.srv.Request inside a client span, with the span's
// trace context in the header (HTTP backends) and in params._meta (all).
func (r *Router) tracedRequest(ctx context.Context, method string, t target, br backend.Request) (json.RawMessage, error) {
	ctx, span, parent, state := r.startUpstream(ctx, method, t)
	if p, err := withMetaTrace(br.Params, parent, state); err == nil {
		br.Params = p
	}
	br.TraceParent, br.TraceState = parent, state
	res, err := t.srv.Request(ctx, br)
	endUpstream(span, err)
	return res, err
}
