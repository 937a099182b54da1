package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// observe makes hb hand every POST's parsed message to f.
func observe(hb *httpBackend, f func(r *http.Request, m jsonrpc.Message)) {
	fn := func(r *http.Request, body []byte) {
		if m, err := jsonrpc.Parse(body); err == nil {
			f(r, m)
		}
	}
	hb.onPost.Store(&fn)
}

// waitLog waits until the test log holds line.
func (e *env) waitLog(line string) {
	e.t.Helper()
	deadline := time.Now().Add(testWait)
	for !strings.Contains(e.logs.String(), line) {
		if time.Now().After(deadline) {
			e.t.Fatalf("no %q in the log after %v; logs:\n%s", line, testWait, e.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHandshakeSendsOurInitialize: initialize carries the pinned revision,
// our client info and the configured capabilities raw; later requests carry
// the negotiated version header and our own ids.
func TestHandshakeSendsOurInitialize(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps json.RawMessage
		want string
	}{
		{"default capabilities", nil, string(defaultClientCapabilities)},
		{"configured capabilities", json.RawMessage(`{"roots":{"listChanged":false},"x-vendor":{"n":12345678901234567890}}`), `{"roots":{"listChanged":false},"x-vendor":{"n":12345678901234567890}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *ManagerOptions) { o.ClientCapabilities = tc.caps })
			hb := startHTTPBackend(t, newMCPServer("hs", 0), false)
			type seen struct {
				method, id, header string
				params             json.RawMessage
			}
			msgs := make(chan seen, 64)
			observe(hb, func(r *http.Request, m jsonrpc.Message) {
				select {
				case msgs <- seen{m.Method, string(m.ID), r.Header.Get("Mcp-Protocol-Version"), m.Params}:
				default:
				}
			})
			e.apply(hb.server("hs"))
			b := e.backend("hs")
			e.waitState(b, stateHealthy)
			init := recvWithin(t, msgs, "initialize")
			for init.method == "server/discover" { // the era probe, refused: legacyOnly
				init = recvWithin(t, msgs, "initialize")
			}
			if init.method != "initialize" || init.id != "1" {
				t.Fatalf("first POST = %s id %s, want initialize id 1", init.method, init.id)
			}
			var p struct {
				ProtocolVersion string
				ClientInfo      struct{ Name string }
				Capabilities    json.RawMessage
			}
			if err := json.Unmarshal(init.params, &p); err != nil {
				t.Fatal(err)
			}
			if p.ProtocolVersion != mcp.LATEST_LEGACY_PROTOCOL_VERSION || p.ClientInfo.Name != "mcpmesh" || string(p.Capabilities) != tc.want {
				t.Errorf("initialize params = %s", init.params)
			}
			if n := recvWithin(t, msgs, "initialized"); n.method != "notifications/initialized" || n.header != mcp.LATEST_LEGACY_PROTOCOL_VERSION {
				t.Errorf("second POST = %+v, want notifications/initialized with the version header", n)
			}
			if l := recvWithin(t, msgs, "tools/list"); l.method != "tools/list" || l.id != "2" || l.header != mcp.LATEST_LEGACY_PROTOCOL_VERSION {
				t.Errorf("third POST = %+v, want tools/list id 2 with the version header", l)
			}
		})
	}
}

func TestParseInitResult(t *testing.T) {
	for _, tc := range []struct {
		name, res, err string
		offered        [4]bool
	}{
		{"full", `{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"resources":{"subscribe":true}},"instructions":"hi","serverInfo":{"name":"x","version":"1"}}`, "", [4]bool{true, false, true, true}},
		{"older revision", `{"protocolVersion":"2025-03-26","capabilities":{"prompts":{}}}`, "", [4]bool{false, true, false, false}},
		{"null capability", `{"protocolVersion":"2025-11-25","capabilities":{"tools":null}}`, "", [4]bool{}},
		{"unknown version", `{"protocolVersion":"1999-01-01","capabilities":{}}`, "unsupported protocol version", [4]bool{}},
		{"modern version", `{"protocolVersion":"2026-07-28","capabilities":{}}`, "unsupported protocol version", [4]bool{}},
		{"no capabilities", `{"protocolVersion":"2025-11-25"}`, `"capabilities" is not an object`, [4]bool{}},
		{"capabilities not an object", `{"protocolVersion":"2025-11-25","capabilities":[1]}`, `"capabilities" is not an object`, [4]bool{}},
		{"not an object", `[]`, "invalid initialize result", [4]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ir, _, err := parseInitResult(json.RawMessage(tc.res))
			if tc.err != "" {
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || ir.offered != tc.offered {
				t.Fatalf("parse = %+v, %v; want offered %v", ir, err, tc.offered)
			}
		})
	}
}

// FuzzParseInitResult: whatever a backend answers to initialize, parsing
// neither panics nor accepts capabilities that are not an object.
func FuzzParseInitResult(f *testing.F) {
	f.Add([]byte(`{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true}},"instructions":"x"}`))
	f.Add([]byte(`{"protocolVersion":"2025-06-18","capabilities":{"resources":null}}`))
	f.Add([]byte(`{"capabilities":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ir, v, err := parseInitResult(b)
		if err != nil {
			return
		}
		if !mcp.IsValidProtocolVersion(v) || !json.Valid(ir.caps) || ir.caps[0] != '{' {
			t.Fatalf("accepted version %q caps %s", v, ir.caps)
		}
	})
}

// TestCancelledRequestNotifiesBackend: a request whose caller gives up makes
// the backend hear notifications/cancelled for our upstream id, over stdio
// (the only thing that can cancel the tool there) and over streamable HTTP
// (before the POST is aborted), and the connection stays healthy.
func TestCancelledRequestNotifiesBackend(t *testing.T) {
	t.Run("stdio", func(t *testing.T) {
		e := newEnv(t)
		e.apply(stdioServer("sx", t.TempDir()))
		b := e.backend("sx")
		e.waitState(b, stateHealthy)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := callTool(ctx, b, "block")
			done <- err
		}()
		e.waitLog("block started")
		cancel()
		if err := recvWithin(t, done, "the cancelled call"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call = %v, want context.Canceled", err)
		}
		e.waitLog("block cancelled upstream")
		if n := b.eps[0].breaker.ConsecutiveFailures(); n != 0 || !b.Ready() {
			t.Errorf("after a cancel: breaker failures %d, ready %v", n, b.Ready())
		}
		if got := callText(t, b, "echo", map[string]any{"text": "after"}); got != "stdio:after" {
			t.Errorf("echo after a cancel = %q", got)
		}
	})

	t.Run("streamable HTTP", func(t *testing.T) {
		e := newEnv(t)
		s := newMCPServer("hx", 0)
		type notice struct {
			RequestID json.RawMessage `json:"requestId"`
			Reason    string          `json:"reason"`
		}
		var noticed atomic.Pointer[notice]
		var callID atomic.Pointer[string]
		started, sawNotice := make(chan struct{}, 1), make(chan bool, 1)
		s.AddTool(mcp.NewTool("block"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			started <- struct{}{}
			<-ctx.Done()
			// The handler's context ends when the notification is handled or
			// when the POST is aborted, whichever comes first: the notice
			// must be in by then.
			sawNotice <- noticed.Load() != nil
			return nil, ctx.Err()
		})
		hb := startHTTPBackend(t, s, false)
		observe(hb, func(_ *http.Request, m jsonrpc.Message) {
			switch m.Method {
			case "tools/call":
				if name, _, _ := jsonrpc.LookupString(m.Params, "name"); name == "block" {
					id := string(m.ID)
					callID.Store(&id)
				}
			case "notifications/cancelled":
				var n notice
				if json.Unmarshal(m.Params, &n) == nil {
					noticed.Store(&n)
				}
			}
		})
		e.apply(hb.server("hx"))
		b := e.backend("hx")
		e.waitState(b, stateHealthy)

		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := callTool(ctx, b, "block")
			done <- err
		}()
		recvWithin(t, started, "the tool to start")
		cancel(errors.New("client went away"))
		if err := recvWithin(t, done, "the cancelled call"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled call = %v, want context.Canceled", err)
		}
		if !recvWithin(t, sawNotice, "the tool to end") {
			t.Error("the tool was cancelled before notifications/cancelled reached the backend")
		}
		n, id := noticed.Load(), callID.Load()
		if n == nil || id == nil || string(n.RequestID) != *id || n.Reason != "client went away" {
			t.Fatalf("notifications/cancelled = %+v for the call with id %v, want its id and the cause", n, id)
		}
		if f := b.eps[0].breaker.ConsecutiveFailures(); f != 0 || !b.Ready() {
			t.Errorf("after a cancel: breaker failures %d, ready %v", f, b.Ready())
		}
		if got := callText(t, b, "echo", map[string]any{"text": "after"}); got != "hx:after" {
			t.Errorf("echo after a cancel = %q", got)
		}
	})
}

