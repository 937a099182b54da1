package health

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	healthy     = mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
	retrying    = mcpmeshv1.BackendState_BACKEND_STATE_RETRYING
	unavailable = mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
)

type connSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (c *connSet) set(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = map[string]bool{}
	for _, id := range ids {
		c.ids[id] = true
	}
}

func (c *connSet) get() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for k, v := range c.ids {
		out[k] = v
	}
	return out
}

func openBolt(t *testing.T, path string) *store.BoltStore {
	t.Helper()
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func report(states map[string]mcpmeshv1.BackendState) *mcpmeshv1.HealthReport {
	r := &mcpmeshv1.HealthReport{}
	for srv, st := range states {
		r.Backends = append(r.Backends, &mcpmeshv1.BackendHealth{Server: srv, State: st})
	}
	return r
}

func srv(name string) *mcpmeshv1.Server { return &mcpmeshv1.Server{Name: name} }

func TestAggregate(t *testing.T) {
	h := func(dp string, st mcpmeshv1.BackendState) *mcpmeshv1.BackendHealth {
		return &mcpmeshv1.BackendHealth{DataplaneId: dp, Server: "s", State: st}
	}
	disabled := &mcpmeshv1.Server{Name: "s", Enabled: proto.Bool(false)}
	enabled := &mcpmeshv1.Server{Name: "s", Enabled: proto.Bool(true)}
	tests := []struct {
		name    string
		server  *mcpmeshv1.Server
		reports []*mcpmeshv1.BackendHealth
		state   string
		k, n    uint32
	}{
		{"no reports", srv("s"), nil, StateUnknown, 0, 0},
		{"all healthy", srv("s"), []*mcpmeshv1.BackendHealth{h("a", healthy), h("b", healthy)}, StateHealthy, 2, 2},
		{"explicitly enabled", enabled, []*mcpmeshv1.BackendHealth{h("a", healthy)}, StateHealthy, 1, 1},
		{"some healthy", srv("s"), []*mcpmeshv1.BackendHealth{h("a", healthy), h("b", retrying)}, StateDegraded, 1, 2},
		{"none healthy", srv("s"), []*mcpmeshv1.BackendHealth{h("a", unavailable), h("b", retrying)}, StateUnavailable, 0, 2},
		{"needs authorization", srv("s"), []*mcpmeshv1.BackendHealth{h("a", mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION), h("b", unavailable)}, StateNeedsAuthorization, 0, 2},
		{"disabled wins", disabled, []*mcpmeshv1.BackendHealth{h("a", healthy)}, StateDisabled, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Aggregate(tc.server, tc.reports)
			if got.GetState() != tc.state || got.GetHealthyDataplanes() != tc.k || got.GetTotalDataplanes() != tc.n || got.GetName() != "s" {
				t.Fatalf("Aggregate = %v, want %s %d/%d", got, tc.state, tc.k, tc.n)
			}
		})
	}
}

func TestReportEventsAndConnectedOnly(t *testing.T) {
	ctx := context.Background()
	st := openBolt(t, filepath.Join(t.TempDir(), store.FileName))
	defer st.Close()
	conn := &connSet{}
	conn.set("dp1", "dp2")
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := New(st, conn.get, nil, WithClock(func() time.Time { return fixed }))
	changes, stop := a.Subscribe()
	defer stop()

	if err := a.Report(ctx, "dp1", report(map[string]mcpmeshv1.BackendState{"x": healthy, "y": retrying})); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	default:
		t.Fatal("Report did not signal subscribers")
	}
	if err := a.Report(ctx, "dp2", report(map[string]mcpmeshv1.BackendState{"x": unavailable})); err != nil {
		t.Fatal(err)
	}
	// Same states again: no new transitions.
	if err := a.Report(ctx, "dp1", report(map[string]mcpmeshv1.BackendState{"x": healthy, "y": retrying})); err != nil {
		t.Fatal(err)
	}
	// y recovers on dp1: one transition.
	if err := a.Report(ctx, "dp1", report(map[string]mcpmeshv1.BackendState{"x": healthy, "y": healthy})); err != nil {
		t.Fatal(err)
	}
	evs, err := a.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4 (x,y first seen on dp1, x on dp2, y recovered): %v", len(evs), evs)
	}
	last := evs[3].Health
	if last.GetServer() != "y" || last.GetState() != healthy || last.GetDataplaneId() != "dp1" || !last.GetReportedAt().AsTime().Equal(fixed) {
		t.Fatalf("last event = %v", last)
	}

	sts, err := a.Statuses(ctx, []*mcpmeshv1.Server{srv("x"), srv("y"), srv("z")})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state string
		k, n  uint32
	}{{StateDegraded, 1, 2}, {StateHealthy, 1, 1}, {StateUnknown, 0, 0}}
	for i, w := range want {
		if sts[i].GetState() != w.state || sts[i].GetHealthyDataplanes() != w.k || sts[i].GetTotalDataplanes() != w.n {
			t.Errorf("%s: %v, want %s %d/%d", sts[i].GetName(), sts[i], w.state, w.k, w.n)
		}
	}
	// dp2 disconnects: its report no longer counts.
	conn.set("dp1")
	x, err := a.Status(ctx, srv("x"))
	if err != nil {
		t.Fatal(err)
	}
	if x.GetState() != StateHealthy || x.GetTotalDataplanes() != 1 || len(x.GetBackends()) != 1 {
		t.Fatalf("x with dp2 gone = %v", x)
	}
}

func TestReportsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	st := openBolt(t, path)
	conn := &connSet{}
	conn.set("dp1")
	a := New(st, conn.get, nil)
	if err := a.Report(ctx, "dp1", report(map[string]mcpmeshv1.BackendState{"x": unavailable})); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openBolt(t, path)
	defer st2.Close()
	a2 := New(st2, conn.get, nil)
	x, err := a2.Status(ctx, srv("x"))
	if err != nil {
		t.Fatal(err)
	}
	if x.GetState() != StateUnavailable || len(x.GetBackends()) != 1 || x.GetBackends()[0].GetDataplaneId() != "dp1" {
		t.Fatalf("after restart x = %v", x)
	}
	// A repeat of the same state after restart is not a transition.
	if err := a2.Report(ctx, "dp1", report(map[string]mcpmeshv1.BackendState{"x": unavailable})); err != nil {
		t.Fatal(err)
	}
	evs, _ := a2.Events(ctx, 0)
	if len(evs) != 1 {
		t.Fatalf("events after restart = %d, want 1", len(evs))
	}
}

func TestBadReports(t *testing.T) {
	a := New(store.NewMemory(), nil, nil)
	if err := a.Report(context.Background(), "", report(nil)); err == nil {
		t.Fatal("empty data plane id accepted")
	}
	bad := &mcpmeshv1.HealthReport{Backends: []*mcpmeshv1.BackendHealth{{State: healthy}}}
	if err := a.Report(context.Background(), "dp", bad); err == nil {
		t.Fatal("backend without server accepted")
	}
	if err := a.Report(context.Background(), "dp", nil); err != nil {
		t.Fatalf("nil report (no backends) rejected: %v", err)
	}
}

func TestReportBounds(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	a := New(st, nil, nil)
	huge := strings.Repeat("é", 3<<20) // 6 MB, like an initialize error body
	if err := a.Report(ctx, "dp", &mcpmeshv1.HealthReport{Backends: []*mcpmeshv1.BackendHealth{
		{Server: "big", State: unavailable, LastError: huge},
	}}); err != nil {
		t.Fatal(err)
	}
	stored, _ := st.ListHealth(ctx)
	evs, _ := st.ListEvents(ctx, 0)
	if len(stored) != 1 || len(evs) != 1 {
		t.Fatalf("%d reports, %d events stored, want 1 and 1", len(stored), len(evs))
	}
	for what, got := range map[string]string{"stored report": stored[0].GetLastError(), "event": evs[0].Health.GetLastError()} {
		if len(got) > textlimit.ErrorText || !strings.HasSuffix(got, "…(truncated)") || !utf8.ValidString(got) {
			t.Errorf("%s last_error: %d bytes, valid UTF-8 %v, ends %q", what, len(got), utf8.ValidString(got), got[max(0, len(got)-20):])
		}
	}

	many := &mcpmeshv1.HealthReport{}
	for i := range MaxReportBackends + 1 {
		many.Backends = append(many.Backends, &mcpmeshv1.BackendHealth{Server: fmt.Sprintf("s%d", i), State: healthy})
	}
	if err := a.Report(ctx, "dp", many); err == nil || !strings.Contains(err.Error(), "10001 backends, at most 10000") {
		t.Fatalf("report of %d backends: err = %v", len(many.Backends), err)
	}
	bad := &mcpmeshv1.HealthReport{Backends: []*mcpmeshv1.BackendHealth{{Server: "ok"}, {Server: strings.Repeat("x", 100)}}}
	if err := a.Report(ctx, "dp", bad); err == nil || !strings.Contains(err.Error(), "backends[1].server") {
		t.Fatalf("report with a 100-byte server name: err = %v", err)
	}
	if now, _ := st.ListHealth(ctx); len(now) != 1 || now[0].GetServer() != "big" {
		t.Fatalf("a refused report changed the stored health: %v", now)
	}
}

