package backend

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// MaxSessions bounds the clients' upstream sessions one backend keeps on
// this replica (transports continuing them, SSE streams); the least recently
// used one is forgotten beyond it.
const MaxSessions = 10_000

// DefaultSessionIdle is how long a client's upstream session may go unused
// on this replica before it is forgotten here (see ManagerOptions.SessionIdle).
const DefaultSessionIdle = 30 * time.Minute

// SessionInit is what a client's own upstream session is initialized with.
// Not the client's revision: the session speaks the one the shared
// connection negotiated, so that any replica can continue it.
type SessionInit struct {
	// Client is the client's session id here: reported back with its
	// messages (OnNotification, OnRequest). It is never logged.
	Client string
	// Capabilities are the client's capabilities as it sent them: they go
	// upstream verbatim ({} when empty).
	Capabilities              json.RawMessage
	ClientName, ClientVersion string
}

// Upstream names one upstream session: the endpoint index (config order)
// and the backend's session id.
type Upstream struct {
	Endpoint int
	ID       string
}

// IsZero reports whether u names no session (not opened yet).
func (u Upstream) IsZero() bool { return u == Upstream{} }

// ClientSession is one client's session with one server; Upstream zero = not
// opened yet.
type ClientSession struct {
	Init     SessionInit
	Upstream Upstream
}

// upSession is one client's upstream session as this replica holds it.
type upSession struct {
	key    Upstream // also its key in the sessionCache
	client string
	ep     *endpoint
	c      *conn
	// owned: c holds a stream of this replica (SSE), closed when forgotten.
	// Otherwise (streamable HTTP) c holds nothing but memory: forgetting it
	// just drops it, with no DELETE, since other replicas may continue it.
	owned bool
	// local: opened on this replica in place of the client's own (zero,
	// forgotten upstream, endpoint gone): only this replica knows it.
	local bool
	// ended: the backend answered 404 for it; kept as a tombstone so that a
	// request naming it opens a replacement rather than continue it again.
	ended bool
	used  time.Time
	elem  *list.Element
}

// sessionCache holds a backend's client sessions on this replica: an LRU
// bounded by max, idle-evicted after idle.
type sessionCache struct {
	max  int
	idle time.Duration

	mu     sync.Mutex
	closed bool
	byKey  map[Upstream]*upSession
	lru    list.List // of *upSession, most recently used first
	// repl is the session opened on this replica for a client, which wins
	// over the one its ClientSession names.
	repl map[string]*upSession
	// opening serializes the opening of a client's replacement session.
	opening map[string]chan struct{}
	// listeners are the client's Listen calls: CloseSession stops them, a
	// replacement session moves their stream to it.
	listeners map[string]map[*listener]struct{}
	// closedAt remembers the clients CloseSession ended (until idle), so
	// that a Listen or request racing the close does not open a new session.
	closedAt map[string]time.Time
}

// count is how many sessions the cache holds.
func (sc *sessionCache) count() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.byKey)
}

func newSessionCache(max int, idle time.Duration) *sessionCache {
	return &sessionCache{
		max: max, idle: idle,
		byKey:     map[Upstream]*upSession{},
		repl:      map[string]*upSession{},
		opening:   map[string]chan struct{}{},
		listeners: map[string]map[*listener]struct{}{},
		closedAt:  map[string]time.Time{},
	}
}

// get returns the session a request of cs goes on: its replacement on this
// replica, else the one its Upstream names (found reports that one is
// known here, maybe ended). It also returns the sessions that expired.
//
// ended is s.ended as read under the lock (end sets it concurrently).
func (sc *sessionCache) get(cs *ClientSession, now time.Time) (s *upSession, found, ended bool, expired []*upSession) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	expired = sc.expireLocked(now)
	if s = sc.repl[cs.Init.Client]; s == nil && !cs.Upstream.IsZero() {
		s = sc.byKey[cs.Upstream]
	}
	if s == nil {
		return nil, false, false, expired
	}
	s.used = now
	sc.lru.MoveToFront(s.elem)
	return s, true, s.ended, expired
}