type routerKey struct{}

// TestServerRequestOnPOSTStream: a tool that asks the client something
// (elicitation/create, sent on its POST's SSE stream) reaches OnRequest with
// the values of the Request's ctx, and the answer reaches the tool; a
// progress notification reaches OnNotification with its raw params.
func TestServerRequestOnPOSTStream(t *testing.T) {
	var sawValue atomic.Pointer[string]
	var sawReq atomic.Pointer[jsonrpc.Message]
	progress := make(chan json.RawMessage, 4)
	e := newEnv(t, func(o *ManagerOptions) {
		o.OnRequest = func(ctx context.Context, server, _ string, req *jsonrpc.Message) (json.RawMessage, error) {
			v := fmt.Sprint(ctx.Value(routerKey{}))
			sawValue.Store(&v)
			sawReq.Store(req)
			if _, ok := ctx.Deadline(); !ok || server != "asker" {
				return nil, jsonrpc.Errorf(jsonrpc.CodeInternalError, "no deadline, or server %q", server)
			}
			return json.RawMessage(`{"action":"accept","content":{"name":"ada"}}`), nil
		}
		o.OnNotification = func(server, _ string, n *jsonrpc.Message) {
			if server == "asker" && n.Method == "notifications/progress" {
				select {
				case progress <- n.Params:
				default:
				}
			}
		}
	})
	s := server.NewMCPServer("asker", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("ask"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		srv := server.ServerFromContext(ctx)
		if m := req.Params.Meta; m != nil && m.ProgressToken != nil {
			_ = srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{"progressToken": m.ProgressToken, "progress": 1, "total": 2})
		}
		res, err := srv.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
			Message:         "your name?",
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
		}})
		if err != nil {
			return nil, err
		}
		return mcp.NewToolResultText(fmt.Sprintf("%s %v", res.Action, res.Content)), nil
	})
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("asker"))
	b := e.backend("asker")
	e.waitState(b, stateHealthy)

	ctx := context.WithValue(context.Background(), routerKey{}, "client-7/request-42")
	res, err := b.Request(ctx, Request{Method: "tools/call", Params: json.RawMessage(`{"name":"ask","arguments":{},"_meta":{"progressToken":"tok-1"}}`)})
	if err != nil {
		t.Fatalf("call ask: %v", err)
	}
	if !strings.Contains(string(res), `"text":"accept map[name:ada]"`) {
		t.Errorf("ask result = %s, want the answer passed to the tool", res)
	}
	if v := sawValue.Load(); v == nil || *v != "client-7/request-42" {
		t.Errorf("OnRequest ctx value = %v, want the Request ctx's", v)
	}
	if r := sawReq.Load(); r == nil || r.Method != "elicitation/create" || !strings.Contains(string(r.Params), `"message":"your name?"`) || r.ID == nil {
		t.Errorf("OnRequest request = %+v", r)
	}
	p := recvWithin(t, progress, "the progress notification")
	var pp struct {
		ProgressToken string  `json:"progressToken"`
		Progress      float64 `json:"progress"`
	}
	if err := json.Unmarshal(p, &pp); err != nil || pp.ProgressToken != "tok-1" || pp.Progress != 1 {
		t.Errorf("progress params = %s (%v)", p, err)
	}
}

