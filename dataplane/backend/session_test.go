package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// sessionBackend is a stateful MCP server (streamable HTTP or SSE) whose
// tools read per-session state: set/get store a value on the session, whoami
// tells the session id, the client name and the experimental capabilities
// it was initialized with, roots asks the client for its roots. restart
// swaps in a new server that knows none of the old sessions.
type sessionBackend struct {
	t   *testing.T
	sse bool
	ts  *httptest.Server
	h   atomic.Pointer[http.Handler]
	cur atomic.Pointer[server.MCPServer]

	mu     sync.Mutex
	inits  []jsonrpc.Message // initialize requests received
	values map[string]string // session id → value set
	ended  chan string       // unregistered session ids
	notes  chan string       // session ids that sent notifications/roots/list_changed
}

func startSessionBackend(t *testing.T, sse bool) *sessionBackend {
	t.Helper()
	sb := &sessionBackend{t: t, sse: sse, values: map[string]string{}, ended: make(chan string, 64), notes: make(chan string, 64)}
	sb.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isInitialize(r) {
			body := readBody(r)
			if m, err := jsonrpc.Parse(body); err == nil {
				sb.mu.Lock()
				sb.inits = append(sb.inits, m)
				sb.mu.Unlock()
			}
		}
		(*sb.h.Load()).ServeHTTP(w, r)
	}))
	sb.restart()
	t.Cleanup(func() {
		within(t, "closing session backend", func() {
			_ = sb.ts.Config.Close()
			sb.ts.Close()
		})
	})
	return sb
}

// restart replaces the server with a fresh one: every session is forgotten.
func (sb *sessionBackend) restart() {
	hooks := &server.Hooks{}
	hooks.AddOnUnregisterSession(func(_ context.Context, s server.ClientSession) {
		select {
		case sb.ended <- s.SessionID():
		default:
		}
	})
	s := server.NewMCPServer("sess", "1.0.0", server.WithToolCapabilities(true), server.WithHooks(hooks))
	sid := func(ctx context.Context) string { return server.ClientSessionFromContext(ctx).SessionID() }
	s.AddNotificationHandler("notifications/roots/list_changed", func(ctx context.Context, _ mcp.JSONRPCNotification) {
		select {
		case sb.notes <- sid(ctx):
		default:
		}
	})
	s.AddTools(
		server.ServerTool{Tool: mcp.NewTool("set", mcp.WithString("v")), Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			sb.mu.Lock()
			sb.values[sid(ctx)] = req.GetString("v", "")
			sb.mu.Unlock()
			return mcp.NewToolResultText("ok"), nil
		}},
		server.ServerTool{Tool: mcp.NewTool("get"), Handler: func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			sb.mu.Lock()
			defer sb.mu.Unlock()
			return mcp.NewToolResultText("value=" + sb.values[sid(ctx)]), nil
		}},
		server.ServerTool{Tool: mcp.NewTool("whoami"), Handler: func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			cs := server.ClientSessionFromContext(ctx)
			out := map[string]any{"session": cs.SessionID()}
			if ci, ok := cs.(server.SessionWithClientInfo); ok {
				out["client"] = ci.GetClientInfo().Name
				out["experimental"] = ci.GetClientCapabilities().Experimental
			}
			b, _ := json.Marshal(out)
			return mcp.NewToolResultText(string(b)), nil
		}},
		server.ServerTool{Tool: mcp.NewTool("roots"), Handler: func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res, err := server.ServerFromContext(ctx).RequestRoots(ctx, mcp.ListRootsRequest{})
			if err != nil {
				return nil, err
			}
			if len(res.Roots) == 0 {
				return mcp.NewToolResultText("no roots"), nil
			}
			return mcp.NewToolResultText(res.Roots[0].URI), nil
		}},
	)
	var h http.Handler
	if sb.sse {
		ss := server.NewSSEServer(s, server.WithBaseURL(sb.ts.URL))
		h = ss
	} else {
		h = server.NewStreamableHTTPServer(s, server.WithStateful(true), legacyOnly)
	}
	sb.cur.Store(s)
	sb.h.Store(&h)
}

