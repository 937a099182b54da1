package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// askSampling is a 2026-07-28 backend's tool that needs a sampling: it
// answers input_required until the retry carries the answer and the state.
func askSampling(t *testing.T) *fakeServer {
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("ask")}}}
	srv.do = func(_ context.Context, r backend.Request) (json.RawMessage, error) {
		s, e, ok, _ := jsonrpc.Lookup(r.Params, "inputResponses")
		if !ok {
			return json.RawMessage(`{"resultType":"input_required","inputRequests":{"s1":{"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}},"requestState":"st-1"}`), nil
		}
		var answers map[string]struct{ Model string }
		if err := json.Unmarshal(r.Params[s:e], &answers); err != nil || answers["s1"].Model != "m" {
			t.Errorf("retry's inputResponses %s, want s1 answered by model m", r.Params[s:e])
		}
		if st, _, _ := jsonrpc.LookupString(r.Params, "requestState"); st != "st-1" {
			t.Errorf("retry's requestState %q, want st-1", st)
		}
		return json.RawMessage(`{"content":[{"type":"text","text":"done"}],"resultType":"complete"}`), nil
	}
	return srv
}

func TestInputRequiredIsBridgedForSessionClients(t *testing.T) {
	srv := askSampling(t)
	r, _ := newRouter(t, srv)
	out := newStream()
	done := make(chan json.RawMessage, 1)
	go func() {
		res, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"a__ask","arguments":{}}`), out)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	sent, err := jsonrpc.Parse([]byte(out.next(t)))
	if err != nil || sent.Method != "sampling/createMessage" || sent.ID == nil || !strings.Contains(string(sent.Params), `"maxTokens":5`) {
		t.Fatalf("client got %+v, %v; want the input request as sampling/createMessage", sent, err)
	}
	answer, _ := jsonrpc.Parse(jsonrpc.Response(sent.ID, json.RawMessage(`{"model":"m","role":"assistant","content":{"type":"text","text":"x"}}`)))
	r.Respond(context.Background(), session, &answer)
	select {
	case res := <-done:
		if !strings.Contains(string(res), `"done"`) {
			t.Errorf("result %s, want the complete one", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call never finished")
	}
	if n := len(srv.requests()); n != 2 {
		t.Errorf("%d requests upstream, want the call and its retry", n)
	}
}

func TestInputRequiredWithoutTheCapabilityFailsNamingIt(t *testing.T) {
	srv := askSampling(t)
	r, _ := newRouter(t, srv)
	out := newStream()
	bare := &front.Session{ID: "s2", Capabilities: json.RawMessage(`{}`)}
	_, err := r.Handle(context.Background(), bare, request("tools/call", `{"name":"a__ask"}`), out)
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != jsonrpc.CodeMethodNotFound ||
		!strings.Contains(je.Message, "sampling/createMessage") || !strings.Contains(je.Message, `"sampling" capability`) || !strings.Contains(je.Message, `server "a"`) {
		t.Fatalf("error %v; want -32601 naming sampling/createMessage, the capability and the server", err)
	}
	if len(out.msgs) != 0 {
		t.Errorf("the client was sent %v", out.msgs)
	}
}

func TestInputRequiredPassesThroughToModernClients(t *testing.T) {
	srv := askSampling(t)
	r, _ := newRouter(t, srv)
	res, err := r.Handle(context.Background(), modern(""), request("tools/call", `{"name":"a__ask"}`), newStream())
	if err != nil || !strings.Contains(string(res), `"input_required"`) || !strings.Contains(string(res), `"st-1"`) {
		t.Fatalf("result %s, %v; want the input_required result as the backend sent it", res, err)
	}
}

func TestModernListsCarryTheBackendsMinimumTTL(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       catalog.Cache
		ttl, scope string
	}{
		{"both public", catalog.Cache{TTLms: 60_000, Public: true}, catalog.Cache{TTLms: 30_000, Public: true}, `"ttlMs":30000`, `"cacheScope":"public"`},
		{"one private", catalog.Cache{TTLms: 60_000, Public: true}, catalog.Cache{TTLms: 90_000}, `"ttlMs":60000`, `"cacheScope":"private"`},
		{"a 2025 backend", catalog.Cache{TTLms: 60_000, Public: true}, catalog.Cache{}, `"ttlMs":0`, `"cacheScope":"private"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("t")}}, cache: [4]catalog.Cache{catalog.Tools: tc.a}}
			b := &fakeServer{name: "b", items: [4][]catalog.Item{catalog.Tools: {tool("t")}}, cache: [4]catalog.Cache{catalog.Tools: tc.b}}
			r, _ := newRouter(t, a, b)
			res, err := r.Handle(context.Background(), modern(""), request("tools/list", `{}`), newStream())
			if err != nil {
				t.Fatal(err)
			}
			decode(t, res)
			if !strings.Contains(string(res), tc.ttl) || !strings.Contains(string(res), tc.scope) || strings.Count(string(res), `"ttlMs"`) != 1 {
				t.Errorf("list %s; want %s and %s once", res, tc.ttl, tc.scope)
			}
			legacy, err := r.Handle(context.Background(), session, request("tools/list", `{}`), newStream())
			if err != nil || strings.Contains(string(legacy), "ttlMs") {
				t.Errorf("a session's list %s, %v: want no hints", legacy, err)
			}
		})
	}
}

func TestRequestsNameTheirCaller(t *testing.T) {
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("t")}}, caps: json.RawMessage(`{"tools":{}}`)}
	r, _ := newRouter(t, srv)
	s := &front.Session{ID: "s3", ClientName: "alice", ClientVersion: "2", Capabilities: json.RawMessage(`{"roots":{}}`)}
	if _, err := r.Handle(context.Background(), s, request("logging/setLevel", `{"level":"warning"}`), newStream()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(context.Background(), s, request("tools/call", `{"name":"a__t"}`), newStream()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(context.Background(), modern("error"), request("tools/call", `{"name":"a__t"}`), newStream()); err != nil {
		t.Fatal(err)
	}
	var callers []*backend.Caller
	for _, q := range srv.requests() {
		if q.Method == "tools/call" {
			callers = append(callers, q.Caller)
		}
	}
	if len(callers) != 2 || callers[0] == nil || callers[1] == nil {
		t.Fatalf("callers %v", callers)
	}
	if c := callers[0]; c.Name != "alice" || c.Version != "2" || c.LogLevel != "warning" || string(c.Capabilities) != `{"roots":{}}` {
		t.Errorf("session caller %+v", c)
	}
	if c := callers[1]; c.LogLevel != "error" || string(c.Capabilities) != `{"sampling":{}}` {
		t.Errorf("stateless caller %+v", c)
	}
}
