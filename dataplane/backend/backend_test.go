package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

const (
	stateHealthy     = mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
	stateRetrying    = mcpmeshv1.BackendState_BACKEND_STATE_RETRYING
	stateUnavailable = mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
)

func TestStreamableHTTPBackendFollowsCursors(t *testing.T) {
	e := newEnv(t)
	// 4 fixed + 7 numbered tools in pages of 3: four pages, the last cursor
	// followed to an end.
	hb := startHTTPBackend(t, newMCPServer("alpha", 3, 7), false)
	e.apply(hb.server("alpha"))
	b := e.backend("alpha")
	e.waitState(b, stateHealthy)

	if !b.Ready() {
		t.Fatal("healthy backend is not Ready")
	}
	got := toolNames(b)
	if len(got) != 11 {
		t.Fatalf("tools = %v, want 11 (all pages)", got)
	}
	seen := map[string]bool{}
	for _, n := range got {
		if seen[n] {
			t.Errorf("tool %q listed twice", n)
		}
		seen[n] = true
	}
	for _, want := range []string{"echo", "pid", "slow", "tool-01", "tool-07"} {
		if !seen[want] {
			t.Errorf("tool %q missing from %v", want, got)
		}
	}
	if p := keys(b, catalog.Prompts); !slices.Equal(p, []string{"greet"}) {
		t.Errorf("prompts = %v", p)
	}
	if r := keys(b, catalog.Resources); !slices.Equal(r, []string{"mem://alpha/readme"}) {
		t.Errorf("resources = %v", r)
	}
	if rt := keys(b, catalog.Templates); !slices.Equal(rt, []string{"mem://alpha/items/{id}"}) {
		t.Errorf("templates = %v", rt)
	}
	var caps mcp.ServerCapabilities
	if err := json.Unmarshal(b.Capabilities(), &caps); err != nil || caps.Tools == nil || !caps.Tools.ListChanged {
		t.Errorf("capabilities = %s (%v), want tools with listChanged", b.Capabilities(), err)
	}
	if s, _ := b.Catalog(); s.Name != "alpha" || s.Prefix != "alpha__" || !s.Paged[catalog.Tools] || s.Paged[catalog.Prompts] {
		t.Errorf("catalog server = %+v, want alpha, alpha__, tools paged", s)
	}
	if got := b.Instructions(); got != "instructions of alpha" {
		t.Errorf("instructions = %q", got)
	}

	if got := callText(t, b, "echo", map[string]any{"text": "hi"}); got != "alpha:hi" {
		t.Errorf("echo = %q", got)
	}
	if text, err := getPrompt(context.Background(), b, "greet", map[string]string{"who": "bob"}); err != nil || text != "hello bob" {
		t.Errorf("get prompt = %q, %v", text, err)
	}
	if text, err := readResource(context.Background(), b, "mem://alpha/readme"); err != nil || text != "readme of alpha" {
		t.Errorf("read resource = %q, %v", text, err)
	}

	h := b.Health()
	if h.GetServer() != "alpha" || h.GetState() != stateHealthy || h.GetBreaker() != mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED {
		t.Errorf("health = %v", h)
	}
	if h.GetTools() != 11 || h.GetPrompts() != 1 || h.GetResources() != 1 {
		t.Errorf("health counts = %d/%d/%d", h.GetTools(), h.GetPrompts(), h.GetResources())
	}
	if h.GetLatency().AsDuration() <= 0 {
		t.Errorf("health latency = %v, want > 0 after a call", h.GetLatency())
	}

	// An upstream JSON-RPC error is returned, named, and does not break the connection.
	_, err := getPrompt(context.Background(), b, "nope", nil)
	var je *jsonrpc.Error
	if !errors.As(err, &je) || !strings.Contains(err.Error(), `backend "alpha"`) {
		t.Errorf("unknown prompt error = %v, want the upstream *jsonrpc.Error naming the backend", err)
	}
	if !b.Ready() {
		t.Error("an upstream error made the backend not ready")
	}
}

