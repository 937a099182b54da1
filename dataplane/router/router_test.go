package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/router"
)

// fakeServer is a backend whose answers the test decides.
type fakeServer struct {
	name  string
	state mcpmeshv1.BackendState // zero: healthy
	items [4][]catalog.Item
	caps  json.RawMessage
	cache [4]catalog.Cache // list hints (2026-07-28 backends)
	// do answers a request; nil answers {}.
	do func(ctx context.Context, r backend.Request) (json.RawMessage, error)

	mu   sync.Mutex
	sent []backend.Request
}

func (f *fakeServer) Name() string { return f.name }
func (f *fakeServer) State() mcpmeshv1.BackendState {
	if f.state == mcpmeshv1.BackendState_BACKEND_STATE_UNSPECIFIED {
		return mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
	}
	return f.state
}
func (f *fakeServer) Prefix() string                { return f.name + "__" }
func (f *fakeServer) ToolRetryable(string) bool     { return false }
func (f *fakeServer) Capabilities() json.RawMessage { return f.caps }
func (f *fakeServer) Notify(context.Context, *backend.ClientSession, string, json.RawMessage) error {
	return nil
}
func (f *fakeServer) Connected() bool { return true }
func (f *fakeServer) PerClient() bool { return false }
func (f *fakeServer) OpenSession(context.Context, backend.SessionInit) (backend.Upstream, error) {
	return backend.Upstream{}, errors.New("shared")
}
func (f *fakeServer) CloseSession(context.Context, *backend.ClientSession) error { return nil }
func (f *fakeServer) Listen(context.Context, *backend.ClientSession) error       { return nil }
func (f *fakeServer) Catalog() (catalog.Server, bool) {
	return catalog.Server{Name: f.name, Prefix: f.name + "__", Lists: f.items, Cache: f.cache}, true
}
func (f *fakeServer) FetchPage(context.Context, catalog.Kind, string) (catalog.Page, error) {
	return catalog.Page{}, errors.New("not paginated")
}
func (f *fakeServer) Request(ctx context.Context, r backend.Request) (json.RawMessage, error) {
	f.mu.Lock()
	f.sent = append(f.sent, r)
	f.mu.Unlock()
	if f.do == nil {
		return json.RawMessage(`{}`), nil
	}
	return f.do(ctx, r)
}

func (f *fakeServer) requests() []backend.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]backend.Request(nil), f.sent...)
}

type fakeServers []*fakeServer

func (s fakeServers) List() []router.Server {
	out := make([]router.Server, len(s))
	for i, f := range s {
		out[i] = f
	}
	return out
}

func (s fakeServers) Get(name string) (router.Server, bool) {
	for _, f := range s {
		if f.name == name {
			return f, true
		}
	}
	return nil, false
}

// stream records what the router sends a client during a request.
type stream struct {
	mu   sync.Mutex
	msgs []string
	got  chan string
}

func newStream() *stream { return &stream{got: make(chan string, 64)} }

func (s *stream) Send(msg []byte) error {
	s.mu.Lock()
	s.msgs = append(s.msgs, string(msg))
	s.mu.Unlock()
	s.got <- string(msg)
	return nil
}

func (s *stream) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was sent to the client")
		return ""
	}
}

// clients records pushes to session streams.
type clients struct {
	mu     sync.Mutex
	pushed map[string][]string
	all    []string
}

func (c *clients) Push(id string, msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pushed == nil {
		c.pushed = map[string][]string{}
	}
	c.pushed[id] = append(c.pushed[id], string(msg))
	return true
}

func (c *clients) Broadcast(msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, string(msg))
}

func tool(name string) catalog.Item {
	return catalog.Item{Key: name, Raw: json.RawMessage(`{"name":"` + name + `","inputSchema":{"type":"object"}}`)}
}

func newRouter(t *testing.T, servers ...*fakeServer) (*router.Router, *clients) {
	t.Helper()
	r := router.New(router.Options{Servers: fakeServers(servers)})
	c := &clients{}
	r.SetClients(c)
	r.Refresh()
	return r, c
}

