package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// envStdioServer makes the test binary act as a stdio MCP server, so stdio
// tests spawn a real child process speaking real MCP.
const envStdioServer = "MCPMESH_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	switch os.Getenv(envStdioServer) {
	case "exit": // a broken command: dies before speaking MCP
		fmt.Fprintln(os.Stderr, "helper stdio server failing on purpose")
		os.Exit(3)
	case "huge-line": // a hostile child: one endless line on stdout, never a newline
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := os.Stdout.Write(chunk); err != nil {
				os.Exit(1)
			}
		}
	case "env": // the stdio server with a tool "environ": its environment, one per line
		s := newMCPServer("stdio", 0)
		s.AddTool(mcp.NewTool("environ"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(strings.Join(os.Environ(), "\n")), nil
		})
		if err := server.ServeStdio(s); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case "1":
		fmt.Fprintln(os.Stderr, "helper stdio server starting")
		s := newMCPServer("stdio", 0)
		// block reports on stderr (which the data plane logs) when it is
		// cancelled: over stdio only notifications/cancelled can do that.
		s.AddTool(mcp.NewTool("block"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			fmt.Fprintln(os.Stderr, "block started")
			<-ctx.Done()
			fmt.Fprintln(os.Stderr, "block cancelled upstream")
			return nil, ctx.Err()
		})
		if err := server.ServeStdio(s); err != nil {
			fmt.Fprintln(os.Stderr, "serve stdio:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// newMCPServer returns a small real MCP server: tools echo, pid, cwd, slow
// and tool-1..tool-N, a prompt, a resource and a template. pageSize > 0
// makes it paginate its lists.
func newMCPServer(name string, pageSize int, extraTools ...int) *server.MCPServer {
	opts := []server.ServerOption{
		server.WithToolCapabilities(true),
		server.WithPromptCapabilities(true),
		server.WithResourceCapabilities(false, true),
		server.WithInstructions("instructions of " + name),
	}
	if pageSize > 0 {
		opts = append(opts, server.WithPaginationLimit(pageSize))
	}
	s := server.NewMCPServer(name, "1.0.0", opts...)
	tools := []server.ServerTool{
		{Tool: mcp.NewTool("echo", mcp.WithString("text", mcp.Required())), Handler: func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(name + ":" + req.GetString("text", "")), nil
		}},
		{Tool: mcp.NewTool("pid"), Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(strconv.Itoa(os.Getpid())), nil
		}},
		{Tool: mcp.NewTool("cwd"), Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			wd, err := os.Getwd()
			if err != nil {
				return nil, err
			}
			return mcp.NewToolResultText(wd), nil
		}},
		{Tool: mcp.NewTool("slow"), Handler: func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	}
	for i := 1; i <= firstOr(extraTools, 0); i++ {
		tools = append(tools, server.ServerTool{Tool: mcp.NewTool(fmt.Sprintf("tool-%02d", i)), Handler: func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("ok"), nil
		}})
	}
	s.AddTools(tools...)
	s.AddPrompt(mcp.NewPrompt("greet", mcp.WithArgument("who")), func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return mcp.NewGetPromptResult("greeting", []mcp.PromptMessage{
			mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("hello "+req.Params.Arguments["who"])),
		}), nil
	})
	s.AddResource(mcp.NewResource("mem://"+name+"/readme", "readme"), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: "readme of " + name}}, nil
	})
	s.AddResourceTemplate(mcp.NewResourceTemplate("mem://"+name+"/items/{id}", "item"), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: "item"}}, nil
	})
	return s
}

func firstOr(v []int, def int) int {
	if len(v) > 0 {
		return v[0]
	}
	return def
}

// httpBackend is a real streamable HTTP (or SSE) MCP server on 127.0.0.1
// with a switch that makes it answer 503, to simulate an outage.
type httpBackend struct {
	mcp   *server.MCPServer
	ts    *httptest.Server
	down  atomic.Bool
	inits atomic.Int64 // initialize requests received, answered or not
	// failNext makes the next n POSTs other than initialize answer 503, as a
	// backend restarting under a live connection does.
	failNext atomic.Int32
	// initGate, while set, holds initialize requests until it is closed, so
	// a test can look at the state before a connect completes.
	initGate atomic.Pointer[chan struct{}]
	// onPost, while set, sees the body of every POST before the server does.
	onPost atomic.Pointer[func(r *http.Request, body []byte)]
}

func startHTTPBackend(t *testing.T, s *server.MCPServer, sse bool) *httpBackend {
	t.Helper()
	hb := &httpBackend{mcp: s}
	var h http.Handler
	var sseSrv *server.SSEServer
	if sse {
		sseSrv = server.NewSSEServer(s)
		h = sseSrv
	} else {
		h = server.NewStreamableHTTPServer(s, legacyOnly)
	}
	hb.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		init := isInitialize(r)
		if f := hb.onPost.Load(); f != nil && r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			(*f)(r, body)
		}
		if init {
			hb.inits.Add(1)
			if g := hb.initGate.Load(); g != nil {
				select {
				case <-*g:
				case <-r.Context().Done():
					return
				}
			}
		}
		if !init && r.Method == http.MethodPost && hb.failNext.Add(-1) >= 0 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		if hb.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	if sse {
		server.WithBaseURL(hb.ts.URL)(sseSrv)
	}
	t.Cleanup(func() { hb.close(t) })
	return hb
}

