package router_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
	"github.com/mcpmesh/mcpmesh/dataplane/router"
)

// replica is one data plane of a cluster: a front and a router on a real
// HTTP listener, with its own copy of a shared server (its own stdio child).
type replica struct {
	r    *router.Router
	srv  *httptest.Server
	be   *fakeServer
	addr string
}

func newReplica(t *testing.T, secret []byte, be *fakeServer) *replica {
	t.Helper()
	k := keys.New()
	k.SetSecret(secret)
	srv := httptest.NewUnstartedServer(nil)
	addr := srv.Listener.Addr().String()
	r := router.New(router.Options{Servers: fakeServers{be}, Advertise: addr, Keys: k})
	f := front.New(front.Options{Router: r, Keys: k})
	r.SetClients(f)
	srv.Config.Handler = f.Handler()
	srv.Start()
	r.Refresh()
	t.Cleanup(func() {
		f.Close()
		srv.Close()
		r.CloseIdle()
	})
	return &replica{r: r, srv: srv, be: be, addr: addr}
}

// post sends one message of session id to a replica and returns the
// messages of its answer (one JSON body or each SSE event).
func post(t *testing.T, rp *replica, id, body string) (msgs []string, sessionID string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, rp.srv.URL+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if id != "" {
		req.Header.Set("Mcp-Session-Id", id)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("POST %s: HTTP %s: %s", body, res.Status, b)
	}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		for _, line := range strings.Split(string(b), "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				msgs = append(msgs, d)
			}
		}
	} else if len(b) > 0 {
		msgs = []string{string(b)}
	}
	return msgs, res.Header.Get("Mcp-Session-Id")
}

