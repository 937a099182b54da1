package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// The 2026-07-28 stateless revision towards clients, in front of backends
// that speak 2025-11-25 (sessions, initialize); backends of 2026-07-28 are
// era.go's. The front has validated the
// request and made its Session from the _meta (front/modern.go); here:
//
//   - server/discover and subscriptions/listen are answered by the gateway;
//   - the methods the revision removed answer -32601 (HTTP 404);
//   - routed requests go upstream without the io.modelcontextprotocol/* _meta
//     keys (a 2025 backend that is also 2026-capable would take them for a
//     2026 request and refuse it), and their results get what the revision
//     requires: resultType, ttlMs and cacheScope on the cacheable ones, the
//     gateway's serverInfo in _meta (a composed list gets the backends'
//     minimum ttlMs and cacheScope, era.go); -32002 becomes -32602 with data.uri;
//   - notifications/message reach a call only at or above its _meta logLevel
//     (none without one); a backend's sampling, elicitation or roots request
//     during a stateless call is answered -32601 (no input_required bridge).

// removedMethods are the methods the stateless revision took away, with
// what replaced them.
var removedMethods = map[string]string{
	"initialize":            "use server/discover; every request carries its own _meta",
	"ping":                  "there is no session to keep alive",
	"logging/setLevel":      "send io.modelcontextprotocol/logLevel in each request's _meta",
	"resources/subscribe":   "use subscriptions/listen with resourceSubscriptions",
	"resources/unsubscribe": "close the subscriptions/listen stream",
}

// cacheable are the methods whose results carry ttlMs and cacheScope.
var cacheable = map[string]bool{
	"tools/list": true, "prompts/list": true, "resources/list": true,
	"resources/templates/list": true, "resources/read": true, "server/discover": true,
}

// serverInfo is the gateway's identity, as _meta carries it.
var serverInfo = json.RawMessage(`{"name":"mcpmesh","version":` + string(quote(version.Version)) + `}`)

// discoverResult is the answer to server/discover (decorate adds the rest).
var discoverResult = func() json.RawMessage {
	versions, _ := json.Marshal(front.SupportedVersions)
	return json.RawMessage(`{"supportedVersions":` + string(versions) + `,"capabilities":` + capabilities + `}`)
}()

// dispatch sends a request of the stateless revision to handleModern,
// everything else to handle.
func (r *Router) dispatch(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	if s.Stateless() {
		return r.handleModern(ctx, s, req, out)
	}
	return r.handle(ctx, s, req, out)
}

func (r *Router) handleModern(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	switch req.Method {
	case "server/discover":
		return decorate(req.Method, discoverResult), nil
	case "subscriptions/listen":
		res, err := r.listen(ctx, s, req, out)
		if err != nil {
			return nil, err
		}
		return decorate(req.Method, res), nil
	}
	if why, ok := removedMethods[req.Method]; ok {
		return nil, errorf(jsonrpc.CodeMethodNotFound, "method %q not found: protocol version %s removed it (%s)", req.Method, s.Protocol, why)
	}
	params, err := stripMeta(req.Params)
	if err != nil {
		return nil, errorf(jsonrpc.CodeInvalidParams, "%s: params._meta: %v", req.Method, err)
	}
	if req.Method == "tools/call" {
		// An unknown tool is an error here, as mcp-go's server answers it
		// (a 2025 client gets a tool error result instead).
		if name, ok, _ := jsonrpc.LookupString(params, "name"); ok {
			// A tool of a server waiting for OAuth authorization goes on to
			// it: its error says why it cannot be served.
			if _, found := r.cat.Load().Tool(name); !found {
				if _, waiting := r.unlisted(name); !waiting {
					return nil, errorf(jsonrpc.CodeInvalidParams, "tool %q not found", name)
				}
			}
		}
	}
	up := *req
	up.Params = params
	res, err := r.handle(ctx, s, &up, out)
	if err != nil {
		return nil, modernError(req, err)
	}
	if k, ok := catalog.KindOfMethod(req.Method); ok {
		// The gateway composed the list: its hint is the backends' minimum.
		res = withCache(res, r.cat.Load().Cache(k))
	}
	return decorate(req.Method, res), nil
}

