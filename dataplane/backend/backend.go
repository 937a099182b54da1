package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
)

// ErrNotReady is wrapped by every error of a request made while the backend
// has no live connection; test for it with errors.Is.
var ErrNotReady = errors.New("not connected")

// params are the tunables that can change without reconnecting.
type params struct {
	schedule      resilience.Schedule
	timeout       time.Duration
	probeInterval time.Duration
	listResync    time.Duration // <0: off
	hold          time.Duration // 0: requests never wait for a reconnect
	lists         catalog.Limits
	childEnv      []string // what a stdio child inherits (scrubEnv)
}

// EndpointHealth is this data plane's view of one endpoint (replica) of a server.
type EndpointHealth struct {
	// URL is the endpoint's URL, or the command of a stdio server.
	URL       string
	State     mcpmeshv1.BackendState
	Breaker   mcpmeshv1.BreakerState
	InFlight  int64
	Requests  uint64
	LastError string
	// Since is when the endpoint entered State.
	Since time.Time
}

// Backend is one server: one supervised, shared connection per endpoint
// (replica), shared by all clients of the data plane. Requests go to the
// ready endpoint with the fewest requests in flight; the server is ready
// while any endpoint is.
type Backend struct {
	name   string
	cfg    *mcpmeshv1.Server // immutable
	logger *slog.Logger
	clock  resilience.Clock
	notify func() // non-blocking, coalesced by the manager
	hooks  *hooks // shared by the manager's backends
	// auth holds the OAuth access token of a server with oauth.enabled
	// (owned by the manager, so it outlives a replacement); nil otherwise.
	auth *authHolder

	eps     []*endpoint // config order: http.url first, then endpoints[]
	picker  resilience.Picker
	latency atomic.Int64 // of the last successful request, in ns

	// perClient: every client gets its own upstream session (ses), held on
	// this replica.
	perClient bool
	ses       *sessionCache

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // endpoint supervisors
	done      chan struct{}  // closed when Close has stopped everything
	first     chan struct{}  // closed once an endpoint is healthy or every endpoint's first attempt resolved
	firstOnce sync.Once
	closeOnce sync.Once

	pmu sync.RWMutex
	p   params

	// aggMu serializes the aggregate state; it is taken before any endpoint's
	// mu, never while one is held.
	aggMu sync.Mutex
	state mcpmeshv1.BackendState
	since time.Time
	tried []bool // per endpoint: first attempt resolved
	// wake is closed and replaced whenever an endpoint changed, so requests
	// holding for a reconnect look again.
	wake chan struct{}
}

func newBackend(cfg *mcpmeshv1.Server, p params, logger *slog.Logger, clock resilience.Clock, notify func(), bc resilience.BreakerConfig, h *hooks, auth *authHolder) *Backend {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		name:   cfg.GetName(),
		cfg:    cfg,
		logger: logger.With("server", cfg.GetName()),
		clock:  clock,
		notify: notify,
		hooks:  h,
		auth:   auth,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		first:  make(chan struct{}),
		p:      p,
		state:  mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING,
		since:  clock.Now(),
		wake:   make(chan struct{}),

		perClient: states.EffectiveSession(cfg) == mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT &&
			cfg.GetTransport() != mcpmeshv1.Transport_TRANSPORT_STDIO,
		ses: newSessionCache(h.maxSessions, h.sessionIdle),
	}
	for i, u := range endpointURLs(cfg) {
		b.eps = append(b.eps, newEndpoint(b, i, u, bc))
	}
	b.tried = make([]bool, len(b.eps))
	return b
}

// endpointURLs lists a server's replicas: http.url then endpoints[], without
// duplicates; a single "" for stdio.
func endpointURLs(cfg *mcpmeshv1.Server) []string {
	if cfg.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO {
		return []string{""}
	}
	out := []string{cfg.GetHttp().GetUrl()}
	seen := map[string]bool{out[0]: true}
	for _, u := range cfg.GetEndpoints() {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// start launches one supervisor per endpoint; the Backend owns them and
// Close stops them.
func (b *Backend) start() {
	for _, e := range b.eps {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			e.run(b.ctx)
		}()
	}
	if b.perClient {
		every := min(max(b.ses.idle/4, time.Second), time.Minute)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.sweeper(every)
		}()
	}
}

// Name returns the server name.
func (b *Backend) Name() string { return b.name }

