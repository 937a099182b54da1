package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/h1"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
)

// maxRespawnDelay caps the growing wait between respawns of a stdio backend
// that keeps dying, so a fixed command comes back within half a minute.
const maxRespawnDelay = 30 * time.Second

// endpoint is one replica of a server: its own supervised connection, its own
// keep-alive HTTP client, circuit breaker and in-flight count. A stdio server
// has exactly one endpoint.
type endpoint struct {
	b         *Backend
	idx       int    // position in the server's config order
	url       string // HTTP / SSE URL; "" for stdio
	label     string // how messages and health name it: the URL, or the stdio command
	probeAddr string // host:port dialed by the recovery probe; "" for stdio
	logger    *slog.Logger

	hc  *http.Client // shared by every request to this endpoint; nil for stdio
	htr *h1.Transport
	// pc is hc without the event-stream watch, for clients' own upstream
	// sessions: their streams say nothing about the shared connection.
	pc *http.Client
	// version is the protocol version the shared connection negotiated; a
	// client's session continued from another replica speaks it too.
	version atomic.Pointer[string]
	// sessionless is set once the server answered a client's initialize
	// without a session id: it keeps no sessions, so clients share the
	// shared connection.
	sessionless atomic.Bool
	breaker     *resilience.Breaker

	inflight atomic.Int64
	requests atomic.Uint64

	refetch    chan struct{} // buffered 1: a list_changed arrived
	kick       chan struct{} // buffered 1: a request asks for a connect attempt now
	streamLost chan error    // buffered 1: an event stream to the endpoint failed or ended

	mu      sync.RWMutex
	state   mcpmeshv1.BackendState
	since   time.Time
	lastErr error
	// failures is the position in the schedule of the current outage: its
	// failed connects, and losses of connections that died within
	// StableAfter of connecting. A connection that stayed up longer ends the
	// outage, so its loss starts the next one at 0. Written by the supervisor
	// only; health reports it while the endpoint is not healthy.
	failures int
	cur      *conn
	lists    lists
	dirty    kindSet
	// attempting is true while the supervisor runs a connect attempt;
	// attemptDone is closed when the current (or, if none runs, the next)
	// attempt ends, so any number of requests wait on one attempt.
	attempting  bool
	attemptDone chan struct{}
	// inlineAfter is when requests may trigger an inline reconnect again: a
	// failed attempt holds them off (see inlineGap), so a flood of calls to a
	// dead backend costs at most a couple of connects a second.
	inlineAfter time.Time
	nextAt      time.Time // when the supervisor's current wait ends
	nextWhat    string    // what happens then: retry, probe or respawn
}

func newEndpoint(b *Backend, idx int, rawURL string, bc resilience.BreakerConfig) *endpoint {
	e := &endpoint{
		b:   b,
		idx: idx,
		url: rawURL,
		// The label names the endpoint in logs, errors and health: never
		// with its credentials.
		label:       redact.URL(rawURL),
		refetch:     make(chan struct{}, 1),
		kick:        make(chan struct{}, 1),
		streamLost:  make(chan error, 1),
		state:       mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING,
		since:       b.clock.Now(),
		attemptDone: make(chan struct{}),
	}
	if rawURL == "" {
		e.label = b.cfg.GetStdio().GetCommand()
	} else {
		e.hc, e.htr = newHTTPClient(e.onStreamLost, b.hooks.control, b.auth)
		e.pc = &http.Client{Transport: withAuth(boundedTransport(e.htr), b.auth)}
		e.probeAddr = probeAddr(rawURL)
	}
	e.logger = b.logger.With("endpoint", e.label)
	e.breaker = resilience.NewBreaker(bc, b.clock)
	e.breaker.OnStateChange(func(from, to resilience.BreakerState) {
		e.logger.Info("circuit breaker", "from", from.String(), "to", to.String())
		b.hooks.obs.BreakerTransition(b.name, from.String(), to.String())
		b.notify()
	})
	return e
}

