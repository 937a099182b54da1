package backend

import (
	"google.golang.org/protobuf/proto"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
)

func backendNames(bs []*Backend) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Name()
	}
	return out
}

func TestManagerApply(t *testing.T) {
	e := newEnv(t)
	one := startHTTPBackend(t, newMCPServer("one", 0), false)
	two := startHTTPBackend(t, newMCPServer("two", 0), false)

	// Add two servers.
	e.apply(two.server("two"), one.server("one"))
	e.waitFor("both healthy", func() bool {
		h := e.m.Health()
		return len(h) == 2 && h[0].GetState() == stateHealthy && h[1].GetState() == stateHealthy
	})
	if got := strings.Join(backendNames(e.m.List()), ","); got != "one,two" {
		t.Fatalf("List = %s, want one,two", got)
	}
	if h := e.m.Health(); h[0].GetServer() != "one" || h[1].GetServer() != "two" {
		t.Fatalf("Health not sorted: %v", h)
	}
	origOne, _ := e.m.Get("one")
	origTwo, _ := e.m.Get("two")

	// Only revisions, timestamps, tags, description and timeout moved: the
	// connection is kept, the timeout applied live.
	s1 := one.server("one")
	s1.ModRevision, s1.CreateRevision = 7, 3
	s1.UpdatedAt = timestamppb.New(time.Unix(5, 0))
	s1.Tags, s1.Description = []string{"x"}, "desc"
	s1.Timeout = durationpb.New(5 * time.Second)
	e.apply(s1, two.server("two"))
	if b, _ := e.m.Get("one"); b != origOne {
		t.Fatal("an unchanged connection config replaced the backend")
	}
	if got := origOne.params().timeout; got != 5*time.Second {
		t.Errorf("timeout = %v, want 5s applied live", got)
	}

	// A changed header replaces the backend: new connection, then old
	// closed. The replacement's initialize is held so that the old backend is
	// seen still served while its successor connects.
	s2 := two.server("two")
	s2.Http.Headers = map[string]string{"Authorization": "Bearer x"}
	gate := make(chan struct{})
	two.initGate.Store(&gate)
	e.apply(s1, s2)
	if b, _ := e.m.Get("two"); b != origTwo {
		close(gate)
		t.Fatal("the old backend was dropped before its replacement connected")
	}
	close(gate)
	var newTwo *Backend
	e.waitFor("two to be replaced", func() bool {
		b, _ := e.m.Get("two")
		newTwo = b
		return b != origTwo && b.Ready()
	})
	if newTwo.Config().GetHttp().GetHeaders()["Authorization"] != "Bearer x" {
		t.Error("replacement does not carry the new config")
	}
	waitClosed(t, origTwo)

	// Remove one; a disabled server is not served either.
	disabled := false
	s2.Enabled = &disabled
	e.apply(s2, stdioServer("zzz", t.TempDir()))
	if _, ok := e.m.Get("one"); ok {
		t.Error("removed server still served")
	}
	if _, ok := e.m.Get("two"); ok {
		t.Error("disabled server still served")
	}
	if got := strings.Join(backendNames(e.m.List()), ","); got != "zzz" {
		t.Errorf("List = %s, want zzz", got)
	}
	waitClosed(t, origOne) // removal closes the backend
}

func waitClosed(t *testing.T, b *Backend) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(testWait):
		t.Fatalf("backend %s was not closed within %v; goroutines:\n%s", b.Name(), testWait, allStacks())
	}
}

func TestManagerApplyRejectsInvalidSnapshots(t *testing.T) {
	e := newEnv(t)
	good := stdioServer("good", "")
	e.apply(good)
	before, _ := e.m.Get("good")

	httpSrv := func(name, url string) *mcpmeshv1.Server {
		return &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: url}}
	}
	tests := []struct {
		name string
		snap *mcpmeshv1.ConfigSnapshot
		want string
	}{
		{"nil snapshot", nil, "snapshot is nil"},
		{"nil server", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{nil}}, "servers[0] is empty"},
		{"bad name", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("Bad_Name", "http://x")}}, "servers[0].name"},
		{"duplicate", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("a", "http://x"), httpSrv("a", "http://y")}}, `servers[1].name: duplicate server "a"`},
		{"no transport", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a"}}}, "transport is TRANSPORT_UNSPECIFIED"},
		{"stdio without command", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO}}}, "stdio.command is required"},
		{"bad env key", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x", Env: map[string]string{"A=B": "c"}}}}}, "stdio.env key"},
		{"http without url", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("a", "")}}, "http.url is required"},
		{"relative url", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("a", "/mcp")}}, "absolute http or https URL"},
		{"ftp url", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{httpSrv("a", "ftp://h/mcp")}}, "absolute http or https URL"},
		{"negative timeout", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x"}, Timeout: durationpb.New(-time.Second)}}}, "timeout must be"},
		{"bad backoff", &mcpmeshv1.ConfigSnapshot{Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{Backoff: []*durationpb.Duration{durationpb.New(0)}}}}, "settings.resilience.backoff[0]"},
		{"bad probe interval", &mcpmeshv1.ConfigSnapshot{Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{ProbeInterval: durationpb.New(-time.Second)}}}, "settings.resilience.probe_interval"},
		{"stdio with endpoints", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x"}, Endpoints: []string{"http://h"}}}}, "endpoints are only for"},
		{"bad endpoint", &mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{{Name: "a", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: "http://h/mcp"}, Endpoints: []string{"http://ok/mcp", "nope"}}}}, "endpoints[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.m.Apply(tt.snap)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want error containing %q", err, tt.want)
			}
			if b, ok := e.m.Get("good"); !ok || b != before || len(e.m.List()) != 1 {
				t.Fatal("an invalid snapshot changed the served backends")
			}
		})
	}
}

