package backend

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// liveServer is a real streamable HTTP MCP server on a fixed 127.0.0.1 port
// that can be stopped (listener and every connection closed, as when the
// process dies) and started again on the same address.
type liveServer struct {
	t    *testing.T
	addr string
	h    http.Handler
	// down makes it answer every request 503 with its port open, as a
	// backend broken behind a live listener does.
	down  atomic.Bool
	mcp   *server.MCPServer
	inner atomic.Pointer[http.Handler] // swapped by forgetSessions
	inits atomic.Int64                 // initialize requests received
	gets  atomic.Int64                 // event streams (GET) being served

	mu  sync.Mutex
	srv *http.Server
	wg  sync.WaitGroup
}

func startLiveServer(t *testing.T, s *server.MCPServer) *liveServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &liveServer{t: t, addr: ln.Addr().String(), mcp: s}
	l.forgetSessions()
	l.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isInitialize(r) {
			l.inits.Add(1)
		}
		if l.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodGet {
			l.gets.Add(1)
			defer l.gets.Add(-1)
		}
		(*l.inner.Load()).ServeHTTP(w, r)
	})
	l.serve(ln)
	t.Cleanup(l.stop)
	return l
}

// forgetSessions puts a new transport in front of the MCP server, so every
// session id handed out so far is unknown (404, as a stateful server
// answers after a restart).
func (l *liveServer) forgetSessions() {
	var h http.Handler = server.NewStreamableHTTPServer(l.mcp, server.WithStateful(true), legacyOnly)
	l.inner.Store(&h)
}

func (l *liveServer) url() string { return "http://" + l.addr + "/mcp" }

func (l *liveServer) serve(ln net.Listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.srv = &http.Server{Handler: l.h}
	srv := l.srv
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = srv.Serve(ln)
	}()
}

// restart listens on the same address again.
func (l *liveServer) restart() {
	l.t.Helper()
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		l.t.Fatalf("listen again on %s: %v", l.addr, err)
	}
	l.serve(ln)
}

// stop closes the listener and every connection at once.
func (l *liveServer) stop() {
	l.mu.Lock()
	srv := l.srv
	l.srv = nil
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	within(l.t, "stopping live server "+l.addr, l.wg.Wait)
}

func (l *liveServer) server(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: l.url()},
	}
}

// liveHealthy serves a real MCP server named name on a liveServer, applies
// it as the only server and waits until its backend is healthy.
func (e *env) liveHealthy(name string) (*liveServer, *Backend) {
	e.t.Helper()
	ls := startLiveServer(e.t, newMCPServer(name, 0))
	e.apply(ls.server(name))
	b := e.backend(name)
	e.waitState(b, stateHealthy)
	return ls, b
}

// drainChanges forgets OnChange calls made so far.
func (e *env) drainChanges() {
	select {
	case <-e.changes:
	default:
	}
}

// TestJitteredSchedule: with jitter on, each wait is the step scaled by the
// (seeded) random number, so it stays within [0, step].
func TestJitteredSchedule(t *testing.T) {
	const seed1, seed2 = 7, 9
	e := newEnv(t, func(o *ManagerOptions) { o.Rand = rand.New(rand.NewPCG(seed1, seed2)).Float64 })
	hb := startHTTPBackend(t, newMCPServer("jit", 0), false)
	hb.down.Store(true)
	snap := &mcpmeshv1.ConfigSnapshot{
		Servers:  []*mcpmeshv1.Server{hb.server("jit")},
		Settings: &mcpmeshv1.Settings{Resilience: &mcpmeshv1.ResilienceSettings{Jitter: true}},
	}
	if err := e.m.Apply(snap); err != nil {
		t.Fatal(err)
	}
	b := e.backend("jit")
	replay := rand.New(rand.NewPCG(seed1, seed2))
	for i, step := range resilience.DefaultSchedule() {
		want := resilience.FullJitter(step, replay.Float64)
		got := e.waitTimer()
		if got != want || got < 0 || got > step {
			t.Fatalf("wait after failure %d = %v, want %v (in [0, %v])", i+1, got, want, step)
		}
		e.clock.Advance(got)
	}
	e.waitState(b, stateUnavailable)
	// The probe interval is not jittered: it is already short.
	if got := e.waitTimer(); got != DefaultProbeInterval {
		t.Fatalf("probe wait = %v, want %v", got, DefaultProbeInterval)
	}
}

