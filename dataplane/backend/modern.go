package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// Backends of MCP 2026-07-28, the stateless revision. A streamable HTTP
// endpoint is probed with server/discover when it connects, as mcp-go's
// client does; one that lists 2026-07-28 among its supportedVersions is
// spoken to in that revision, anything else falls back to initialize and
// 2025-11-25 (connect.go). On a modern connection:
//
//   - there is no session: no initialize, no Mcp-Session-Id, no upstream
//     session per client (OpenSession gives Upstream zero, as for a server
//     that keeps no sessions), so per-client state travels per request;
//   - every request carries _meta protocolVersion, clientCapabilities and
//     clientInfo (the calling client's, see Caller, else the gateway's), its
//     logLevel when it has one, and the Mcp-Method / Mcp-Name headers;
//   - list_changed comes over one subscriptions/listen stream per
//     connection, and resources/subscribe / unsubscribe of a client (or of
//     the shared connection) become a subscriptions/listen stream of its own
//     with the client's resourceSubscriptions; logging/setLevel is answered
//     here, since the level rides in each request's _meta;
//   - cancelling a request closes its POST (there is no notifications/cancelled).
//
// The era can be pinned per server with a configured MCP-Protocol-Version
// header (`--header MCP-Protocol-Version=2025-11-25`, or 2026-07-28).

// modernVersion is the revision a modern connection speaks.
const modernVersion = mcp.ProtocolVersion20260728

// discoverProbeTimeout bounds the server/discover probe: a server of an
// earlier revision that ignores the method must not hold the connect for the
// whole request timeout (mcp-go's client waits as long).
const discoverProbeTimeout = 5 * time.Second

// Caller describes the client a request is made for, to a backend of MCP
// 2026-07-28 (its _meta clientCapabilities, clientInfo and logLevel).
type Caller struct {
	// Capabilities as the client declared them; {} when empty.
	Capabilities json.RawMessage
	// Name and Version are its clientInfo; the gateway's when Name is "".
	Name, Version string
	// LogLevel is the level of notifications/message the client wants
	// during the request; "" asks for none.
	LogLevel string
}

// era is how an endpoint chooses its protocol revision.
type era int

const (
	eraAuto   era = iota // probe server/discover, fall back to initialize
	eraLegacy            // initialize, 2025-11-25
	eraModern            // 2026-07-28 only
)

// era is auto for streamable HTTP unless the registration pins a version
// with an MCP-Protocol-Version header; stdio and SSE are always legacy.
func (e *endpoint) era() era {
	if e.b.cfg.GetTransport() != mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		return eraLegacy
	}
	for k, v := range e.b.cfg.GetHttp().GetHeaders() {
		if strings.EqualFold(k, mcp.HeaderProtocolVersion) {
			if mcp.IsModernProtocol(v) {
				return eraModern
			}
			return eraLegacy
		}
	}
	return eraAuto
}

// modernConn is what a connection of the 2026-07-28 revision needs beyond
// its transport: the gateway's own _meta, and the subscriptions/listen
// streams it runs (each on a goroutine of wg, ended by shutdown).
type modernConn struct {
	e  *endpoint
	c  *conn
	gw Caller

	meta metaCache // of the callers seen

	mu      sync.Mutex
	closed  bool
	streams map[string]*subStream // resource subscriptions per client key ("" shared)
	wg      sync.WaitGroup
	// subMu serializes a client's subscribes (striped by client key): each
	// replaces the client's stream, and two at once would end each other's
	// before its acknowledgement.
	subMu [16]sync.Mutex
}

var subSeed = maphash.MakeSeed()

// subStream is one subscriptions/listen stream carrying a client's
// resource subscriptions.
type subStream struct {
	uris map[string]bool
	stop context.CancelFunc
}