// Prefix returns what the server's tool and prompt names are exposed with:
// the registration's prefix, or "<name>__" when it sets none.
func (b *Backend) Prefix() string {
	if b.cfg.Prefix != nil {
		return b.cfg.GetPrefix()
	}
	return names.DefaultPrefix(b.name)
}

// Config returns the server registration this backend was built from. It
// must not be modified.
func (b *Backend) Config() *mcpmeshv1.Server { return b.cfg }

// State returns the best state of the server's endpoints: healthy, then
// connecting, retrying, unavailable.
func (b *Backend) State() mcpmeshv1.BackendState {
	b.aggMu.Lock()
	defer b.aggMu.Unlock()
	return b.state
}

// stateRank orders states from best to worst.
func stateRank(s mcpmeshv1.BackendState) int {
	switch s {
	case mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY:
		return 0
	case mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING:
		return 1
	case mcpmeshv1.BackendState_BACKEND_STATE_RETRYING:
		return 2
	case mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION:
		return 3
	default:
		return 4
	}
}

// endpointChanged recomputes the server's state after an endpoint changed and
// reports the change. attempted says the endpoint just finished a connect
// attempt.
func (b *Backend) endpointChanged(e *endpoint, attempted bool) {
	b.aggMu.Lock()
	best := mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
	for _, x := range b.eps {
		x.mu.RLock()
		if stateRank(x.state) < stateRank(best) {
			best = x.state
		}
		x.mu.RUnlock()
	}
	if best != b.state {
		b.state, b.since = best, b.clock.Now()
	}
	if attempted {
		b.tried[e.idx] = true
	}
	all := true
	for _, t := range b.tried {
		all = all && t
	}
	if all || best == mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY {
		b.firstOnce.Do(func() { close(b.first) })
	}
	close(b.wake)
	b.wake = make(chan struct{})
	b.aggMu.Unlock()
	b.notify()
}

// Ready reports whether the backend's items are served: an endpoint is
// connected with its lists fetched, or the server is retrying an outage and
// the last known lists are kept (calls then wait for the reconnect, see
// acquire). An unavailable backend is not ready.
func (b *Backend) Ready() bool {
	_, ok := b.readyLists()
	return ok
}

// Connected reports whether an endpoint is connected and ready for requests.
func (b *Backend) Connected() bool {
	for _, e := range b.eps {
		if e.readyConn() != nil {
			return true
		}
	}
	return false
}

// readyLists returns the lists of the first ready endpoint in config order,
// so what clients see does not hop between replicas; with none ready, the
// last known lists of the first retrying endpoint that has them.
func (b *Backend) readyLists() (lists, bool) {
	var kept lists
	for _, e := range b.eps {
		e.mu.RLock()
		if e.readyLocked() {
			l := e.lists
			e.mu.RUnlock()
			return l, true
		}
		if !kept.known && e.lists.known && e.state == mcpmeshv1.BackendState_BACKEND_STATE_RETRYING {
			kept = e.lists
		}
		e.mu.RUnlock()
	}
	return kept, kept.known
}

// Request is one request to a backend, forwarded as raw JSON.
type Request struct {
	Method string          // e.g. "tools/call"
	Params json.RawMessage // forwarded as is
	// Retry says the request is safe to repeat after a transport failure, on
	// another endpoint or after a reconnect. A request the backend answered
	// 404 session-terminated never ran, so it is always repeated.
	Retry bool
	What  string // for error texts: `call tool`; the method when empty
	// Name, when set, follows What quoted in error texts (`call tool "x"`):
	// given apart so that the text is only made when an error needs it.
	Name string
	// Client, when set and the server is per-client (PerClient), sends the
	// request on that client's own upstream session: the one Upstream names
	// (streamable HTTP: continued by a transport cached on this replica, any
	// replica may continue it), or, when that is zero, forgotten by the
	// backend (404) or on an endpoint that is down, a new one opened on this
	// replica and kept here for the client (the state of the lost one is
	// gone with it). SSE: one stream per client session per replica. Same
	// retry, breaker and hold rules as shared requests. Ignored on shared
	// servers.
	Client *ClientSession
	// Caller is the client the request is made for, which a backend that
	// speaks MCP 2026-07-28 is told in the request's _meta (modern.go); nil
	// means the gateway itself. Backends of the session era ignore it.
	Caller *Caller
	// TraceParent and TraceState, when set, are the W3C trace context of
	// the upstream call, sent as the traceparent and tracestate headers of
	// its HTTP request on streamable HTTP (the router puts them in
	// params._meta for every transport).
	TraceParent, TraceState string
}