func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

func (sb *sessionBackend) server(name string, mode mcpmeshv1.SessionMode) *mcpmeshv1.Server {
	s := &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: sb.ts.URL + "/mcp", Headers: map[string]string{"X-Test": "yes"}},
		Session:   mode,
	}
	if sb.sse {
		s.Transport = mcpmeshv1.Transport_TRANSPORT_SSE
		s.Http.Url = sb.ts.URL + "/sse"
	}
	return s
}

// clientInits returns the initialize requests of clients (not mcpmesh's own).
func (sb *sessionBackend) clientInits() []jsonrpc.Message {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	var out []jsonrpc.Message
	for _, m := range sb.inits {
		st, en, ok, _ := jsonrpc.Lookup(m.Params, "clientInfo")
		if !ok {
			continue
		}
		if name, _, _ := jsonrpc.LookupString(m.Params[st:en], "name"); name != "mcpmesh" {
			out = append(out, m)
		}
	}
	return out
}

func clientSession(id string) *ClientSession {
	return &ClientSession{Init: SessionInit{
		Client:        id,
		Capabilities:  json.RawMessage(fmt.Sprintf(`{"roots":{"listChanged":true},"experimental":{"who":%q}}`, id)),
		ClientName:    "client-" + id,
		ClientVersion: "9.9",
	}}
}

// callAs calls a tool on the client's session and returns its text.
func callAs(t *testing.T, b *Backend, cs *ClientSession, tool string, args map[string]any) string {
	t.Helper()
	text, err := callAsErr(b, cs, tool, args)
	if err != nil {
		t.Fatalf("call %s as %s: %v", tool, cs.Init.Client, err)
	}
	return text
}

func callAsErr(b *Backend, cs *ClientSession, tool string, args map[string]any) (string, error) {
	params, _ := json.Marshal(map[string]any{"name": tool, "arguments": args})
	res, err := b.Request(context.Background(), Request{Method: "tools/call", Params: params, Client: cs})
	if err != nil {
		return "", err
	}
	var r struct {
		Content []struct{ Text string }
		IsError bool
	}
	if err := json.Unmarshal(res, &r); err != nil || len(r.Content) != 1 || r.IsError {
		return "", fmt.Errorf("tool result %s", res)
	}
	return r.Content[0].Text, nil
}

func (e *env) readyBackend(s *mcpmeshv1.Server) *Backend {
	e.t.Helper()
	e.apply(s)
	b := e.backend(s.GetName())
	e.waitState(b, stateHealthy)
	return b
}

func openAs(t *testing.T, b *Backend, cs *ClientSession) {
	t.Helper()
	up, err := b.OpenSession(context.Background(), cs.Init)
	if err != nil {
		t.Fatalf("OpenSession %s: %v", cs.Init.Client, err)
	}
	if up.IsZero() || up.ID == "" {
		t.Fatalf("OpenSession %s = %+v, want a session", cs.Init.Client, up)
	}
	cs.Upstream = up
}

