package router

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Logging levels (RFC 5424 order, as MCP names them).
var levelNames = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

var levelRank = func() map[string]int {
	m := make(map[string]int, len(levelNames))
	for i, n := range levelNames {
		m[n] = i
	}
	return m
}()

// call is one client request in flight upstream.
type call struct {
	session *front.Session
	out     front.Stream
	server  string
	cancel  context.CancelFunc
	seq     uint64
	tokens  []string // progress tokens issued for it
}

// send writes a message for the client of c: on the request's own stream
// while it is open, else on the session's stream.
func (r *Router) send(c *call, msg []byte) bool {
	if c.out != nil && c.out.Send(msg) == nil {
		return true
	}
	return c.session.ID != "" && r.push(c.session.ID, msg)
}

// clientState is what this replica remembers of a session after its
// requests ended: its logging level and resource subscriptions.
type clientState struct {
	level int // -1: never set
	subs  map[string]catalog.Route
}

// relay holds the routing state of messages that flow back to clients.
type relay struct {
	r   *Router
	seq atomic.Uint64

	mu       sync.Mutex
	calls    map[callID]*call
	progress map[string]progressRoute
	pending  map[callID]chan *jsonrpc.Message // server-to-client requests awaiting the client's answer
	clients  map[string]*clientState
	// upstreamSubs counts, per server and upstream URI, the sessions of
	// this replica subscribed to it.
	upstreamSubs map[catalog.Route]int
	// byKey maps the client keys of per-client upstream sessions to the
	// session last seen with each, and when (clients mostly vanish without
	// DELETE: entries unseen for keyIdle are swept).
	byKey     map[string]keyEntry
	keySweep  time.Time
	keyInsert int
}

type progressRoute struct {
	c     *call
	token json.RawMessage // the client's own token
}

// maxClients bounds the sessions whose level or subscriptions a replica keeps.
const maxClients = 100_000

func (rl *relay) init(r *Router) {
	rl.r = r
	rl.calls = map[callID]*call{}
	rl.progress = map[string]progressRoute{}
	rl.pending = map[callID]chan *jsonrpc.Message{}
	rl.clients = map[string]*clientState{}
	rl.upstreamSubs = map[catalog.Route]int{}
	rl.byKey = map[string]keyEntry{}
}

type callKey struct{}

// A callID is the relay's key of a call: a session's id and the request's
// id (key), or for a stateless request, which has no session, the call's
// sequence number (seq, from 1).
type callID struct {
	key string
	seq uint64
}

func callKey2(sessionID string, id json.RawMessage) callID {
	return callID{key: sessionID + "\x00" + jsonrpc.IDKey(id)}
}

// begin registers a call; done unregisters it.
func (rl *relay) begin(ctx context.Context, s *front.Session, id json.RawMessage, out front.Stream, server string) (*call, context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	c := &call{session: s, out: out, server: server, cancel: cancel, seq: rl.seq.Add(1)}
	key := callKeyOf(s, id, c.seq)
	rl.mu.Lock()
	rl.calls[key] = c
	rl.mu.Unlock()
	ctx = context.WithValue(ctx, callKey{}, c)
	return c, ctx, func() {
		rl.mu.Lock()
		if rl.calls[key] == c {
			delete(rl.calls, key)
		}
		for _, t := range c.tokens {
			delete(rl.progress, t)
		}
		rl.mu.Unlock()
		cancel()
	}
}

// rewriteProgress gives the request a progress token of this replica's own
// (clients' tokens need not be unique across clients) and remembers whose it is.
func (rl *relay) rewriteProgress(c *call, params json.RawMessage) (json.RawMessage, error) {
	ms, me, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil || !ok || params[ms] != '{' {
		return params, err
	}
	meta := params[ms:me]
	ts, te, ok, err := jsonrpc.Lookup(meta, "progressToken")
	if err != nil || !ok {
		return params, err
	}
	token := "mcpmesh-" + replicaTag + "-" + strconv.FormatUint(rl.seq.Add(1), 10)
	rl.mu.Lock()
	rl.progress[token] = progressRoute{c: c, token: append(json.RawMessage(nil), meta[ts:te]...)}
	c.tokens = append(c.tokens, token)
	rl.mu.Unlock()
	newMeta := jsonrpc.Splice(meta, ts, te, quote(token))
	return jsonrpc.Splice(params, ms, me, newMeta), nil
}