// put stores s unless its key is known already (that session is returned
// instead). A local s becomes its client's replacement. It returns the
// sessions that had to go: least recently used beyond max, the client's
// previous replacement. On a closed cache s itself goes.
func (sc *sessionCache) put(s *upSession, now time.Time) (kept *upSession, gone []*upSession) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed {
		return nil, []*upSession{s}
	}
	if old := sc.byKey[s.key]; old != nil && !old.ended {
		return old, []*upSession{s}
	} else if old != nil {
		sc.removeLocked(old)
	}
	if s.local {
		if old := sc.repl[s.client]; old != nil {
			sc.removeLocked(old)
			gone = append(gone, old)
		}
		sc.repl[s.client] = s
		for l := range sc.listeners[s.client] {
			if l.conn != nil {
				l.conn() // its stream is on the session s replaces
			}
		}
	}
	s.used = now
	s.elem = sc.lru.PushFront(s)
	sc.byKey[s.key] = s
	for sc.lru.Len() > sc.max {
		last := sc.lru.Back().Value.(*upSession)
		sc.removeLocked(last)
		gone = append(gone, last)
	}
	return s, gone
}

// end records that the backend forgot s: a replacement is forgotten, a
// session a ClientSession names stays as a tombstone. It reports whether s
// was still held (its conn is the caller's to release then).
func (sc *sessionCache) end(s *upSession) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.byKey[s.key] != s || s.ended {
		return false
	}
	if s.local {
		sc.removeLocked(s)
	} else {
		s.ended = true
	}
	return true
}

// forget removes s; it reports whether s was held.
func (sc *sessionCache) forget(s *upSession) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.byKey[s.key] != s {
		return false
	}
	sc.removeLocked(s)
	return true
}

// take removes and returns the sessions of cs (its replacement and the one
// its Upstream names) and ends its Listen calls.
func (sc *sessionCache) take(cs *ClientSession, now time.Time) []*upSession {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.closedAt) >= sc.max {
		for c := range sc.closedAt { // bounded: forget any one
			delete(sc.closedAt, c)
			break
		}
	}
	sc.closedAt[cs.Init.Client] = now
	var out []*upSession
	if s := sc.repl[cs.Init.Client]; s != nil {
		sc.removeLocked(s)
		out = append(out, s)
	}
	if !cs.Upstream.IsZero() {
		if s := sc.byKey[cs.Upstream]; s != nil && s.client == cs.Init.Client {
			sc.removeLocked(s)
			out = append(out, s)
		}
	}
	for l := range sc.listeners[cs.Init.Client] {
		l.stop()
	}
	return out
}

// drain closes the cache and returns every session it held.
func (sc *sessionCache) drain() []*upSession {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.closed = true
	var out []*upSession
	for el := sc.lru.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*upSession))
	}
	sc.lru.Init()
	sc.byKey, sc.repl = map[Upstream]*upSession{}, map[string]*upSession{}
	return out
}

// sweep removes the sessions idle for longer than idle.
func (sc *sessionCache) sweep(now time.Time) []*upSession {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for c, at := range sc.closedAt {
		if now.Sub(at) > sc.idle {
			delete(sc.closedAt, c)
		}
	}
	return sc.expireLocked(now)
}

// isClosed reports whether CloseSession ended client's session here.
func (sc *sessionCache) isClosed(client string) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	_, ok := sc.closedAt[client]
	return ok
}

func (sc *sessionCache) expireLocked(now time.Time) []*upSession {
	var out []*upSession
	for el := sc.lru.Back(); el != nil; el = sc.lru.Back() {
		s := el.Value.(*upSession)
		if now.Sub(s.used) <= sc.idle {
			break
		}
		sc.removeLocked(s)
		out = append(out, s)
	}
	return out
}

func (sc *sessionCache) removeLocked(s *upSession) {
	if sc.byKey[s.key] == s {
		delete(sc.byKey, s.key)
	}
	if sc.repl[s.client] == s {
		delete(sc.repl, s.client)
	}
	if s.elem != nil {
		sc.lru.Remove(s.elem)
		s.elem = nil
	}
}