// connectModern probes the endpoint with server/discover and, when it
// speaks 2026-07-28, returns a connection with its lists fetched and its
// list_changed stream running. legacy reports that it does not (or might
// not): the caller falls back to initialize. A refused connection, or a
// failure after the probe succeeded, is an error.
func (e *endpoint) connectModern(ctx context.Context, timeout time.Duration) (c *conn, l *lists, legacy bool, err error) {
	pinned := e.era() == eraModern
	tri, err := e.newTransport(timeout, transportUse{modern: true})
	if err != nil {
		return nil, nil, false, err
	}
	tr := tri.(*transport.StreamableHTTP)
	// The version goes in every request's header from the first one on.
	tr.SetProtocolVersion(modernVersion)
	cctx, cancel := context.WithCancel(ctx)
	c = &conn{tr: tr, ctx: cctx, cancel: cancel, logger: e.logger, dead: make(chan struct{}), version: modernVersion}
	c.mod = &modernConn{e: e, c: c, gw: gatewayCaller(e.b.hooks.initParams), streams: map[string]*subStream{}}
	c.post = e.newPoster(tr, e.hc, "")
	fail := func(what string, err error) (*conn, *lists, bool, error) {
		_ = c.close()
		return nil, nil, false, fmt.Errorf("%s: %w", what, err)
	}
	// Progress and log messages of a call come on its POST's stream.
	tr.SetNotificationHandler(e.onNotification)
	tr.SetRequestHandler(e.onRequest)
	if err := tr.Start(cctx); err != nil {
		return fail("start transport", err)
	}

	pctx, pcancel := context.WithTimeout(cctx, min(timeout, discoverProbeTimeout))
	res, err := c.request(pctx, string(mcp.MethodServerDiscover), nil)
	pcancel()
	var ir initResult
	if err == nil {
		var supported bool
		ir, supported, err = parseDiscover(res)
		if err == nil && !supported {
			err = errors.New("the server does not list " + modernVersion + " among its supportedVersions")
		}
	}
	if err != nil {
		_ = c.close()
		if pinned || errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil {
			return nil, nil, false, fmt.Errorf("server/discover: %w", err)
		}
		e.logger.Debug("server/discover failed: connecting with initialize", "err", err)
		return nil, nil, true, nil
	}
	e.version.Store(&c.version)
	tctx, tcancel := context.WithTimeout(cctx, timeout)
	defer tcancel()
	// Listening first, then fetching: a change between the two is not lost.
	listening := c.mod.listLists(mcp.SubscriptionFilter{
		ToolsListChanged:     ir.offered[catalog.Tools],
		PromptsListChanged:   ir.offered[catalog.Prompts],
		ResourcesListChanged: ir.offered[catalog.Resources],
	})
	select {
	case <-listening:
	case <-tctx.Done():
		return fail("subscriptions/listen", tctx.Err())
	}
	l = &lists{known: true, caps: ir.caps, instructions: ir.instructions, offered: ir.offered}
	if err := fetchLists(tctx, c, l, allKinds, e.b.params().lists); err != nil {
		return fail("fetch lists", err)
	}
	return c, l, false, nil
}