// TestPerClientSessions: two clients get two upstream sessions, initialized
// with their own capabilities verbatim and client info, and per-session
// state is theirs alone; a request without a client uses the shared one.
func TestPerClientSessions(t *testing.T) {
	for _, sse := range []bool{false, true} {
		t.Run(map[bool]string{false: "streamable HTTP", true: "SSE"}[sse], func(t *testing.T) {
			e := newEnv(t)
			sb := startSessionBackend(t, sse)
			b := e.readyBackend(sb.server("web", mcpmeshv1.SessionMode_SESSION_MODE_UNSPECIFIED))
			if !b.PerClient() {
				t.Fatal("PerClient() = false for an HTTP server without session mode")
			}
			a, c := clientSession("a"), clientSession("b")
			openAs(t, b, a)
			openAs(t, b, c)
			if a.Upstream == c.Upstream {
				t.Fatalf("both clients got upstream %+v", a.Upstream)
			}
			inits := sb.clientInits()
			if len(inits) != 2 {
				t.Fatalf("backend saw %d client initializes, want 2", len(inits))
			}
			for i, cs := range []*ClientSession{a, c} {
				st, en, _, _ := jsonrpc.Lookup(inits[i].Params, "capabilities")
				if got := string(inits[i].Params[st:en]); got != string(cs.Init.Capabilities) {
					t.Errorf("initialize %d capabilities = %s, want %s verbatim", i, got, cs.Init.Capabilities)
				}
				if v, _, _ := jsonrpc.LookupString(inits[i].Params, "protocolVersion"); v != mcp.LATEST_LEGACY_PROTOCOL_VERSION {
					t.Errorf("initialize %d protocolVersion = %q, want the pinned %q", i, v, mcp.LATEST_LEGACY_PROTOCOL_VERSION)
				}
			}
			var who struct {
				Session, Client string
				Experimental    map[string]string
			}
			if err := json.Unmarshal([]byte(callAs(t, b, a, "whoami", nil)), &who); err != nil {
				t.Fatal(err)
			}
			if who.Client != "client-a" || who.Experimental["who"] != "a" {
				t.Errorf("client a's session = %+v, want its own client info and capabilities", who)
			}
			if !sse && who.Session != a.Upstream.ID {
				t.Errorf("client a's call ran on session %q, want %q", who.Session, a.Upstream.ID)
			}
			callAs(t, b, a, "set", map[string]any{"v": "A"})
			callAs(t, b, c, "set", map[string]any{"v": "B"})
			if got := callAs(t, b, a, "get", nil); got != "value=A" {
				t.Errorf("client a reads %q, want value=A", got)
			}
			if got := callAs(t, b, c, "get", nil); got != "value=B" {
				t.Errorf("client b reads %q, want value=B", got)
			}
			if got := callText(t, b, "get", nil); got != "value=" {
				t.Errorf("the shared session reads %q, want nothing", got)
			}
			if n := len(sb.clientInits()); n != 2 {
				t.Errorf("backend saw %d client initializes after the calls, want still 2", n)
			}
		})
	}
}

// TestSessionContinuedOnAnotherReplica: a second data plane given the same
// Upstream continues the same upstream session, with no initialize.
func TestSessionContinuedOnAnotherReplica(t *testing.T) {
	sb := startSessionBackend(t, false)
	e1, e2 := newEnv(t), newEnv(t)
	b1 := e1.readyBackend(sb.server("web", 0))
	b2 := e2.readyBackend(sb.server("web", 0))
	a := clientSession("a")
	openAs(t, b1, a)
	callAs(t, b1, a, "set", map[string]any{"v": "kept"})
	other := &ClientSession{Init: a.Init, Upstream: a.Upstream}
	if got := callAs(t, b2, other, "get", nil); got != "value=kept" {
		t.Errorf("replica 2 reads %q, want the value set through replica 1", got)
	}
	if n := len(sb.clientInits()); n != 1 {
		t.Errorf("backend saw %d client initializes, want 1", n)
	}
}

// TestSessionForgottenByBackend: after a backend restart the client's session
// answers 404: a new one is opened, the request succeeds, and later requests
// stay on the new one. A zero Upstream opens one, once for concurrent calls.
func TestSessionForgottenByBackend(t *testing.T) {
	e := newEnv(t)
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a := clientSession("a")
	openAs(t, b, a)
	callAs(t, b, a, "set", map[string]any{"v": "lost"})
	sb.restart()
	if got := callAs(t, b, a, "get", nil); got != "value=" {
		t.Errorf("after the restart client a reads %q, want a fresh session", got)
	}
	callAs(t, b, a, "set", map[string]any{"v": "new"})
	if got := callAs(t, b, a, "get", nil); got != "value=new" {
		t.Errorf("client a reads %q, want value=new on its replacement session", got)
	}
	if n := len(sb.clientInits()); n != 2 {
		t.Errorf("backend saw %d client initializes, want 2 (open, reopen after 404)", n)
	}

	z := clientSession("z") // never opened
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := callAsErr(b, z, "get", nil); err != nil {
				t.Errorf("call with no upstream session: %v", err)
			}
		}()
	}
	waitGroup(t, &wg, "concurrent calls")
	if n := len(sb.clientInits()); n != 3 {
		t.Errorf("backend saw %d client initializes, want 3 (one for client z)", n)
	}
}

