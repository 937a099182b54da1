package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

type sink struct {
	mu   sync.Mutex
	msgs []string
}

func (s *sink) Send(msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, string(msg))
	return nil
}

// A relayed request's answer streamed by the other replica: what comes
// before the answer goes to the client's stream, in order, and the answer
// (whatever the framing: comments, CRLF, data split over lines) is returned.
func TestProxyRelaysAStreamedAnswer(t *testing.T) {
	var got http.Header
	var body string
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": keep-alive\r\n\r\n")
		io.WriteString(w, "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\r\n\r\n")
		io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"id\":\"other\",\"result\":{}}\n\n")
		io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\n")
		io.WriteString(w, "data: \"id\":7,\"result\":{\"ok\":true}}\n\n")
		io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"after\"}\n\n")
	}))
	defer peer.Close()
	r := New(Options{Servers: nil})
	defer r.CloseIdle()
	req, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`))
	out := &sink{}
	s := &front.Session{ID: "sess", Protocol: "2025-11-25"}
	res, err := r.proxy(context.Background(), strings.TrimPrefix(peer.URL, "http://"), s, &req, out)
	if err != nil || string(res) != `{"ok":true}` {
		t.Fatalf("proxy = %s, %v", res, err)
	}
	if got.Get("Mcp-Session-Id") != "sess" || got.Get("MCP-Protocol-Version") != "2025-11-25" || body != string(req.Marshal()) {
		t.Errorf("the peer got headers %v and body %s", got, body)
	}
	if len(out.msgs) != 2 || !strings.Contains(out.msgs[0], "notifications/progress") || !strings.Contains(out.msgs[1], `"other"`) {
		t.Errorf("sent to the client: %q", out.msgs)
	}
}

// An error answer comes back as the JSON-RPC error it is; a replica that
// cannot be reached is told apart (the request was not sent).
func TestProxyErrorsAndUnreachable(t *testing.T) {
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"nope"}}`)
	}))
	addr := strings.TrimPrefix(peer.URL, "http://")
	r := New(Options{})
	defer r.CloseIdle()
	req, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{}}`))
	s := &front.Session{ID: "sess"}
	_, err := r.proxy(context.Background(), addr, s, &req, &sink{})
	if je := jsonrpc.AsError(err); je == nil || je.Code != jsonrpc.CodeInvalidParams || je.Message != "nope" {
		t.Errorf("error answer: %v", err)
	}
	peer.Close()
	if _, err := r.proxy(context.Background(), addr, s, &req, &sink{}); !errors.Is(err, errUnreached) {
		t.Errorf("closed replica: %v, want errUnreached", err)
	}
}

// TestRelayCarriesCredential: a request relayed to another replica carries
// the client's credential, so that a replica that authenticates clients
// admits it; without one it carries none.
func TestRelayCarriesCredential(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://replica/mcp", nil)
	setSessionHeaders(req, &front.Session{ID: "s1", Credential: "Bearer tok"})
	if got := req.Header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("relayed Authorization = %q", got)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://replica/mcp", nil)
	setSessionHeaders(req, &front.Session{ID: "s1"})
	if _, ok := req.Header["Authorization"]; ok {
		t.Error("a relay without a credential carries an Authorization header")
	}
}
