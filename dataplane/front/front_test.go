package front_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clock is a settable clock for expiry and grace.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type replica struct {
	f      *front.Front
	router *fakeRouter
	keys   *keys.Keys
	url    string
}

// start serves a Front with a fake router. secret nil keeps the boot secret.
func start(t *testing.T, secret []byte, o front.Options) *replica {
	t.Helper()
	rt := newFakeRouter()
	if o.Keys == nil {
		o.Keys = keys.New()
	}
	o.Keys.SetSecret(secret)
	o.Router, o.Logger = rt, quiet()
	f := front.New(o)
	ts := httptest.NewServer(f.Handler())
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		ts.Close()
	})
	return &replica{f: f, router: rt, keys: o.Keys, url: ts.URL}
}

type roots struct{}

func (roots) ListRoots(context.Context, mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
	return &mcp.ListRootsResult{Roots: []mcp.Root{{URI: "file:///work", Name: "work"}}}, nil
}

// notifications collects what a client's OnNotification sees.
type notifications struct {
	mu   sync.Mutex
	got  []mcp.JSONRPCNotification
	seen chan string
}

func collect(c *client.Client) *notifications {
	n := &notifications{seen: make(chan string, 64)}
	c.OnNotification(func(m mcp.JSONRPCNotification) {
		n.mu.Lock()
		n.got = append(n.got, m)
		n.mu.Unlock()
		n.seen <- m.Method
	})
	return n
}

func (n *notifications) methods() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.got {
		out = append(out, m.Method)
	}
	return out
}

func initialize(t *testing.T, c *client.Client) *mcp.InitializeResult {
	return initializeVersion(t, c, mcp.ProtocolVersion20251125)
}

func initializeVersion(t *testing.T, c *client.Client, version string) *mcp.InitializeResult {
	t.Helper()
	// The streams live as long as Start's ctx.
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	res, err := c.Initialize(ctx, mcp.InitializeRequest{Params: mcp.InitializeParams{
		ProtocolVersion: version,
		ClientInfo:      mcp.Implementation{Name: "test-client", Version: "1.2.3"},
		Capabilities: mcp.ClientCapabilities{Roots: &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: true}},
	}})
	if err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	return res
}

func call(t *testing.T, c *client.Client, name string, meta *mcp.Meta) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Meta = meta
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("call %s: %d contents", name, len(res.Content))
	}
	text, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("call %s: content %T", name, res.Content[0])
	}
	return text.Text
}

func TestStreamableHTTPClient(t *testing.T) {
	r := start(t, secretA, front.Options{})
	tr, err := transport.NewStreamableHTTP(r.url+"/mcp?pagination=true", transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithRootsHandler(roots{}))
	seen := collect(c)
	res := initialize(t, c)
	if res.ServerInfo.Name != "fake" || res.ProtocolVersion != mcp.ProtocolVersion20251125 {
		t.Fatalf("initialize result = %+v", res)
	}
	sid := tr.GetSessionId()
	if sid == "" {
		t.Fatal("no Mcp-Session-Id")
	}

	t.Run("session carried by the id", func(t *testing.T) {
		got := call(t, c, "echo", nil)
		want := `client=test-client/1.2.3 up=up:test-client proto=2025-11-25 paginate=true transport=streamable-http caps={"roots":{"listChanged":true}}`
		if got != want {
			t.Fatalf("echo = %q\nwant   %q", got, want)
		}
		if n := r.router.notifications(); len(n) != 1 || n[0] != "notifications/initialized" {
			t.Fatalf("notifications = %v", n)
		}
	})
	t.Run("progress via Stream.Send", func(t *testing.T) {
		if got := call(t, c, "progress", &mcp.Meta{ProgressToken: "tok-1"}); got != "done" {
			t.Fatalf("progress = %q", got)
		}
		var progress int
		for _, m := range seen.methods() {
			if m == "notifications/progress" {
				progress++
			}
		}
		if progress != 3 {
			t.Fatalf("client saw %d progress notifications before the answer, want 3 (%v)", progress, seen.methods())
		}
		seen.mu.Lock()
		tok := seen.got[0].Params.AdditionalFields["progressToken"]
		seen.mu.Unlock()
		if tok != "tok-1" {
			t.Fatalf("progress token = %v", tok)
		}
	})
	t.Run("server-to-client request", func(t *testing.T) {
		got := call(t, c, "ask", nil)
		if !strings.Contains(got, `"uri":"file:///work"`) {
			t.Fatalf("ask = %q", got)
		}
	})
	t.Run("Push and Broadcast to the GET stream", func(t *testing.T) {
		l := receive(t, r.router.listening, "Listening")
		if l.s.ID != sid || l.s.ClientName != "test-client" || !l.s.Paginate {
			t.Fatalf("Listening session = %+v", l.s)
		}
		drain(seen.seen)
		if !r.f.Push(sid, jsonrpc.Notification("notifications/tools/list_changed", nil)) {
			t.Fatal("Push found no stream")
		}
		if m := receive(t, seen.seen, "pushed notification"); m != "notifications/tools/list_changed" {
			t.Fatalf("pushed %q", m)
		}
		r.f.Broadcast(jsonrpc.Notification("notifications/prompts/list_changed", nil))
		if m := receive(t, seen.seen, "broadcast notification"); m != "notifications/prompts/list_changed" {
			t.Fatalf("broadcast %q", m)
		}
		if r.f.Push("unknown", []byte(`{}`)) {
			t.Fatal("Push to an unknown session succeeded")
		}
		// DELETE (the client's Close) ends the stream, and so Listening.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if s := receive(t, r.router.ended, "Ended"); s.ID != sid {
			t.Fatalf("Ended(%q)", s.ID)
		}
		select {
		case <-l.ctx.Done():
		case <-time.After(wait):
			t.Fatal("Listening ctx did not end with the session")
		}
	})
	t.Run("after DELETE", func(t *testing.T) {
		resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
		expectError(t, resp, body, http.StatusNotFound, "terminated (DELETE)")
	})
}

