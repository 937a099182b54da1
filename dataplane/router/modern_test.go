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
	"github.com/mcpmesh/mcpmesh/dataplane/router"
)

// modern is a request of the 2026-07-28 stateless revision, as the front
// makes it from the _meta.
func modern(level string) *front.Session {
	return &front.Session{Protocol: "2026-07-28", Capabilities: json.RawMessage(`{"sampling":{}}`), LogLevel: level, Transport: front.TransportStreamableHTTP}
}

func decode(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return m
}

func rpcError(t *testing.T, err error, code int) *jsonrpc.Error {
	t.Helper()
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != code {
		t.Fatalf("error %v, want code %d", err, code)
	}
	return je
}

func TestModernDiscoverIsAnsweredLocally(t *testing.T) {
	srv := &fakeServer{name: "a"}
	r, _ := newRouter(t, srv)
	res, err := r.Handle(context.Background(), modern(""), request("server/discover", `{"_meta":{}}`), newStream())
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, res)
	if m["resultType"] != "complete" || m["ttlMs"] != 0.0 || m["cacheScope"] != "private" {
		t.Errorf("hints: %s", res)
	}
	if v, _ := json.Marshal(m["supportedVersions"]); string(v) != `["2026-07-28","2025-11-25","2025-06-18","2025-03-26","2024-11-05"]` {
		t.Errorf("supportedVersions %s", v)
	}
	caps, _ := m["capabilities"].(map[string]any)
	for _, c := range []string{"tools", "prompts", "resources", "completions", "logging"} {
		if _, ok := caps[c]; !ok {
			t.Errorf("capability %s missing: %s", c, res)
		}
	}
	info, _ := m["_meta"].(map[string]any)["io.modelcontextprotocol/serverInfo"].(map[string]any)
	if info["name"] != "mcpmesh" {
		t.Errorf("serverInfo: %s", res)
	}
	if _, ok := m["serverInfo"]; ok {
		t.Error("a top-level serverInfo")
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("discover went upstream %d times", n)
	}
	// A session's discover is still refused.
	_, err = r.Handle(context.Background(), session, request("server/discover", `{}`), newStream())
	rpcError(t, err, jsonrpc.CodeMethodNotFound)
}

func TestModernRemovedMethodsAreNotFound(t *testing.T) {
	srv := &fakeServer{name: "a", caps: json.RawMessage(`{"logging":{},"resources":{"subscribe":true}}`),
		items: [4][]catalog.Item{catalog.Resources: {{Key: "file:///x", Raw: json.RawMessage(`{"uri":"file:///x","name":"x"}`)}}}}
	r, _ := newRouter(t, srv)
	for _, tt := range []struct{ method, params string }{
		{"initialize", `{"protocolVersion":"2026-07-28"}`},
		{"ping", `{}`},
		{"logging/setLevel", `{"level":"debug"}`},
		{"resources/subscribe", `{"uri":"file:///x"}`},
		{"resources/unsubscribe", `{"uri":"file:///x"}`},
		{"no/such", `{}`},
	} {
		t.Run(tt.method, func(t *testing.T) {
			_, err := r.Handle(context.Background(), modern(""), request(tt.method, tt.params), newStream())
			je := rpcError(t, err, jsonrpc.CodeMethodNotFound)
			if !strings.Contains(je.Message, tt.method) {
				t.Errorf("message %q does not name the method", je.Message)
			}
		})
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests went upstream", n)
	}
	// Sessions keep them.
	if res, err := r.Handle(context.Background(), session, request("ping", `{}`), newStream()); err != nil || string(res) != `{}` {
		t.Errorf("session ping = %s, %v", res, err)
	}
}