// OnNotification takes what a backend sends on its own (backend.ManagerOptions).
//
// client is the client session the upstream session belongs to ("" for a
// shared upstream session).
func (r *Router) OnNotification(server, client string, n *jsonrpc.Message) {
	rl := &r.relay
	switch n.Method {
	case "notifications/progress":
		token, _, _ := jsonrpc.LookupString(n.Params, "progressToken")
		rl.mu.Lock()
		pr, ok := rl.progress[token]
		rl.mu.Unlock()
		if !ok {
			return
		}
		p, err := jsonrpc.Set(n.Params, "progressToken", pr.token)
		if err == nil {
			r.send(pr.c, jsonrpc.Notification(n.Method, p))
		}
	case "notifications/message":
		if cs := r.sessionOf(client); cs != nil {
			r.toClient(cs, server, n)
			return
		}
		r.relayLog(server, n)
	case "notifications/resources/updated":
		// The client knows the URI under the name the catalog exposes.
		uri, _, _ := jsonrpc.LookupString(n.Params, "uri")
		p := n.Params
		if exposed := r.cat.Load().ExposedURI(server, uri); exposed != uri {
			p, _ = jsonrpc.Set(n.Params, "uri", quote(exposed))
		}
		if cs := r.sessionOf(client); cs != nil {
			r.toClient(cs, server, &jsonrpc.Message{Method: n.Method, Params: p})
			return
		}
		r.updatedToListeners(server, uri, p)
		msg := jsonrpc.Notification(n.Method, p)
		for _, id := range rl.subscribers(server, uri) {
			r.push(id, msg)
		}
	default:
		if cs := r.sessionOf(client); cs != nil {
			if n.Method == "notifications/tasks/status" {
				n = &jsonrpc.Message{Method: n.Method, Params: r.rewriteTaskIDs(server, n.Params)}
			}
			r.toClient(cs, server, n)
			return
		}
		r.log.Debug("backend notification not relayed", "server", server, "method", n.Method)
	}
}

// toClient delivers a notification of a client's own upstream session: on
// the stream of its newest call to that server if it has one open, else on
// its session stream. A log message below the client's level is dropped.
func (r *Router) toClient(s *front.Session, server string, n *jsonrpc.Message) {
	rl := &r.relay
	rl.mu.Lock()
	if n.Method == "notifications/message" {
		level, _, _ := jsonrpc.LookupString(n.Params, "level")
		if !rl.admitsLocked(s.ID, levelRank[level]) {
			rl.mu.Unlock()
			return
		}
	}
	c := rl.latestCallLocked(server, s.ID)
	rl.mu.Unlock()
	msg := jsonrpc.Notification(n.Method, n.Params)
	if c != nil && r.send(c, msg) {
		return
	}
	if s.ID != "" {
		r.push(s.ID, msg)
	}
}

// relayLog delivers a backend's log message to the clients of this replica
// whose level admits it. The upstream session is shared, so the message goes
// to the clients with a request open on that server if there are any (it is
// most likely about their request), else to every listening client.
func (r *Router) relayLog(server string, n *jsonrpc.Message) {
	rl := &r.relay
	level, _, _ := jsonrpc.LookupString(n.Params, "level")
	rank := levelRank[level] // an unknown level counts as debug
	msg := jsonrpc.Notification(n.Method, n.Params)
	rl.mu.Lock()
	var targets []*call
	seen := map[string]bool{}
	claimed := false // a stateless call is in flight: the message is its, even when its level refuses it
	for _, c := range rl.calls {
		if c.server != server {
			continue
		}
		claimed = claimed || c.session.Stateless()
		if k := seenKey(c); !seen[k] && rl.admitsCallLocked(c, rank) {
			seen[k] = true
			targets = append(targets, c)
		}
	}
	var listeners []string
	if len(targets) == 0 && !claimed {
		for id, st := range rl.clients {
			if st.level >= 0 && rank >= st.level {
				listeners = append(listeners, id)
			}
		}
	}
	rl.mu.Unlock()
	for _, c := range targets {
		r.send(c, msg)
	}
	for _, id := range listeners {
		r.push(id, msg)
	}
}

func (rl *relay) admitsLocked(sessionID string, rank int) bool {
	st, ok := rl.clients[sessionID]
	return !ok || st.level < 0 || rank >= st.level
}