// beginOpen makes the caller the one opening client's replacement session
// (mine), or returns the channel closed when the one opening it is done.
func (sc *sessionCache) beginOpen(client string) (ch chan struct{}, mine bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if ch := sc.opening[client]; ch != nil {
		return ch, false
	}
	ch = make(chan struct{})
	sc.opening[client] = ch
	return ch, true
}

func (sc *sessionCache) endOpen(client string, ch chan struct{}) {
	sc.mu.Lock()
	delete(sc.opening, client)
	sc.mu.Unlock()
	close(ch)
}

// listener is one Listen call: stop ends it, conn its current stream.
type listener struct {
	stop context.CancelFunc
	conn context.CancelFunc // guarded by sessionCache.mu
}

// addListener registers a Listen call of client (stopped at once when the
// client's session was closed); the returned func unregisters it.
func (sc *sessionCache) addListener(client string, stop context.CancelFunc) (*listener, func()) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	l := &listener{stop: stop}
	if _, closed := sc.closedAt[client]; closed {
		stop()
	}
	if sc.listeners[client] == nil {
		sc.listeners[client] = map[*listener]struct{}{}
	}
	sc.listeners[client][l] = struct{}{}
	return l, func() {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		delete(sc.listeners[client], l)
		if len(sc.listeners[client]) == 0 {
			delete(sc.listeners, client)
		}
	}
}

// setConn records how to end l's current stream (nil: none).
func (sc *sessionCache) setConn(l *listener, cancel context.CancelFunc) {
	sc.mu.Lock()
	l.conn = cancel
	sc.mu.Unlock()
}

// release frees what forgotten sessions hold on this replica: an SSE stream
// is closed; a streamable HTTP transport is dropped without DELETE.
func release(ss ...*upSession) {
	for _, s := range ss {
		if s.owned {
			if err := s.c.close(); err != nil {
				s.ep.logger.Debug("close client session stream", "err", err)
			}
		} else {
			s.c.cancel()
		}
	}
}

// PerClient reports whether every client gets its own upstream session on
// this server (states.EffectiveSession is PER_CLIENT): Request.Client, Listen
// and CloseSession then act; on a shared server they are ignored.
func (b *Backend) PerClient() bool { return b.perClient }

// OpenSession initializes a new upstream session for the client on an
// endpoint the picker chooses, holding for a reconnect as requests do. A
// server that keeps no sessions (no Mcp-Session-Id) gives Upstream zero: its
// clients' requests then go on the shared connection.
func (b *Backend) OpenSession(ctx context.Context, init SessionInit) (Upstream, error) {
	if !b.perClient {
		return Upstream{}, fmt.Errorf("backend %q: open a client session: the server's sessions are shared", b.name)
	}
	timeout := b.params().timeout
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const what = "open a client session"
	l, err := b.acquire(rctx, -1)
	if err != nil {
		return Upstream{}, b.requestErr(ctx, rctx, what, timeout, err)
	}
	if l.ep.sessionless.Load() || l.c.mod != nil { // 2026-07-28 has no sessions
		l.release() // nothing was sent
		return Upstream{}, nil
	}
	s, err := b.openOn(ctx, rctx, l, init)
	if err != nil {
		return Upstream{}, b.requestErr(ctx, rctx, what, timeout, err)
	}
	l.done(true)
	if s == nil {
		return Upstream{}, nil
	}
	b.store(s)
	return s.key, nil
}

// openOn opens a client's session on a leased endpoint. On error the lease
// is done (a transport failure counts against the endpoint's breaker). A nil
// session without error means the server keeps no sessions.
func (b *Backend) openOn(ctx, rctx context.Context, l lease, init SessionInit) (*upSession, error) {
	s, err := l.ep.open(rctx, init)
	if err != nil {
		l.done(!isConnErr(rctx, err) && !timedOut(ctx, rctx))
		return nil, fmt.Errorf("endpoint %s: open a session for the client: %w", l.ep.label, err)
	}
	return s, nil
}