// traceKey carries a Request's trace headers to the poster that sends it.
type traceKey struct{}

type traceHeaders struct{ parent, state string }

// traceHeadersOf returns the trace headers Request put in ctx, if any.
func traceHeadersOf(ctx context.Context) *traceHeaders {
	th, _ := ctx.Value(traceKey{}).(*traceHeaders)
	return th
}

// Request sends one request on an endpoint the picker chooses, under the
// server's timeout, and returns the raw result. An upstream JSON-RPC error
// comes back as *jsonrpc.Error (errors.As) and counts as a success for the
// breaker. When ctx ends while the request is in flight (the caller
// cancelled, or the timeout passed), the backend sends notifications/cancelled
// {requestId: <our upstream id>} on that connection, then gives up.
// what names r in error texts.
func (r *Request) what() string {
	what := r.What
	if what == "" {
		what = r.Method
	}
	if r.Name != "" {
		what += " " + strconv.Quote(r.Name)
	}
	return what
}

func (b *Backend) Request(ctx context.Context, r Request) (json.RawMessage, error) {
	if r.TraceParent != "" {
		ctx = context.WithValue(ctx, traceKey{}, &traceHeaders{parent: r.TraceParent, state: r.TraceState})
	}
	timeout := b.params().timeout
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	leaseFn := func(exclude int) (lease, *upSession, error) {
		l, err := b.acquire(rctx, exclude)
		return l, nil, err
	}
	if r.Client != nil && b.perClient {
		leaseFn = func(exclude int) (lease, *upSession, error) { return b.sessionLease(rctx, r.Client, exclude) }
	}
	res, err := b.send(ctx, rctx, r, leaseFn)
	if err != nil {
		return nil, b.requestErr(ctx, rctx, r.what(), timeout, err)
	}
	return res, nil
}

// maxAttempts bounds how often one request is sent, however often the
// backend forgets the client's session under it.
const maxAttempts = 4

// send is the one retry policy of every request: it sends r on a lease from
// leaseFn (the shared connection, or a client's session; avoiding exclude,
// the endpoint of a failed attempt, when it can) until it is answered or may
// not be repeated. A 404 of a client's session (the backend forgot it) never
// ran the request: leaseFn opens a new session and the request is repeated.
// A transport failure repeats it once, on another endpoint when there is
// one, if r.Retry says that is safe or the failure was a 404 of the shared
// connection (which never ran it either).
func (b *Backend) send(ctx, rctx context.Context, r Request, leaseFn func(exclude int) (lease, *upSession, error)) (json.RawMessage, error) {
	exclude, repeated := -1, false
	var prev error
	for n := 1; ; n++ {
		l, s, err := leaseFn(exclude)
		if err != nil {
			if prev != nil {
				return nil, fmt.Errorf("%w; no retry: %w", prev, err)
			}
			return nil, err
		}
		res, err := b.call(ctx, rctx, l, s, r)
		if err == nil {
			return res, nil
		}
		unsent := errors.Is(err, transport.ErrSessionTerminated)
		sessionEnded := unsent && s != nil
		if sessionEnded && b.ses.end(s) {
			release(s)
		}
		connErr := isConnErr(rctx, err) || l.c.isDead()
		err = fmt.Errorf("endpoint %s: %w", l.ep.label, err)
		if prev != nil {
			err = fmt.Errorf("%w; retried: %w", prev, err)
		}
		prev = err
		switch {
		case rctx.Err() != nil || n >= maxAttempts:
			return nil, err
		case sessionEnded: // on a new session, wherever the picker puts it
		case connErr && (r.Retry || unsent) && !repeated:
			repeated, exclude = true, l.ep.idx
		default:
			return nil, err
		}
		b.hooks.obs.Retried(b.name)
		b.logger.Info("retrying request", "method", r.Method, "endpoint", l.ep.label, "session_ended", sessionEnded, "err", err)
	}
}

