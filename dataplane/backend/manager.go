package backend

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/egress"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/names"
)

// DefaultTimeout is the per-request deadline of servers without their own.
const DefaultTimeout = 60 * time.Second

// DefaultProbeInterval is how often an unavailable network endpoint is
// probed with a TCP dial.
const DefaultProbeInterval = 500 * time.Millisecond

// DefaultHold is how long a request that finds no ready endpoint waits for
// its server to reconnect while it is connecting or retrying: longer than the
// short outages of a restarting backend plus a probe interval, so that they
// cost no failed call, and short enough that a client soon learns of a real one.
const DefaultHold = 2 * time.Second

// StableAfter is how long a connection must stay up to end the outage it
// closed: the loss of a connection older than this is a new outage (an
// immediate reconnect, then the schedule from its first step); a younger one
// dying continues the old outage's schedule. It also bounds how often a
// backend that keeps dying can make the data plane reconnect: at most once
// per StableAfter, plus the connect itself.
const StableAfter = time.Second

// DefaultListResync is how often a healthy endpoint refetches its lists even
// without a list_changed notification.
const DefaultListResync = 5 * time.Minute

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	Logger *slog.Logger
	// OnChange is called (from a goroutine of the manager, never while a lock
	// is held, coalesced) whenever the set of backends, any backend's
	// availability, or any backend's tool/prompt/resource/template lists changed.
	OnChange func()
	// Backoff are the connect retry waits; nil means 1s, 2s, 4s, 8s. The
	// snapshot's settings.resilience.backoff, when set, wins.
	Backoff []time.Duration
	// DefaultTimeout is the per-request timeout for servers without their
	// own; 0 means 60s. The snapshot's settings.resilience.request_timeout wins.
	DefaultTimeout time.Duration
	// ProbeInterval is the recovery probe's interval; 0 means 500ms. The
	// snapshot's settings.resilience.probe_interval wins.
	ProbeInterval time.Duration
	// ListResync is how often a healthy endpoint refetches its lists without
	// a list_changed notification (a safety net against a lost one); 0 means
	// DefaultListResync, negative turns it off.
	ListResync time.Duration
	// Hold is how long a request waits for a reconnecting server (see
	// DefaultHold); 0 means DefaultHold, negative means fail at once. The
	// snapshot's settings.resilience.hold wins.
	Hold time.Duration
	// Jitter turns on full jitter of the connect waits; the snapshot's
	// settings.resilience.jitter turns it on too.
	Jitter bool
	// Rand returns a number in [0, 1) for jitter; nil means math/rand/v2.
	// Calls are serialized, so a seeded generator may be passed.
	Rand func() float64
	// Breaker configures every endpoint's circuit breaker; zero fields take
	// the resilience defaults.
	Breaker resilience.BreakerConfig
	// ChildEnv names variables of the data plane's environment a stdio child
	// inherits on top of DefaultChildEnv ("NAME" or "PREFIX*"; see
	// CheckChildEnv). Nothing else is inherited, MCPMESH_* never.
	ChildEnv []string
	// Environ is the environment the child's is scrubbed from; nil means
	// os.Environ() (tests pass their own).
	Environ []string
	// ListLimits bound the items of one server's lists the data plane
	// caches; zero fields take catalog's defaults.
	ListLimits catalog.Limits
	// Clock drives backoff waits, probes and breakers; nil means the wall clock.
	Clock resilience.Clock
	// ClientCapabilities is the capabilities object sent upstream in
	// initialize (raw JSON); nil means
	// {"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true},
	// "tasks":{…}}: a shared session offers every feature (the router refuses,
	// per client, what a client cannot handle).
	ClientCapabilities json.RawMessage
	// OnNotification receives every notification a backend sends except the
	// list_changed ones the backend handles itself (refetch lists, then
	// OnChange). Params are re-encoded from what mcp-go decoded (see
	// notificationParams; raw as received on a client's own GET stream). It
	// runs on the transport's reader: it must not block. client is the
	// SessionInit.Client of the upstream session it came on, "" for the
	// shared connection.
	OnNotification func(server, client string, n *jsonrpc.Message)
	// OnRequest answers a server-to-client request (sampling/createMessage,
	// elicitation/create, roots/list…; ping is answered by the backend
	// itself). ctx is the ctx of the upstream Request it arrived with when the
	// transport links them (streamable HTTP: the request's POST stream), so a
	// value put in Request's ctx is visible here; otherwise a context of the
	// connection. Either way it has a deadline. An error is answered as
	// jsonrpc.AsError(err). nil: every request is answered -32601. client is
	// as for OnNotification.
	OnRequest func(ctx context.Context, server, client string, req *jsonrpc.Message) (json.RawMessage, error)
	// SessionIdle is how long a client's upstream session may go unused
	// before this replica forgets it (no DELETE: other replicas may continue
	// it; its SSE stream is closed); 0 means DefaultSessionIdle.
	SessionIdle time.Duration
	// MaxSessions bounds the client sessions held per backend on this
	// replica; 0 means MaxSessions.
	MaxSessions int
	// AllowPrivateEgress lets URL backends connect to link-local and cloud
	// metadata addresses (dataplane --allow-private-egress). Without it a
	// connection to one is refused when it is dialed, after name resolution
	// (internal/egress), whatever the registration said.
	AllowPrivateEgress bool
	// Observer, when set, is told what backends do, for metrics.
	Observer Observer
	// PublicURL is the data plane's public base URL, named in the error a
	// call to a server that needs OAuth authorization gets (its /oauth page).
	PublicURL string
	// Refresh asks the control plane for a new access token when an OAuth
	// backend refused the one it has; nil: a refused token is final until a
	// snapshot brings another.
	Refresh RefreshFunc
}