// TestOnRequestUnsetAnswersMethodNotFound: without OnRequest a server's
// question gets -32601, which the tool sees as an error.
func TestOnRequestUnsetAnswersMethodNotFound(t *testing.T) {
	e := newEnv(t)
	s := server.NewMCPServer("asker", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("ask"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		_, err := server.ServerFromContext(ctx).RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
			Message: "?", RequestedSchema: map[string]any{"type": "object"},
		}})
		return mcp.NewToolResultText(fmt.Sprint(err)), nil
	})
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("asker"))
	b := e.backend("asker")
	e.waitState(b, stateHealthy)
	got := callText(t, b, "ask", nil)
	if !strings.Contains(got, "not supported") {
		t.Errorf("elicitation without OnRequest: tool saw %q, want the method-not-found answer", got)
	}
}

// TestNotifyReachesEveryEndpoint: Notify sends to each connected replica.
func TestNotifyReachesEveryEndpoint(t *testing.T) {
	e := newEnv(t)
	got := make(chan string, 4)
	mk := func(name string) *server.MCPServer {
		s := server.NewMCPServer(name, "1.0.0", server.WithToolCapabilities(false))
		s.AddNotificationHandler("notifications/roots/list_changed", func(context.Context, mcp.JSONRPCNotification) { got <- name })
		return s
	}
	la, lb := startLiveServer(t, mk("n-a")), startLiveServer(t, mk("n-b"))
	srv := la.server("n")
	srv.Endpoints = []string{lb.url()}
	e.apply(srv)
	b := e.backend("n")
	e.waitEndpoints(b, stateHealthy, stateHealthy)
	if err := b.Notify(context.Background(), nil, "notifications/roots/list_changed", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	seen := []string{recvWithin(t, got, "a notification"), recvWithin(t, got, "another notification")}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"n-a", "n-b"}) {
		t.Errorf("notified replicas = %v", seen)
	}
	if err := b.Notify(context.Background(), nil, "x", json.RawMessage(`[`)); err == nil {
		t.Error("Notify with malformed params succeeded")
	}
}