// TestSessionEviction: an idle session is forgotten on this replica without
// a DELETE, and continued again on the next call; the LRU bound does the same.
func TestSessionEviction(t *testing.T) {
	e := newEnv(t, func(o *ManagerOptions) { o.SessionIdle = time.Minute; o.MaxSessions = 1 })
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a, c := clientSession("a"), clientSession("b")
	openAs(t, b, a)
	callAs(t, b, a, "set", map[string]any{"v": "A"})
	openAs(t, b, c) // evicts a's transport (bound 1)
	e.clock.Advance(2 * time.Minute)
	release(b.ses.sweep(b.clock.Now())...)
	if got := callAs(t, b, a, "get", nil); got != "value=A" {
		t.Errorf("client a reads %q after eviction, want its session continued", got)
	}
	select {
	case id := <-sb.ended:
		t.Errorf("session %s ended upstream on eviction", id)
	default:
	}
	if n := len(sb.clientInits()); n != 2 {
		t.Errorf("backend saw %d client initializes, want 2", n)
	}
}

// TestListen: notifications the backend sends to one session reach
// OnNotification tagged with that client only, and a request on the GET
// stream reaches OnRequest with the client, its answer going back.
func TestListen(t *testing.T) {
	type note struct {
		client string
		m      *jsonrpc.Message
	}
	notes := make(chan note, 16)
	var asked atomic.Pointer[string]
	e := newEnv(t, func(o *ManagerOptions) {
		o.OnNotification = func(server, client string, n *jsonrpc.Message) {
			notes <- note{client, n}
		}
		o.OnRequest = func(ctx context.Context, server, client string, req *jsonrpc.Message) (json.RawMessage, error) {
			asked.Store(&client)
			if req.Method != "roots/list" {
				return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", req.Method)
			}
			return json.RawMessage(fmt.Sprintf(`{"roots":[{"uri":"file:///%s","name":"r"}]}`, client)), nil
		}
	})
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a, c := clientSession("a"), clientSession("b")
	openAs(t, b, a)
	openAs(t, b, c)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, cs := range []*ClientSession{a, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Listen(ctx, cs); err != nil {
				t.Errorf("Listen: %v", err)
			}
		}()
	}
	defer func() { cancel(); waitGroup(t, &wg, "Listen calls") }()

	srv := sb.cur.Load()
	send := func(cs *ClientSession, text string) {
		deadline := time.Now().Add(testWait)
		for {
			err := srv.SendNotificationToSpecificClient(cs.Upstream.ID, "notifications/message", map[string]any{"level": "info", "data": text})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("send to %s: %v", cs.Init.Client, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	send(a, "for a")
	n := recvWithin(t, notes, "client a's notification")
	if n.client != "a" || !strings.Contains(string(n.m.Params), `"for a"`) || n.m.Method != "notifications/message" {
		t.Errorf("got %s %s for client %q, want client a's message", n.m.Method, n.m.Params, n.client)
	}
	send(c, "for b")
	n = recvWithin(t, notes, "client b's notification")
	if n.client != "b" || !strings.Contains(string(n.m.Params), `"for b"`) {
		t.Errorf("got %s for client %q, want client b's message", n.m.Params, n.client)
	}
	select {
	case n := <-notes:
		t.Errorf("unexpected notification %s for %q", n.m.Params, n.client)
	default:
	}

	if got := callAs(t, b, a, "roots", nil); got != "file:///a" {
		t.Errorf("roots tool saw %q, want client a's answer", got)
	}
	if p := asked.Load(); p == nil || *p != "a" {
		t.Errorf("OnRequest client = %v, want a", p)
	}
}

// TestCloseSession: CloseSession deletes the upstream session (the backend
// sees it end) and ends the client's Listen; Close ends the rest.
func TestCloseSession(t *testing.T) {
	e := newEnv(t)
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a := clientSession("a")
	openAs(t, b, a)
	callAs(t, b, a, "set", map[string]any{"v": "A"})
	done := make(chan error, 1)
	go func() { done <- b.Listen(context.Background(), a) }()
	if err := b.CloseSession(context.Background(), a); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	if id := recvWithin(t, sb.ended, "the session to end upstream"); id != a.Upstream.ID {
		t.Errorf("session %s ended, want %s", id, a.Upstream.ID)
	}
	if err := recvWithin(t, done, "Listen to end"); err != nil {
		t.Errorf("Listen: %v", err)
	}
	// Closed with a session open: nothing may leak (goleak in TestMain).
	c := clientSession("c")
	openAs(t, b, c)
	go func() { done <- b.Listen(context.Background(), c) }()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvWithin(t, done, "Listen to end at Close"); err != nil {
		t.Errorf("Listen: %v", err)
	}
}

// TestCloseSessionSSE: closing an SSE client session closes its stream.
func TestCloseSessionSSE(t *testing.T) {
	e := newEnv(t)
	sb := startSessionBackend(t, true)
	b := e.readyBackend(sb.server("web", 0))
	a := clientSession("a")
	openAs(t, b, a)
	callAs(t, b, a, "set", map[string]any{"v": "A"})
	if err := b.CloseSession(context.Background(), a); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	if id := recvWithin(t, sb.ended, "the SSE session to end"); id != a.Upstream.ID {
		t.Errorf("session %s ended, want %s", id, a.Upstream.ID)
	}
}

// TestSharedIgnoresClient: on a shared server Request.Client is ignored and
// no session is opened; per-client stdio is refused by validation.
func TestSharedIgnoresClient(t *testing.T) {
	e := newEnv(t)
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", mcpmeshv1.SessionMode_SESSION_MODE_SHARED))
	if b.PerClient() {
		t.Fatal("PerClient() = true for a shared server")
	}
	a := clientSession("a")
	callAs(t, b, a, "set", map[string]any{"v": "A"})
	if got := callText(t, b, "get", nil); got != "value=A" {
		t.Errorf("shared session reads %q, want value=A", got)
	}
	if _, err := b.OpenSession(context.Background(), a.Init); err == nil {
		t.Error("OpenSession on a shared server succeeded")
	}
	if n := len(sb.clientInits()); n != 0 {
		t.Errorf("backend saw %d client initializes, want 0", n)
	}
	if err := b.Listen(context.Background(), a); err != nil {
		t.Errorf("Listen on a shared server: %v", err)
	}

	st := stdioServer("kid", t.TempDir())
	st.Session = mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT
	err := e.m.Apply(&mcpmeshv1.ConfigSnapshot{Servers: []*mcpmeshv1.Server{st}})
	if err == nil || !strings.Contains(err.Error(), "per-client is not supported for stdio") {
		t.Errorf("Apply(per-client stdio) = %v, want the refusal", err)
	}
}

// TestReadEvents covers the SSE parser.
func TestReadEvents(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      error
	}{
		{"one", "event: message\ndata: {\"a\":1}\n\n", []string{`{"a":1}`}, nil},
		{"crlf and no event name", "data: x\r\n\r\n", []string{"x"}, nil},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"a\nb"}, nil},
		{"comments and ids", ": keep-alive\nid: 7\ndata:y\n\n", []string{"y"}, nil},
		{"other event skipped", "event: ping\ndata: z\n\ndata: w\n\n", []string{"w"}, nil},
		{"unfinished last event dropped", "data: a\n\ndata: b", []string{"a"}, nil},
		{"too large", "data: " + strings.Repeat("x", 100) + "\n\n", nil, errEventTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := readEvents(strings.NewReader(tc.in), 64, func(d []byte) { got = append(got, string(d)) })
			if !errors.Is(err, tc.err) || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("readEvents = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func FuzzReadEvents(f *testing.F) {
	f.Add([]byte("event: message\ndata: {}\n\n"))
	f.Add([]byte("data: a\r\ndata: b\r\n\r\n: c\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = readEvents(strings.NewReader(string(in)), 128, func(d []byte) {
			if len(d) > 128 {
				t.Fatalf("event of %d bytes over the bound", len(d))
			}
		})
	})
}

