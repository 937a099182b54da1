package front_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// wait bounds every wait of these tests.
const wait = 5 * time.Second

// fakeRouter answers like a tiny MCP server and records what reached it.
// Tools: echo (answers with what the session carried), progress (three
// progress notifications via Stream.Send, then the answer), ask (a roots/list
// request to the client via Stream.Send; answers with the client's reply),
// slow (waits for its ctx to end), hold (answers once release is closed).
type fakeRouter struct {
	mu       sync.Mutex
	handled  []handled
	notified []string
	inits    []front.Session

	responses chan *jsonrpc.Message // Respond
	listening chan listenCall
	ended     chan *front.Session
	cancelled chan error // slow's ctx.Err()
	discover  bool       // answer server/discover (else -32601)
	release   chan struct{}
}

type handled struct {
	method string
	s      front.Session
}

type listenCall struct {
	s   *front.Session
	ctx context.Context
}

func newFakeRouter() *fakeRouter {
	return &fakeRouter{
		responses: make(chan *jsonrpc.Message, 16),
		listening: make(chan listenCall, 16),
		ended:     make(chan *front.Session, 16),
		cancelled: make(chan error, 16),
		release:   make(chan struct{}),
	}
}

func (r *fakeRouter) Initialize(_ context.Context, s *front.Session, params json.RawMessage) (json.RawMessage, []byte, error) {
	r.mu.Lock()
	r.inits = append(r.inits, *s)
	r.mu.Unlock()
	if s.ClientName == "refuse-me" {
		return nil, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "refused")
	}
	if s.ClientName == "huge-upstream" {
		return json.RawMessage(`{}`), make([]byte, front.MaxUpstream+1), nil
	}
	result := fmt.Sprintf(`{"protocolVersion":%q,"capabilities":{"tools":{"listChanged":true}},"serverInfo":{"name":"fake","version":"1"}}`, s.Protocol)
	return json.RawMessage(result), []byte("up:" + s.ClientName), nil
}

func (r *fakeRouter) Handle(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	r.mu.Lock()
	r.handled = append(r.handled, handled{req.Method, *s})
	r.mu.Unlock()
	switch req.Method {
	case "server/discover":
		if r.discover && s.Stateless() {
			return json.RawMessage(`{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"fake","version":"1"}}}`), nil
		}
		return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: server/discover")
	case "subscriptions/listen":
		tag := `{"_meta":{"io.modelcontextprotocol/subscriptionId":` + string(req.ID) + `}}`
		if err := out.Send(jsonrpc.Notification("notifications/subscriptions/acknowledged", json.RawMessage(tag))); err != nil {
			return nil, err
		}
		r.listening <- listenCall{s: s, ctx: ctx}
		<-ctx.Done()
		return json.RawMessage(tag), nil
	case "ping":
		return json.RawMessage(`{}`), nil
	case "tools/call":
	default:
		return nil, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "method not found: %s", req.Method)
	}
	name, _, _ := jsonrpc.LookupString(req.Params, "name")
	switch name {
	case "echo":
		return textResult(fmt.Sprintf("client=%s/%s up=%s proto=%s paginate=%v transport=%s caps=%s",
			s.ClientName, s.ClientVersion, s.Upstream, s.Protocol, s.Paginate, s.Transport, s.Capabilities)), nil
	case "progress":
		token := json.RawMessage(`"none"`)
		if st, en, ok, _ := jsonrpc.Lookup(req.Params, "_meta"); ok {
			meta := req.Params[st:en]
			if st, en, ok, _ := jsonrpc.Lookup(meta, "progressToken"); ok {
				token = meta[st:en]
			}
		}
		for i := 1; i <= 3; i++ {
			n := jsonrpc.Notification("notifications/progress",
				json.RawMessage(fmt.Sprintf(`{"progressToken":%s,"progress":%d,"total":3}`, token, i)))
			if err := out.Send(n); err != nil {
				return nil, err
			}
		}
		return textResult("done"), nil
	case "ask":
		if err := out.Send(jsonrpc.Request(json.RawMessage(`"srv-1"`), "roots/list", nil)); err != nil {
			return nil, err
		}
		select {
		case resp := <-r.responses:
			return textResult("client said " + string(resp.Result)), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "slow":
		<-ctx.Done()
		r.cancelled <- ctx.Err()
		return nil, ctx.Err()
	case "hold":
		select {
		case <-r.release:
			return textResult("released"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "fail":
		return nil, errors.New("backend exploded")
	}
	return nil, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "unknown tool %q", name)
}

func textResult(s string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}})
	return b
}

func (r *fakeRouter) Notify(_ context.Context, _ *front.Session, n *jsonrpc.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notified = append(r.notified, n.Method)
}

func (r *fakeRouter) Respond(_ context.Context, _ *front.Session, resp *jsonrpc.Message) {
	r.responses <- resp
}

func (r *fakeRouter) Listening(ctx context.Context, s *front.Session) {
	r.listening <- listenCall{s: s, ctx: ctx}
	<-ctx.Done()
}

func (r *fakeRouter) Ended(s *front.Session) { r.ended <- s }

func (r *fakeRouter) handledMethods() []handled {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]handled(nil), r.handled...)
}

func (r *fakeRouter) notifications() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.notified...)
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