// parseDiscover reads a server/discover result: whether it supports our
// revision, and its capabilities and instructions.
func parseDiscover(res json.RawMessage) (initResult, bool, error) {
	var r struct {
		SupportedVersions []string        `json:"supportedVersions"`
		Capabilities      json.RawMessage `json:"capabilities"`
		Instructions      string          `json:"instructions"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return initResult{}, false, fmt.Errorf("invalid server/discover result: %w", err)
	}
	supported := false
	for _, v := range r.SupportedVersions {
		supported = supported || v == modernVersion
	}
	if !supported {
		return initResult{}, false, nil
	}
	ir, err := parseCapabilities(r.Capabilities)
	if err != nil {
		return initResult{}, false, fmt.Errorf("invalid server/discover result: %w", err)
	}
	ir.instructions = r.Instructions
	return ir, true, nil
}

// gatewayCaller is the gateway as a client: the capabilities it sends in
// initialize (ManagerOptions.ClientCapabilities), its own client info.
func gatewayCaller(initParams json.RawMessage) Caller {
	g := Caller{Capabilities: json.RawMessage("{}"), Name: "mcpmesh", Version: version.Version}
	if s, e, ok, err := jsonrpc.Lookup(initParams, "capabilities"); err == nil && ok {
		g.Capabilities = initParams[s:e]
	}
	return g
}

// liveMethod is the request that shows the connection still works: ping,
// which 2026-07-28 removed, or server/discover there.
func (c *conn) liveMethod() string {
	if c.mod != nil {
		return string(mcp.MethodServerDiscover)
	}
	return string(mcp.MethodPing)
}

// forward sends a client's request on the connection: as it is on a session
// connection; on a modern one with the caller's _meta and headers, and with
// resources/(un)subscribe and logging/setLevel translated (see the top of
// this file). perClient says r.Client names the client's own state.
func (c *conn) forward(ctx context.Context, perClient bool, r Request) (json.RawMessage, error) {
	m := c.mod
	if m == nil {
		return c.request(ctx, r.Method, r.Params)
	}
	who := r.Caller
	if who == nil && r.Client != nil {
		in := r.Client.Init
		who = &Caller{Capabilities: in.Capabilities, Name: in.ClientName, Version: in.ClientVersion}
	}
	switch r.Method {
	case string(mcp.MethodResourcesSubscribe), string(mcp.MethodResourcesUnsubscribe):
		client := ""
		if perClient && r.Client != nil {
			client = r.Client.Init.Client
		}
		uri, ok, err := jsonrpc.LookupString(r.Params, "uri")
		if err != nil || !ok {
			return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: params need a string \"uri\"", r.Method)
		}
		return m.subscribe(ctx, client, uri, r.Method == string(mcp.MethodResourcesSubscribe))
	case string(mcp.MethodSetLogLevel):
		// The level travels in the _meta of each of the client's requests.
		return json.RawMessage(`{}`), nil
	}
	params, header, err := m.prepare(r.Method, r.Params, who)
	if err != nil {
		return nil, err
	}
	return m.send(ctx, r.Method, params, header)
}

// prepare adds to a request of method what 2026-07-28 requires, for who
// (nil: the gateway; a caller without client info goes as the gateway).
// The encoded _meta members of a caller are kept (metaCache): they are the
// same for every request of the same client.
func (m *modernConn) prepare(method string, params json.RawMessage, who *Caller) (json.RawMessage, http.Header, error) {
	if who == nil {
		who = &m.gw
	}
	name, ver := who.Name, who.Version
	if name == "" {
		name, ver = m.gw.Name, m.gw.Version
	}
	members, err := m.meta.members(who.Capabilities, name, ver, who.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	return modernRequest(method, params, members)
}

// ModernRequest gives a request of method what 2026-07-28 requires of it:
// _meta protocolVersion, clientCapabilities, clientInfo (and logLevel) of
// who, and the Mcp-Method and Mcp-Name headers (ModernHeaders). The
// protocol version header is the transport's.
func ModernRequest(method string, params json.RawMessage, who Caller) (json.RawMessage, http.Header, error) {
	members, err := encodeMeta(who.Capabilities, who.Name, who.Version, who.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	return modernRequest(method, params, members)
}

func modernRequest(method string, params json.RawMessage, members []metaMember) (json.RawMessage, http.Header, error) {
	params, err := setMeta(params, members)
	if err != nil {
		return nil, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "%s: params: %v", method, err)
	}
	return params, ModernHeaders(method, params), nil
}

// encodeMeta encodes the _meta members of a request of 2026-07-28 for a
// client of those capabilities (raw; {} when empty), client info and log
// level ("": none), in the order they are set.
func encodeMeta(caps json.RawMessage, name, ver, level string) ([]metaMember, error) {
	if len(caps) == 0 {
		caps = json.RawMessage("{}")
	}
	rawInfo, err := json.Marshal(mcp.Implementation{Name: name, Version: ver})
	if err != nil {
		return nil, err
	}
	members := make([]metaMember, 0, 4)
	members = append(members,
		metaMember{key: mcp.MetaKeyProtocolVersion, val: json.RawMessage(`"` + modernVersion + `"`)},
		metaMember{key: mcp.MetaKeyClientCapabilities, val: caps},
		metaMember{key: mcp.MetaKeyClientInfo, val: rawInfo},
	)
	if level != "" {
		lv, _ := json.Marshal(level) // a string cannot fail
		members = append(members, metaMember{key: mcp.MetaKeyLogLevel, val: lv})
	}
	for i := range members {
		members[i].encoded = memberBytes(members[i].key, members[i].val)
	}
	return members, nil
}

// memberBytes encodes "key":val.
func memberBytes(key string, val json.RawMessage) []byte {
	k, _ := json.Marshal(key) // a string cannot fail
	b := make([]byte, 0, len(k)+1+len(val))
	b = append(b, k...)
	b = append(b, ':')
	return append(b, val...)
}

// metaCacheSize bounds the callers a connection keeps the _meta of; when it
// is full the cache starts over.
const metaCacheSize = 256

var metaSeed = maphash.MakeSeed()

// metaCache keeps the encoded _meta members per caller (capabilities,
// client info, log level): a request of a caller seen before reuses them.
// An entry is only used when every field it was made from is equal, so a
// client whose capabilities differ (or a hash collision) never gets
// another's.
type metaCache struct {
	mu      sync.RWMutex
	entries map[uint64]*metaEntry
}

type metaEntry struct {
	caps             json.RawMessage // a copy of the caller's
	name, ver, level string
	members          []metaMember // read only once cached
}

// metaKey hashes a caller's fields; nil and empty capabilities are the same
// ({}), as for encodeMeta.
func metaKey(caps json.RawMessage, name, ver, level string) uint64 {
	var h maphash.Hash
	h.SetSeed(metaSeed)
	h.Write(caps)
	h.WriteByte(0)
	h.WriteString(name)
	h.WriteByte(0)
	h.WriteString(ver)
	h.WriteByte(0)
	h.WriteString(level)
	return h.Sum64()
}

// members returns the encoded _meta members for that caller (encodeMeta),
// from the cache when it has them.
func (mc *metaCache) members(caps json.RawMessage, name, ver, level string) ([]metaMember, error) {
	k := metaKey(caps, name, ver, level)
	mc.mu.RLock()
	e := mc.entries[k]
	mc.mu.RUnlock()
	if e != nil && bytes.Equal(e.caps, caps) && e.name == name && e.ver == ver && e.level == level {
		return e.members, nil
	}
	caps = bytes.Clone(caps) // the members refer to it
	members, err := encodeMeta(caps, name, ver, level)
	if err != nil {
		return nil, err
	}
	e = &metaEntry{caps: caps, name: name, ver: ver, level: level, members: members}
	mc.mu.Lock()
	if mc.entries == nil || len(mc.entries) >= metaCacheSize {
		mc.entries = make(map[uint64]*metaEntry, 16)
	}
	mc.entries[k] = e
	mc.mu.Unlock()
	return members, nil
}

// ModernHeaders are the headers a 2026-07-28 request of method with params
// must carry: Mcp-Method, and Mcp-Name (the tool or prompt name, or the
// resource URI) for the methods that route by one.
func ModernHeaders(method string, params json.RawMessage) http.Header {
	header := http.Header{}
	header.Set(mcp.HeaderMethod, method)
	if mcp.MethodRequiresNameHeader(mcp.MCPMethod(method)) {
		key := "name"
		if method == string(mcp.MethodResourcesRead) {
			key = "uri"
		}
		if v, ok, _ := jsonrpc.LookupString(params, key); ok {
			if enc, ok := mcp.EncodeHeaderValue(v); ok {
				header.Set(mcp.HeaderName, enc)
			}
		}
	}
	return header
}

type metaMember struct {
	key     string
	val     json.RawMessage
	encoded []byte // "key":val
}

// setMeta sets members in params._meta (made when absent; params may be
// empty), keeping every other key. The result is byte for byte what setting
// each member in turn with jsonrpc.Set gives (setMetaBySet): members absent
// from _meta go at its end, in order, and _meta, when absent, at the end of
// params; only a _meta that has some of them already is rewritten member by
// member.
func setMeta(params json.RawMessage, members []metaMember) (json.RawMessage, error) {
	if len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
		params = json.RawMessage(`{}`)
	}
	ms, me, ok, err := jsonrpc.Lookup(params, "_meta")
	if err != nil {
		return nil, err
	}
	if !ok {
		// "_meta":{members} at the end of params, as Set puts a new key.
		end := bytes.LastIndexByte(params, '}')
		out := make([]byte, 0, len(params)+len(`,"_meta":{}`)+membersLen(members))
		out = append(out, params[:end]...)
		if hasMember(params[:end]) {
			out = append(out, ',')
		}
		out = append(out, `"_meta":{`...)
		out = appendMembers(out, members, false)
		out = append(out, '}')
		return append(out, params[end:]...), nil
	}
	if params[ms] != '{' {
		return nil, errors.New(`"_meta" is not an object`)
	}
	meta := params[ms:me]
	for _, mm := range members {
		if _, _, has, err := jsonrpc.Lookup(meta, mm.key); err != nil {
			return nil, err
		} else if has {
			return setMetaBySet(params, ms, me, members)
		}
	}
	// None of them is there: they go at the end of _meta, in place.
	end := ms + bytes.LastIndexByte(meta, '}')
	comma := hasMember(params[ms:end])
	out := make([]byte, 0, len(params)+membersLen(members))
	out = append(out, params[:end]...)
	out = appendMembers(out, members, comma)
	return append(out, params[end:]...), nil
}

// membersLen is the size of the encoded members with a comma each.
func membersLen(members []metaMember) int {
	n := 0
	for _, mm := range members {
		n += len(mm.encoded) + 1
	}
	return n
}

// appendMembers appends the encoded members, comma-separated (and after a
// comma when comma is set).
func appendMembers(b []byte, members []metaMember, comma bool) []byte {
	for _, mm := range members {
		if comma {
			b = append(b, ',')
		}
		b = append(b, mm.encoded...)
		comma = true
	}
	return b
}

// hasMember is jsonrpc.Set's test for whether the object opening obj (up to
// its closing brace, excluded) has a member already: a key's quote.
func hasMember(obj []byte) bool {
	i := 0
	for i < len(obj) && (obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\n' || obj[i] == '\r') {
		i++
	}
	return bytes.IndexByte(bytes.TrimSpace(obj[i+1:]), '"') >= 0
}

// setMetaBySet sets each member in params._meta (params[ms:me]) in turn
// with jsonrpc.Set: a member already there is replaced where it is.
func setMetaBySet(params json.RawMessage, ms, me int, members []metaMember) (json.RawMessage, error) {
	meta := params[ms:me]
	var err error
	for _, mm := range members {
		if meta, err = jsonrpc.Set(meta, mm.key, mm.val); err != nil {
			return nil, err
		}
	}
	return jsonrpc.Splice(params, ms, me, meta), nil
}

// send sends on the connection, mapping the HTTP 404 with which the
// revision answers -32601 (mcp-go's transport reports any 404 as a lost
// session, which a stateless connection has none of) to that error.
func (m *modernConn) send(ctx context.Context, method string, params json.RawMessage, header http.Header) (json.RawMessage, error) {
	res, err := m.c.send(ctx, method, params, header)
	if err != nil && errors.Is(err, transport.ErrSessionTerminated) {
		return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "%s: the backend answered HTTP 404 (method not found)", method)
	}
	return res, err
}

// shutdown ends every listen stream of the connection and waits for them.
func (m *modernConn) shutdown() {
	m.mu.Lock()
	m.closed = true
	for k, st := range m.streams {
		st.stop()
		delete(m.streams, k)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// listLists runs the connection's list_changed stream: its notifications
// mark the lists dirty (the supervisor refetches them). A stream that fails
// wakes the supervisor's liveness check, and one that comes back after a
// break refetches every list, since notifications may have been missed. A
// server that grants nothing ends it. The channel returned is closed once
// the first stream was acknowledged or failed.
func (m *modernConn) listLists(filter mcp.SubscriptionFilter) <-chan struct{} {
	first := make(chan struct{})
	var once sync.Once
	settled := func() { once.Do(func() { close(first) }) }
	if filter.IsEmpty() {
		settled()
		return first
	}
	_, ok := m.goStream(func(ctx context.Context) {
		defer settled()
		e := m.e
		fruitless := 0
		broken := false
		for ctx.Err() == nil {
			granted := true
			got, err := m.listen(ctx, filter, func(g mcp.SubscriptionFilter) {
				settled()
				granted = g.ToolsListChanged || g.PromptsListChanged || g.ResourcesListChanged
				if broken {
					e.markDirty(allKinds)
				}
			}, func(n *jsonrpc.Message) {
				if !e.listChanged(n.Method) {
					e.deliver("", n)
				}
			})
			if ctx.Err() != nil || !granted {
				return
			}
			broken = true
			if got {
				fruitless = 0
			}
			if err == nil {
				err = errors.New("subscriptions/listen stream ended")
			}
			settled()
			e.onStreamLost(err)
			if !sleepCtx(ctx, listenBackoff.Delay(fruitless)) {
				return
			}
			fruitless++
		}
	})
	if !ok {
		settled()
	}
	return first
}

// goStream runs f on a goroutine of the connection, with a context that ends
// at shutdown; false when the connection is closed already.
func (m *modernConn) goStream(f func(ctx context.Context)) (context.CancelFunc, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false
	}
	return m.goStreamLocked(f), true
}

// goStreamLocked is goStream with m.mu held and the connection open: wg.Add
// happens before shutdown's Wait.
func (m *modernConn) goStreamLocked(f func(ctx context.Context)) context.CancelFunc {
	ctx, cancel := context.WithCancel(m.c.ctx)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		f(ctx)
	}()
	return cancel
}

// sleepCtx waits d on the wall clock (the listen streams are no part of the
// supervisor's schedule, which the backend's clock drives).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// subAck is the first outcome of a resource subscriptions stream: the URIs
// the backend granted, or why it did not acknowledge.
type subAck struct {
	granted []string
	err     error
}

// subscribe adds uri to (on) or removes it from the resource subscriptions
// of client ("" for the shared connection): its subscriptions/listen stream
// is replaced by one with the new set. On a subscribe the old stream ends
// once the new one is acknowledged, so no update is lost in between (one may
// come twice); the subscribe fails when the backend does not grant the URI.
func (m *modernConn) subscribe(ctx context.Context, client, uri string, on bool) (json.RawMessage, error) {
	lk := &m.subMu[maphash.String(subSeed, client)%uint64(len(m.subMu))]
	lk.Lock()
	defer lk.Unlock()
	acked := make(chan subAck, 1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("resources/subscribe: %w", transport.ErrTransportClosed)
	}
	old := m.streams[client]
	if (old != nil && old.uris[uri]) == on {
		m.mu.Unlock()
		return json.RawMessage(`{}`), nil // nothing changes
	}
	if old == nil && len(m.streams) >= m.e.b.ses.max {
		// Each client's subscriptions hold a stream to the backend until
		// its session ends: as many as client sessions are kept, no more.
		m.mu.Unlock()
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf(
			"resources/subscribe: this data plane already holds %d subscription streams to the server (its bound, as for client sessions); unsubscribe or end other sessions", len(m.streams))}
	}
	uris := map[string]bool{}
	if old != nil {
		for u := range old.uris {
			uris[u] = true
		}
	}
	if on {
		uris[uri] = true
	} else {
		delete(uris, uri)
	}
	var st *subStream
	if len(uris) > 0 {
		list := make([]string, 0, len(uris))
		for u := range uris {
			list = append(list, u)
		}
		sort.Strings(list)
		filter := mcp.SubscriptionFilter{ResourceSubscriptions: list}
		st = &subStream{uris: uris}
		st.stop = m.goStreamLocked(func(ctx context.Context) { m.runSubscriptions(ctx, client, filter, acked) })
		m.streams[client] = st
	} else {
		delete(m.streams, client)
	}
	m.mu.Unlock()
	if !on {
		if old != nil {
			old.stop()
		}
		return json.RawMessage(`{}`), nil
	}
	var a subAck
	select {
	case a = <-acked:
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	if old != nil {
		old.stop()
	}
	if a.err == nil {
		for _, g := range a.granted {
			if g == uri {
				return json.RawMessage(`{}`), nil
			}
		}
		a.err = jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "resources/subscribe %q: the backend (MCP %s) did not grant it on subscriptions/listen", uri, modernVersion)
	}
	m.mu.Lock()
	if m.streams[client] == st {
		delete(st.uris, uri) // its stream lists it, harmlessly, until the next change
	}
	m.mu.Unlock()
	return nil, a.err
}

// runSubscriptions holds a client's resource subscriptions stream,
// reconnecting with backoff, and delivers its resources/updated to the
// client. The first acknowledgement (or failure) goes to acked.
func (m *modernConn) runSubscriptions(ctx context.Context, client string, filter mcp.SubscriptionFilter, acked chan<- subAck) {
	first := true
	report := func(a subAck) {
		if first {
			first = false
			acked <- a
		}
	}
	fruitless := 0
	for ctx.Err() == nil {
		got, err := m.listen(ctx, filter, func(g mcp.SubscriptionFilter) { report(subAck{granted: g.ResourceSubscriptions}) },
			func(n *jsonrpc.Message) { m.e.deliver(client, n) })
		if err == nil {
			err = errors.New("subscriptions/listen ended before its acknowledgement")
		}
		report(subAck{err: err})
		if got {
			fruitless = 0
		}
		if !sleepCtx(ctx, listenBackoff.Delay(fruitless)) {
			return
		}
		fruitless++
	}
}

// dropModernSubscriptions ends the resource subscriptions of a client whose
// session ended.
func (b *Backend) dropModernSubscriptions(client string) {
	for _, e := range b.eps {
		e.mu.RLock()
		c := e.cur
		e.mu.RUnlock()
		if c == nil || c.mod == nil {
			continue
		}
		m := c.mod
		m.mu.Lock()
		st := m.streams[client]
		delete(m.streams, client)
		m.mu.Unlock()
		if st != nil {
			st.stop()
		}
	}
}

// listen holds one subscriptions/listen request with filter until the
// backend ends it or ctx ends: the acknowledgement goes to ack, every other
// notification to msg. It reports whether any message came, and the error
// that ended it (nil when the backend closed the stream or answered).
func (m *modernConn) listen(ctx context.Context, filter mcp.SubscriptionFilter, ack func(mcp.SubscriptionFilter), msg func(*jsonrpc.Message)) (got bool, err error) {
	e := m.e
	p, err := json.Marshal(struct {
		Notifications mcp.SubscriptionFilter `json:"notifications"`
	}{filter})
	if err != nil {
		return false, err
	}
	params, header, err := m.prepare(string(mcp.MethodSubscriptionsListen), p, nil)
	if err != nil {
		return false, err
	}
	id := jsonrpc.IntID(m.c.ids.Add(1))
	body := jsonrpc.Request(id, string(mcp.MethodSubscriptionsListen), params)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(mcp.HeaderProtocolVersion, modernVersion)
	for k, v := range e.b.cfg.GetHttp().GetHeaders() {
		req.Header.Set(k, v)
	}
	resp, err := e.pc.Do(req)
	if err != nil {
		return false, fmt.Errorf("subscriptions/listen: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	mt := mediaType(resp.Header.Get("Content-Type"))
	switch {
	case mt == "text/event-stream" && resp.StatusCode == http.StatusOK:
	case mt == "application/json":
		// An answer at once: an error, or a result with nothing granted.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
		r, perr := jsonrpc.Parse(b)
		if perr != nil {
			return false, fmt.Errorf("subscriptions/listen: %s: %w", resp.Status, perr)
		}
		if r.Error != nil {
			return false, fmt.Errorf("subscriptions/listen: %w", r.Error)
		}
		ack(mcp.SubscriptionFilter{})
		return true, nil
	default:
		return false, fmt.Errorf("subscriptions/listen: %s (%q)", resp.Status, resp.Header.Get("Content-Type"))
	}
	var answerErr error
	err = readEvents(resp.Body, jsonrpc.MaxMessage, func(data []byte) {
		got = true
		n, err := jsonrpc.Parse(data)
		switch {
		case err != nil:
			e.logger.Debug("subscriptions/listen: drop malformed message", "err", err)
		case n.IsNotification() && n.Method == mcp.MethodNotificationSubscriptionsAcknowledged:
			var a struct {
				Notifications mcp.SubscriptionFilter `json:"notifications"`
			}
			_ = json.Unmarshal(n.Params, &a)
			ack(a.Notifications)
		case n.IsNotification():
			msg(&n)
		case n.IsResponse() && n.Error != nil:
			answerErr = n.Error
		}
	})
	if ctx.Err() != nil {
		return got, nil
	}
	if err == nil {
		err = answerErr
	}
	return got, err
}

// Protocol is the revision the server is reached with: that of its first
// connected endpoint (config order), "" while none is.
func (b *Backend) Protocol() string {
	for _, e := range b.eps {
		if c := e.readyConn(); c != nil {
			return c.version
		}
	}
	return ""
}

// Protocols returns, per server, the revision it is reached with (see
// Backend.Protocol); servers with no connected endpoint are left out.
func (m *Manager) Protocols() map[string]string {
	out := map[string]string{}
	for _, b := range m.List() {
		if v := b.Protocol(); v != "" {
			out[b.Name()] = v
		}
	}
	return out
}