// TestSessionFailover: when the endpoint of a client's session is down, the
// client gets a new session on another endpoint (its state is lost with the
// endpoint), even for a request that may not be repeated: it never ran.
func TestSessionFailover(t *testing.T) {
	e := newEnv(t)
	sbs := []*sessionBackend{startSessionBackend(t, false), startSessionBackend(t, false)}
	cfg := sbs[0].server("web", 0)
	cfg.Endpoints = []string{sbs[1].ts.URL + "/mcp"}
	b := e.readyBackend(cfg)
	e.waitFor("both endpoints healthy", func() bool { return b.eps[0].readyConn() != nil && b.eps[1].readyConn() != nil })
	a := clientSession("a")
	openAs(t, b, a)
	callAs(t, b, a, "set", map[string]any{"v": "A"})
	down, other := a.Upstream.Endpoint, 1-a.Upstream.Endpoint
	within(t, "stopping endpoint", func() {
		_ = sbs[down].ts.Config.Close()
		sbs[down].ts.Close()
	})
	e.waitFor("the endpoint of the session to be down", func() bool { return b.eps[down].readyConn() == nil })
	if got := callAs(t, b, a, "get", nil); got != "value=" {
		t.Errorf("client a reads %q after failover, want a fresh session", got)
	}
	if n := len(sbs[other].clientInits()); n != 1 {
		t.Errorf("the other endpoint saw %d client initializes, want 1", n)
	}
	callAs(t, b, a, "set", map[string]any{"v": "B"})
	if got := callAs(t, b, a, "get", nil); got != "value=B" {
		t.Errorf("client a reads %q on its new session, want value=B", got)
	}
}