// Notify sends a notification to every connected endpoint of the backend
// (roots/list_changed, a client's progress…), or, with cs set on a
// per-client server, on that client's own upstream session only. With no
// endpoint connected it returns an error matching ErrNotReady.
func (b *Backend) Notify(ctx context.Context, cs *ClientSession, method string, params json.RawMessage) error {
	n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: method}}
	if len(params) > 0 {
		// mcp-go's SendNotification only takes its typed notification.
		if err := json.Unmarshal(params, &n.Params); err != nil {
			return fmt.Errorf("backend %q: notify %s: params: %w", b.name, method, err)
		}
	}
	var errs []error
	sent := 0
	if b.perClient && cs != nil {
		// The client's own upstream session, if this replica holds it;
		// none yet means there is nothing upstream to tell.
		if s := b.lookup(cs); s != nil {
			if err := s.c.tr.SendNotification(ctx, n); err != nil {
				return fmt.Errorf("backend %q: notify %s on the client's session: %w", b.name, method, err)
			}
		}
		return nil
	}
	for _, e := range b.eps {
		c := e.readyConn()
		if c == nil {
			continue
		}
		sent++
		if c.mod != nil {
			continue // 2026-07-28 has no client notifications of this kind: each request says it all
		}
		if err := c.tr.SendNotification(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", e.label, err))
		}
	}
	switch {
	case sent == 0:
		return fmt.Errorf("backend %q: notify %s: %w", b.name, method, ErrNotReady)
	case len(errs) > 0:
		return fmt.Errorf("backend %q: notify %s: %w", b.name, method, errors.Join(errs...))
	}
	return nil
}

// lease is one request's hold on an endpoint: done reports the outcome to
// the endpoint's breaker; release, for a lease that sent nothing, gives the
// breaker's permission back with no outcome. Only the first of them counts.
type lease struct {
	ep     *endpoint
	c      *conn
	permit *resilience.Permit
}

func (l lease) done(success bool) { l.permit.Done(success) }
func (l lease) release()          { l.permit.Release() }

// call sends one request on a leased endpoint, on its shared connection or
// (s set) on a client's session there, and reports the outcome to its
// breaker: transport failures and our timeout are failures; an upstream
// JSON-RPC error is an answer, so a success for the breaker, and so is the
// 404 of a client's session the backend forgot.
func (b *Backend) call(ctx, rctx context.Context, l lease, s *upSession, r Request) (json.RawMessage, error) {
	via := l.c
	if s != nil {
		via = s.c
	}
	l.ep.inflight.Add(1)
	l.ep.requests.Add(1)
	via.active.Add(1)
	start := time.Now()
	res, err := via.forward(rctx, b.perClient, r)
	via.active.Add(-1)
	l.ep.inflight.Add(-1)
	// A request aborted because its connection was found dead and closed
	// under it failed in transport too, whatever error mcp-go gave.
	connErr := isConnErr(rctx, err) || (err != nil && rctx.Err() == nil && via.isDead())
	if s != nil && errors.Is(err, transport.ErrSessionTerminated) {
		connErr = false
	}
	if connErr {
		// A client's session failing in transport says the endpoint does:
		// the shared connection is checked again like after its own failure.
		l.c.markDead(err)
		if s != nil && s.owned {
			s.c.markDead(err)
		}
	}
	l.done(!connErr && !(err != nil && timedOut(ctx, rctx)))
	if err == nil {
		b.latency.Store(int64(time.Since(start)))
	}
	return res, err
}

// timedOut reports whether rctx, the caller's ctx under our timeout, ended
// by that timeout rather than because the caller gave up: for the breaker a
// failure of the endpoint.
func timedOut(ctx, rctx context.Context) bool {
	return errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
}

// requestErr names the backend and, for our own timeout, the deadline.
func (b *Backend) requestErr(ctx, rctx context.Context, what string, timeout time.Duration, err error) error {
	if timedOut(ctx, rctx) {
		return fmt.Errorf("backend %q: %s: no answer within %s: %w", b.name, what, timeout, err)
	}
	var ue *unavailableError
	if errors.As(err, &ue) || errors.Is(err, resilience.ErrOpen) {
		return fmt.Errorf("%s: %w", what, err) // the error names the backend already
	}
	return fmt.Errorf("backend %q: %s: %w", b.name, what, err)
}