func TestListChangedRefetches(t *testing.T) {
	e := newEnv(t)
	s := newMCPServer("beta", 2)
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("beta"))
	b := e.backend("beta")
	e.waitState(b, stateHealthy)
	before := len(toolNames(b))

	// mcp-go's server can lose a notification: the forwarder goroutine of a
	// POST that just ended (here, the last list request) may take it off the
	// session's queue before it sees the request is over, and drop it. A lost
	// one is announced again, so this tests our refetch, not that race.
	reannounce := func(method string) func() {
		return func() { s.SendNotificationToAllClients(method, nil) }
	}
	s.AddTool(mcp.NewTool("added-later"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("new"), nil
	})
	e.waitForNudging("the added tool to be listed", func() bool { return len(toolNames(b)) == before+1 },
		reannounce(mcp.MethodNotificationToolsListChanged))
	if got := callText(t, b, "added-later", nil); got != "new" {
		t.Errorf("added-later = %q", got)
	}

	s.DeletePrompts("greet")
	e.waitForNudging("the prompt to vanish", func() bool { return len(keys(b, catalog.Prompts)) == 0 },
		reannounce(mcp.MethodNotificationPromptsListChanged))
}

func TestSSEBackend(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("gamma", 0), true)
	srv := &mcpmeshv1.Server{
		Name:      "gamma",
		Transport: mcpmeshv1.Transport_TRANSPORT_SSE,
		Http:      &mcpmeshv1.HttpConfig{Url: hb.ts.URL + "/sse", Headers: map[string]string{"X-Test": "1"}},
	}
	e.apply(srv)
	b := e.backend("gamma")
	e.waitState(b, stateHealthy)
	if got := callText(t, b, "echo", map[string]any{"text": "sse"}); got != "gamma:sse" {
		t.Errorf("echo = %q", got)
	}
}

func TestRequestTimeout(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("slowpoke", 0), false)
	srv := hb.server("slowpoke")
	srv.Timeout = durationpb.New(300 * time.Millisecond)
	e.apply(srv)
	b := e.backend("slowpoke")
	// The 300 ms deadline bounds the connect too, which a loaded machine can
	// miss: then the schedule's wait (on the fake clock) must pass.
	e.waitForNudging("slowpoke healthy", func() bool { return b.State() == stateHealthy },
		func() { e.clock.Advance(e.waitTimer()) })

	_, err := callTool(context.Background(), b, "slow")
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("slow call error = %v, want a timeout naming the deadline", err)
	}
	if !b.Ready() {
		t.Error("a timeout marked the connection dead")
	}
	if got := callText(t, b, "echo", map[string]any{"text": "still"}); got != "slowpoke:still" {
		t.Errorf("echo after timeout = %q", got)
	}
}