// store keeps s in the cache (releasing what that evicts).
func (b *Backend) store(s *upSession) *upSession {
	kept, gone := b.ses.put(s, b.clock.Now())
	release(gone...)
	return kept
}

// lookup returns the session a request of cs goes on from this replica, or
// nil when one must be opened: none known, the one known ended, its stream
// lost, or (streamable HTTP) not held here yet, in which case a transport
// continuing it is built, which costs no round trip.
func (b *Backend) lookup(cs *ClientSession) *upSession {
	s, found, ended, expired := b.ses.get(cs, b.clock.Now())
	release(expired...)
	switch {
	case found && ended:
		return nil
	case found && s.c.isDead():
		if b.ses.forget(s) {
			release(s)
		}
		return nil
	case found:
		return s
	}
	up := cs.Upstream
	if up.IsZero() || up.ID == "" || up.Endpoint < 0 || up.Endpoint >= len(b.eps) ||
		b.cfg.GetTransport() != mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		return nil // an SSE session lives on the replica that opened it
	}
	c, err := b.eps[up.Endpoint].continueSession(cs.Init.Client, up.ID)
	if err != nil {
		b.logger.Warn("continue a client's upstream session", "err", err)
		return nil
	}
	return b.store(&upSession{key: up, client: cs.Init.Client, ep: b.eps[up.Endpoint], c: c})
}

// leaseOn leases e for a request on a client's session: e must be ready and
// its breaker must let the request through.
func (b *Backend) leaseOn(e *endpoint) (lease, bool) {
	c := e.readyConn()
	if c == nil {
		return lease{}, false
	}
	permit, err := e.breaker.AllowRelease()
	if err != nil {
		return lease{}, false
	}
	return lease{ep: e, c: c, permit: permit}, true
}

// sessionLease finds the session a request of cs goes on and leases its
// endpoint; when there is none, or its endpoint is down (or is exclude, the
// one a retried request failed on), it opens a new one on this replica on an
// endpoint the picker chooses (holding like any request): the state of the
// lost session is gone with it. A nil session means the shared connection
// (a server that keeps no sessions).
func (b *Backend) sessionLease(rctx context.Context, cs *ClientSession, exclude int) (lease, *upSession, error) {
	for {
		s := b.lookup(cs)
		if s != nil && s.ep.idx != exclude {
			if l, ok := b.leaseOn(s.ep); ok {
				return l, s, nil
			}
		}
		if b.ses.isClosed(cs.Init.Client) {
			return lease{}, nil, fmt.Errorf("backend %q: the client's session was closed", b.name)
		}
		ch, mine := b.ses.beginOpen(cs.Init.Client)
		if !mine {
			select {
			case <-ch:
				continue
			case <-rctx.Done():
				return lease{}, nil, fmt.Errorf("%w: waiting for the client's session to open: %w", b.unavailableErr(), rctx.Err())
			}
		}
		if s2 := b.lookup(cs); s2 != s {
			b.ses.endOpen(cs.Init.Client, ch) // opened meanwhile
			continue
		}
		l, ns, err := b.replace(rctx, cs, s, exclude)
		b.ses.endOpen(cs.Init.Client, ch)
		return l, ns, err
	}
}

// replace opens a new session for cs on this replica in place of old (nil:
// none) and keeps it as the client's replacement.
func (b *Backend) replace(rctx context.Context, cs *ClientSession, old *upSession, exclude int) (lease, *upSession, error) {
	l, err := b.acquire(rctx, exclude)
	if err != nil {
		return lease{}, nil, err
	}
	if old != nil && old.ep == l.ep {
		return l, old, nil // its endpoint is back
	}
	if l.ep.sessionless.Load() || l.c.mod != nil { // 2026-07-28 has no sessions
		return l, nil, nil
	}
	s, err := b.openOn(rctx, rctx, l, cs.Init)
	if err != nil || s == nil {
		return l, nil, err
	}
	s.local = true
	if old != nil {
		b.logger.Info("client's upstream session replaced: its endpoint is down, the state it held is lost", "from", old.ep.label, "to", l.ep.label)
	}
	return l, b.store(s), nil
}