// TestListenFollowsReplacement: when the client's session is replaced (the
// backend restarted), Listen moves its stream to the new session.
func TestListenFollowsReplacement(t *testing.T) {
	notes := make(chan string, 16)
	e := newEnv(t, func(o *ManagerOptions) {
		o.OnNotification = func(_, client string, n *jsonrpc.Message) { notes <- client + " " + string(n.Params) }
	})
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a := clientSession("a")
	openAs(t, b, a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, a) }()
	defer func() { cancel(); recvWithin(t, done, "Listen to end") }()
	sb.restart()
	var who struct{ Session string }
	if err := json.Unmarshal([]byte(callAs(t, b, a, "whoami", nil)), &who); err != nil {
		t.Fatal(err)
	}
	if who.Session == a.Upstream.ID {
		t.Fatal("no new session after the restart")
	}
	srv := sb.cur.Load()
	deadline := time.Now().Add(testWait)
	for {
		// Until Listen's GET is on the new session, the server holds the
		// message for a stream that is not there yet, or the session is
		// not registered: resend until one arrives.
		_ = srv.SendNotificationToSpecificClient(who.Session, "notifications/message", map[string]any{"level": "info", "data": "after"})
		select {
		case n := <-notes:
			if !strings.HasPrefix(n, "a ") || !strings.Contains(n, `"after"`) {
				t.Errorf("notification %q, want client a's", n)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification on the replacement session")
		}
	}
}

