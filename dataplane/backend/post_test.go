package backend

import (
	"bufio"
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

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// interceptFn sees a request to a postBackend before the mcp-go server does
// (m is its parsed body, zero for a GET) and may answer it itself (true).
type interceptFn func(w http.ResponseWriter, r *http.Request, m jsonrpc.Message) bool

// postBackend is a real mcp-go streamable HTTP server whose requests a test
// can record and intercept.
type postBackend struct {
	ts        *httptest.Server
	intercept atomic.Pointer[interceptFn]
	mu        sync.Mutex
	seen      []seenRequest
}

type seenRequest struct {
	httpMethod string
	header     http.Header
	msg        jsonrpc.Message
}

func startPostBackend(t *testing.T, s *server.MCPServer, opts ...server.StreamableHTTPOption) *postBackend {
	t.Helper()
	pb := &postBackend{}
	h := server.NewStreamableHTTPServer(s, opts...)
	pb.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m jsonrpc.Message
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			m, _ = jsonrpc.Parse(body)
		}
		pb.mu.Lock()
		pb.seen = append(pb.seen, seenRequest{r.Method, r.Header.Clone(), m})
		pb.mu.Unlock()
		if f := pb.intercept.Load(); f != nil && (*f)(w, r, m) {
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		pb.ts.CloseClientConnections()
		pb.ts.Close()
	})
	return pb
}

func (pb *postBackend) set(f interceptFn) { pb.intercept.Store(&f) }

// requests returns what the server got for method ("" any).
func (pb *postBackend) requests(method string) []seenRequest {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	var out []seenRequest
	for _, s := range pb.seen {
		if method == "" || s.msg.Method == method {
			out = append(out, s)
		}
	}
	return out
}

func (pb *postBackend) server(name string, headers map[string]string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: pb.ts.URL + "/mcp", Headers: headers},
	}
}

// mcpgoSending counts the frames of mcp-go's request path in the stacks of
// all goroutines: the poster's calls are in none of them, nor is the close
// watcher mcp-go starts per request. The GET stream of a 2025-11-25
// connection has one of each (handleSSEResponse, a watcher) while idle.
func mcpgoSending() (sending, watchers int) {
	st := allStacks()
	sending = bytes.Count(st, []byte("(*StreamableHTTP).SendRequest(")) + bytes.Count(st, []byte("(*StreamableHTTP).handleSSEResponse("))
	return sending, bytes.Count(st, []byte("(*StreamableHTTP).contextAwareOfClientClose.func1("))
}

// idleSending is mcpgoSending while nothing is sent: the least of a few
// samples, so that a goroutine of the connection's start (initialize, the
// GET stream's first request) that is still ending does not count as idle.
func idleSending() (sending, watchers int) {
	sending, watchers = mcpgoSending()
	for range 20 {
		time.Sleep(time.Millisecond)
		s, w := mcpgoSending()
		sending, watchers = min(sending, s), min(watchers, w)
	}
	return sending, watchers
}

// fastPathProbe is a tool handler's check that the call it serves came
// through the poster: no more goroutines in mcp-go's request path than
// while the connection is idle.
type fastPathProbe struct {
	sending, watchers int // while idle
	bad               atomic.Pointer[string]
}

func (p *fastPathProbe) check() {
	sending, watchers := mcpgoSending()
	if sending > p.sending || watchers > p.watchers {
		msg := fmt.Sprintf("during the call: %d frames of mcp-go's SendRequest path, %d close watchers (idle: %d, %d)", sending, watchers, p.sending, p.watchers)
		p.bad.CompareAndSwap(nil, &msg)
	}
}

func (p *fastPathProbe) verify(t *testing.T) {
	t.Helper()
	if msg := p.bad.Swap(nil); msg != nil {
		t.Errorf("the request did not take the poster: %s", *msg)
	}
}