// Observer counts what backends do. Its methods are called on the paths
// they count (a retry, a connect, a breaker transition): they must be cheap,
// must not block and must be safe for concurrent use.
type Observer interface {
	// BreakerTransition: an endpoint's circuit breaker changed state.
	BreakerTransition(server, from, to string)
	// Retried: a request is sent again after a failure.
	Retried(server string)
	// Connected: a connection attempt to an endpoint ended (ok or not).
	Connected(server string, ok bool)
}

type nopObserver struct{}

func (nopObserver) BreakerTransition(string, string, string) {}
func (nopObserver) Retried(string)                           {}
func (nopObserver) Connected(string, bool)                   {}

// Sessions returns, per backend with any, the clients' upstream sessions
// this replica holds.
func (m *Manager) Sessions() map[string]int {
	out := map[string]int{}
	for _, b := range m.List() {
		if n := b.ses.count(); n > 0 {
			out[b.Name()] = n
		}
	}
	return out
}

// hooks are what every backend of a manager shares: the initialize params
// and the handlers of server-to-client traffic.
type hooks struct {
	initParams     json.RawMessage
	onNotification func(server, client string, n *jsonrpc.Message)
	onRequest      func(ctx context.Context, server, client string, req *jsonrpc.Message) (json.RawMessage, error)
	sessionIdle    time.Duration
	maxSessions    int
	// control vets every address a URL backend dials (egress.Control);
	// nil allows any.
	control func(network, address string, c syscall.RawConn) error
	obs     Observer // never nil
	// publicURL is ManagerOptions.PublicURL.
	publicURL string
}

// Manager owns one Backend per server of the current snapshot.
type Manager struct {
	opts   ManagerOptions
	hooks  *hooks
	logger *slog.Logger
	clock  resilience.Clock
	rand   func() float64 // opts.Rand serialized; nil for the default
	// childEnv is the scrubbed environment every stdio child inherits.
	childEnv []string

	ctx    context.Context // ends at Close; stops swap waiters
	cancel context.CancelFunc
	wg     sync.WaitGroup // notifier, swap waiters, background closes
	change chan struct{}  // buffered 1: coalesces OnChange calls

	mu       sync.Mutex
	closed   bool
	backends map[string]*Backend // what is served
	// pending are replacements of changed servers, connecting; they are
	// swapped into backends once their first attempt resolved, so a config
	// change does not make a working server vanish while its successor dials.
	pending map[string]*Backend
	// auth holds the access token of every served server with OAuth on,
	// kept across replacements of its Backend.
	auth map[string]*authHolder
}