// TestNotifyClientSession: a client's notification (roots/list_changed) goes
// on its own upstream session only; without a client, to the shared ones.
func TestNotifyClientSession(t *testing.T) {
	e := newEnv(t)
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a, c := clientSession("a"), clientSession("b")
	openAs(t, b, a)
	openAs(t, b, c)
	if err := b.Notify(context.Background(), a, "notifications/roots/list_changed", nil); err != nil {
		t.Fatal(err)
	}
	within(t, "the notification on client a's session", func() {
		if got := <-sb.notes; got != a.Upstream.ID {
			t.Errorf("notified session %q, want client a's %q", got, a.Upstream.ID)
		}
	})
	select {
	case got := <-sb.notes:
		t.Errorf("a second session %q was notified", got)
	default:
	}
	if err := b.Notify(context.Background(), nil, "notifications/roots/list_changed", nil); err != nil {
		t.Fatal(err)
	}
	within(t, "the notification on the shared session", func() {
		if got := <-sb.notes; got == a.Upstream.ID || got == c.Upstream.ID {
			t.Errorf("the shared notification reached client session %q", got)
		}
	})
}

// TestListenReportsNoOutcome: opening a client's event stream on a session
// it already has is no request: the endpoint's breaker must see no success
// (which would wipe the failures counted so far, or close a half-open
// breaker whose probe never ran) and must be left to the next request.
func TestListenReportsNoOutcome(t *testing.T) {
	tests := []struct {
		name      string
		failures  int
		halfOpen  bool
		wantState resilience.BreakerState
	}{
		{"closed with failures counted", 3, false, resilience.BreakerClosed},
		{"half-open", resilience.DefaultConsecutiveFailures, true, resilience.BreakerHalfOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			sb := startSessionBackend(t, false)
			b := e.readyBackend(sb.server("web", 0))
			a := clientSession("a")
			openAs(t, b, a)
			br := b.eps[0].breaker
			for range tt.failures {
				done, err := br.Allow()
				if err != nil {
					t.Fatal(err)
				}
				done(false)
			}
			if tt.halfOpen {
				e.clock.Advance(br.Config().OpenFor)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Listen(ctx, a) }()
			defer func() { cancel(); recvWithin(t, done, "Listen to end") }()
			e.waitFor("Listen's event stream", func() bool {
				b.ses.mu.Lock()
				defer b.ses.mu.Unlock()
				for l := range b.ses.listeners["a"] {
					if l.conn != nil {
						return true
					}
				}
				return false
			})
			if s, n := br.State(), br.ConsecutiveFailures(); s != tt.wantState || n != tt.failures {
				t.Errorf("breaker after Listen: %v with %d failures, want %v with %d", s, n, tt.wantState, tt.failures)
			}
			if tt.halfOpen {
				// The probe is the next request's, not taken by Listen.
				if got := callAs(t, b, a, "whoami", nil); !strings.Contains(got, a.Upstream.ID) {
					t.Errorf("whoami = %s, want client a's session", got)
				}
				if s := br.State(); s != resilience.BreakerClosed {
					t.Errorf("breaker after the probe: %v, want closed", s)
				}
			}
		})
	}
}

// TestListenBackoff: Listen reconnects a failing event stream after 250 ms,
// doubled per fruitless attempt up to 10 s, and starts over once a stream
// brought a message; all on the injected clock.
func TestListenBackoff(t *testing.T) {
	e := newEnv(t)
	sb := startSessionBackend(t, false)
	b := e.readyBackend(sb.server("web", 0))
	a := clientSession("a")
	openAs(t, b, a)

	// The client's GET stream fails with 503, or (message set) brings one
	// message and ends.
	var message atomic.Bool
	gets := make(chan struct{}, 64)
	inner := *sb.h.Load()
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Mcp-Session-Id") != a.Upstream.ID {
			inner.ServeHTTP(w, r)
			return
		}
		gets <- struct{}{}
		if !message.Load() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n")
	})
	sb.h.Store(&h)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, a) }()
	defer func() { cancel(); recvWithin(t, done, "Listen to end") }()

	ms := time.Millisecond
	wait := func(d time.Duration) {
		t.Helper()
		recvWithin(t, gets, "Listen's GET")
		e.waitPending(d)
		e.clock.Advance(d)
	}
	for _, d := range []time.Duration{250 * ms, 500 * ms, time.Second} {
		wait(d)
	}
	message.Store(true)
	wait(250 * ms) // a message arrived: the backoff starts over
	message.Store(false)
	for _, d := range []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		wait(d)
	}
}