// newPostServer is an mcp-go server with tools for the poster's tests:
// echo (JSON answer), progress (a progress notification, so an SSE answer),
// ask (asks the client with elicitation/create), and block (waits for its ctx).
func newPostServer(probe *fastPathProbe, blocked chan<- struct{}) *server.MCPServer {
	s := server.NewMCPServer("post", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo", mcp.WithString("text")), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		probe.check()
		return mcp.NewToolResultText("echo:" + req.GetString("text", "")), nil
	})
	s.AddTool(mcp.NewTool("progress"), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if m := req.Params.Meta; m != nil && m.ProgressToken != nil {
			_ = server.ServerFromContext(ctx).SendNotificationToClient(ctx, "notifications/progress",
				map[string]any{"progressToken": m.ProgressToken, "progress": 1, "total": 2})
		}
		probe.check()
		return mcp.NewToolResultText("done"), nil
	})
	s.AddTool(mcp.NewTool("ask"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		// Elicitation travels on the call's own stream (sampling and roots
		// on the GET stream, which mcp-go reads).
		res, err := server.ServerFromContext(ctx).RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
			Message: "name?", RequestedSchema: map[string]any{"type": "object"},
		}})
		if err != nil {
			return nil, err
		}
		probe.check()
		return mcp.NewToolResultText(fmt.Sprintf("%s %v", res.Action, res.Content)), nil
	})
	s.AddTool(mcp.NewTool("block"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		blocked <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	return s
}

// postEnv is a backend connected to a postBackend, in either era.
type postEnv struct {
	*env
	pb       *postBackend
	b        *Backend
	probe    *fastPathProbe
	blocked  chan struct{}
	progress chan json.RawMessage
	asked    atomic.Int64 // elicitation/create requests OnRequest answered
}

func newPostEnv(t *testing.T, modern bool) *postEnv {
	pe := &postEnv{probe: &fastPathProbe{}, blocked: make(chan struct{}, 1), progress: make(chan json.RawMessage, 4)}
	pe.env = newEnv(t, func(o *ManagerOptions) {
		o.OnNotification = func(_, _ string, n *jsonrpc.Message) {
			if n.Method == "notifications/progress" {
				pe.progress <- n.Params
			}
		}
		o.OnRequest = func(_ context.Context, _, _ string, req *jsonrpc.Message) (json.RawMessage, error) {
			if req.Method != "elicitation/create" {
				return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", req.Method)
			}
			pe.asked.Add(1)
			return json.RawMessage(`{"action":"accept","content":{"name":"ada"}}`), nil
		}
	})
	var opts []server.StreamableHTTPOption
	if !modern {
		opts = append(opts, legacyOnly)
	}
	pe.pb = startPostBackend(t, newPostServer(pe.probe, pe.blocked), opts...)
	pe.b = pe.readyBackend(pe.pb.server("post", map[string]string{"X-Tenant": "t1"}))
	if c := pe.conn(); (c.mod != nil) != modern || c.post == nil {
		t.Fatalf("connection: modern %v, poster %v; want modern %v with a poster", c.mod != nil, c.post != nil, modern)
	}
	// Idle: only the GET stream's close watcher (none on 2026-07-28).
	if !modern {
		pe.waitFor("the GET stream", func() bool {
			for _, r := range pe.pb.requests("") {
				if r.httpMethod == http.MethodGet {
					return true
				}
			}
			return false
		})
	}
	pe.probe.sending, pe.probe.watchers = idleSending()
	return pe
}

func (pe *postEnv) conn() *conn { return pe.b.eps[0].readyConn() }

func (pe *postEnv) call(ctx context.Context, params string) (json.RawMessage, error) {
	return pe.b.Request(ctx, Request{Method: "tools/call", Params: json.RawMessage(params)})
}

func eras(t *testing.T, f func(t *testing.T, modern bool)) {
	t.Run("2025-11-25", func(t *testing.T) { f(t, false) })
	t.Run("2026-07-28", func(t *testing.T) { f(t, true) })
}

// TestPostSendsWhatMCPGoSends: a request through the poster carries the
// headers mcp-go's SendRequest gives the same request (configured ones,
// session, protocol version, 2026-07-28 Mcp-Method / Mcp-Name), and the same
// body; its JSON answer comes back; no goroutine is in mcp-go's path or
// watching for close during the call.
func TestPostSendsWhatMCPGoSends(t *testing.T) {
	eras(t, func(t *testing.T, modern bool) {
		pe := newPostEnv(t, modern)
		c := pe.conn()
		params := json.RawMessage(`{"name":"echo","arguments":{"text":"hi","n":12345678901234567890}}`)
		res, err := c.request(context.Background(), "tools/call", params)
		if err != nil || !strings.Contains(string(res), `"text":"echo:hi"`) {
			t.Fatalf("poster tools/call = %s, %v", res, err)
		}
		pe.probe.verify(t)
		mine := pe.pb.requests("tools/call")

		pe.probe.sending, pe.probe.watchers = idleSending()
		var header http.Header
		sent := params
		if c.mod != nil {
			if sent, header, err = c.mod.prepare("tools/call", params, nil); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := c.tr.SendRequest(context.Background(), transport.JSONRPCRequest{
			JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(int64(1 << 40)), Method: "tools/call", Params: sent, Header: header,
		})
		if err != nil || resp.Error != nil {
			t.Fatalf("mcp-go tools/call = %+v, %v", resp, err)
		}
		// The probe must see mcp-go's own call: else it proves nothing.
		if pe.probe.bad.Load() == nil {
			t.Error("the probe did not notice a request sent by mcp-go's SendRequest")
		}
		theirs := pe.pb.requests("tools/call")[len(mine):]
		if len(mine) != 1 || len(theirs) != 1 {
			t.Fatalf("tools/call POSTs: %d by the poster, %d by mcp-go", len(mine), len(theirs))
		}
		a, b := mine[0], theirs[0]
		a.header.Del("Content-Length") // the ids differ
		b.header.Del("Content-Length")
		if fmt.Sprint(a.header) != fmt.Sprint(b.header) {
			t.Errorf("headers:\nposter %v\nmcp-go %v", a.header, b.header)
		}
		if a.header.Get("X-Tenant") != "t1" || a.header.Get("Mcp-Protocol-Version") != c.version ||
			(a.header.Get("Mcp-Session-Id") != "") == modern || (a.header.Get("Mcp-Method") == "tools/call") != modern {
			t.Errorf("poster headers %v on a connection of %s", a.header, c.version)
		}
		var pa, pb any
		_ = json.Unmarshal(a.msg.Params, &pa)
		_ = json.Unmarshal(b.msg.Params, &pb)
		if fmt.Sprint(pa) != fmt.Sprint(pb) || a.msg.Method != b.msg.Method {
			t.Errorf("bodies differ:\nposter %s %s\nmcp-go %s %s", a.msg.Method, a.msg.Params, b.msg.Method, b.msg.Params)
		}
	})
}

// TestPostEventStream: a progress notification during the call
// reaches OnNotification raw; an elicitation the tool asks
// on it is answered through OnRequest and POSTed back.
func TestPostEventStream(t *testing.T) {
	eras(t, func(t *testing.T, modern bool) {
		pe := newPostEnv(t, modern)
		res, err := pe.call(context.Background(), `{"name":"progress","arguments":{},"_meta":{"progressToken":"tok-9"}}`)
		if err != nil || !strings.Contains(string(res), `"text":"done"`) {
			t.Fatalf("progress call = %s, %v", res, err)
		}
		// mcp-go's server queues a session's notifications on one channel
		// that the call's own stream and the session's GET stream both read:
		// the notification may come on either, so after the result too.
		select {
		case p := <-pe.progress:
			if !strings.Contains(string(p), `"progressToken":"tok-9"`) {
				t.Errorf("progress params = %s", p)
			}
		case <-time.After(10 * time.Second):
			t.Error("no progress notification within 10 s of the result")
		}
		pe.probe.verify(t)

		if modern {
			return // 2026-07-28 servers ask on the listen stream or with input_required
		}
		res, err = pe.call(context.Background(), `{"name":"ask","arguments":{}}`)
		if err != nil || !strings.Contains(string(res), `"text":"accept map[name:ada]"`) {
			t.Fatalf("ask call = %s, %v", res, err)
		}
		if pe.asked.Load() != 1 {
			t.Errorf("OnRequest answered %d elicitation/create, want 1", pe.asked.Load())
		}
		pe.probe.verify(t)
		answers := 0
		for _, r := range pe.pb.requests("") {
			if r.msg.IsResponse() {
				answers++
				if r.header.Get("Mcp-Session-Id") == "" || r.header.Get("X-Tenant") != "t1" {
					t.Errorf("answer POST headers %v", r.header)
				}
			}
		}
		if answers != 1 {
			t.Errorf("answers POSTed back: %d, want 1", answers)
		}
	})
}

// TestPostStatuses: what the poster makes of answers other than 200.
func TestPostStatuses(t *testing.T) {
	eras(t, func(t *testing.T, modern bool) {
		pe := newPostEnv(t, modern)
		c := pe.conn()
		answer := func(status int, header http.Header, body string) {
			pe.pb.set(func(w http.ResponseWriter, _ *http.Request, m jsonrpc.Message) bool {
				if m.Method != "tools/call" {
					return false
				}
				for k, v := range header {
					w.Header()[k] = v
				}
				w.WriteHeader(status)
				_, _ = io.WriteString(w, strings.ReplaceAll(body, "$ID", string(m.ID)))
				return true
			})
		}
		call := func() error {
			_, err := c.request(context.Background(), "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`))
			return err
		}

		answer(http.StatusUnauthorized, http.Header{"Www-Authenticate": {`Bearer realm="x", resource_metadata="https://as.example/.well-known/oauth-protected-resource"`}}, "")
		var ae *transport.AuthorizationRequiredError
		if err := call(); !errors.As(err, &ae) || ae.ResourceMetadataURL != "https://as.example/.well-known/oauth-protected-resource" || !isConnErr(context.Background(), err) {
			t.Errorf("401 = %v (%+v)", err, ae)
		}

		long := strings.Repeat("x", 100_000)
		answer(http.StatusInternalServerError, nil, "backend broke "+long)
		err := call()
		if err == nil || !strings.Contains(err.Error(), "status 500: backend broke xxx") || len(err.Error()) > 2*maxErrorSnippet || !isConnErr(context.Background(), err) {
			t.Errorf("500 with a body = %.200v (%d bytes)", err, len(fmt.Sprint(err)))
		}

		answer(http.StatusBadRequest, http.Header{"Content-Type": {"application/json"}}, `{"jsonrpc":"2.0","id":$ID,"error":{"code":-32602,"message":"bad args","data":{"n":1}}}`)
		var je *jsonrpc.Error
		if err := call(); !errors.As(err, &je) || je.Code != -32602 || string(je.Data) != `{"n":1}` {
			t.Errorf("400 with a JSON-RPC error = %v", err)
		}

		answer(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, `{"jsonrpc":"2.0","id":424242,"result":{}}`)
		if err := call(); err == nil || !strings.Contains(err.Error(), "RPC id") {
			t.Errorf("an answer to another id = %v", err)
		}

		big := `{"jsonrpc":"2.0","id":$ID,"result":{"x":"` + strings.Repeat("y", jsonrpc.MaxMessage) + `"}}`
		answer(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, big)
		if err := call(); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("an oversized JSON answer = %.200v", err)
		}
		answer(http.StatusOK, http.Header{"Content-Type": {"text/event-stream"}}, "event: message\ndata: "+big+"\n\n")
		if err := call(); !errors.Is(err, errEventTooLarge) {
			t.Errorf("an oversized event = %.200v", err)
		}

		// 404: the session is lost (2025-11-25), and later requests go
		// nowhere; 2026-07-28 answers -32601 with it.
		answer(http.StatusNotFound, nil, "")
		err = call()
		if modern {
			if !isMethodNotFound(err) {
				t.Errorf("404 on 2026-07-28 = %v, want method not found", err)
			}
			return
		}
		if !errors.Is(err, transport.ErrSessionTerminated) {
			t.Fatalf("404 = %v, want ErrSessionTerminated", err)
		}
		pe.pb.set(func(http.ResponseWriter, *http.Request, jsonrpc.Message) bool { return false })
		before := len(pe.pb.requests("tools/call"))
		if err := call(); !errors.Is(err, transport.ErrSessionTerminated) {
			t.Errorf("a request after the 404 = %v, want ErrSessionTerminated", err)
		}
		if n := len(pe.pb.requests("tools/call")) - before; n != 0 {
			t.Errorf("%d requests went out on the ended session", n)
		}
	})
}

// TestPostCancel: an ended ctx ends a call whose tool blocks; on 2025-11-25
// the backend first gets notifications/cancelled for it, on 2026-07-28 the
// POST closes. A backend that never answers at all is left as promptly.
func TestPostCancel(t *testing.T) {
	eras(t, func(t *testing.T, modern bool) {
		pe := newPostEnv(t, modern)
		for _, stalled := range []bool{false, true} {
			if stalled { // the server reads the request and never answers
				pe.pb.set(func(w http.ResponseWriter, r *http.Request, m jsonrpc.Message) bool {
					if m.Method != "tools/call" {
						return false
					}
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
					pe.blocked <- struct{}{}
					<-r.Context().Done()
					return true
				})
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := pe.call(ctx, `{"name":"block","arguments":{}}`)
				done <- err
			}()
			recvWithin(t, pe.blocked, "the call to block")
			cancel()
			if err := recvWithin(t, done, "the cancelled call"); !errors.Is(err, context.Canceled) {
				t.Fatalf("stalled %v: cancelled call = %v", stalled, err)
			}
			n := len(pe.pb.requests("notifications/cancelled"))
			if want := map[bool]int{false: 1, true: 2}[stalled]; modern {
				if n != 0 {
					t.Errorf("2026-07-28 got %d notifications/cancelled", n)
				}
			} else if n != want {
				t.Errorf("stalled %v: notifications/cancelled sent %d, want %d", stalled, n, want)
			}
		}
		pe.pb.set(func(http.ResponseWriter, *http.Request, jsonrpc.Message) bool { return false })
		if !pe.b.Ready() {
			t.Error("a cancelled call made the backend unready")
		}
		if res, err := pe.call(context.Background(), `{"name":"echo","arguments":{"text":"after"}}`); err != nil || !strings.Contains(string(res), "echo:after") {
			t.Errorf("echo after the cancels = %s, %v", res, err)
		}
	})
}

// TestPostResumesEndedStream: a response stream the server ends before the
// answer, after an event id, is resumed with a GET carrying Last-Event-ID
// (2025-11-25, as mcp-go does), whose stream has the answer.
func TestPostResumesEndedStream(t *testing.T) {
	pe := newPostEnv(t, false)
	var callID atomic.Pointer[string]
	pe.pb.set(func(w http.ResponseWriter, r *http.Request, m jsonrpc.Message) bool {
		switch {
		case m.Method == "tools/call":
			id := string(m.ID)
			callID.Store(&id)
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "id: ev-1\nretry: 10\ndata:\n\n")
			return true
		case r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") == "ev-1":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"resumed\":true}}\n\n", *callID.Load())
			return true
		}
		return false
	})
	start := time.Now()
	res, err := pe.conn().request(context.Background(), "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`))
	if err != nil || string(res) != `{"resumed":true}` {
		t.Fatalf("resumed call = %s, %v", res, err)
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("resumed after %v: the retry field (10 ms) was not used", d)
	}
}

// TestScanEventsMCPGoWay: with a cursor, an event left unfinished at EOF is
// dispatched (not its partial last line), ids and retry are recorded, and
// named events are dispatched with their name.
func TestScanEventsMCPGoWay(t *testing.T) {
	var got []string
	var cur sseCursor
	in := "id: 7\nretry: 250\nevent: other\ndata: a\n\n: keep-alive\ndata: b\ndata: c\n\nid: 8\ndata: d\ndata: partial"
	ended, err := scanEvents(strings.NewReader(in), 1024, &cur, func(ev string, data []byte) bool {
		got = append(got, ev+"="+string(data))
		return true
	})
	if want := "[other=a =b\nc =d]"; fmt.Sprint(got) != want || !ended || err != nil {
		t.Errorf("events %q (ended %v, %v), want %q", got, ended, err, want)
	}
	if cur.lastID != "7" || cur.retry != 250*time.Millisecond || !cur.hasRetry {
		t.Errorf("cursor %+v", cur)
	}
	got = nil
	if err := readEvents(strings.NewReader(in), 1024, func(d []byte) { got = append(got, string(d)) }); err != nil || fmt.Sprint(got) != "[b\nc]" {
		t.Errorf("readEvents %q, %v", got, err)
	}
}

// TestPostRedirect: a request the server redirects (307, as a server
// mounted at /mcp/ answers /mcp) is followed as http.Client follows it, with
// the same body and headers, then and for the later requests.
func TestPostRedirect(t *testing.T) {
	eras(t, func(t *testing.T, modern bool) {
		pe := newPostEnv(t, modern)
		var redirected atomic.Int32
		pe.pb.set(func(w http.ResponseWriter, r *http.Request, m jsonrpc.Message) bool {
			if r.URL.Path == "/mcp" && m.Method == "tools/call" {
				redirected.Add(1)
				http.Redirect(w, r, "/mcp/", http.StatusTemporaryRedirect)
				return true
			}
			return false
		})
		for i := range 2 {
			res, err := pe.call(context.Background(), `{"name":"echo","arguments":{"text":"hop"}}`)
			if err != nil || !strings.Contains(string(res), "echo:hop") {
				t.Fatalf("call %d through a redirect = %s, %v", i, res, err)
			}
		}
		if n := redirected.Load(); n < 2 {
			t.Errorf("redirected %d times", n)
		}
		var calls []seenRequest
		for _, r := range pe.pb.requests("tools/call") {
			calls = append(calls, r)
		}
		last := calls[len(calls)-1]
		if got := last.header.Get("X-Tenant"); got != "t1" {
			t.Errorf("followed request's X-Tenant = %q", got)
		}
		if got := last.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("followed request's Content-Type = %q", got)
		}
	})
}