// TestRetryScheduleAndRecovery drives the 1-2-4-8 s schedule with the fake
// clock: retrying, then unavailable, then healthy again once the backend answers.
func TestRetryScheduleAndRecovery(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("delta", 0), false)
	hb.down.Store(true)
	e.apply(hb.server("delta"))
	b := e.backend("delta")

	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := e.waitTimer(); got != want {
			t.Fatalf("wait after failure %d = %v, want %v", i+1, got, want)
		}
		h := b.Health()
		if h.GetState() != stateRetrying || h.GetConsecutiveFailures() != uint32(i+1) {
			t.Fatalf("after failure %d: state %v failures %d", i+1, h.GetState(), h.GetConsecutiveFailures())
		}
		if !strings.Contains(h.GetLastError(), "503") {
			t.Errorf("last error = %q, want the 503", h.GetLastError())
		}
		e.clock.Advance(want)
	}
	// The fifth failure comes after the last step: unavailable, and the
	// recovery probe (a TCP dial every 500 ms) takes over from the schedule.
	if got := e.waitTimer(); got != DefaultProbeInterval {
		t.Fatalf("wait when unavailable = %v, want the %v probe", got, DefaultProbeInterval)
	}
	if s := b.State(); s != stateUnavailable {
		t.Fatalf("state after the schedule = %v, want UNAVAILABLE", s)
	}
	_, err := callTool(context.Background(), b, "echo")
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), `backend "delta" is unavailable`) ||
		!strings.Contains(err.Error(), "next probe in 500ms") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("call while unavailable = %v, want ErrNotReady naming backend, state, last error and next probe", err)
	}
	if _, ok := b.Catalog(); ok {
		t.Error("an unavailable backend lists tools")
	}

	// The port stays open while the server answers 503: the probe succeeds
	// but a full connect is tried only once per last step (8 s), so a broken
	// server behind a live listener is not hammered.
	hb.down.Store(false)
	for i := 1; i < 16; i++ {
		e.clock.Advance(DefaultProbeInterval)
		if got := e.waitTimer(); got != DefaultProbeInterval {
			t.Fatalf("probe %d: wait = %v, want %v", i, got, DefaultProbeInterval)
		}
		if s := b.State(); s != stateUnavailable {
			t.Fatalf("probe %d (%v after the last connect): state %v, want still UNAVAILABLE", i, time.Duration(i)*DefaultProbeInterval, s)
		}
	}
	e.clock.Advance(DefaultProbeInterval)
	e.waitState(b, stateHealthy)
	if h := b.Health(); h.GetConsecutiveFailures() != 0 || h.GetLastError() != "" {
		t.Errorf("health after recovery = %v", h)
	}

	// The backend goes away under a live connection that has been up longer
	// than the last step: the next request's transport error marks it dead
	// and the schedule starts over.
	e.clock.Advance(8 * time.Second)
	hb.down.Store(true)
	if _, err := callToolArgs(context.Background(), b, "echo", map[string]any{"text": "x"}); err == nil {
		t.Fatal("call to a down backend succeeded")
	}
	e.waitState(b, stateRetrying)
	if got := e.waitTimer(); got != time.Second {
		t.Fatalf("wait after a lost connection = %v, want 1s", got)
	}
	hb.down.Store(false)
	e.clock.Advance(time.Second)
	e.waitState(b, stateHealthy)
	if got := callText(t, b, "echo", map[string]any{"text": "back"}); got != "delta:back" {
		t.Errorf("echo after reconnect = %q", got)
	}

	// A connection that dies right after connecting does not reset the
	// schedule, so a flapping backend cannot make us reconnect in a loop.
	hb.down.Store(true)
	if _, err := callToolArgs(context.Background(), b, "echo", map[string]any{"text": "x"}); err == nil {
		t.Fatal("call to a down backend succeeded")
	}
	if got := e.waitTimer(); got != 2*time.Second {
		t.Fatalf("wait after a second quick loss = %v, want 2s", got)
	}
}