// CloseSession ends the client's upstream sessions (a DELETE upstream for
// streamable HTTP: the one its ClientSession names and any replacement this
// replica opened) and forgets this replica's transports, SSE streams and
// Listen calls of the client.
func (b *Backend) CloseSession(ctx context.Context, cs *ClientSession) error {
	if !b.perClient || cs == nil {
		return nil
	}
	b.dropModernSubscriptions(cs.Init.Client)
	held := b.ses.take(cs, b.clock.Now())
	release(held...)
	if b.cfg.GetTransport() != mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		return nil // closing the SSE stream ended the session
	}
	ctx, cancel := context.WithTimeout(ctx, b.params().timeout)
	defer cancel()
	var errs []error
	deleted := map[Upstream]bool{}
	del := func(k Upstream) {
		if deleted[k] || k.ID == "" || k.Endpoint < 0 || k.Endpoint >= len(b.eps) {
			return
		}
		deleted[k] = true
		if err := b.eps[k.Endpoint].deleteSession(ctx, k.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if !cs.Upstream.IsZero() {
		del(cs.Upstream)
	}
	for _, s := range held {
		del(s.key)
	}
	if len(errs) > 0 {
		return fmt.Errorf("backend %q: close client session: %w", b.name, errors.Join(errs...))
	}
	return nil
}

// closeSessions is Close's part: every session held here is released, and
// the replacements only this replica knows are deleted upstream (best
// effort, within a few seconds). Sessions a ClientSession names are not:
// other replicas may continue them.
func (b *Backend) closeSessions() {
	all := b.ses.drain()
	release(all...)
	if b.cfg.GetTransport() != mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeDeleteTimeout)
	defer cancel()
	work := make(chan *upSession)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range work {
				if err := s.ep.deleteSession(ctx, s.key.ID); err != nil {
					s.ep.logger.Debug("delete client session at close", "err", err)
				}
			}
		}()
	}
	for _, s := range all {
		if s.local && !s.ended {
			work <- s
		}
	}
	close(work)
	wg.Wait()
}

// closeDeleteTimeout bounds the DELETEs of Backend.Close.
const closeDeleteTimeout = 2 * time.Second

// sweeper forgets idle sessions now and then, so an idle server's SSE
// streams close without a request to notice them. It runs on the wall
// clock: the supervisors' waits are the only timers of the backend's clock.
func (b *Backend) sweeper(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			release(b.ses.sweep(b.clock.Now())...)
		case <-b.ctx.Done():
			return
		}
	}
}

// sessionConn wraps a transport of a client's session: its messages are
// tagged with the client, its ids start at random so that replicas
// continuing one session do not reuse each other's.
func (e *endpoint) sessionConn(tr transport.Interface, client string) *conn {
	c := e.newConn(e.b.ctx, tr)
	c.ids.Store(rand.Int64N(1 << 50))
	c.post = e.newPoster(tr, e.pc, client)
	tr.SetNotificationHandler(func(n mcp.JSONRPCNotification) { e.notification(client, n) })
	if bt, ok := tr.(transport.BidirectionalInterface); ok {
		bt.SetRequestHandler(func(ctx context.Context, r transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
			return e.request(ctx, client, r)
		})
	}
	return c
}

// pinnedVersion is the version a client's session speaks: the one the shared
// connection negotiated, else the one we pin.
func (e *endpoint) pinnedVersion() string {
	if v := e.version.Load(); v != nil && *v != "" {
		return *v
	}
	return mcp.LATEST_LEGACY_PROTOCOL_VERSION
}

// continueSession builds a transport continuing a client's streamable HTTP
// session that may have been opened on another replica. It starts nothing.
func (e *endpoint) continueSession(client, id string) (*conn, error) {
	tr, err := e.newTransport(e.b.params().timeout, transportUse{client: true, session: id})
	if err != nil {
		return nil, err
	}
	c := e.sessionConn(tr, client)
	c.version = e.pinnedVersion()
	if hc, ok := tr.(transport.HTTPConnection); ok {
		hc.SetProtocolVersion(c.version)
	}
	if err := tr.Start(c.ctx); err != nil { // no GET stream: Listen reads it
		c.cancel()
		return nil, fmt.Errorf("start transport: %w", err)
	}
	return c, nil
}