// close shuts the server down the hard way. httptest.Server.Close waits for
// active requests, and the gateway's event stream (a GET that mcp-go re-opens
// by itself) only ends when the Manager closes, which is a cleanup that runs
// after this one: a stream that connected between CloseClientConnections and
// Close hung the test binary until its timeout. http.Server.Close closes
// every connection, active ones included, after the accept loop has stopped,
// so none can slip in; the handlers then end with their request contexts.
func (hb *httpBackend) close(t *testing.T) {
	t.Helper()
	within(t, "closing test backend "+hb.ts.URL, func() {
		_ = hb.ts.Config.Close()
		hb.ts.Close()
	})
}

// isInitialize reports whether r carries an initialize request, leaving the
// body readable.
func isInitialize(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Body == nil {
		return false
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	return bytes.Contains(body, []byte(`"method":"initialize"`))
}

func (hb *httpBackend) server(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: hb.ts.URL + "/mcp"},
	}
}

func stdioServer(name, dir string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
		Stdio: &mcpmeshv1.StdioConfig{
			Command:    os.Args[0],
			Args:       []string{"-test.run=^$"},
			Env:        map[string]string{envStdioServer: "1"},
			WorkingDir: dir,
		},
	}
}

// env is a Manager under test with a fake clock and a channel of OnChange calls.
type env struct {
	t       *testing.T
	m       *Manager
	clock   *resilience.FakeClock
	changes chan struct{}
	logs    *syncBuffer
}

func newEnv(t *testing.T, opts ...func(*ManagerOptions)) *env {
	t.Helper()
	e := &env{
		t:       t,
		clock:   resilience.NewFakeClock(time.Unix(1_700_000_000, 0)),
		changes: make(chan struct{}, 1),
		logs:    &syncBuffer{},
	}
	mo := ManagerOptions{
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnChange: func() {
			select {
			case e.changes <- struct{}{}:
			default:
			}
		},
		Clock:          e.clock,
		DefaultTimeout: 10 * time.Second,
		// Off by default in tests: its timer would sit among the ones the
		// schedule tests count; TestListResync turns it on.
		ListResync: -1,
		// Off by default too: a held request waits on the fake clock.
		// The hold tests turn it on.
		Hold: -1,
	}
	for _, o := range opts {
		o(&mo)
	}
	e.m = NewManager(mo)
	t.Cleanup(func() {
		within(t, "Manager.Close", func() {
			if err := e.m.Close(); err != nil {
				t.Errorf("close manager: %v", err)
			}
		})
	})
	return e
}

// testWait bounds every wait of these tests that has no deadline of its own:
// a bug must fail fast, saying what was awaited, never hang the binary.
const testWait = 20 * time.Second

// within runs f and reports an error (with every goroutine's stack, which is
// what a hang needs to be diagnosed) if it has not returned within testWait.
// It returns whether f finished; f keeps running if it did not. It only
// reports, so it is safe in cleanups; test bodies call t.FailNow on false.
func within(t testing.TB, what string, f func()) bool {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(testWait)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		t.Errorf("%s did not finish within %v; goroutines:\n%s", what, testWait, allStacks())
		return false
	}
}

// waitGroup waits for wg within testWait or fails the test.
func waitGroup(t testing.TB, wg *sync.WaitGroup, what string) {
	t.Helper()
	if !within(t, what, wg.Wait) {
		t.FailNow()
	}
}

// recvWithin receives from ch within testWait or fails the test.
func recvWithin[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(testWait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s; goroutines:\n%s", testWait, what, allStacks())
		panic("unreachable")
	}
}

func allStacks() []byte {
	buf := make([]byte, 8<<20)
	return buf[:runtime.Stack(buf, true)]
}

func (e *env) apply(servers ...*mcpmeshv1.Server) {
	e.t.Helper()
	if err := e.m.Apply(&mcpmeshv1.ConfigSnapshot{Revision: 1, Servers: servers}); err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
}

// waitFor waits for cond, re-checking it on every OnChange (no polling).
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	e.waitForNudging(what, cond, nil)
}

// waitForNudging is waitFor that calls nudge every second while cond is
// false, for conditions that hang on a message a third party may lose.
func (e *env) waitForNudging(what string, cond func() bool, nudge func()) {
	e.t.Helper()
	deadline := time.NewTimer(testWait)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for !cond() {
		select {
		case <-e.changes:
		case <-tick.C:
			if nudge != nil {
				e.t.Logf("still waiting for %s: nudging", what)
				nudge()
			}
		case <-deadline.C:
			e.t.Fatalf("timed out after %v waiting for %s; logs:\n%s\ngoroutines:\n%s", testWait, what, e.logs.String(), allStacks())
		}
	}
}