// TestProbeReconnectsWhenPortReopens kills a real HTTP backend: the schedule
// runs 1, 2, 4, 8 s, the backend becomes unavailable and its items leave;
// a TCP probe runs every probe interval without full connects; the moment
// the port opens again the backend is reconnected and its items return.
func TestProbeReconnectsWhenPortReopens(t *testing.T) {
	e := newEnv(t)
	ls, b := e.liveHealthy("web")
	nTools := len(toolNames(b))

	// The server dies: its event stream breaks and the port is closed, so
	// the loss is noticed without any request.
	ls.stop()
	e.waitState(b, stateRetrying)
	if h := b.Health(); !strings.Contains(h.GetLastError(), "event stream lost") {
		t.Errorf("last error = %q, want the lost stream", h.GetLastError())
	}
	for i, step := range resilience.DefaultSchedule() {
		if got := e.waitTimer(); got != step {
			t.Fatalf("wait after failure %d = %v, want %v", i+1, got, step)
		}
		if s := b.State(); s != stateRetrying {
			t.Fatalf("state after failure %d = %v, want RETRYING", i+1, s)
		}
		if i == len(resilience.DefaultSchedule())-1 {
			e.drainChanges()
		}
		e.clock.Advance(step)
	}
	// The last failure: unavailable, OnChange fired, items gone.
	recvWithin(t, e.changes, "OnChange after the backend became unavailable")
	e.waitState(b, stateUnavailable)
	if _, ok := b.Catalog(); b.Ready() || ok || b.Capabilities() != nil {
		t.Fatal("an unavailable backend still offers items")
	}
	h := b.Health()
	if h.GetConsecutiveFailures() != 5 || !strings.Contains(h.GetLastError(), "connection refused") {
		t.Fatalf("health when unavailable = %v", h)
	}
	// The state is published before the supervisor starts its probe wait:
	// the error names the next probe only once that wait has begun.
	if got := e.waitTimer(); got != DefaultProbeInterval {
		t.Fatalf("first probe wait = %v, want %v", got, DefaultProbeInterval)
	}
	_, err := callTool(context.Background(), b, "echo")
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), `backend "web" is unavailable (last error: connect:`) ||
		!strings.Contains(err.Error(), "connection refused; next probe in 500ms)") {
		t.Fatalf("call when unavailable = %v", err)
	}

	// Probes on a closed port: one every interval, and no connect attempt
	// (the failure count would grow).
	for i := 0; i < 4; i++ {
		if got := e.waitTimer(); got != DefaultProbeInterval {
			t.Fatalf("probe %d wait = %v, want %v", i, got, DefaultProbeInterval)
		}
		e.clock.Advance(DefaultProbeInterval)
	}
	e.waitTimer()
	if n := b.Health().GetConsecutiveFailures(); n != 5 {
		t.Fatalf("failures after probes on a closed port = %d, want 5 (probes are not connects)", n)
	}

	ls.restart()
	e.drainChanges()
	start := time.Now()
	e.clock.Advance(DefaultProbeInterval)
	e.waitState(b, stateHealthy)
	t.Logf("reconnected %v after the probe fired", time.Since(start))
	if got := len(toolNames(b)); got != nTools {
		t.Fatalf("tools after recovery = %d, want %d", got, nTools)
	}
	if got := callText(t, b, "echo", map[string]any{"text": "back"}); got != "web:back" {
		t.Errorf("echo after recovery = %q", got)
	}
}