func request(method, params string) *jsonrpc.Message {
	m, err := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":7,"method":"` + method + `","params":` + params + `}`))
	if err != nil {
		panic(err)
	}
	return &m
}

var session = &front.Session{ID: "s1", Capabilities: json.RawMessage(`{"sampling":{},"elicitation":{"form":{}},"roots":{}}`)}

func TestCallRoutesByPrefixAndForwardsArgumentsRaw(t *testing.T) {
	gh := &fakeServer{name: "github", items: [4][]catalog.Item{catalog.Tools: {tool("search")}},
		do: func(_ context.Context, r backend.Request) (json.RawMessage, error) {
			return json.RawMessage(`{"content":[{"type":"text","text":"ok"}],"structuredContent":{"n":12345678901234567890}}`), nil
		}}
	r, _ := newRouter(t, gh)
	res, err := r.Handle(context.Background(), session, request("tools/call",
		`{"name":"github__search","arguments":{"q":"<a&b>","big":12345678901234567890,"z":1, "a":2}}`), newStream())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res), `12345678901234567890`) {
		t.Errorf("result changed: %s", res)
	}
	sent := gh.requests()
	if len(sent) != 1 || sent[0].Method != "tools/call" {
		t.Fatalf("sent %+v", sent)
	}
	want := `{"name":"search","arguments":{"q":"<a&b>","big":12345678901234567890,"z":1, "a":2}}`
	if string(sent[0].Params) != want {
		t.Errorf("params upstream = %s\nwant %s", sent[0].Params, want)
	}
}

func TestUnknownToolIsAToolError(t *testing.T) {
	r, _ := newRouter(t)
	res, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"nope"}`), newStream())
	if err != nil || !strings.Contains(string(res), `"isError":true`) || !strings.Contains(string(res), `unknown tool`) {
		t.Fatalf("res %s err %v", res, err)
	}
}

// TestCallToServerNeedingAuthorization: a server waiting for OAuth lists
// nothing, but a call to one of its tools reaches it and gets its error.
func TestCallToServerNeedingAuthorization(t *testing.T) {
	gh := &fakeServer{name: "gh", state: mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION,
		do: func(context.Context, backend.Request) (json.RawMessage, error) {
			return nil, errors.New("server gh needs OAuth authorization: open http://dp.example/oauth")
		}}
	r, _ := newRouter(t, gh)
	res, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"gh__search"}`), newStream())
	if err != nil || !strings.Contains(string(res), "needs OAuth authorization: open http://dp.example/oauth") {
		t.Fatalf("res %s err %v", res, err)
	}
	if sent := gh.requests(); len(sent) != 1 || string(sent[0].Params) != `{"name":"search"}` {
		t.Errorf("sent %+v", sent)
	}
	res, err = r.Handle(context.Background(), session, request("tools/call", `{"name":"other__search"}`), newStream())
	if err != nil || !strings.Contains(string(res), "unknown tool") {
		t.Errorf("a name of no server: res %s err %v", res, err)
	}
}

func TestProgressGoesBackWithTheClientsToken(t *testing.T) {
	var r *router.Router
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("slow")}}}
	srv.do = func(ctx context.Context, req backend.Request) (json.RawMessage, error) {
		s, e, ok, _ := jsonrpc.Lookup(req.Params, "_meta")
		if !ok {
			return nil, errors.New("no _meta upstream")
		}
		token, _, _ := jsonrpc.LookupString(req.Params[s:e], "progressToken")
		if token == "" || token == "1" {
			return nil, errors.New("the client's token went upstream: " + string(req.Params))
		}
		n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"` + token + `","progress":1,"total":2}}`))
		r.OnNotification("a", "", &n)
		return json.RawMessage(`{"content":[]}`), nil
	}
	r, _ = newRouter(t, srv)
	out := newStream()
	if _, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"a__slow","_meta":{"progressToken":1}}`), out); err != nil {
		t.Fatal(err)
	}
	if got := out.next(t); got != `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"total":2}}` {
		t.Errorf("progress = %s", got)
	}
}