// NewManager returns a Manager with no backends.
func NewManager(opts ManagerOptions) *Manager {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	init, err := initParams(opts.ClientCapabilities)
	if err != nil {
		logger.Error("ManagerOptions.ClientCapabilities is not JSON; sending the default", "err", err)
		init, _ = initParams(nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var control func(string, string, syscall.RawConn) error
	if !opts.AllowPrivateEgress {
		control = egress.Control
	}
	m := &Manager{
		opts: opts,
		hooks: &hooks{
			initParams: init, onNotification: opts.OnNotification, onRequest: opts.OnRequest, control: control,
			sessionIdle: cmp.Or(opts.SessionIdle, DefaultSessionIdle), maxSessions: cmp.Or(opts.MaxSessions, MaxSessions),
			obs:       cmp.Or[Observer](opts.Observer, nopObserver{}),
			publicURL: opts.PublicURL,
		},
		logger:   logger,
		clock:    resilience.OrReal(opts.Clock),
		ctx:      ctx,
		cancel:   cancel,
		change:   make(chan struct{}, 1),
		backends: map[string]*Backend{},
		pending:  map[string]*Backend{},
		auth:     map[string]*authHolder{},
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	m.childEnv = scrubEnv(environ, slices.Concat(DefaultChildEnv, opts.ChildEnv))
	if r := opts.Rand; r != nil {
		var mu sync.Mutex
		m.rand = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return r()
		}
	}
	m.wg.Add(1)
	go m.notifier()
	return m
}

// notifier calls OnChange outside any lock, once per burst of changes.
func (m *Manager) notifier() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.change:
			if m.opts.OnChange != nil {
				m.opts.OnChange()
			}
		}
	}
}

func (m *Manager) notify() {
	select {
	case m.change <- struct{}{}:
	default:
	}
}

// Apply reconciles to the snapshot's servers: starts new ones, closes removed
// ones, replaces (new connection, then close old) ones whose connection config
// changed, and leaves the others alone. An invalid snapshot changes nothing
// and returns an error naming the field, so the config client NACKs it.
func (m *Manager) Apply(snap *mcpmeshv1.ConfigSnapshot) error {
	p, err := m.validate(snap)
	if err != nil {
		return err
	}
	want := map[string]*mcpmeshv1.Server{}
	for _, s := range snap.GetServers() {
		if s.Enabled != nil && !s.GetEnabled() {
			continue // disabled servers are kept in the registry, not served
		}
		want[s.GetName()] = s
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("apply snapshot: backend manager is closed")
	}
	m.applyTokensLocked(want, snap.GetOauthTokens())
	var toClose, toStart []*Backend
	// Removed servers go at once, with any replacement in flight.
	for name, b := range m.backends {
		if _, ok := want[name]; !ok {
			delete(m.backends, name)
			toClose = append(toClose, b)
		}
	}
	for name, b := range m.pending {
		if _, ok := want[name]; !ok {
			delete(m.pending, name)
			toClose = append(toClose, b)
		}
	}
	for name, s := range want {
		sp := serverParams(s, p)
		current := m.backends[name]
		if pb, ok := m.pending[name]; ok {
			current = pb
		}
		if current != nil && sameConnection(current.cfg, s) {
			current.setParams(sp)
			continue
		}
		cfg := proto.Clone(s).(*mcpmeshv1.Server)
		nb := newBackend(cfg, sp, m.logger, m.clock, m.notify, m.opts.Breaker, m.hooks, m.auth[name])
		toStart = append(toStart, nb)
		switch {
		case m.backends[name] == nil:
			m.backends[name] = nb
		default:
			if old := m.pending[name]; old != nil {
				toClose = append(toClose, old) // superseded before it was swapped in
			}
			m.pending[name] = nb
			m.wg.Add(1)
			go m.swapWhenReady(name, nb)
		}
	}
	// Goroutines are started under the lock so that Close, which takes it
	// first, always sees (and waits for) everything Apply launched.
	for _, b := range toStart {
		b.start()
	}
	m.closeInBackground(toClose)
	m.mu.Unlock()

	if len(toStart) > 0 || len(toClose) > 0 {
		m.logger.Info("applied config snapshot", "revision", snap.GetRevision(), "started", len(toStart), "closed", len(toClose), "servers", len(want))
		m.notify()
	}
	return nil
}

// swapWhenReady replaces the served backend of name with nb once nb's first
// connect attempt has resolved (successfully or not).
func (m *Manager) swapWhenReady(name string, nb *Backend) {
	defer m.wg.Done()
	select {
	case <-nb.first:
	case <-m.ctx.Done():
		return
	}
	m.mu.Lock()
	if m.closed || m.pending[name] != nb {
		m.mu.Unlock()
		return // superseded or removed; whoever did that closes nb
	}
	delete(m.pending, name)
	old := m.backends[name]
	m.backends[name] = nb
	if old != nil {
		m.closeInBackground([]*Backend{old})
	}
	m.mu.Unlock()
	m.notify()
}