// TestStdioRespawnGrowsAndCaps: a command that dies at once is respawned
// after 1, 2, 4, 8 s, then (unavailable) 16 s, then every 30 s.
func TestStdioRespawnGrowsAndCaps(t *testing.T) {
	e := newEnv(t)
	srv := stdioServer("broken", t.TempDir())
	srv.Stdio.Env[envStdioServer] = "exit"
	e.apply(srv)
	b := e.backend("broken")
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		w *= time.Second
		if got := e.waitTimer(); got != w {
			t.Fatalf("wait after failure %d = %v, want %v", i+1, got, w)
		}
		wantState := stateRetrying
		if i >= 4 {
			wantState = stateUnavailable
		}
		if s := b.State(); s != wantState {
			t.Fatalf("state after failure %d = %v, want %v", i+1, s, wantState)
		}
		e.clock.Advance(w)
	}
	if n := b.Health().GetConsecutiveFailures(); n < uint32(len(want)) {
		t.Errorf("failures = %d, want at least %d", n, len(want))
	}
	if got := respawnDelay(resilience.Schedule{Steps: []time.Duration{time.Minute}}, 9); got != time.Minute {
		t.Errorf("respawn delay with a 1m last step = %v, want 1m (never below the schedule)", got)
	}
}

// TestInlineReconnectSingleFlight: 100 concurrent calls to an unavailable
// backend that has come back trigger exactly one connect attempt, and all
// succeed on it.
func TestInlineReconnectSingleFlight(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("flight", 0), false)
	hb.down.Store(true)
	e.apply(hb.server("flight"))
	b := e.backend("flight")
	for range resilience.DefaultSchedule() {
		e.clock.Advance(e.waitTimer())
	}
	e.waitState(b, stateUnavailable)
	// The server answers again but its port never closed, so the probe will
	// not reconnect before 8 s: only requests can bring it back now. One
	// probe interval must pass after the last failed attempt.
	hb.down.Store(false)
	e.waitTimer()
	e.clock.Advance(DefaultProbeInterval)
	e.waitTimer()
	hb.inits.Store(0)

	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := callToolArgs(context.Background(), b, "echo", map[string]any{"text": "x"}); err != nil {
				errs <- err
			}
		}()
	}
	waitGroup(t, &wg, "100 concurrent calls")
	close(errs)
	for err := range errs {
		t.Errorf("call: %v", err)
	}
	if got := hb.inits.Load(); got != 1 {
		t.Fatalf("connect attempts = %d, want 1", got)
	}
	if s := b.State(); s != stateHealthy {
		t.Fatalf("state = %v, want HEALTHY", s)
	}

	// A failed inline attempt holds further ones off for a probe interval:
	// a flood of calls to a dead backend fails fast without connecting.
	// (The connection first stays up for a last step, so its loss restarts
	// the schedule.)
	e.clock.Advance(8 * time.Second)
	hb.down.Store(true)
	if _, err := callTool(context.Background(), b, "echo"); err == nil {
		t.Fatal("call to a down backend succeeded")
	}
	// The connection was stable, so the supervisor re-initializes at once;
	// that attempt fails and holds request-triggered ones off.
	e.waitState(b, stateRetrying)
	e.waitTimer()
	hb.inits.Store(0)
	for i := 0; i < 20; i++ {
		if _, err := callTool(context.Background(), b, "echo"); !errors.Is(err, ErrNotReady) {
			t.Fatalf("call %d = %v, want ErrNotReady", i, err)
		}
	}
	if got := hb.inits.Load(); got != 0 {
		t.Fatalf("connect attempts by 20 calls to a dead backend = %d, want 0 (the supervisor's attempt just failed)", got)
	}
}

func TestProbeAddr(t *testing.T) {
	tests := []struct{ url, want string }{
		{"http://127.0.0.1:8080/mcp", "127.0.0.1:8080"},
		{"http://localhost/mcp", "localhost:80"},
		{"https://localhost/mcp", "localhost:443"},
		{"http://[::1]:9/x", "[::1]:9"},
		{"/relative", ""},
	}
	for _, tt := range tests {
		if got := probeAddr(tt.url); got != tt.want {
			t.Errorf("probeAddr(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