func TestSamplingIsRelayedToTheCallingClientAndAnsweredBack(t *testing.T) {
	var r *router.Router
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("ask")}}}
	srv.do = func(ctx context.Context, req backend.Request) (json.RawMessage, error) {
		m, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":99,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}`))
		res, err := r.OnRequest(ctx, "a", "", &m)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(`{"content":[{"type":"text","text":` + string(mustQuote(string(res))) + `}]}`), nil
	}
	r, _ = newRouter(t, srv)
	out := newStream()
	done := make(chan json.RawMessage, 1)
	go func() {
		res, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"a__ask"}`), out)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	sent, err := jsonrpc.Parse([]byte(out.next(t)))
	if err != nil || sent.Method != "sampling/createMessage" || sent.ID == nil {
		t.Fatalf("client got %+v, %v", sent, err)
	}
	answer, _ := jsonrpc.Parse(jsonrpc.Response(sent.ID, json.RawMessage(`{"model":"m","role":"assistant"}`)))
	r.Respond(context.Background(), session, &answer)
	select {
	case res := <-done:
		if !strings.Contains(string(res), `model`) {
			t.Errorf("result %s", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call never finished")
	}
}

func TestRequestsAClientCannotHandleAreRefused(t *testing.T) {
	var r *router.Router
	var got error
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("ask")}}}
	srv.do = func(ctx context.Context, req backend.Request) (json.RawMessage, error) {
		m, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"elicitation/create","params":{"mode":"url","url":"https://x","message":"m","elicitationId":"e"}}`))
		_, got = r.OnRequest(ctx, "a", "", &m)
		return json.RawMessage(`{}`), nil
	}
	r, _ = newRouter(t, srv)
	out := newStream()
	if _, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"a__ask"}`), out); err != nil {
		t.Fatal(err)
	}
	var je *jsonrpc.Error
	if !errors.As(got, &je) || je.Code != jsonrpc.CodeMethodNotFound || !strings.Contains(je.Message, "URL-mode elicitation") {
		t.Fatalf("OnRequest = %v; want -32601 naming URL-mode elicitation", got)
	}
	if len(out.msgs) != 0 {
		t.Errorf("the client was sent %v", out.msgs)
	}
}

func TestCancelledReachesTheUpstreamCall(t *testing.T) {
	started := make(chan struct{})
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("hang")}},
		do: func(ctx context.Context, _ backend.Request) (json.RawMessage, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}}
	r, _ := newRouter(t, srv)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"a__hang"}`), newStream())
		errc <- err
	}()
	<-started
	// Another session cancelling the same request id does nothing.
	other := &front.Session{ID: "s2"}
	n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}`))
	r.Notify(context.Background(), other, &n)
	select {
	case <-errc:
		t.Fatal("a stranger cancelled the call")
	case <-time.After(50 * time.Millisecond):
	}
	r.Notify(context.Background(), session, &n)
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not cancelled")
	}
}

func TestListChangedIsBroadcastWhenTheCatalogChanges(t *testing.T) {
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("x")}}}
	r, c := newRouter(t, srv)
	r.Refresh()
	if len(c.all) != 0 {
		t.Fatalf("an unchanged refresh broadcast %v", c.all)
	}
	srv.items[catalog.Tools] = append(srv.items[catalog.Tools], tool("y"))
	r.Refresh()
	if len(c.all) != 1 || !strings.Contains(c.all[0], "notifications/tools/list_changed") {
		t.Fatalf("broadcast %v", c.all)
	}
}

func TestLogMessagesHonourEachClientsLevel(t *testing.T) {
	srv := &fakeServer{name: "a", caps: json.RawMessage(`{"logging":{}}`)}
	r, c := newRouter(t, srv)
	quiet := &front.Session{ID: "quiet"}
	loud := &front.Session{ID: "loud"}
	for s, level := range map[*front.Session]string{quiet: "error", loud: "debug"} {
		if _, err := r.Handle(context.Background(), s, request("logging/setLevel", `{"level":"`+level+`"}`), newStream()); err != nil {
			t.Fatal(err)
		}
	}
	if sent := srv.requests(); len(sent) != 2 || string(sent[1].Params) != `{"level":"debug"}` {
		t.Errorf("upstream levels %v", sent)
	}
	n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}`))
	r.OnNotification("a", "", &n)
	if len(c.pushed["loud"]) != 1 || len(c.pushed["quiet"]) != 0 {
		t.Errorf("pushed %v", c.pushed)
	}
	if _, err := r.Handle(context.Background(), quiet, request("logging/setLevel", `{"level":"loudest"}`), newStream()); err == nil {
		t.Error("an unknown level was accepted")
	}
}