// closeInBackground closes backends without blocking the caller: closing a
// stdio child can take seconds, and Apply's caller is waiting to ACK. Call it
// with m.mu held so it never races with Close's wait.
func (m *Manager) closeInBackground(bs []*Backend) {
	for _, b := range bs {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			_ = b.Close()
		}()
	}
}

// Get returns the served backend of a server.
func (m *Manager) Get(name string) (*Backend, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.backends[name]
	return b, ok
}

// List returns the served backends sorted by name.
func (m *Manager) List() []*Backend {
	m.mu.Lock()
	out := make([]*Backend, 0, len(m.backends))
	for _, b := range m.backends {
		out = append(out, b)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Health returns every served backend's health, sorted by server name.
func (m *Manager) Health() []*mcpmeshv1.BackendHealth {
	bs := m.List()
	out := make([]*mcpmeshv1.BackendHealth, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Health())
	}
	return out
}

// Close closes every backend and waits for all goroutines of the manager.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var all []*Backend
	for _, b := range m.backends {
		all = append(all, b)
	}
	for _, b := range m.pending {
		all = append(all, b)
	}
	m.backends, m.pending = map[string]*Backend{}, map[string]*Backend{}
	m.closeInBackground(all)
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

// validate checks the whole snapshot before anything changes and returns
// the cluster-wide parameters it sets.
func (m *Manager) validate(snap *mcpmeshv1.ConfigSnapshot) (params, error) {
	if snap == nil {
		return params{}, errors.New("invalid snapshot: snapshot is nil")
	}
	res := snap.GetSettings().GetResilience()
	p := params{
		schedule:      resilience.Schedule{Steps: m.opts.Backoff, Jitter: m.opts.Jitter || res.GetJitter(), Rand: m.rand},
		timeout:       m.opts.DefaultTimeout,
		probeInterval: m.opts.ProbeInterval,
		listResync:    m.opts.ListResync,
		hold:          m.opts.Hold,
		lists:         m.opts.ListLimits.WithDefaults(),
		childEnv:      m.childEnv,
	}
	switch {
	case p.hold == 0:
		p.hold = DefaultHold
	case p.hold < 0:
		p.hold = 0
	}
	if d := res.GetHold(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return params{}, fmt.Errorf("invalid snapshot: settings.resilience.hold must be a non-negative duration")
		}
		p.hold = d.AsDuration()
	}
	if p.listResync == 0 {
		p.listResync = DefaultListResync
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.probeInterval <= 0 {
		p.probeInterval = DefaultProbeInterval
	}
	if d := res.GetProbeInterval(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return params{}, fmt.Errorf("invalid snapshot: settings.resilience.probe_interval must be a non-negative duration")
		}
		if d.AsDuration() > 0 {
			// A control plane older than its bounds may have stored a
			// probe (or retry step) of a nanosecond: clamped, never spun on.
			p.probeInterval = min(max(d.AsDuration(), limits.MinProbeInterval), limits.MaxBackoffStep)
		}
	}
	if steps := res.GetBackoff(); len(steps) > 0 {
		p.schedule.Steps = make([]time.Duration, len(steps))
		for i, d := range steps {
			if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
				return params{}, fmt.Errorf("invalid snapshot: settings.resilience.backoff[%d] must be a positive duration", i)
			}
			p.schedule.Steps[i] = d.AsDuration()
		}
		p.schedule.Steps = clampSteps(p.schedule.Steps)
	}
	if d := res.GetRequestTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return params{}, fmt.Errorf("invalid snapshot: settings.resilience.request_timeout must be a non-negative duration")
		}
		if d.AsDuration() > 0 {
			p.timeout = d.AsDuration()
		}
	}
	seen := map[string]bool{}
	for i, s := range snap.GetServers() {
		if s == nil {
			return params{}, fmt.Errorf("invalid snapshot: servers[%d] is empty", i)
		}
		if err := names.ValidateServer(s.GetName()); err != nil {
			return params{}, fmt.Errorf("invalid snapshot: servers[%d].name: %w", i, err)
		}
		if seen[s.GetName()] {
			return params{}, fmt.Errorf("invalid snapshot: servers[%d].name: duplicate server %q", i, s.GetName())
		}
		seen[s.GetName()] = true
		if err := validateServer(s); err != nil {
			return params{}, fmt.Errorf("invalid snapshot: server %q: %w", s.GetName(), err)
		}
	}
	return p, nil
}