// open initializes a new upstream session for a client: its capabilities
// verbatim, its client info, our pinned revision. nil without error: the
// server answered without a session id (it keeps none), noted on e.
func (e *endpoint) open(ctx context.Context, init SessionInit) (*upSession, error) {
	b := e.b
	caps := init.Capabilities
	if len(caps) == 0 {
		caps = json.RawMessage("{}")
	}
	info := mcp.Implementation{Name: init.ClientName, Version: init.ClientVersion}
	if info.Name == "" {
		info = mcp.Implementation{Name: "mcpmesh", Version: version.Version}
	}
	params, err := initParamsFor(info, caps)
	if err != nil {
		return nil, fmt.Errorf("client capabilities: %w", err)
	}
	tr, err := e.newTransport(b.params().timeout, transportUse{client: true})
	if err != nil {
		return nil, err
	}
	sse := b.cfg.GetTransport() == mcpmeshv1.Transport_TRANSPORT_SSE
	c := e.sessionConn(tr, init.Client)
	if err := tr.Start(c.ctx); err != nil {
		_ = c.close()
		return nil, fmt.Errorf("start transport: %w", err)
	}
	if _, err := c.handshake(ctx, params); err != nil {
		_ = c.close() // a session the initialize did open is deleted
		return nil, fmt.Errorf("initialize: %w", err)
	}
	id := ""
	switch t := tr.(type) {
	case *transport.StreamableHTTP:
		id = t.GetSessionId()
	case *transport.SSE:
		if u := t.GetEndpoint(); u != nil {
			if id = u.Query().Get("sessionId"); id == "" {
				id = u.String()
			}
		}
	}
	if id == "" {
		_ = c.close()
		if !e.sessionless.Swap(true) {
			e.logger.Info("backend keeps no sessions: its clients share the shared connection")
		}
		return nil, nil
	}
	return &upSession{key: Upstream{Endpoint: e.idx, ID: id}, client: init.Client, ep: e, c: c, owned: sse}, nil
}

// sessionDo sends one HTTP request of ours (not mcp-go's) on a client's
// streamable HTTP session: the Listen GET, an answer POSTed back, the
// DELETE. It carries the session's headers and the configured ones, and
// goes through pc. An error does not repeat the URL: callers name the
// endpoint.
func (e *endpoint) sessionDo(ctx context.Context, method, id, version string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.url, rd)
	if err != nil {
		return nil, err
	}
	h := req.Header
	h.Set(transport.HeaderKeySessionID, id)
	h.Set(transport.HeaderKeyProtocolVersion, version)
	for k, v := range e.b.cfg.GetHttp().GetHeaders() {
		h.Set(k, v)
	}
	switch method {
	case http.MethodGet:
		h.Set("Accept", "text/event-stream")
	case http.MethodPost:
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
	}
	resp, err := e.pc.Do(req)
	if err != nil {
		return nil, redactURLError(err)
	}
	return resp, nil
}

// discard reads what little of a response body we ignore (so its
// connection can be reused) and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
}

// deleteSession ends a streamable HTTP session upstream. A backend that
// forgot it (404) or does not let clients end sessions (405) is no error.
func (e *endpoint) deleteSession(ctx context.Context, id string) error {
	resp, err := e.sessionDo(ctx, http.MethodDelete, id, e.pinnedVersion(), nil)
	if err != nil {
		return fmt.Errorf("endpoint %s: delete session: %w", e.label, err)
	}
	discard(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted, http.StatusNoContent, http.StatusNotFound, http.StatusMethodNotAllowed:
		return nil
	}
	return fmt.Errorf("endpoint %s: delete session: %s", e.label, resp.Status)
}

// redactURLError keeps the error of an HTTP request but not a repetition of
// its URL, which the caller names already.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