// Texts stored before reports were cut are cut where they are served.
func TestServedTextsAreCut(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	long := &mcpmeshv1.BackendHealth{DataplaneId: "dp", Server: "s", State: unavailable, LastError: strings.Repeat("e", 1<<20)}
	if err := st.PutHealth(ctx, "dp", []*mcpmeshv1.BackendHealth{long}, []*mcpmeshv1.BackendHealth{long}); err != nil {
		t.Fatal(err)
	}
	a := New(st, func() map[string]bool { return map[string]bool{"dp": true} }, nil)
	sts, err := a.Statuses(ctx, []*mcpmeshv1.Server{srv("s")})
	if err != nil {
		t.Fatal(err)
	}
	if got := sts[0].GetBackends()[0].GetLastError(); len(got) != textlimit.ErrorText {
		t.Errorf("status last_error is %d bytes, want %d", len(got), textlimit.ErrorText)
	}
	trs, err := a.Transitions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := trs[0].Error; len(got) != textlimit.ErrorText {
		t.Errorf("transition error is %d bytes, want %d", len(got), textlimit.ErrorText)
	}
}

func TestTransitions(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	tick := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := New(st, nil, nil, WithClock(func() time.Time { tick = tick.Add(time.Second); return tick }))
	steps := []struct {
		dp    string
		state mcpmeshv1.BackendState
		err   string
	}{
		{"dp1", healthy, ""},
		{"dp2", unavailable, "dial tcp: connection refused"},
		{"dp1", healthy, ""}, // no change: no transition
		{"dp1", retrying, "EOF"},
		{"dp1", healthy, ""},
	}
	for _, s := range steps {
		r := &mcpmeshv1.HealthReport{Backends: []*mcpmeshv1.BackendHealth{{Server: "x", State: s.state, LastError: s.err}}}
		if err := a.Report(ctx, s.dp, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Transitions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := func(sec int) time.Time { return time.Date(2026, 1, 2, 3, 4, 5+sec, 0, time.UTC) }
	want := []Transition{ // newest first
		{at(5), "dp1", "x", "retrying", "healthy", ""},
		{at(4), "dp1", "x", "healthy", "retrying", "EOF"},
		{at(2), "dp2", "x", FromNone, "unavailable", "dial tcp: connection refused"},
		{at(1), "dp1", "x", FromNone, "healthy", ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("transitions\n got %v\nwant %v", got, want)
	}
	if got, _ := a.Transitions(ctx, 2); !slices.Equal(got, want[:2]) {
		t.Fatalf("limit 2 = %v, want the two newest", got)
	}
	if got, _ := a.Transitions(ctx, 100); len(got) != 4 {
		t.Fatalf("limit above the count = %d items", len(got))
	}
}

func TestTransitionsAfterTheLogWrapped(t *testing.T) {
	ctx := context.Background()
	a := New(store.NewMemory(), nil, nil)
	if err := a.Report(ctx, "dp2", report(map[string]mcpmeshv1.BackendState{"y": healthy})); err != nil {
		t.Fatal(err)
	}
	// One more transition than the log keeps, plus the one above: both the
	// dp2 event and the first dp1 event are dropped.
	for i := range store.MaxEvents + 1 {
		s := healthy
		if i%2 == 1 {
			s = retrying
		}
		if err := a.Report(ctx, "dp1", report(map[string]mcpmeshv1.BackendState{"x": s})); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Transitions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != store.MaxEvents {
		t.Fatalf("%d transitions, want %d", len(got), store.MaxEvents)
	}
	oldest, next := got[len(got)-1], got[len(got)-2]
	if oldest.From != FromUnknown || oldest.To != "retrying" {
		t.Fatalf("oldest kept = %+v, want from unknown (its predecessor was dropped)", oldest)
	}
	if next.From != "retrying" || next.To != "healthy" {
		t.Fatalf("second oldest = %+v", next)
	}
	for _, tr := range got {
		if tr.DataPlane != "dp1" {
			t.Fatalf("dropped event still listed: %+v", tr)
		}
	}
}