func TestModernResultsAreDecorated(t *testing.T) {
	var answer json.RawMessage
	srv := &fakeServer{name: "a", caps: json.RawMessage(`{"resources":{}}`),
		items: [4][]catalog.Item{catalog.Tools: {tool("t")}, catalog.Resources: {{Key: "file:///x", Raw: json.RawMessage(`{"uri":"file:///x","name":"x"}`)}}},
		do:    func(context.Context, backend.Request) (json.RawMessage, error) { return answer, nil }}
	r, _ := newRouter(t, srv)
	const info = `"io.modelcontextprotocol/serverInfo":{"name":"mcpmesh","version":`
	tests := []struct {
		name, method, params, upstream string
		want                           []string // substrings of the result
		not                            []string
	}{
		{"list: hints and resultType", "tools/list", `{}`, ``,
			[]string{`"resultType":"complete"`, `"ttlMs":0`, `"cacheScope":"private"`, info, `"tools":[{"name":"a__t"`}, nil},
		{"call: resultType, no hints", "tools/call", `{"name":"a__t"}`, `{"content":[]}`,
			[]string{`"resultType":"complete"`, info, `"content":[]`}, []string{"ttlMs", "cacheScope"}},
		{"input_required is kept", "tools/call", `{"name":"a__t"}`, `{"resultType":"input_required","inputRequests":{},"requestState":"s"}`,
			[]string{`"resultType":"input_required"`, `"requestState":"s"`}, []string{"complete"}},
		{"read keeps the backend's hints", "resources/read", `{"uri":"file:///x"}`, `{"contents":[],"ttlMs":5000,"cacheScope":"public"}`,
			[]string{`"ttlMs":5000`, `"cacheScope":"public"`, `"resultType":"complete"`}, []string{`"ttlMs":0`, "private"}},
		{"serverInfo joins the result's _meta", "tools/call", `{"name":"a__t"}`, `{"content":[],"_meta":{"k":1}}`,
			[]string{`"_meta":{"k":1,` + info}, nil},
		{"an empty result", "tools/call", `{"name":"a__t"}`, `{}`,
			[]string{`{"resultType":"complete","_meta":{` + info}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer = json.RawMessage(tt.upstream)
			res, err := r.Handle(context.Background(), modern(""), request(tt.method, tt.params), newStream())
			if err != nil {
				t.Fatal(err)
			}
			decode(t, res)
			for _, w := range tt.want {
				if !strings.Contains(string(res), w) {
					t.Errorf("%s lacks %s", res, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(string(res), w) {
					t.Errorf("%s has %s", res, w)
				}
			}
			if strings.Count(string(res), `"resultType"`) != 1 {
				t.Errorf("resultType twice: %s", res)
			}
			if tt.upstream == "" || strings.Contains(tt.upstream, "input_required") {
				return // a session's input_required is bridged (era_test.go)
			}
			// A session sees the backend's bytes.
			legacy, err := r.Handle(context.Background(), session, request(tt.method, tt.params), newStream())
			if err != nil || string(legacy) != tt.upstream {
				t.Errorf("session result %s, %v; want %s", legacy, err, tt.upstream)
			}
		})
	}
}

func TestModernMetaIsStrippedTowardsTheBackend(t *testing.T) {
	srv := &fakeServer{name: "a", items: [4][]catalog.Item{catalog.Tools: {tool("t")}}}
	r, _ := newRouter(t, srv)
	params := `{"name":"a__t","arguments":{"x":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
		`"io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},` +
		`"io.modelcontextprotocol/logLevel":"info","progressToken":"p1","traceparent":"00-abc-def-01"}}`
	if _, err := r.Handle(context.Background(), modern("info"), request("tools/call", params), newStream()); err != nil {
		t.Fatal(err)
	}
	sent := srv.requests()
	up := string(sent[0].Params)
	if strings.Contains(up, "io.modelcontextprotocol") || !strings.Contains(up, `"traceparent":"00-abc-def-01"`) ||
		!strings.Contains(up, `"progressToken":"mcpmesh-`) || !strings.HasPrefix(up, `{"name":"t","arguments":{"x":1},`) {
		t.Errorf("upstream params %s", up)
	}
}

func TestModernErrors(t *testing.T) {
	a := &fakeServer{name: "a", caps: json.RawMessage(`{"resources":{}}`),
		items: [4][]catalog.Item{catalog.Resources: {{Key: "file:///gone", Raw: json.RawMessage(`{"uri":"file:///gone","name":"g"}`)}}},
		do: func(context.Context, backend.Request) (json.RawMessage, error) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeResourceNotFound, Message: "gone"}
		}}
	b := &fakeServer{name: "b", caps: json.RawMessage(`{"resources":{}}`)}
	r, _ := newRouter(t, a, b)
	for _, uri := range []string{"file:///nobody", "file:///gone"} {
		_, err := r.Handle(context.Background(), modern(""), request("resources/read", `{"uri":"`+uri+`"}`), newStream())
		je := rpcError(t, err, jsonrpc.CodeInvalidParams)
		if string(je.Data) != `{"uri":"`+uri+`"}` {
			t.Errorf("%s: data %s", uri, je.Data)
		}
		// A session still gets -32002.
		_, err = r.Handle(context.Background(), session, request("resources/read", `{"uri":"`+uri+`"}`), newStream())
		rpcError(t, err, jsonrpc.CodeResourceNotFound)
	}
	_, err := r.Handle(context.Background(), modern(""), request("tools/call", `{"name":"nope"}`), newStream())
	rpcError(t, err, jsonrpc.CodeInvalidParams)
}