// acquire leases an endpoint for one request, never exclude (the endpoint a
// retried request failed on). When no endpoint is ready it joins (or asks
// for) an inline reconnect, shared with every concurrent caller. While the
// server is only connecting or retrying, it then holds the request for up to
// the hold setting, until an endpoint is ready: a backend that restarts in
// well under that costs clients no failed call. An unavailable server gets
// the one inline reconnect and then fails fast. ctx bounds every wait.
func (b *Backend) acquire(ctx context.Context, exclude int) (lease, error) {
	if l, ok, err := b.pick(exclude); ok || err != nil {
		return l, err
	}
	var holdC <-chan time.Time
	hold := b.params().hold
	if hold > 0 {
		t := b.clock.NewTimer(hold)
		defer t.Stop()
		holdC = t.C()
	}
	held := false
	for {
		wake := b.changes()
		// Pick again before waiting: an endpoint may have become ready since
		// the last pick (an attempt someone else triggered just ended), and
		// failing then would report a healthy backend as unavailable. The
		// endpoint a retried request failed on is marked dead, so it cannot
		// be picked again unless it was reconnected meanwhile.
		if l, ok, err := b.pick(-1); ok || err != nil {
			return l, err
		}
		if b.State() == mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION {
			return lease{}, b.unavailableErr() // nothing is attempted until a token arrives
		}
		ch := b.reconnectInline()
		if ch == nil {
			if holdC == nil || !b.transient() {
				if held {
					return lease{}, fmt.Errorf("%w; held the request %s for a reconnect", b.unavailableErr(), hold)
				}
				return lease{}, b.unavailableErr()
			}
			ch = wake
		}
		select {
		case <-ch:
		case <-wake:
		case <-holdC:
			holdC, held = nil, true // one more look, then fail
		case <-ctx.Done():
			return lease{}, fmt.Errorf("%w: waiting for a reconnect: %w", b.unavailableErr(), ctx.Err())
		case <-b.ctx.Done(): // closed: its supervisors will not attempt again
			return lease{}, fmt.Errorf("%w: backend closed", b.unavailableErr())
		}
	}
}

// changes returns the channel closed at the next change of any endpoint.
func (b *Backend) changes() <-chan struct{} {
	b.aggMu.Lock()
	defer b.aggMu.Unlock()
	return b.wake
}

// transient reports whether the server is expected back soon: some endpoint
// is connecting, retrying or healthy (just not pickable this instant), none
// of which an unavailable server is.
func (b *Backend) transient() bool {
	s := b.State()
	return s != mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE && s != mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION
}

// pick chooses a ready endpoint whose breaker lets the request through. ok
// is false when no endpoint is ready; err is set when ready endpoints exist
// but their breakers are open.
func (b *Backend) pick(exclude int) (l lease, ok bool, err error) {
	loads := make([]resilience.Load, len(b.eps))
	conns := make([]*conn, len(b.eps))
	for i, e := range b.eps {
		conns[i] = e.readyConn()
		avail := conns[i] != nil && i != exclude
		if avail && e.breaker.State() == resilience.BreakerOpen {
			avail = false
			if err == nil {
				err = b.breakerErr(e, &resilience.OpenError{RetryAt: e.breaker.RetryAt()})
			}
		}
		loads[i] = resilience.Load{InFlight: e.inflight.Load(), Available: avail}
	}
	for range b.eps {
		var i int
		if exclude >= 0 {
			i = b.picker.PickExcept(loads, exclude)
		} else {
			i = b.picker.Pick(loads)
		}
		if i < 0 {
			break
		}
		permit, aerr := b.eps[i].breaker.AllowRelease()
		if aerr != nil { // half-open with its probe in flight, or just tripped
			loads[i].Available = false
			if err == nil {
				err = b.breakerErr(b.eps[i], aerr)
			}
			continue
		}
		return lease{ep: b.eps[i], c: conns[i], permit: permit}, true, nil
	}
	return lease{}, err != nil, err
}

func (b *Backend) breakerErr(e *endpoint, err error) error {
	return fmt.Errorf("backend %q endpoint %s: %w", b.name, e.label, err)
}

// reconnectInline joins a connect attempt in progress on any endpoint, or
// asks the first endpoint that allows it for one now. It returns the
// channel closed when that attempt ends, or nil when none may run.
func (b *Backend) reconnectInline() <-chan struct{} {
	for _, e := range b.eps {
		e.mu.RLock()
		attempting, ch := e.attempting, e.attemptDone
		e.mu.RUnlock()
		if attempting {
			return ch
		}
	}
	now := b.clock.Now()
	for _, e := range b.eps {
		if ch := e.requestReconnect(now); ch != nil {
			return ch
		}
	}
	return nil
}

// unavailableError is the fail-fast error of a request that finds no ready
// endpoint. It matches ErrNotReady and unwraps to the last connect error.
type unavailableError struct {
	msg  string
	last error
}

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Unwrap() error        { return e.last }
func (e *unavailableError) Is(target error) bool { return target == ErrNotReady }