func TestManagerSettingsOverrideDefaults(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("eps", 0), false)
	hb.down.Store(true)
	snap := &mcpmeshv1.ConfigSnapshot{
		Servers: []*mcpmeshv1.Server{hb.server("eps")},
		Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{
			Backoff:        []*durationpb.Duration{durationpb.New(3 * time.Second)},
			RequestTimeout: durationpb.New(2 * time.Second),
			ProbeInterval:  durationpb.New(250 * time.Millisecond),
		}},
	}
	if err := e.m.Apply(snap); err != nil {
		t.Fatal(err)
	}
	b := e.backend("eps")
	if got := e.waitTimer(); got != 3*time.Second {
		t.Fatalf("first wait = %v, want the configured 3s", got)
	}
	if got := b.params().timeout; got != 2*time.Second {
		t.Errorf("timeout = %v, want the configured 2s", got)
	}
	e.clock.Advance(3 * time.Second)
	if got := b.params().probeInterval; got != 250*time.Millisecond {
		t.Errorf("probe interval = %v, want the configured 250ms", got)
	}
	// A one-step schedule is exhausted after its first retry; the
	// configured probe interval takes over.
	if got := e.waitTimer(); got != 250*time.Millisecond {
		t.Fatalf("second wait = %v, want the 250ms probe", got)
	}
	e.waitState(b, stateUnavailable)
}

// Timings stored by a control plane older than its bounds (a probe every
// nanosecond burnt a CPU per down backend) are clamped, not refused: the
// data plane keeps serving, safely.
func TestManagerClampsStoredTimings(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("fast", 0), false)
	hb.down.Store(true)
	var steps []*durationpb.Duration
	for range limits.MaxBackoffSteps + 5 {
		steps = append(steps, durationpb.New(time.Nanosecond))
	}
	steps[1] = durationpb.New(48 * time.Hour)
	own := hb.server("own")
	own.Backoff = []*durationpb.Duration{durationpb.New(time.Nanosecond)}
	snap := &mcpmeshv1.ConfigSnapshot{
		Servers: []*mcpmeshv1.Server{hb.server("fast"), own},
		Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{
			Backoff: steps, ProbeInterval: durationpb.New(time.Nanosecond),
		}},
	}
	if err := e.m.Apply(snap); err != nil {
		t.Fatal(err)
	}
	p := e.backend("fast").params()
	if p.probeInterval != limits.MinProbeInterval {
		t.Errorf("probe interval = %v, want %v", p.probeInterval, limits.MinProbeInterval)
	}
	if got := p.schedule.Steps; len(got) != limits.MaxBackoffSteps || got[0] != limits.MinBackoffStep || got[1] != limits.MaxBackoffStep {
		t.Errorf("schedule = %v, want %d steps, the first %v, the second %v", got, limits.MaxBackoffSteps, limits.MinBackoffStep, limits.MaxBackoffStep)
	}
	if got := e.backend("own").params().schedule.Steps; len(got) != 1 || got[0] != limits.MinBackoffStep {
		t.Errorf("server's own schedule = %v, want [%v]", got, limits.MinBackoffStep)
	}
}

// A server's own backoff wins over the cluster-wide setting, and changing it
// applies without a reconnect.
func TestManagerServerBackoffOverridesSettings(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("own", 0), false)
	hb.down.Store(true)
	srv := hb.server("own")
	srv.Backoff = []*durationpb.Duration{durationpb.New(700 * time.Millisecond), durationpb.New(900 * time.Millisecond)}
	snap := &mcpmeshv1.ConfigSnapshot{
		Servers: []*mcpmeshv1.Server{srv},
		Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{
			Backoff: []*durationpb.Duration{durationpb.New(3 * time.Second)},
		}},
	}
	if err := e.m.Apply(snap); err != nil {
		t.Fatal(err)
	}
	b := e.backend("own")
	if got := e.waitTimer(); got != 700*time.Millisecond {
		t.Fatalf("first wait = %v, want the server's own 700ms", got)
	}
	e.clock.Advance(700 * time.Millisecond)
	if got := e.waitTimer(); got != 900*time.Millisecond {
		t.Fatalf("second wait = %v, want the server's own 900ms", got)
	}
	changed := proto.Clone(srv).(*mcpmeshv1.Server)
	changed.Backoff = []*durationpb.Duration{durationpb.New(5 * time.Second)}
	changed.ModRevision++
	if err := e.m.Apply(&mcpmeshv1.ConfigSnapshot{Revision: 2, Servers: []*mcpmeshv1.Server{changed}, Settings: snap.Settings}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.m.Get("own"); got != b {
		t.Fatalf("a backoff change replaced the backend; it should apply live")
	}
	if got := b.params().schedule.Steps; len(got) != 1 || got[0] != 5*time.Second {
		t.Errorf("schedule after change = %v, want [5s]", got)
	}
}