func TestStdioBackendRestartsKilledChild(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.apply(stdioServer("local", dir))
	b := e.backend("local")
	e.waitState(b, stateHealthy)

	if got := callText(t, b, "cwd", nil); got != dir {
		t.Errorf("child cwd = %q, want %q", got, dir)
	}
	if got := callText(t, b, "echo", map[string]any{"text": "x"}); got != "stdio:x" {
		t.Errorf("echo = %q", got)
	}
	e.waitFor("the child's stderr in the log", func() bool {
		return strings.Contains(e.logs.String(), "helper stdio server starting")
	})
	if !strings.Contains(e.logs.String(), "server=local") {
		t.Error("stderr log line lacks the server field")
	}

	pid, err := strconv.Atoi(callText(t, b, "pid", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	e.waitState(b, stateRetrying)
	if got := e.waitTimer(); got != time.Second {
		t.Fatalf("wait after the child died = %v, want 1s", got)
	}
	if h := b.Health(); !strings.Contains(h.GetLastError(), "exited") {
		t.Errorf("last error = %q, want the exit", h.GetLastError())
	}
	e.clock.Advance(time.Second)
	e.waitState(b, stateHealthy)
	newPid, err := strconv.Atoi(callText(t, b, "pid", nil))
	if err != nil {
		t.Fatal(err)
	}
	if newPid == pid {
		t.Fatalf("child pid %d unchanged after restart", pid)
	}
	// The killed child was reaped when its client was closed.
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("killed child %d still exists (zombie not reaped)", pid)
	}
}

func TestCollectStopsCursorLoops(t *testing.T) {
	ctx := context.Background()
	item := func(k string) catalog.Item { return catalog.Item{Key: k, Raw: json.RawMessage(`{"name":"` + k + `"}`)} }
	repeat := func(string) (catalog.Page, error) {
		return catalog.Page{Items: []catalog.Item{item("a")}, Next: "same"}, nil
	}
	if _, _, err := collect(ctx, "tools", 0, new(bool), repeat); !errors.Is(err, errCursorLoop) {
		t.Errorf("repeated cursor: err = %v, want errCursorLoop", err)
	}
	n := 0
	endless := func(string) (catalog.Page, error) {
		n++
		return catalog.Page{Next: fmt.Sprint(n)}, nil
	}
	if _, _, err := collect(ctx, "tools", 0, new(bool), endless); !errors.Is(err, errCursorLoop) || n != maxListPages {
		t.Errorf("endless cursors: err = %v after %d pages, want errCursorLoop after %d", err, n, maxListPages)
	}
	pages := map[string][]catalog.Item{"": {item("1"), item("2")}, "a": {item("3")}, "b": {}}
	next := map[string]string{"": "a", "a": "b", "b": ""}
	got, paged, err := collect(ctx, "tools", 0, new(bool), func(cur string) (catalog.Page, error) { return catalog.Page{Items: pages[cur], Next: next[cur]}, nil })
	var ks []string
	for _, it := range got {
		ks = append(ks, it.Key)
	}
	if err != nil || !paged || fmt.Sprint(ks) != "[1 2 3]" {
		t.Errorf("collect = %v, %v, %v; want [1 2 3], paged", ks, paged, err)
	}
	got, paged, err = collect(ctx, "tools", 0, new(bool), func(string) (catalog.Page, error) { return catalog.Page{}, nil })
	if err != nil || paged || got == nil {
		t.Errorf("collect of one empty page = %v, %v, %v; want an empty non-nil list, not paged", got, paged, err)
	}
}

// keep the server import used by helpers in this file's build.
var _ = server.NewMCPServer

// A backend that never says list_changed (it did not declare it, or the
// notification was lost) still has its lists refreshed by the periodic resync.
func TestListResync(t *testing.T) {
	e := newEnv(t, func(o *ManagerOptions) { o.ListResync = time.Minute })
	s := server.NewMCPServer("quiet", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("one"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("1"), nil
	})
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("quiet"))
	b := e.backend("quiet")
	e.waitState(b, stateHealthy)
	if n := len(toolNames(b)); n != 1 {
		t.Fatalf("tools = %d, want 1", n)
	}
	// Added without a notification (listChanged not declared).
	s.AddTool(mcp.NewTool("two"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("2"), nil
	})
	e.waitPending(time.Minute) // the resync timer
	if n := len(toolNames(b)); n != 1 {
		t.Fatalf("tools changed to %d before the resync", n)
	}
	e.clock.Advance(time.Minute)
	e.waitFor("the resync to pick up the new tool", func() bool { return len(toolNames(b)) == 2 })
}

// TestListLimits: a server's list is cut at MaxItems (its later pages are
// not read), and items with an over-long name or description are left out,
// each with a warning in the log; the rest of the server works.
func TestListLimits(t *testing.T) {
	e := newEnv(t, func(o *ManagerOptions) {
		o.ListLimits = catalog.Limits{MaxItems: 8, MaxKey: 20, MaxDescription: 40}
	})
	s := newMCPServer("alpha", 3, 30) // 4 fixed + 30 numbered tools, pages of 3
	s.AddTool(mcp.NewTool("a-name-longer-than-twenty-bytes"), nil)
	s.AddTool(mcp.NewTool("wordy", mcp.WithDescription(strings.Repeat("w", 41))), nil)
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("alpha"))
	b := e.backend("alpha")
	e.waitState(b, stateHealthy)
	got := toolNames(b)
	if len(got) != 8 {
		t.Fatalf("tools = %v, want the first 8", got)
	}
	for _, n := range got {
		if n == "wordy" || len(n) > 20 {
			t.Errorf("tool %q past the limits is listed", n)
		}
	}
	if got := callText(t, b, "echo", map[string]any{"text": "hi"}); got != "alpha:hi" {
		t.Errorf("echo = %q", got)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "list cut at the data plane's item limit") {
		t.Errorf("no warning of the cut list in the log:\n%s", logs)
	}
	if !strings.Contains(logs, "list items left out") {
		t.Errorf("no warning of the left-out items in the log:\n%s", logs)
	}
}