// unavailableErr describes the server's state from its best endpoint, e.g.
// backend "web" is unavailable (last error: …; next probe in 400ms).
func (b *Backend) unavailableErr() error {
	state := b.State()
	if state == mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION {
		return &unavailableError{msg: fmt.Sprintf("server %s needs OAuth authorization: open %s/oauth", b.name, b.hooks.publicURL), last: ErrNeedsAuthorization}
	}
	e := b.eps[0]
	for _, x := range b.eps {
		x.mu.RLock()
		match := x.state == state
		x.mu.RUnlock()
		if match {
			e = x
			break
		}
	}
	now := b.clock.Now()
	e.mu.RLock()
	last, attempting, nextAt, nextWhat := e.lastErr, e.attempting, e.nextAt, e.nextWhat
	e.mu.RUnlock()
	var parts []string
	if last != nil {
		parts = append(parts, "last error: "+last.Error())
	}
	switch {
	case attempting:
		parts = append(parts, "reconnecting now")
	case nextAt.After(now):
		parts = append(parts, fmt.Sprintf("next %s in %s", nextWhat, nextAt.Sub(now).Round(time.Millisecond)))
	}
	msg := fmt.Sprintf("backend %q is %s", b.name, states.Backend(state))
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	return &unavailableError{msg: msg, last: last}
}

// breakerRank orders breaker states from best to worst.
func breakerRank(s mcpmeshv1.BreakerState) int {
	switch s {
	case mcpmeshv1.BreakerState_BREAKER_STATE_OPEN:
		return 2
	case mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN:
		return 1
	default:
		return 0
	}
}

// Health returns this data plane's view of the server: its state and when it
// entered it, the worst endpoint breaker, and the failures and last error of
// the endpoint that gives the state (or, when that one has none, the first
// endpoint error, so a dead replica stays visible).
func (b *Backend) Health() *mcpmeshv1.BackendHealth {
	b.aggMu.Lock()
	state, since := b.state, b.since
	b.aggMu.Unlock()
	h := &mcpmeshv1.BackendHealth{
		Server:  b.name,
		State:   state,
		Breaker: mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED,
		Since:   timestamppb.New(since),
	}
	repFound := false
	var otherErr string
	for _, e := range b.eps {
		if s := breakerState(e.breaker.State()); breakerRank(s) > breakerRank(h.Breaker) {
			h.Breaker = s
		}
		e.mu.RLock()
		if !repFound && e.state == state {
			repFound = true
			if e.state != mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY {
				h.ConsecutiveFailures = uint32(e.failures)
			}
			if e.lastErr != nil {
				h.LastError = textlimit.Truncate(redact.Text(e.lastErr.Error()), textlimit.ErrorText)
			}
		} else if otherErr == "" && e.lastErr != nil {
			otherErr = textlimit.Truncate(redact.Text(fmt.Sprintf("endpoint %s: %v", e.label, e.lastErr)), textlimit.ErrorText)
		}
		e.mu.RUnlock()
	}
	if h.LastError == "" {
		h.LastError = otherErr
	}
	if d := time.Duration(b.latency.Load()); d > 0 {
		h.Latency = durationpb.New(d)
	}
	if l, ok := b.readyLists(); ok {
		h.Tools = uint32(len(l.items[catalog.Tools]))
		h.Resources = uint32(len(l.items[catalog.Resources]))
		h.Prompts = uint32(len(l.items[catalog.Prompts]))
	}
	return h
}

// Endpoints returns the view of each endpoint, in config order.
func (b *Backend) Endpoints() []EndpointHealth {
	out := make([]EndpointHealth, len(b.eps))
	for i, e := range b.eps {
		out[i] = e.health()
	}
	return out
}

// Close stops the supervisors and closes the connections (reaping a stdio
// child) and every client session held on this replica (see closeSessions).
// It waits for every goroutine of the backend; Listen calls end.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
		b.closeSessions()
		for _, e := range b.eps {
			if e.htr != nil {
				e.htr.Close()
			}
		}
		close(b.done)
	})
	return nil
}

func (b *Backend) params() params {
	b.pmu.RLock()
	defer b.pmu.RUnlock()
	return b.p
}

func (b *Backend) setParams(p params) {
	b.pmu.Lock()
	b.p = p
	b.pmu.Unlock()
}