func initialize(t *testing.T, rp *replica) string {
	t.Helper()
	_, id := post(t, rp, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if id == "" {
		t.Fatal("initialize gave no session id")
	}
	return id
}

func result(t *testing.T, msgs []string) json.RawMessage {
	t.Helper()
	last := msgs[len(msgs)-1]
	m, err := jsonrpc.Parse([]byte(last))
	if err != nil || m.Error != nil || !m.IsResponse() {
		t.Fatalf("answer %s: %v %v", last, err, m.Error)
	}
	return m.Result
}

func TestSharedServersOfASessionAreServedOnItsHome(t *testing.T) {
	secret := bytes.Repeat([]byte{9}, 32)
	shared := func(name string) *fakeServer {
		be := &fakeServer{name: "ev", caps: json.RawMessage(`{"tasks":{},"logging":{},"resources":{"subscribe":true}}`),
			items: [4][]catalog.Item{catalog.Tools: {tool("slow")}, catalog.Resources: {{Key: "file:///x", Raw: json.RawMessage(`{"uri":"file:///x","name":"x"}`)}}}}
		be.do = func(_ context.Context, r backend.Request) (json.RawMessage, error) {
			switch r.Method {
			case "tools/call":
				return json.RawMessage(`{"task":{"taskId":"t-1","status":"working"}}`), nil
			case "tasks/get":
				return json.RawMessage(`{"taskId":"t-1","status":"completed","by":"` + name + `"}`), nil
			}
			return json.RawMessage(`{}`), nil
		}
		return be
	}
	a, b := newReplica(t, secret, shared("a")), newReplica(t, secret, shared("b"))
	id := initialize(t, a) // a is the session's home

	// A task-augmented call that lands on b is made in a's child.
	msgs, _ := post(t, b, id, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ev__slow","arguments":{},"task":{"ttl":1000}}}`)
	res := result(t, msgs)
	if len(a.be.requests()) != 1 || len(b.be.requests()) != 0 {
		t.Fatalf("the call reached a %d times and b %d times, want a once", len(a.be.requests()), len(b.be.requests()))
	}
	taskID, _, _ := jsonrpc.LookupString(res, "taskId")
	if s, e, ok, _ := jsonrpc.Lookup(res, "task"); ok {
		taskID, _, _ = jsonrpc.LookupString(res[s:e], "taskId")
	}
	if !strings.HasPrefix(taskID, "ev.@") || !strings.HasSuffix(taskID, ".t-1") {
		t.Fatalf("task id %q does not name its replica", taskID)
	}

	// tasks/get on b reaches the child that owns the task: its id names
	// the replica (tasks are not routed by the session's home).
	msgs, _ = post(t, b, id, `{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{"taskId":`+string(mustQuote(taskID))+`}}`)
	res = result(t, msgs)
	if by, _, _ := jsonrpc.LookupString(res, "by"); by != "a" {
		t.Errorf("tasks/get answered by %q, want a: %s", by, res)
	}
	if got, _, _ := jsonrpc.LookupString(res, "taskId"); got != taskID {
		t.Errorf("tasks/get says task %q, want %q", got, taskID)
	}
	// So does a 2026-07-28 client's (no session: the task id alone routes
	// it), relayed with the _meta and headers its revision requires.
	mreq, _ := http.NewRequest(http.MethodPost, b.srv.URL+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":5,"method":"tasks/get","params":{"taskId":`+string(mustQuote(taskID))+
		`,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`))
	mreq.Header.Set("Content-Type", "application/json")
	mreq.Header.Set("Accept", "application/json, text/event-stream")
	mreq.Header.Set("MCP-Protocol-Version", "2026-07-28")
	mreq.Header.Set("Mcp-Method", "tasks/get")
	mres, err := http.DefaultClient.Do(mreq)
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	if by, _, _ := jsonrpc.LookupString(result(t, []string{string(mbody)}), "by"); mres.StatusCode != 200 || by != "a" {
		t.Errorf("2026-07-28 tasks/get on b: HTTP %s %s, want a's answer", mres.Status, mbody)
	}
	// A forged owner is refused, not followed.
	forged := strings.Replace(taskID, taskID[4:strings.Index(taskID[4:], ".")+4], "MTI3LjAuMC4xOjE", 1)
	msgs, _ = post(t, b, id, `{"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{"taskId":`+string(mustQuote(forged))+`}}`)
	if m, _ := jsonrpc.Parse([]byte(msgs[0])); m.Error == nil || m.Error.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("forged task id %q: %s", forged, msgs[0])
	}

	// The client's stream is on b; its subscription, made on b, is a's
	// child's; a's update reaches the stream on b.
	greq, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/mcp", nil)
	greq.Header.Set("Accept", "text/event-stream")
	greq.Header.Set("Mcp-Session-Id", id)
	greq.Header.Set("MCP-Protocol-Version", "2025-11-25")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gres, err := http.DefaultClient.Do(greq.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer gres.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(gres.Body)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- d
			}
		}
		close(events)
	}()
	post(t, b, id, `{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"file:///x"}}`)
	if n := len(b.be.requests()); n != 0 {
		t.Fatalf("b's child got %d requests, want none", n)
	}
	if sent := a.be.requests(); sent[len(sent)-1].Method != "resources/subscribe" {
		t.Fatalf("a's child was not subscribed: %v", sent)
	}
	n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///x"}}`))
	// b follows a's stream once its GET is open: until then a's update
	// has nowhere to go, so send it until it arrives.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("b's stream ended")
			}
			if strings.Contains(e, "notifications/resources/updated") {
				return
			}
		case <-tick.C:
			a.r.OnNotification("ev", "", &n)
		case <-deadline:
			t.Fatal("a's resource update did not reach the client's stream on b")
		}
	}
}

func TestCancellingASharedServersCallReachesItsHome(t *testing.T) {
	secret := bytes.Repeat([]byte{3}, 32)
	started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	blocking := func() *fakeServer {
		be := &fakeServer{name: "ev", items: [4][]catalog.Item{catalog.Tools: {tool("slow")}}}
		be.do = func(ctx context.Context, r backend.Request) (json.RawMessage, error) {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- struct{}{}
			return nil, ctx.Err()
		}
		return be
	}
	a, b, c := newReplica(t, secret, blocking()), newReplica(t, secret, blocking()), newReplica(t, secret, blocking())
	id := initialize(t, a)
	done := make(chan []string, 1)
	go func() {
		msgs, _ := post(t, b, id, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ev__slow","arguments":{}}}`)
		done <- msgs
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not start")
	}
	if len(a.be.requests()) != 1 {
		t.Fatalf("the call did not run on the home")
	}
	// The cancellation lands on a third replica.
	post(t, c, id, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}`)
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancellation did not reach the call on the home")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled call did not end")
	}
}