// TestPostCloseAborts: closing the connection aborts a request in flight,
// and fails one made after.
func TestPostCloseAborts(t *testing.T) {
	pe := newPostEnv(t, true)
	c := pe.conn()
	done := make(chan error, 1)
	go func() {
		_, err := c.request(context.Background(), "tools/call", json.RawMessage(`{"name":"block","arguments":{}}`))
		done <- err
	}()
	recvWithin(t, pe.blocked, "the call to block")
	_ = c.close()
	if err := recvWithin(t, done, "the call on the closed connection"); err == nil {
		t.Fatal("a call on a closed connection succeeded")
	}
	if len(c.post.inflight) != 0 {
		t.Errorf("%d requests still tracked", len(c.post.inflight))
	}
	if _, err := c.request(context.Background(), "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`)); err == nil {
		t.Fatal("a call after the close succeeded")
	}
}

// writeCounter counts the writes that reach it.
type writeCounter struct{ n int }

func (w *writeCounter) Write(p []byte) (int, error) { w.n++; return len(p), nil }

// TestPostRequestOneWrite: net/http writes a request's head and body in one
// write only for a body it knows to be in memory; any other body type makes
// it flush the head first, which costs a syscall per call here and a read at
// the backend.
func TestPostRequestOneWrite(t *testing.T) {
	pe := newPostEnv(t, false)
	c := pe.conn()
	req, err := c.post.newRequest(context.Background(), "2025-11-25", "s1", []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wc writeCounter
	bw := bufio.NewWriterSize(&wc, 8<<10)
	if err := req.Write(bw); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if wc.n != 1 {
		t.Errorf("the request took %d writes, want 1", wc.n)
	}
}