// state returns the remembered state of a session, made if needed; nil when
// the replica keeps as many as it may.
func (rl *relay) stateLocked(id string) *clientState {
	st, ok := rl.clients[id]
	if !ok {
		if len(rl.clients) >= maxClients {
			return nil
		}
		st = &clientState{level: -1}
		rl.clients[id] = st
	}
	return st
}

// setLevel records a session's level and returns the most verbose level
// any session of this replica asked for.
func (rl *relay) setLevel(s *front.Session, rank int) int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if st := rl.stateLocked(s.ID); st != nil {
		st.level = rank
	}
	min := rank
	for _, st := range rl.clients {
		if st.level >= 0 && st.level < min {
			min = st.level
		}
	}
	return min
}

// subscription records a session's (un)subscription of an exposed URI and
// reports whether the upstream session must be told: on the first
// subscriber of this replica, or when the last one leaves.
func (rl *relay) subscription(s *front.Session, exposed string, rt catalog.Route, on bool) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	st := rl.stateLocked(s.ID)
	if st == nil {
		return on // cannot remember it: subscribe anyway, never unsubscribe others
	}
	if st.subs == nil {
		st.subs = map[string]catalog.Route{}
	}
	_, had := st.subs[exposed]
	switch {
	case on && !had:
		st.subs[exposed] = rt
		rl.upstreamSubs[rt]++
		return rl.upstreamSubs[rt] == 1
	case !on && had:
		delete(st.subs, exposed)
		rl.upstreamSubs[rt]--
		if rl.upstreamSubs[rt] <= 0 {
			delete(rl.upstreamSubs, rt)
			return true
		}
	}
	return false
}