// TestFetchPageFollowsUpstreamPages: a backend's own pagination, walked one
// upstream page at a time, gives its cached list in order.
func TestFetchPageFollowsUpstreamPages(t *testing.T) {
	e := newEnv(t)
	// 4 fixed + 7 numbered tools in pages of 3; one prompt, resource and
	// template each, which fit on one page.
	paged := startHTTPBackend(t, newMCPServer("alpha", 3, 7), false)
	whole := startHTTPBackend(t, newMCPServer("beta", 0, 7), false)
	e.apply(paged.server("alpha"), whole.server("beta"))
	a, b := e.backend("alpha"), e.backend("beta")
	e.waitState(a, stateHealthy)
	e.waitState(b, stateHealthy)

	sa, _ := a.Catalog()
	if sa.Paged != [4]bool{true, false, false, false} {
		t.Errorf("alpha paged = %v, want tools only", sa.Paged)
	}
	if sb, _ := b.Catalog(); sb.Paged != [4]bool{} {
		t.Errorf("beta paged = %v, want none", sb.Paged)
	}

	ctx := context.Background()
	var all []catalog.Item
	pages := 0
	for cur := ""; ; {
		p, err := a.FetchPage(ctx, catalog.Tools, cur)
		if err != nil {
			t.Fatalf("FetchPage(%q): %v", cur, err)
		}
		if len(p.Items) > 3 {
			t.Fatalf("upstream page of %d items, want at most 3", len(p.Items))
		}
		pages++
		all = append(all, p.Items...)
		if p.Next == "" {
			break
		}
		cur = p.Next
	}
	if len(all) != len(sa.Lists[catalog.Tools]) {
		t.Fatalf("pages joined = %d items, want the cached %d", len(all), len(sa.Lists[catalog.Tools]))
	}
	for i, it := range all {
		if c := sa.Lists[catalog.Tools][i]; it.Key != c.Key || string(it.Raw) != string(c.Raw) {
			t.Fatalf("item %d = %s %s, want the cached %s %s", i, it.Key, it.Raw, c.Key, c.Raw)
		}
	}
	if pages != 4 {
		t.Errorf("walked %d upstream pages, want 4", pages)
	}
	for k, want := range map[catalog.Kind]string{
		catalog.Prompts:   "greet",
		catalog.Resources: "mem://alpha/readme",
		catalog.Templates: "mem://alpha/items/{id}",
	} {
		p, err := a.FetchPage(ctx, k, "")
		if err != nil || p.Next != "" || len(p.Items) != 1 || p.Items[0].Key != want {
			t.Errorf("FetchPage(%s) = %+v, %v; want [%s]", k.Desc().Method, p, err, want)
		}
	}

	// An upstream failure is an error naming the backend, for the caller
	// to fall back to the cache.
	paged.down.Store(true)
	_, err := a.FetchPage(ctx, catalog.Tools, "")
	if err == nil || !strings.Contains(err.Error(), `backend "alpha"`) || !strings.Contains(err.Error(), "list page of tools/list") {
		t.Errorf("FetchPage of a backend answering 503: err = %v, want it to name backend alpha and the list call", err)
	}
	if _, err := b.FetchPage(ctx, catalog.Kind(9), ""); err == nil || errors.Is(err, ErrNotReady) {
		t.Errorf("FetchPage of an unknown kind: err = %v", err)
	}
	if p, err := b.FetchPage(ctx, catalog.Tools, ""); err != nil || p.Next != "" || len(p.Items) != 11 {
		t.Errorf("beta's FetchPage = %d items, %q, %v; want its whole tool list", len(p.Items), p.Next, err)
	}
}

// TestToolRetryable reads the hints from the cached raw tools.
func TestToolRetryable(t *testing.T) {
	e := newEnv(t)
	_, s := newReplica("hints")
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("hints"))
	b := e.backend("hints")
	e.waitState(b, stateHealthy)
	for tool, want := range map[string]bool{"whoami": true, "put": true, "post": false, "missing": false} {
		if got := b.ToolRetryable(tool); got != want {
			t.Errorf("ToolRetryable(%q) = %v, want %v", tool, got, want)
		}
	}
}