func drain(ch chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// The default mcp-go client probes server/discover (2026-07-28) first: that
// reaches the router as a stateless request, and on its error the client
// falls back to initialize.
func TestStreamableHTTPDiscoverFallback(t *testing.T) {
	r := start(t, secretA, front.Options{})
	c, err := client.NewStreamableHttpClient(r.url + "/mcp")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	initializeVersion(t, c, "")
	if got := call(t, c, "echo", nil); !strings.Contains(got, "proto=2025-11-25") {
		t.Fatalf("echo = %q", got)
	}
	h := r.router.handledMethods()
	if len(h) == 0 || h[0].method != "server/discover" || h[0].s.ID != "" || h[0].s.Protocol != mcp.ProtocolVersion20260728 {
		t.Fatalf("first request = %+v, want a stateless server/discover", h)
	}
}

func TestSSEClient(t *testing.T) {
	r := start(t, secretA, front.Options{})
	c, err := client.NewSSEMCPClient(r.url + "/sse?pagination=true")
	if err != nil {
		t.Fatal(err)
	}
	seen := collect(c)
	initialize(t, c)
	l := receive(t, r.router.listening, "Listening")
	if l.s.Transport != front.TransportSSE || l.s.ClientName != "test-client" || string(l.s.Upstream) != "up:test-client" {
		t.Fatalf("Listening session = %+v", l.s)
	}
	got := call(t, c, "echo", nil)
	want := `client=test-client/1.2.3 up=up:test-client proto=2025-11-25 paginate=true transport=sse caps=`
	if !strings.HasPrefix(got, want) {
		t.Fatalf("echo = %q\nwant   %q...", got, want)
	}
	if got := call(t, c, "progress", &mcp.Meta{ProgressToken: 7}); got != "done" {
		t.Fatalf("progress = %q", got)
	}
	for range 3 {
		if m := receive(t, seen.seen, "progress"); m != "notifications/progress" {
			t.Fatalf("got %q", m)
		}
	}
	if !r.f.Push(l.s.ID, jsonrpc.Notification("notifications/tools/list_changed", nil)) {
		t.Fatal("Push found no SSE stream")
	}
	if m := receive(t, seen.seen, "pushed"); m != "notifications/tools/list_changed" {
		t.Fatalf("pushed %q", m)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if s := receive(t, r.router.ended, "Ended"); s.ID != l.s.ID || s.ClientName != "test-client" {
		t.Fatalf("Ended(%+v)", s)
	}
	<-l.ctx.Done()
}

// post sends a raw POST with the headers a conforming client sends, plus hdr
// (an empty value deletes a header).
func post(t *testing.T, url string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// expectError checks an HTTP error answer: its status and a JSON-RPC error
// body whose message contains want.
func expectError(t *testing.T, resp *http.Response, body []byte, status int, want string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	m, err := jsonrpc.Parse(body)
	if err != nil || m.Error == nil {
		t.Fatalf("body %s is not a JSON-RPC error: %v", body, err)
	}
	if !strings.Contains(m.Error.Message, want) {
		t.Fatalf("error %q does not say %q", m.Error.Message, want)
	}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","clientInfo":{"name":"raw","version":"9"},"capabilities":{}}}`

// initRaw initializes a session with a raw POST and returns its id.
func initRaw(t *testing.T, url, body string) string {
	t.Helper()
	resp, b := post(t, url+"/mcp", nil, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, b)
	}
	id := resp.Header.Get("Mcp-Session-Id")
	if id == "" {
		t.Fatalf("initialize answered without a session id: %s", b)
	}
	return id
}