// subscribers lists the sessions subscribed to a server's upstream URI.
func (rl *relay) subscribers(server, uri string) []string {
	rt := catalog.Route{Server: server, Name: uri}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	var ids []string
	for id, st := range rl.clients {
		for _, sr := range st.subs {
			if sr == rt {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

// OnRequest relays a backend's request (sampling, elicitation, roots) to the
// client whose call it came with, and returns the client's answer.
func (r *Router) OnRequest(ctx context.Context, server, client string, req *jsonrpc.Message) (json.RawMessage, error) {
	if req.Method == "ping" {
		return json.RawMessage(`{}`), nil
	}
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil && client != "" {
		// A request on the client's own upstream session outside any call
		// (its event stream): to that client, on its newest call's stream
		// or its session stream.
		if s := r.sessionOf(client); s != nil {
			r.relay.mu.Lock()
			c = r.relay.latestCallLocked(server, s.ID)
			r.relay.mu.Unlock()
			if c == nil {
				c = &call{session: s, server: server}
			}
		}
	}
	if c == nil {
		c = r.relay.latestCall(server)
	}
	if c == nil {
		return nil, errorf(jsonrpc.CodeInternalError, "%s from server %q: no client request is in flight to relay it to", req.Method, server)
	}
	if c.session.Stateless() {
		return nil, modernServerRequest(req.Method, server)
	}
	if err := capable(c.session.Capabilities, req.Method, req.Params); err != nil {
		return nil, err
	}
	rl := &r.relay
	idJSON := quote(r.relayID(rl.seq.Add(1)))
	key := callKey2(c.session.ID, idJSON)
	ch := make(chan *jsonrpc.Message, 1)
	rl.mu.Lock()
	rl.pending[key] = ch
	rl.mu.Unlock()
	defer func() {
		rl.mu.Lock()
		delete(rl.pending, key)
		rl.mu.Unlock()
	}()
	if !r.send(c, jsonrpc.Request(idJSON, req.Method, req.Params)) {
		return nil, errorf(jsonrpc.CodeInternalError, "%s from server %q: the client has no open stream to receive it", req.Method, server)
	}
	select {
	case resp := <-ch:
		if resp.Error != nil {
			return nil, resp.Error
		}
		return resp.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s from server %q: %w", req.Method, server, ctx.Err())
	}
}

// latestCall is the newest call in flight to server: a backend's request
// that arrives with no link to the call that caused it (stdio, the GET
// stream of a shared session) is taken to belong to it.
func (rl *relay) latestCall(server string) *call {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.latestCallLocked(server, "")
}

// latestCallLocked is the newest call in flight to server, of the session
// sessionID only unless that is "".
func (rl *relay) latestCallLocked(server, sessionID string) *call {
	var best *call
	for _, c := range rl.calls {
		if c.server == server && (sessionID == "" || c.session.ID == sessionID) && (best == nil || c.seq > best.seq) {
			best = c
		}
	}
	return best
}

// capable refuses a request the client did not declare it can handle.
func capable(caps json.RawMessage, method string, params json.RawMessage) error {
	var need, sub string
	switch method {
	case "sampling/createMessage":
		need = "sampling"
	case "roots/list":
		need = "roots"
	case "elicitation/create":
		need = "elicitation"
		if mode, _, _ := jsonrpc.LookupString(params, "mode"); mode == "url" {
			sub = "url"
		}
	default:
		return nil
	}
	if caps == nil {
		return errorf(jsonrpc.CodeMethodNotFound, "the client does not support %s (it declared no %q capability)", method, need)
	}
	s, e, ok, err := jsonrpc.Lookup(caps, need)
	if err != nil || !ok {
		return errorf(jsonrpc.CodeMethodNotFound, "the client does not support %s (it declared no %q capability)", method, need)
	}
	if sub != "" {
		if _, _, ok, err := jsonrpc.Lookup(caps[s:e], sub); err != nil || !ok {
			return errorf(jsonrpc.CodeMethodNotFound, "the client does not support URL-mode elicitation (no \"elicitation.url\" capability)")
		}
	}
	return nil
}

// Notify takes a client's notification.
func (r *Router) Notify(ctx context.Context, s *front.Session, n *jsonrpc.Message) {
	switch n.Method {
	case "notifications/cancelled":
		is, ie, ok, err := jsonrpc.Lookup(n.Params, "requestId")
		if err != nil || !ok {
			return
		}
		key := callKey2(s.ID, n.Params[is:ie])
		r.relay.mu.Lock()
		c := r.relay.calls[key]
		r.relay.mu.Unlock()
		if c != nil {
			// Cancelling the upstream request's context makes the backend
			// send notifications/cancelled with its own request id.
			c.cancel()
		} else if home, ok := r.homeOf(s); ok && r.hasShared() {
			// Not in flight here: it may be a shared server's call, which
			// runs on the session's home (peers.go).
			r.forwardAnswer(ctx, home, s, n)
		}
	case "notifications/roots/list_changed":
		for _, b := range r.servers.List() {
			if err := b.Notify(ctx, r.clientSession(s, b), n.Method, n.Params); err != nil {
				r.log.Debug("relay roots/list_changed", "server", b.Name(), "err", err)
			}
		}
	}
}

// Respond takes a client's answer to a request relayed to it.
func (r *Router) Respond(ctx context.Context, s *front.Session, resp *jsonrpc.Message) {
	key := callKey2(s.ID, resp.ID)
	r.relay.mu.Lock()
	ch := r.relay.pending[key]
	delete(r.relay.pending, key)
	r.relay.mu.Unlock()
	if ch != nil {
		ch <- resp
		return
	}
	var id string
	if json.Unmarshal(resp.ID, &id) == nil {
		if addr, ok := r.relayOwner(id); ok {
			r.forwardAnswer(ctx, addr, s, resp)
		}
	}
}

// Ended forgets a session, ends its own upstream sessions and releases its
// share of the shared ones' subscriptions, here and at its home replica.
func (r *Router) Ended(s *front.Session) {
	switch home, ok := r.homeOf(s); {
	case r.fromPeer(s):
		// The replica that sent it ended the upstream sessions.
	case ok && r.hasShared():
		r.endAtHome(home, s)
		r.closeUpstreams(s)
	default:
		r.closeUpstreams(s)
	}
	rl := &r.relay
	rl.mu.Lock()
	st := rl.clients[s.ID]
	delete(rl.clients, s.ID)
	var release []catalog.Route
	if st != nil {
		for _, rt := range st.subs {
			rl.upstreamSubs[rt]--
			if rl.upstreamSubs[rt] <= 0 {
				delete(rl.upstreamSubs, rt)
				release = append(release, rt)
			}
		}
	}
	rl.mu.Unlock()
	for _, rt := range release {
		if b, ok := r.servers.Get(rt.Server); ok {
			params := json.RawMessage(`{"uri":` + string(quote(rt.Name)) + `}`)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := b.Request(ctx, backendUnsubscribe(params)); err != nil {
				r.log.Debug("unsubscribe upstream", "server", rt.Server, "uri", rt.Name, "err", err)
			}
			cancel()
		}
	}
}