// backend waits until the named backend is served and returns it.
func (e *env) backend(name string) *Backend {
	e.t.Helper()
	var b *Backend
	e.waitFor("backend "+name, func() bool {
		var ok bool
		b, ok = e.m.Get(name)
		return ok
	})
	return b
}

func (e *env) waitState(b *Backend, want mcpmeshv1.BackendState) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%s to be %s", b.Name(), want), func() bool { return b.State() == want })
}

// waitTimer waits until a supervisor waits for its next attempt (or probe)
// on the fake clock and returns how long that wait is. A retrying network
// endpoint also has a probe timer pending; the wait is the timer that ends
// when the supervisor published its next step to end.
func (e *env) waitTimer() time.Duration {
	e.t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		if d, ok := e.supervisorWait(); ok {
			return d
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no supervisor wait on the fake clock (pending %v); logs:\n%s\ngoroutines:\n%s", e.clock.PendingDurations(), e.logs.String(), allStacks())
		}
		time.Sleep(time.Millisecond)
	}
}

// waitPending waits until a timer ending d from now is pending.
func (e *env) waitPending(d time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := e.clock.BlockUntilPending(ctx, d); err != nil {
		e.t.Fatalf("no %v timer on the fake clock (pending %v): %v", d, e.clock.PendingDurations(), err)
	}
}

// supervisorWait finds a pending timer that ends when some endpoint's
// published next step does, with that endpoint idle (not attempting).
func (e *env) supervisorWait() (time.Duration, bool) {
	now := e.clock.Now()
	pending := e.clock.PendingDurations()
	for _, b := range e.m.List() {
		for _, ep := range b.eps {
			ep.mu.RLock()
			d, idle := ep.nextAt.Sub(now), !ep.attempting
			ep.mu.RUnlock()
			if !idle || d <= 0 {
				continue
			}
			for _, p := range pending {
				if p == d {
					return d, true
				}
			}
		}
	}
	return 0, false
}

// keys returns the upstream keys of the backend's cached list of kind k; nil
// when the backend is not ready.
func keys(b *Backend, k catalog.Kind) []string {
	s, ok := b.Catalog()
	if !ok || s.Lists[k] == nil {
		return nil
	}
	out := make([]string, len(s.Lists[k]))
	for i, it := range s.Lists[k] {
		out[i] = it.Key
	}
	return out
}

func toolNames(b *Backend) []string { return keys(b, catalog.Tools) }

// request is Backend.Request with params encoded from a Go value.
func request(ctx context.Context, b *Backend, method string, params any, retry bool) (json.RawMessage, error) {
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	return b.Request(ctx, Request{Method: method, Params: raw, Retry: retry})
}

// callToolArgs calls a tool as the router will: retried when the tool says
// so. It returns the text of the result's only content.
func callToolArgs(ctx context.Context, b *Backend, tool string, args map[string]any) (string, error) {
	params, err := json.Marshal(map[string]any{"name": tool, "arguments": args})
	if err != nil {
		return "", err
	}
	res, err := b.Request(ctx, Request{Method: "tools/call", Params: params, Retry: b.ToolRetryable(tool), What: fmt.Sprintf("call tool %q", tool)})
	if err != nil {
		return "", err
	}
	var r struct {
		Content []struct{ Type, Text string }
		IsError bool
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return "", fmt.Errorf("decode tool result %s: %w", res, err)
	}
	if r.IsError || len(r.Content) != 1 {
		return "", fmt.Errorf("tool error result: %s", res)
	}
	return r.Content[0].Text, nil
}

func callTool(ctx context.Context, b *Backend, tool string) (string, error) {
	return callToolArgs(ctx, b, tool, nil)
}

func callText(t *testing.T, b *Backend, tool string, args map[string]any) string {
	t.Helper()
	text, err := callToolArgs(context.Background(), b, tool, args)
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return text
}

// getPrompt returns the text of the prompt's first message.
func getPrompt(ctx context.Context, b *Backend, name string, args map[string]string) (string, error) {
	res, err := request(ctx, b, "prompts/get", map[string]any{"name": name, "arguments": args}, true)
	if err != nil {
		return "", err
	}
	var r struct {
		Messages []struct{ Content struct{ Text string } }
	}
	if err := json.Unmarshal(res, &r); err != nil || len(r.Messages) == 0 {
		return "", fmt.Errorf("decode prompt result %s: %v", res, err)
	}
	return r.Messages[0].Content.Text, nil
}

// readResource returns the text of the resource's first contents.
func readResource(ctx context.Context, b *Backend, uri string) (string, error) {
	res, err := request(ctx, b, "resources/read", map[string]any{"uri": uri}, true)
	if err != nil {
		return "", err
	}
	var r struct {
		Contents []struct{ URI, Text string }
	}
	if err := json.Unmarshal(res, &r); err != nil || len(r.Contents) == 0 {
		return "", fmt.Errorf("decode read result %s: %v", res, err)
	}
	return r.Contents[0].Text, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