func TestModernLogLevelAndServerRequests(t *testing.T) {
	var r *router.Router
	var refused error
	srv := &fakeServer{name: "a", caps: json.RawMessage(`{"logging":{}}`), items: [4][]catalog.Item{catalog.Tools: {tool("t")}}}
	srv.do = func(ctx context.Context, req backend.Request) (json.RawMessage, error) {
		for _, level := range []string{"debug", "warning"} {
			n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"` + level + `","data":"x"}}`))
			r.OnNotification("a", "", &n)
		}
		m, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{"messages":[],"maxTokens":1}}`))
		_, refused = r.OnRequest(ctx, "a", "", &m)
		return json.RawMessage(`{"content":[]}`), nil
	}
	r, c := newRouter(t, srv)
	// A session that set no level would get every message when no call is
	// in flight; a stateless call in flight keeps them.
	for _, tt := range []struct{ level, want string }{{"", ""}, {"info", "warning"}, {"debug", "debug,warning"}} {
		out := newStream()
		if _, err := r.Handle(context.Background(), modern(tt.level), request("tools/call", `{"name":"a__t"}`), out); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range out.msgs {
			level, _, _ := jsonrpc.LookupString(json.RawMessage(m)[strings.Index(m, `"params":`)+9:len(m)-1], "level")
			got = append(got, level)
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("logLevel %q: got %v, want %s", tt.level, got, tt.want)
		}
		je := rpcError(t, refused, jsonrpc.CodeMethodNotFound)
		if !strings.Contains(je.Message, "input_required") {
			t.Errorf("refusal %q does not say why", je.Message)
		}
	}
	if len(c.pushed) != 0 {
		t.Errorf("pushed to sessions: %v", c.pushed)
	}
}

func TestModernListen(t *testing.T) {
	srv := &fakeServer{name: "a", caps: json.RawMessage(`{"resources":{"subscribe":true}}`),
		items: [4][]catalog.Item{catalog.Tools: {tool("x")}, catalog.Prompts: {{Key: "p", Raw: json.RawMessage(`{"name":"p"}`)}},
			catalog.Resources: {{Key: "file:///x", Raw: json.RawMessage(`{"uri":"file:///x","name":"x"}`)}}}}
	// b serves a resource but cannot subscribe; nobody serves file:///nobody.
	b := &fakeServer{name: "b", caps: json.RawMessage(`{"resources":{}}`),
		items: [4][]catalog.Item{catalog.Resources: {{Key: "file:///b", Raw: json.RawMessage(`{"uri":"file:///b","name":"b"}`)}}}}
	r, c := newRouter(t, srv, b)
	out := newStream()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan json.RawMessage, 1)
	go func() {
		res, err := r.Handle(ctx, modern(""), request("subscriptions/listen",
			`{"notifications":{"toolsListChanged":true,"promptsListChanged":false,"resourceSubscriptions":["file:///x","file:///nobody","file:///b"]}}`), out)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	ack := out.next(t)
	if ack != `{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7},"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///x"]}}}` {
		t.Fatalf("ack %s", ack)
	}
	if sent := srv.requests(); len(sent) != 1 || sent[0].Method != "resources/subscribe" || string(sent[0].Params) != `{"uri":"file:///x"}` {
		t.Fatalf("upstream %v", sent)
	}

	srv.items[catalog.Prompts] = append(srv.items[catalog.Prompts], catalog.Item{Key: "q", Raw: json.RawMessage(`{"name":"q"}`)})
	r.Refresh() // prompts changed: not asked for
	srv.items[catalog.Tools] = append(srv.items[catalog.Tools], tool("y"))
	r.Refresh()
	if got := out.next(t); got != `{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}` {
		t.Fatalf("list_changed %s", got)
	}
	n, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///x"}}`))
	r.OnNotification("a", "", &n)
	if got := out.next(t); got != `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///x","_meta":{"io.modelcontextprotocol/subscriptionId":7}}}` {
		t.Fatalf("updated %s", got)
	}
	if len(c.all) != 2 {
		t.Errorf("sessions' broadcasts %v", c.all)
	}

	cancel()
	select {
	case res := <-done:
		if !strings.Contains(string(res), `"resultType":"complete"`) || !strings.Contains(string(res), `"io.modelcontextprotocol/subscriptionId":7`) {
			t.Errorf("result %s", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not end with its client")
	}
	if sent := srv.requests(); len(sent) != 2 || sent[1].Method != "resources/unsubscribe" {
		t.Errorf("not unsubscribed upstream at the end: %v", sent)
	}
	if len(out.msgs) != 3 {
		t.Errorf("stream %v", out.msgs)
	}

	// Nothing granted: the ack, then the result at once.
	out = newStream()
	res, err := r.Handle(context.Background(), modern(""), request("subscriptions/listen", `{"notifications":{}}`), out)
	if err != nil || !strings.Contains(string(res), "subscriptionId") || len(out.msgs) != 1 || !strings.Contains(out.msgs[0], `"notifications":{}`) {
		t.Errorf("empty listen: %s %v %v", res, err, out.msgs)
	}
}
