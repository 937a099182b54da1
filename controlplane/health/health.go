package health

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/internal/notify"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Aggregated server states, as ServerStatus.state shows them.
const (
	StateHealthy     = "healthy"
	StateDegraded    = "degraded"
	StateUnavailable = "unavailable"
	StateUnknown     = "unknown"
	StateDisabled    = "disabled"
	// StateNeedsAuthorization: no data plane has the server healthy and one
	// reports it waiting for an OAuth grant (authorize it at /oauth).
	StateNeedsAuthorization = states.NeedsAuthorization
)

// MaxReportBackends bounds the entries of one health report; a data plane
// reports one per server it serves.
const MaxReportBackends = 10000

// ConnectedFunc returns the ids of the data planes connected right now; only
// their reports count towards a server's k of n.
type ConnectedFunc func() map[string]bool

// Aggregator is the health component.
type Aggregator struct {
	st        store.Store
	connected ConnectedFunc
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex // serialises Report's read-compare-write
	changes notify.Broadcaster
}

// Option configures an Aggregator.
type Option func(*Aggregator)

// WithClock sets the clock used to stamp reported_at (tests).
func WithClock(now func() time.Time) Option { return func(a *Aggregator) { a.now = now } }

// New returns an Aggregator persisting through st. connected may be nil (no
// data plane counts as connected).
func New(st store.Store, connected ConnectedFunc, logger *slog.Logger, opts ...Option) *Aggregator {
	if connected == nil {
		connected = func() map[string]bool { return nil }
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Aggregator{st: st, connected: connected, log: logger, now: time.Now}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Subscribe signals after every accepted report.
func (a *Aggregator) Subscribe() (<-chan struct{}, func()) { return a.changes.Subscribe() }

// Report records a data plane's full health report: it replaces what that
// data plane reported before and records an event for every backend whose
// state changed.
func (a *Aggregator) Report(ctx context.Context, dataplaneID string, r *mcpmeshv1.HealthReport) error {
	if dataplaneID == "" {
		return fmt.Errorf("health report: data plane id is empty")
	}
	if n := len(r.GetBackends()); n > MaxReportBackends {
		return fmt.Errorf("health report from %q: %d backends, at most %d are accepted", dataplaneID, n, MaxReportBackends)
	}
	now := timestamppb.New(a.now())
	byServer := make(map[string]*mcpmeshv1.BackendHealth)
	for i, b := range r.GetBackends() {
		if b.GetServer() == "" {
			return fmt.Errorf("health report from %q: backends[%d].server is empty", dataplaneID, i)
		}
		if err := names.ValidateServer(b.GetServer()); err != nil {
			return fmt.Errorf("health report from %q: backends[%d].server: %w", dataplaneID, i, err)
		}
		h := proto.Clone(b).(*mcpmeshv1.BackendHealth)
		h.DataplaneId, h.ReportedAt = dataplaneID, now
		// A backend's error may be megabytes (an initialize answer, a
		// stack trace): it is stored, evented and served, so it is cut.
		// Data planes mask URL credentials in their errors; an older or
		// foreign one may not, and what is stored here is shown on pages.
		h.LastError = textlimit.Truncate(redact.Text(h.GetLastError()), textlimit.ErrorText)
		byServer[h.GetServer()] = h // a repeated server: the last entry wins
	}
	backends := make([]*mcpmeshv1.BackendHealth, 0, len(byServer))
	for _, h := range byServer {
		backends = append(backends, h)
	}
	sort.Slice(backends, func(i, j int) bool { return backends[i].GetServer() < backends[j].GetServer() })

	a.mu.Lock()
	defer a.mu.Unlock()
	all, err := a.st.ListHealth(ctx)
	if err != nil {
		return fmt.Errorf("health report from %q: %w", dataplaneID, err)
	}
	prev := make(map[string]mcpmeshv1.BackendState)
	for _, h := range all {
		if h.GetDataplaneId() == dataplaneID {
			prev[h.GetServer()] = h.GetState()
		}
	}
	var events []*mcpmeshv1.BackendHealth
	for _, h := range backends {
		old, seen := prev[h.GetServer()]
		if !seen || old != h.GetState() {
			events = append(events, h)
			a.log.Info("backend state changed", "dataplane", dataplaneID, "server", h.GetServer(),
				"from", stateName(old, seen), "to", stateName(h.GetState(), true), "err", h.GetLastError())
		}
	}
	if err := a.st.PutHealth(ctx, dataplaneID, backends, events); err != nil {
		return fmt.Errorf("health report from %q: %w", dataplaneID, err)
	}
	a.changes.Notify()
	return nil
}

func stateName(s mcpmeshv1.BackendState, known bool) string {
	if !known {
		return "none"
	}
	return states.Backend(s)
}

// Statuses aggregates the stored reports for each of servers, in their order.
func (a *Aggregator) Statuses(ctx context.Context, servers []*mcpmeshv1.Server) ([]*mcpmeshv1.ServerStatus, error) {
	all, err := a.st.ListHealth(ctx)
	if err != nil {
		return nil, fmt.Errorf("aggregate health: %w", err)
	}
	connected := a.connected()
	byServer := make(map[string][]*mcpmeshv1.BackendHealth)
	for _, h := range all {
		if connected[h.GetDataplaneId()] {
			byServer[h.GetServer()] = append(byServer[h.GetServer()], h)
		}
	}
	out := make([]*mcpmeshv1.ServerStatus, 0, len(servers))
	for _, s := range servers {
		out = append(out, Aggregate(s, byServer[s.GetName()]))
	}
	return out, nil
}

// Status aggregates the stored reports for one server.
func (a *Aggregator) Status(ctx context.Context, server *mcpmeshv1.Server) (*mcpmeshv1.ServerStatus, error) {
	st, err := a.Statuses(ctx, []*mcpmeshv1.Server{server})
	if err != nil {
		return nil, err
	}
	return st[0], nil
}

// Events returns the newest recorded transitions, oldest first.
func (a *Aggregator) Events(ctx context.Context, limit int) ([]store.Event, error) {
	return a.st.ListEvents(ctx, limit)
}

// Transition is one backend state change as people read it (status page,
// GET /api/events).
type Transition struct {
	Time      time.Time `json:"time"`
	DataPlane string    `json:"dataplane"`
	Server    string    `json:"server"`
	// From is the state before: FromNone when the data plane reported the
	// backend for the first time, FromUnknown when the earlier transition has
	// already left the bounded event log.
	From  string `json:"from"`
	To    string `json:"to"`
	Error string `json:"error"`
}

// Values of Transition.From that are not states.
const (
	FromNone    = "none"
	FromUnknown = "unknown"
)

// Transitions returns up to limit of the newest transitions, newest first
// (limit <= 0: all that are kept, at most store.MaxEvents).
//
// The store records the state after each transition only, so the state
// before is the previous event of the same data plane and server. The whole
// log is read for that: it is bounded, and a limited read would lose the
// "from" of the oldest entries it returns.
func (a *Aggregator) Transitions(ctx context.Context, limit int) ([]Transition, error) {
	evs, err := a.st.ListEvents(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("list transitions: %w", err)
	}
	// Sequences start at 1, so an oldest event with seq 1 means nothing was
	// trimmed and a first event really is a first report.
	trimmed := len(evs) > 0 && evs[0].Seq > 1
	type key struct{ dp, server string }
	last := make(map[key]string)
	all := make([]Transition, 0, len(evs))
	for _, e := range evs {
		h := e.Health
		k := key{h.GetDataplaneId(), h.GetServer()}
		from, ok := last[k]
		switch {
		case ok:
		case trimmed:
			from = FromUnknown
		default:
			from = FromNone
		}
		to := states.Backend(h.GetState())
		last[k] = to
		all = append(all, Transition{
			Time: h.GetReportedAt().AsTime().UTC(), DataPlane: k.dp, Server: k.server,
			From: from, To: to, Error: textlimit.Truncate(redact.Text(h.GetLastError()), textlimit.ErrorText), // stored before reports were cut or masked
		})
	}
	if limit <= 0 || limit > len(all) {
		limit = len(all)
	}
	out := make([]Transition, 0, limit)
	for i := len(all) - 1; i >= len(all)-limit; i-- {
		out = append(out, all[i])
	}
	return out, nil
}

// Aggregate computes one server's status from the reports of the connected
// data planes (reports must already be filtered to those).
func Aggregate(server *mcpmeshv1.Server, reports []*mcpmeshv1.BackendHealth) *mcpmeshv1.ServerStatus {
	st := &mcpmeshv1.ServerStatus{Name: server.GetName(), TotalDataplanes: uint32(len(reports))}
	for _, h := range reports {
		c := proto.Clone(h).(*mcpmeshv1.BackendHealth)
		c.LastError = textlimit.Truncate(c.GetLastError(), textlimit.ErrorText) // stored before reports were cut
		st.Backends = append(st.Backends, c)
		if h.GetState() == mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY {
			st.HealthyDataplanes++
		}
	}
	switch {
	case server.Enabled != nil && !server.GetEnabled():
		st.State = StateDisabled
	case len(reports) == 0:
		st.State = StateUnknown
	case int(st.HealthyDataplanes) == len(reports):
		st.State = StateHealthy
	case st.HealthyDataplanes > 0:
		st.State = StateDegraded
	case slices.ContainsFunc(reports, func(h *mcpmeshv1.BackendHealth) bool {
		return h.GetState() == mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION
	}):
		st.State = StateNeedsAuthorization
	default:
		st.State = StateUnavailable
	}
	return st
}