func TestSubscriptionsAreSharedUpstreamAndFannedOut(t *testing.T) {
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Resources: {{Key: "file:///x", Raw: json.RawMessage(`{"uri":"file:///x","name":"x"}`)}}}}
	r, c := newRouter(t, srv)
	s1, s2 := &front.Session{ID: "1"}, &front.Session{ID: "2"}
	for _, s := range []*front.Session{s1, s2} {
		if _, err := r.Handle(context.Background(), s, request("resources/subscribe", `{"uri":"file:///x"}`), newStream()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d subscribe requests upstream, want 1", n)
	}
	n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///x"}}`))
	r.OnNotification("a", "", &n)
	if len(c.pushed["1"]) != 1 || len(c.pushed["2"]) != 1 {
		t.Errorf("pushed %v", c.pushed)
	}
	if _, err := r.Handle(context.Background(), s1, request("resources/unsubscribe", `{"uri":"file:///x"}`), newStream()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("unsubscribed upstream while another client is subscribed")
	}
	r.Ended(s2)
	if sent := srv.requests(); len(sent) != 2 || sent[1].Method != "resources/unsubscribe" {
		t.Errorf("the last subscriber's end did not unsubscribe upstream: %v", sent)
	}
}

func mustQuote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func TestTasksAreRoutedByTheServerTheirIDNames(t *testing.T) {
	srv := &fakeServer{name: "research", caps: json.RawMessage(`{"tasks":{}}`), items: [4][]catalog.Item{catalog.Tools: {tool("slow")}}}
	srv.do = func(_ context.Context, r backend.Request) (json.RawMessage, error) {
		switch r.Method {
		case "tools/call":
			return json.RawMessage(`{"task":{"taskId":"t-1","status":"working"}}`), nil
		case "tasks/get":
			id, _, _ := jsonrpc.LookupString(r.Params, "taskId")
			return json.RawMessage(`{"taskId":"` + id + `","status":"completed"}`), nil
		case "tasks/list":
			return json.RawMessage(`{"tasks":[{"taskId":"t-1"},{"taskId":"t-2"}]}`), nil
		}
		return nil, errors.New("unexpected " + r.Method)
	}
	r, _ := newRouter(t, srv)
	res, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"research__slow","task":{"ttl":1000}}`), newStream())
	if err != nil || string(res) != `{"task":{"taskId":"research.t-1","status":"working"}}` {
		t.Fatalf("tools/call = %s, %v", res, err)
	}
	res, err = r.Handle(context.Background(), session, request("tasks/get", `{"taskId":"research.t-1"}`), newStream())
	if err != nil || string(res) != `{"taskId":"research.t-1","status":"completed"}` {
		t.Fatalf("tasks/get = %s, %v", res, err)
	}
	if sent := srv.requests(); string(sent[1].Params) != `{"taskId":"t-1"}` {
		t.Errorf("upstream tasks/get params %s", sent[1].Params)
	}
	res, err = r.Handle(context.Background(), session, request("tasks/list", `{}`), newStream())
	if err != nil || string(res) != `{"tasks":[{"taskId":"research.t-1"},{"taskId":"research.t-2"}]}` {
		t.Fatalf("tasks/list = %s, %v", res, err)
	}
	for _, bad := range []string{`{"taskId":"nodot"}`, `{"taskId":"gone.t-1"}`, `{}`} {
		if _, err := r.Handle(context.Background(), session, request("tasks/get", bad), newStream()); err == nil {
			t.Errorf("tasks/get %s accepted", bad)
		}
	}
}