// modernError maps an error to what the stateless revision says: a missing
// resource is -32602 with the URI in data (SEP-2164), not -32002.
func modernError(req *jsonrpc.Message, err error) error {
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != jsonrpc.CodeResourceNotFound {
		return err
	}
	uri, _, _ := jsonrpc.LookupString(req.Params, "uri")
	data, _ := json.Marshal(struct {
		URI string `json:"uri"`
	}{uri})
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: je.Message, Data: data}
}

// decorate adds to a result what the stateless revision requires and it
// lacks: resultType "complete" (never overwriting input_required), ttlMs 0
// and cacheScope "private" on cacheable results, and _meta serverInfo. A
// list the gateway composes from 2025 backends has no hints of theirs to
// aggregate, so it gets the defaults too.
func decorate(method string, res json.RawMessage) json.RawMessage {
	if len(res) == 0 {
		res = json.RawMessage(`{}`)
	}
	has := func(key string) bool {
		_, _, ok, err := jsonrpc.Lookup(res, key)
		return err == nil && ok
	}
	if _, _, _, err := jsonrpc.Lookup(res, "resultType"); err != nil {
		return res // not an object: nothing to decorate
	}
	var add []byte
	if !has("resultType") {
		add = append(add, `"resultType":"complete",`...)
	}
	if cacheable[method] {
		if !has("ttlMs") {
			add = append(add, `"ttlMs":0,`...)
		}
		if !has("cacheScope") {
			add = append(add, `"cacheScope":"private",`...)
		}
	}
	if ms, me, ok, _ := jsonrpc.Lookup(res, "_meta"); !ok {
		add = append(add, `"_meta":{"`+mcp.MetaKeyServerInfo+`":`...)
		add = append(add, serverInfo...)
		add = append(add, `},`...)
	} else if res[ms] == '{' {
		if _, _, found, _ := jsonrpc.Lookup(res[ms:me], mcp.MetaKeyServerInfo); !found {
			if meta, err := jsonrpc.Set(res[ms:me], mcp.MetaKeyServerInfo, serverInfo); err == nil {
				res = jsonrpc.Splice(res, ms, me, meta)
			}
		}
	}
	if len(add) == 0 {
		return res
	}
	open := skipSpace(res)
	rest := skipSpace(res[open+1:])
	if res[open+1+rest] == '}' {
		add = add[:len(add)-1] // empty object: no member follows
	}
	return jsonrpc.Splice(res, open+1, open+1, add)
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stripMeta removes the io.modelcontextprotocol/* keys from params._meta
// (protocol version, client capabilities and info, log level: they describe
// this request to the gateway, and a 2025 backend must not see a 2026
// request). progressToken and every other key stay.
func stripMeta(params json.RawMessage) (json.RawMessage, error) {
	if params == nil {
		return nil, nil
	}
	ms, me, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil || !ok || params[ms] != '{' {
		return params, err
	}
	meta, stripped, err := jsonrpc.DeleteMembers(params[ms:me], func(k []byte) bool {
		return bytes.HasPrefix(k, metaPrefix)
	})
	if err != nil || !stripped {
		return params, err
	}
	return jsonrpc.Splice(params, ms, me, meta), nil
}

// metaPrefix begins the _meta keys stripMeta removes.
var metaPrefix = []byte("io.modelcontextprotocol/")

// callKeyOf is the relay's key of a call: stateless requests have no
// session id, so theirs is unique per call.
func callKeyOf(s *front.Session, id json.RawMessage, seq uint64) callID {
	if s.Stateless() {
		return callID{seq: seq}
	}
	return callKey2(s.ID, id)
}

// seenKey tells the clients of calls apart when relaying a log message.
func seenKey(c *call) string {
	if c.session.Stateless() {
		return "\x01" + strconv.FormatUint(c.seq, 10)
	}
	return c.session.ID
}

// admitsCallLocked reports whether the client of c wants a log message of
// rank: a stateless call by its _meta logLevel (none: no messages), a
// session by its logging/setLevel.
func (rl *relay) admitsCallLocked(c *call, rank int) bool {
	if !c.session.Stateless() {
		return rl.admitsLocked(c.session.ID, rank)
	}
	level, ok := levelRank[c.session.LogLevel]
	return ok && rank >= level
}

// modernServerRequest refuses a backend's request during a stateless call:
// the revision has no server-to-client requests (input_required results
// replace them), and the gateway does not bridge the two yet.
func modernServerRequest(method, server string) error {
	return errorf(jsonrpc.CodeMethodNotFound,
		"%s from server %q: the calling client speaks MCP %s, which has no server-to-client requests, and this gateway does not translate them into input_required results",
		method, server, front.ModernProtocol)
}

// listeners are the open subscriptions/listen streams of this replica.
type listeners struct {
	mu  sync.Mutex
	seq uint64
	set map[*listener]struct{}
}

// listener is one subscriptions/listen stream.
type listener struct {
	id                        json.RawMessage // the listen request's id, tagging every message
	tools, prompts, resources bool
	uris                      map[catalog.Route]bool // upstream resources subscribed for it
	queue                     chan []byte
	gone                      chan struct{} // closed when it fell too far behind
	once                      sync.Once
}

// listenQueue bounds the messages waiting for one listen stream.
const listenQueue = 256

func (l *listener) offer(msg []byte) {
	select {
	case l.queue <- msg:
	default:
		l.once.Do(func() { close(l.gone) })
	}
}

// listen serves subscriptions/listen: the acknowledgement with the granted
// subset first, then the list_changed and resources/updated notifications
// it asked for, tagged with its id, until the client goes; then the result.
func (r *Router) listen(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	var p struct {
		Notifications mcp.SubscriptionFilter `json:"notifications"`
	}
	if req.Params != nil {
		if err := json.Unmarshal(req.Params, &p); err != nil {
			return nil, errorf(jsonrpc.CodeInvalidParams, "subscriptions/listen: params: %v", err)
		}
	}
	want := p.Notifications
	l := &listener{
		id: req.ID, tools: want.ToolsListChanged, prompts: want.PromptsListChanged, resources: want.ResourcesListChanged,
		uris: map[catalog.Route]bool{}, queue: make(chan []byte, listenQueue), gone: make(chan struct{}),
	}
	granted := mcp.SubscriptionFilter{ToolsListChanged: l.tools, PromptsListChanged: l.prompts, ResourcesListChanged: l.resources}

	ls := &r.listeners
	ls.mu.Lock()
	if ls.set == nil {
		ls.set = map[*listener]struct{}{}
	}
	ls.seq++
	// The relay counts upstream subscriptions per session: this stream is
	// one, under an id no client session has.
	sub := &front.Session{ID: "\x01listen\x00" + strconv.FormatUint(ls.seq, 10)}
	ls.set[l] = struct{}{}
	ls.mu.Unlock()
	defer func() {
		ls.mu.Lock()
		delete(ls.set, l)
		ls.mu.Unlock()
		r.Ended(sub) // releases its upstream subscriptions
	}()

	for _, uri := range want.ResourceSubscriptions {
		if rt, ok := r.subscribeFor(ctx, sub, uri); ok {
			ls.mu.Lock()
			l.uris[rt] = true
			ls.mu.Unlock()
			granted.ResourceSubscriptions = append(granted.ResourceSubscriptions, uri)
		}
	}
	g, _ := json.Marshal(granted)
	ack := `{"_meta":{"` + mcp.MetaKeySubscriptionID + `":` + string(req.ID) + `},"notifications":` + string(g) + `}`
	if err := out.Send(jsonrpc.Notification(mcp.MethodNotificationSubscriptionsAcknowledged, json.RawMessage(ack))); err != nil {
		return nil, fmt.Errorf("subscriptions/listen: acknowledge: %w", err)
	}
	result := json.RawMessage(`{"_meta":{"` + mcp.MetaKeySubscriptionID + `":` + string(req.ID) + `}}`)
	if granted.IsEmpty() {
		return result, nil
	}
	for {
		select {
		case <-ctx.Done():
			return result, nil
		case <-l.gone:
			r.log.Debug("subscriptions/listen stream fell behind: closed", "id", string(req.ID))
			return result, nil
		case msg := <-l.queue:
			if err := out.Send(msg); err != nil {
				return result, nil // the client is gone
			}
		}
	}
}

// subscribeFor subscribes the listen stream sub to an exposed URI upstream
// (once per replica, as for sessions) and returns its route; false when no
// backend serves it or its backend cannot subscribe.
func (r *Router) subscribeFor(ctx context.Context, sub *front.Session, uri string) (catalog.Route, bool) {
	t, exposed, err := r.byURI(sub.Allow, "subscriptions/listen", json.RawMessage(`{"uri":`+string(quote(uri))+`}`))
	if err != nil || !canSubscribe(t.srv.Capabilities()) {
		r.log.Debug("subscriptions/listen: resource not subscribed", "uri", uri, "err", err)
		return catalog.Route{}, false
	}
	if !r.relay.subscription(sub, exposed, t.route, true) {
		return t.route, true
	}
	if _, err := t.srv.Request(ctx, backend.Request{Method: "resources/subscribe", Params: t.params, Retry: true, What: "resources/subscribe"}); err != nil {
		r.relay.subscription(sub, exposed, t.route, false)
		r.log.Debug("subscriptions/listen: subscribe upstream", "server", t.route.Server, "uri", t.route.Name, "err", err)
		return catalog.Route{}, false
	}
	return t.route, true
}

func canSubscribe(caps json.RawMessage) bool {
	s, e, ok, err := jsonrpc.Lookup(caps, "resources")
	if err != nil || !ok || caps[s] != '{' {
		return false
	}
	v, ve, ok, _ := jsonrpc.Lookup(caps[s:e], "subscribe")
	return ok && string(caps[s:e][v:ve]) == "true"
}

// tag returns params with _meta.subscriptionId set to id.
func tag(params, id json.RawMessage) json.RawMessage {
	member := `"` + mcp.MetaKeySubscriptionID + `":` + string(id)
	if params == nil {
		return json.RawMessage(`{"_meta":{` + member + `}}`)
	}
	if ms, me, ok, err := jsonrpc.Lookup(params, "_meta"); err == nil && ok && params[ms] == '{' {
		if meta, err := jsonrpc.Set(params[ms:me], mcp.MetaKeySubscriptionID, id); err == nil {
			return jsonrpc.Splice(params, ms, me, meta)
		}
	}
	p, err := jsonrpc.Set(params, "_meta", json.RawMessage(`{`+member+`}`))
	if err != nil {
		return params
	}
	return p
}

// listChangedToListeners tells the listen streams that asked which lists
// changed.
func (r *Router) listChangedToListeners(changed []catalog.Kind) {
	ls := &r.listeners
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for l := range ls.set {
		sent := map[string]bool{}
		for _, k := range changed {
			want := map[catalog.Kind]bool{catalog.Tools: l.tools, catalog.Prompts: l.prompts, catalog.Resources: l.resources, catalog.Templates: l.resources}[k]
			m := listChangedMethod(k)
			if want && !sent[m] {
				sent[m] = true
				l.offer(jsonrpc.Notification(m, tag(nil, l.id)))
			}
		}
	}
}

// updatedToListeners delivers a backend's resources/updated (params already
// carrying the exposed URI) to the listen streams subscribed to it.
func (r *Router) updatedToListeners(server, uri string, params json.RawMessage) {
	rt := catalog.Route{Server: server, Name: uri}
	ls := &r.listeners
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for l := range ls.set {
		if l.uris[rt] {
			l.offer(jsonrpc.Notification("notifications/resources/updated", tag(params, l.id)))
		}
	}
}