// probeAddr is the host:port a TCP probe dials for an HTTP(S) URL: the
// proxy's when the environment routes the URL through one (that is what the
// transport talks to); "" when the URL has no host (validation rejects those).
func probeAddr(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	if pu, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && pu != nil && pu.Hostname() != "" {
		u = pu
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// readyLocked reports whether the endpoint can take requests now. A conn a
// request found broken is unusable at once, before the supervisor notices.
func (e *endpoint) readyLocked() bool {
	return e.cur != nil && e.state == mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY && !e.cur.isDead()
}

// readyConn returns the live conn, or nil.
func (e *endpoint) readyConn() *conn {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if !e.readyLocked() {
		return nil
	}
	return e.cur
}

// run is the endpoint's supervisor: connect, serve until the connection dies,
// reconnect under the schedule, then probe. It owns every conn it creates.
func (e *endpoint) run(ctx context.Context) {
	for {
		if !e.waitAuthorized(ctx) {
			return
		}
		c, connectedAt, err := e.attempt(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if e.needsAuth() {
				continue // waitAuthorized holds the next attempt
			}
			if !e.waitRetry(ctx) {
				return
			}
			continue
		}
		lost := e.serve(ctx, c)
		e.down(c, connectedAt, lost, ctx.Err() == nil)
		e.retire(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if e.needsAuth() {
			continue
		}
		if !e.waitRetry(ctx) {
			return
		}
	}
}

// needsAuth reports whether the server uses OAuth and has no token to send.
func (e *endpoint) needsAuth() bool {
	return e.b.auth != nil && e.b.auth.token() == ""
}

// waitAuthorized holds an OAuth endpoint that has no token in
// needs-authorization: no connect attempts, no backoff, until a token
// arrives, then it returns at once. It returns false when ctx ends.
func (e *endpoint) waitAuthorized(ctx context.Context) bool {
	if e.b.auth == nil {
		return true
	}
	for {
		tok, changed := e.b.auth.watch()
		if tok != "" {
			return true
		}
		now := e.b.clock.Now()
		e.mu.Lock()
		changedState := e.state != mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION
		e.setStateLocked(mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION, now)
		e.failures, e.nextAt, e.nextWhat = 0, time.Time{}, ""
		e.lists = lists{}
		e.mu.Unlock()
		if changedState {
			e.logger.Warn("backend needs OAuth authorization; waiting for a token", "state", states.Backend(mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION))
		}
		// Tried: a backend waiting for an operator counts as resolved, so a
		// config change is not held back by it.
		e.b.endpointChanged(e, true)
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// maxDrain bounds how long a lost connection's requests in flight may still
// run before it is closed under them.
const maxDrain = 2 * time.Second

// retire closes a lost conn. Requests still in flight on it first get to
// finish on their own (up to maxDrain, in the background, so the reconnect
// does not wait): a request that reached a restarted backend gets its 404
// and is repeated on the new session, where closing the conn under it would
// leave a cancelled request nobody knows the fate of.
func (e *endpoint) retire(ctx context.Context, c *conn) {
	closeIt := func() {
		if err := c.close(); err != nil {
			e.logger.Debug("close backend connection", "err", err)
		}
	}
	if c.active.Load() == 0 || ctx.Err() != nil {
		closeIt()
		return
	}
	e.b.wg.Add(1) // the supervisor's own count keeps the group open
	go func() {
		defer e.b.wg.Done()
		defer closeIt()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		limit := time.NewTimer(maxDrain)
		defer limit.Stop()
		for c.active.Load() > 0 {
			select {
			case <-tick.C:
			case <-limit.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// attempt runs one connect attempt and publishes its outcome (state, lists,
// breaker) before waking the requests that wait for it. On success it also
// returns the time the connection was published.
func (e *endpoint) attempt(ctx context.Context) (*conn, time.Time, error) {
	e.mu.Lock()
	e.attempting = true
	select { // this attempt answers every kick made so far
	case <-e.kick:
	default:
	}
	e.mu.Unlock()

	c, l, err := e.connect(ctx)
	if err == nil {
		// The endpoint just proved it answers: its past failures say nothing now.
		e.breaker.Reset()
	} else if ctx.Err() == nil && !errors.Is(err, ErrNeedsAuthorization) {
		if done, aerr := e.breaker.Allow(); aerr == nil {
			done(false) // a failed connect is a failure of the endpoint
		}
	}
	p := e.b.params()
	now := e.b.clock.Now()
	e.mu.Lock()
	e.attempting = false
	switch {
	case err == nil:
		// dirty is kept: a list_changed that arrived during the connect must
		// still be refetched.
		e.cur, e.lists = c, *l
		e.setStateLocked(mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY, now)
		// failures is kept until the connection has stayed up for
		// StableAfter (see down): one that dies at once continues the
		// outage's schedule, so a crashing backend cannot make us reconnect
		// in a loop.
		e.lastErr, e.inlineAfter = nil, time.Time{}
	case ctx.Err() == nil && errors.Is(err, ErrNeedsAuthorization):
		// Not a failure of the endpoint: waitAuthorized takes over.
		e.failures = 0
		e.lastErr = fmt.Errorf("connect: %w", err)
		e.setStateLocked(mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION, now)
		e.lists = lists{}
	case ctx.Err() == nil:
		e.failures++
		e.lastErr = fmt.Errorf("connect: %w", err)
		e.setStateLocked(failedState(p.schedule, e.failures), now)
		e.dropListsIfUnavailableLocked()
		e.inlineAfter = now.Add(e.inlineGap(p))
	}
	failures, state := e.failures, e.state
	close(e.attemptDone)
	e.attemptDone = make(chan struct{})
	e.mu.Unlock()

	if ctx.Err() == nil {
		e.b.hooks.obs.Connected(e.b.name, err == nil)
	}
	switch {
	case err == nil:
		e.logger.Info("backend connected", "protocol", c.version, "tools", len(l.items[catalog.Tools]), "prompts", len(l.items[catalog.Prompts]), "resources", len(l.items[catalog.Resources]))
	case ctx.Err() == nil:
		e.logger.Warn("backend connect failed", "state", states.Backend(state), "failures", failures, "err", textlimit.Truncate(err.Error(), textlimit.ErrorText))
	}
	e.b.endpointChanged(e, true)
	if err != nil {
		return nil, time.Time{}, err
	}
	return c, now, nil
}

// inlineGap is how long a failed attempt holds off request-triggered ones: a
// probe interval for a network endpoint; for stdio at least the schedule's
// first step, since each attempt spawns a process and a flood of requests
// must not make a broken command spin.
func (e *endpoint) inlineGap(p params) time.Duration {
	if e.probeAddr != "" {
		return p.probeInterval
	}
	first := resilience.DefaultSchedule()[0]
	if len(p.schedule.Steps) > 0 {
		first = p.schedule.Steps[0]
	}
	return max(p.probeInterval, first)
}

// dropListsIfUnavailableLocked forgets the last known lists once the
// endpoint is unavailable (or its loss was not recorded, as at shutdown):
// its items leave the aggregated lists and clients get list_changed.
func (e *endpoint) dropListsIfUnavailableLocked() {
	if e.cur == nil && e.state != mcpmeshv1.BackendState_BACKEND_STATE_RETRYING {
		e.lists = lists{}
	}
}

// failedState is the state after failure number n of the schedule.
func failedState(s resilience.Schedule, n int) mcpmeshv1.BackendState {
	if s.Exhausted(n) {
		return mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
	}
	return mcpmeshv1.BackendState_BACKEND_STATE_RETRYING
}

func (e *endpoint) setStateLocked(s mcpmeshv1.BackendState, now time.Time) {
	if e.state != s {
		e.state, e.since = s, now
	}
}

// down removes a lost conn, so requests stop using it and its items leave,
// and records the loss. The loss of a connection that stayed up for
// StableAfter is a new outage: failures restarts at 0, which makes the
// supervisor reconnect at once (a restarted backend has only forgotten our
// session) and, should that fail, run the schedule from its first step. One
// that dies sooner continues the outage it ended, one step further on.
func (e *endpoint) down(c *conn, connectedAt time.Time, why error, record bool) {
	// Requests still in flight on c are aborted by its close; marking it
	// dead first lets them see a transport failure (and be retried when
	// they may be) rather than a bare cancellation.
	c.markDead(why)
	if e.htr != nil {
		// Pooled connections to a backend that died are dead too; the
		// reconnect must not pick one up and fail on its EOF.
		e.htr.CloseIdleConnections()
	}
	p := e.b.params()
	now := e.b.clock.Now()
	e.mu.Lock()
	if e.cur == c {
		e.cur = nil // its lists are kept while retrying (see lists.known)
	}
	if record {
		if now.Sub(connectedAt) >= StableAfter {
			e.failures = 0
		} else {
			e.failures++
		}
		e.lastErr = fmt.Errorf("connection lost: %w", why)
		e.setStateLocked(failedState(p.schedule, e.failures), now)
		if e.needsAuth() {
			e.failures = 0
			e.setStateLocked(mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION, now)
		}
	}
	e.dropListsIfUnavailableLocked()
	failures, state := e.failures, e.state
	e.mu.Unlock()
	if record {
		e.logger.Warn("backend connection lost", "state", states.Backend(state), "failures", failures, "err", why)
	}
	e.b.endpointChanged(e, false)
}

// waitRetry waits until the next connect attempt is due: at once after the
// loss of a connection that had stayed up (failures is 0); else the
// schedule's step, during which a network endpoint's port is probed so that
// a backend listening again is reconnected at once; past the schedule, for a
// network endpoint, until the recovery probe finds the port open; for stdio,
// a respawn wait that keeps doubling up to 30 s. A kick from a request cuts
// any wait short. It returns false when ctx ends.
func (e *endpoint) waitRetry(ctx context.Context) bool {
	p := e.b.params()
	e.mu.RLock()
	n := e.failures
	e.mu.RUnlock()
	switch {
	case n == 0:
		return ctx.Err() == nil
	case !p.schedule.Exhausted(n) && e.probeAddr == "":
		e.sleep(ctx, p.schedule.Delay(n), "retry", nil)
		return ctx.Err() == nil
	case !p.schedule.Exhausted(n):
		return e.watch(ctx, p.schedule.Delay(n))
	case e.probeAddr == "":
		e.sleep(ctx, respawnDelay(p.schedule, n), "respawn", nil)
		return ctx.Err() == nil
	default:
		return e.watch(ctx, -1)
	}
}

// respawnDelay continues the schedule past its end for a stdio backend that
// keeps failing: the last step doubled per further failure, capped at 30 s
// (or at the last step, if that is longer).
func respawnDelay(s resilience.Schedule, n int) time.Duration {
	last := s.Last()
	limit := max(maxRespawnDelay, last)
	steps := len(s.Steps)
	if steps == 0 {
		steps = len(resilience.DefaultSchedule())
	}
	d := last
	for i := steps; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if s.Jitter {
		d = resilience.FullJitter(d, s.Rand)
	}
	return d
}

// watch waits for the next connect attempt of a network endpoint while a TCP
// dial every probe interval (cheap for both sides) watches its port. The
// moment a port seen closed opens again the attempt is due, in every state:
// recovery never waits out a backoff step. With step >= 0 (retrying) the
// attempt is also due once step has passed. With step < 0 (unavailable) the
// schedule is over and only the port decides, except that a port that stays
// open while connects fail (a broken server behind a live listener) gets a
// full connect once per last schedule step.
func (e *endpoint) watch(ctx context.Context, step time.Duration) bool {
	start := e.b.clock.Now()
	// A last attempt refused at the TCP level means the port was closed then:
	// finding it open is a recovery, even if the server came back before the
	// first probe (e.g. between a request's inline reconnect and the probe).
	e.mu.Lock()
	closedSeen := portWasClosed(e.lastErr)
	if step >= 0 {
		// Published before any timer exists, like sleep does.
		e.nextAt, e.nextWhat = start.Add(step), "retry"
	}
	e.mu.Unlock()
	var due <-chan time.Time // nil (never ready) when unavailable
	if step >= 0 {
		t := e.b.clock.NewTimer(step)
		defer t.Stop()
		due = t.C()
	}
	next := "" // retrying: the step's end stays what comes next
	if step < 0 {
		next = "probe"
	}
	for {
		p := e.b.params()
		if !e.sleep(ctx, p.probeInterval, next, due) {
			return ctx.Err() == nil // the attempt is due, or ctx ended
		}
		if err := dialProbe(ctx, e.probeAddr, p.probeInterval, e.b.hooks.control); err != nil {
			if !closedSeen {
				e.logger.Debug("recovery probe: port closed", "addr", e.probeAddr, "err", err)
			}
			closedSeen = true
			continue
		}
		if closedSeen {
			e.logger.Info("recovery probe: port open again, reconnecting", "addr", e.probeAddr)
			return true
		}
		if step < 0 && e.b.clock.Now().Sub(start) >= p.schedule.Last() {
			return true
		}
	}
}

// errPortClosed marks a loss found with the endpoint's port not answering.
var errPortClosed = errors.New("the port is closed")

// portWasClosed reports whether err says the port did not answer then (a
// refused connect, or a loss found with the port closed), so that finding
// it open is a recovery.
func portWasClosed(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errPortClosed)
}

// dialProbe opens and closes one TCP connection to addr. The dial timeout
// follows the probe interval so a black-holed host cannot stall the probe
// much longer than one interval. control is the egress check, as for the
// endpoint's HTTP client.
func dialProbe(ctx context.Context, addr string, interval time.Duration, control func(string, string, syscall.RawConn) error) error {
	d := net.Dialer{Timeout: min(max(interval, 200*time.Millisecond), 2*time.Second), Control: control}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// sleep waits d on the injected clock and reports whether all of d passed;
// it ends early when due fires (nil never does), a request kicks, or ctx
// ends. Unless what is "", it is published as what happens at the end of d.
func (e *endpoint) sleep(ctx context.Context, d time.Duration, what string, due <-chan time.Time) bool {
	if what != "" {
		// What comes next is published before the timer exists: whoever sees
		// the wait begin (a request's error message, a test on the fake
		// clock) must also see what it waits for, not the previous wait's.
		e.mu.Lock()
		e.nextAt, e.nextWhat = e.b.clock.Now().Add(d), what
		e.mu.Unlock()
	}
	t := e.b.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-due:
	case <-e.kick:
	case <-ctx.Done():
	}
	return false
}

// serve waits while the connection is healthy, refetching lists on
// list_changed. It returns why it stopped.
func (e *endpoint) serve(ctx context.Context, c *conn) error {
	// A backend's list_changed notification can be lost (mcp-go servers have
	// been seen to drop one), which would leave a stale list until the next
	// reconnect: refetch every list now and then as a safety net. Unchanged
	// lists cost a fetch and nothing else (no OnChange, no list_changed).
	every := e.b.params().listResync
	var resync resilience.Timer
	var resyncC <-chan time.Time // nil (never ready) when resync is off
	if every > 0 {
		resync = e.b.clock.NewTimer(every)
		resyncC = resync.C()
	}
	defer func() {
		if resync != nil {
			resync.Stop()
		}
	}()
	// An OAuth server's token may change under the connection: a new one is
	// used by the next request as it is; losing it (refused and not
	// refreshed, or revoked) ends the connection.
	var authC <-chan struct{} // nil (never ready) without OAuth
	if e.b.auth != nil {
		_, authC = e.b.auth.watch()
	}
	for {
		select {
		case <-authC:
			var tok string
			tok, authC = e.b.auth.watch()
			if tok == "" {
				return fmt.Errorf("server %q: %w", e.b.name, ErrNeedsAuthorization)
			}
		case <-resyncC:
			e.mu.Lock()
			e.dirty |= allKinds
			e.mu.Unlock()
			resync = e.b.clock.NewTimer(every)
			resyncC = resync.C()
			if err := e.refetchLists(ctx, c); err != nil {
				if isConnErr(ctx, err) {
					return err
				}
				e.logger.Warn("periodic refetch of backend lists", "err", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-c.dead:
			return c.deadErr
		case err := <-e.streamLost:
			// The stream ends on a graceful close too, so only a closed port
			// or a forgotten session condemns the connection; otherwise
			// mcp-go re-opens the stream.
			if lerr := e.checkLive(ctx, c); lerr != nil && ctx.Err() == nil {
				return fmt.Errorf("event stream lost (%v) and %w", err, lerr)
			}
			e.logger.Debug("event stream ended; endpoint still reachable", "err", err)
		case <-e.refetch:
			if err := e.refetchLists(ctx, c); err != nil {
				if isConnErr(ctx, err) {
					return err
				}
				e.logger.Warn("refetch backend lists", "err", err)
			}
		}
	}
}

// checkLive tells whether an endpoint whose event stream just ended still
// serves our session: its port must answer, and a ping on the session must
// not fail in transport. A backend that restarted in the time the port was
// closed answers the ping with 404 "session not found": finding that now,
// not on a client's next call, makes the re-initialize immediate.
func (e *endpoint) checkLive(ctx context.Context, c *conn) error {
	interval := e.b.params().probeInterval
	if err := dialProbe(ctx, e.probeAddr, interval, e.b.hooks.control); err != nil {
		return fmt.Errorf("%w: %w", errPortClosed, err)
	}
	pctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
	defer cancel()
	if _, err := c.request(pctx, c.liveMethod(), nil); isConnErr(pctx, err) {
		return fmt.Errorf("the session is gone: %w", err)
	}
	return nil
}

// refetchLists refetches the lists marked dirty and reports a change.
func (e *endpoint) refetchLists(ctx context.Context, c *conn) error {
	e.mu.Lock()
	kinds := e.dirty
	e.dirty = 0
	next := e.lists // copy: slices are replaced, never mutated
	e.mu.Unlock()
	if kinds == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, e.b.params().timeout)
	defer cancel()
	if err := fetchLists(rctx, c, &next, kinds, e.b.params().lists); err != nil {
		return err
	}
	e.mu.Lock()
	if e.cur != c {
		e.mu.Unlock()
		return nil
	}
	changed := !reflect.DeepEqual(e.lists, next)
	e.lists = next
	e.mu.Unlock()
	if changed {
		e.logger.Info("backend lists changed", "tools", len(next.items[catalog.Tools]), "prompts", len(next.items[catalog.Prompts]), "resources", len(next.items[catalog.Resources]))
		e.b.notify()
	}
	return nil
}

// onStreamLost is called by the HTTP client when an event stream fails; it
// only wakes the supervisor, which checks the endpoint.
func (e *endpoint) onStreamLost(err error) {
	select {
	case e.streamLost <- err:
	default:
	}
}

// onNotification runs on the transport's reader goroutine, so it must not
// make requests (over stdio that would deadlock the reader): a list_changed
// only marks the list dirty and wakes the supervisor; anything else goes to
// the manager's OnNotification, which must not block either.
func (e *endpoint) onNotification(n mcp.JSONRPCNotification) { e.notification("", n) }

// notification handles a notification that came on the shared connection
// (client "") or on a client's own upstream session. A list_changed on a
// client's session refetches the shared lists too (the catalog is per
// server) and is delivered to the client.
func (e *endpoint) notification(client string, n mcp.JSONRPCNotification) {
	params, err := notificationParams(n.Params)
	if err != nil {
		e.logger.Warn("drop backend notification", "method", n.Method, "err", err)
		return
	}
	e.rawNotification(client, &jsonrpc.Message{Method: n.Method, Params: params})
}

// rawNotification is notification with its params raw: those that came on
// a response stream we read (post.go), which mcp-go never decoded.
func (e *endpoint) rawNotification(client string, m *jsonrpc.Message) {
	// A list_changed of a client's own session also goes to that client:
	// its session's own items changed.
	if e.listChanged(m.Method) && client == "" {
		return
	}
	e.deliver(client, &jsonrpc.Message{Method: m.Method, Params: m.Params})
}

// deliver hands a notification to OnNotification.
func (e *endpoint) deliver(client string, m *jsonrpc.Message) {
	if h := e.b.hooks.onNotification; h != nil {
		h(e.b.name, client, m)
	}
}

// listChanged marks the lists of a list_changed method dirty and wakes the
// supervisor; false when method is no list_changed.
func (e *endpoint) listChanged(method string) bool {
	k, ok := listChanged(method)
	if !ok {
		return false
	}
	e.markDirty(k)
	return true
}

// markDirty marks lists of kinds k dirty and wakes the supervisor to
// refetch them.
func (e *endpoint) markDirty(k kindSet) {
	e.mu.Lock()
	e.dirty |= k
	e.mu.Unlock()
	select {
	case e.refetch <- struct{}{}:
	default:
	}
}

// onRequest answers a server-to-client request. mcp-go runs it on a
// goroutine of its own, with the context of the POST it came with on
// streamable HTTP (so the upstream Request's values), else a context of the
// connection; it gets our timeout when it has no deadline.
func (e *endpoint) onRequest(ctx context.Context, r transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	return e.request(ctx, "", r)
}

// request answers a server-to-client request that came on the shared
// connection (client "") or on a client's own upstream session.
func (e *endpoint) request(ctx context.Context, client string, r transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	msg := &jsonrpc.Message{Method: r.Method}
	var err error
	if msg.ID, err = json.Marshal(r.ID); err == nil && r.Params != nil {
		// mcp-go decoded the params into an any: encode them again.
		msg.Params, err = json.Marshal(r.Params)
	}
	if err != nil {
		return transport.NewJSONRPCErrorResponse(r.ID, jsonrpc.CodeInvalidParams, "invalid request: "+err.Error(), nil), nil
	}
	res, jerr := e.answer(ctx, client, msg)
	if jerr != nil {
		var data any
		if len(jerr.Data) > 0 {
			data = jerr.Data
		}
		return transport.NewJSONRPCErrorResponse(r.ID, jerr.Code, jerr.Message, data), nil
	}
	return transport.NewJSONRPCResultResponse(r.ID, res), nil
}

// answer runs OnRequest for a server-to-client request (with our timeout
// when ctx has none) and returns its result, never empty, or its error.
func (e *endpoint) answer(ctx context.Context, client string, msg *jsonrpc.Message) (json.RawMessage, *jsonrpc.Error) {
	if msg.Method == string(mcp.MethodPing) {
		// A ping checks the connection, whose peer is this data plane.
		return json.RawMessage("{}"), nil
	}
	h := e.b.hooks.onRequest
	if h == nil {
		return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method %q is not supported", msg.Method)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.b.params().timeout)
		defer cancel()
	}
	res, err := h(ctx, e.b.name, client, msg)
	if err != nil {
		return nil, jsonrpc.AsError(err)
	}
	if len(res) == 0 {
		res = json.RawMessage("{}")
	}
	return res, nil
}

// requestReconnect joins the connect attempt in progress, or asks the
// supervisor for one now, and returns the channel closed when that attempt
// ends. It returns nil when the endpoint is live or a recent attempt failed
// (the caller then fails fast).
func (e *endpoint) requestReconnect(now time.Time) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.attempting {
		return e.attemptDone
	}
	if e.readyLocked() || now.Before(e.inlineAfter) {
		return nil
	}
	select {
	case e.kick <- struct{}{}:
	default: // already kicked: the same attempt answers both
	}
	return e.attemptDone
}

// health returns the endpoint's view for Backend.Endpoints.
func (e *endpoint) health() EndpointHealth {
	e.mu.RLock()
	h := EndpointHealth{URL: e.label, State: e.state, Since: e.since}
	if e.lastErr != nil {
		h.LastError = textlimit.Truncate(redact.Text(e.lastErr.Error()), textlimit.ErrorText)
	}
	e.mu.RUnlock()
	h.Breaker = breakerState(e.breaker.State())
	h.InFlight = e.inflight.Load()
	h.Requests = e.requests.Load()
	return h
}

// breakerState maps the resilience breaker state to the API's.
func breakerState(s resilience.BreakerState) mcpmeshv1.BreakerState {
	switch s {
	case resilience.BreakerOpen:
		return mcpmeshv1.BreakerState_BREAKER_STATE_OPEN
	case resilience.BreakerHalfOpen:
		return mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN
	default:
		return mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED
	}
}