// validateServer checks what the data plane needs to connect to s.
func validateServer(s *mcpmeshv1.Server) error {
	switch s.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		if len(s.GetEndpoints()) > 0 {
			return errors.New("endpoints are only for streamable HTTP and SSE servers")
		}
		if s.GetSession() == mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT {
			// One child per client session is not built: refused, not
			// silently shared.
			return errors.New("session per-client is not supported for stdio servers (one child per client session is not implemented): set session shared")
		}
		if s.GetStdio().GetCommand() == "" {
			return errors.New("stdio.command is required for transport STDIO")
		}
		for k := range s.GetStdio().GetEnv() {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return fmt.Errorf("stdio.env key %q is invalid", k)
			}
		}
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, mcpmeshv1.Transport_TRANSPORT_SSE:
		raw := s.GetHttp().GetUrl()
		if raw == "" {
			return fmt.Errorf("http.url is required for transport %s", s.GetTransport())
		}
		if err := names.ValidateURL(raw); err != nil {
			return fmt.Errorf("http.url: %w", err)
		}
		for i, ep := range s.GetEndpoints() {
			if err := names.ValidateURL(ep); err != nil {
				return fmt.Errorf("endpoints[%d]: %w", i, err)
			}
		}
	default:
		return fmt.Errorf("transport is %s: set stdio or streamable HTTP or SSE", s.GetTransport())
	}
	if d := s.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return errors.New("timeout must be a non-negative duration")
		}
	}
	for i, d := range s.GetBackoff() {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return fmt.Errorf("backoff[%d] must be a positive duration", i)
		}
	}
	if s.Prefix != nil {
		if err := names.ValidatePrefix(s.GetPrefix()); err != nil {
			return fmt.Errorf("prefix: %w", err)
		}
	}
	return nil
}

// serverParams applies the server's own timeout and retry schedule over the
// cluster defaults.
func serverParams(s *mcpmeshv1.Server, p params) params {
	if d := s.GetTimeout().AsDuration(); s.GetTimeout() != nil && d > 0 {
		p.timeout = d
	}
	if steps := s.GetBackoff(); len(steps) > 0 {
		p.schedule.Steps = make([]time.Duration, len(steps))
		for i, d := range steps {
			p.schedule.Steps[i] = d.AsDuration()
		}
		p.schedule.Steps = clampSteps(p.schedule.Steps)
	}
	return p
}

// clampSteps bounds a snapshot's retry schedule in place (see
// limits.MinBackoffStep): at most limits.MaxBackoffSteps steps, each from
// limits.MinBackoffStep to limits.MaxBackoffStep.
func clampSteps(steps []time.Duration) []time.Duration {
	steps = steps[:min(len(steps), limits.MaxBackoffSteps)]
	for i, d := range steps {
		steps[i] = min(max(d, limits.MinBackoffStep), limits.MaxBackoffStep)
	}
	return steps
}

// sameConnection reports whether a and b connect the same way. Revisions
// and timestamps move on every write; description and tags do not touch the
// connection; the timeout is applied live. None of them forces a reconnect.
func sameConnection(a, b *mcpmeshv1.Server) bool {
	return proto.Equal(connectionKey(a), connectionKey(b))
}

func connectionKey(s *mcpmeshv1.Server) *mcpmeshv1.Server {
	c := proto.Clone(s).(*mcpmeshv1.Server)
	c.CreateRevision, c.ModRevision = 0, 0
	c.CreatedAt, c.UpdatedAt = nil, nil
	c.Description, c.Tags, c.Timeout, c.Backoff = "", nil, nil, nil
	c.Enabled = nil
	return c
}

// applyTokensLocked gives every OAuth server of want the access token the
// snapshot carries for it ("" when none: it needs authorization), and
// forgets the holders of servers that left or no longer use OAuth. Only the
// holders change: no backend reconnects for a new token.
func (m *Manager) applyTokensLocked(want map[string]*mcpmeshv1.Server, tokens []*mcpmeshv1.OAuthAccess) {
	byServer := make(map[string]string, len(tokens))
	for _, t := range tokens {
		byServer[t.GetServer()] = t.GetAccessToken()
	}
	for name := range m.auth {
		if s, ok := want[name]; !ok || !s.GetHttp().GetOauth().GetEnabled() {
			delete(m.auth, name)
		}
	}
	for name, s := range want {
		if !s.GetHttp().GetOauth().GetEnabled() || s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO {
			continue
		}
		h := m.auth[name]
		if h == nil {
			h = newAuthHolder(m.ctx, name, m.opts.Refresh)
			m.auth[name] = h
		}
		h.offer(byServer[name])
	}
}
