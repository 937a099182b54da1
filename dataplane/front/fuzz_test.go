package front_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

// answerAll answers every request at once with {}, so that fuzzing reaches
// the front's own parsing and checks and never waits on a router.
type answerAll struct{}

func (answerAll) Initialize(context.Context, *front.Session, json.RawMessage) (json.RawMessage, []byte, error) {
	return json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"f","version":"1"}}`), nil, nil
}
func (answerAll) Handle(context.Context, *front.Session, *jsonrpc.Message, front.Stream) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}
func (answerAll) Notify(context.Context, *front.Session, *jsonrpc.Message)  {}
func (answerAll) Respond(context.Context, *front.Session, *jsonrpc.Message) {}
func (answerAll) Listening(context.Context, *front.Session)                 {}
func (answerAll) Ended(*front.Session)                                      {}

// FuzzPost feeds the /mcp POST handler whatever a client may send (a body,
// and the era and method headers a 2026-07-28 request is checked by): it must
// answer, with a status a client can act on, and never panic.
func FuzzPost(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`), "2026-07-28", "tools/list", "")
	f.Add([]byte(`{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`), "2026-07-28", "tools/call", "=?base64?ZWNobw==?=")
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}`), "", "", "")
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`), "2025-03-26", "", "")
	fr := front.New(front.Options{Router: answerAll{}, Keys: keys.New(), Logger: quiet(), MaxBody: 64 << 10})
	defer fr.Close()
	h := fr.Handler()
	f.Fuzz(func(t *testing.T, body []byte, version, method, name string) {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range map[string]string{"MCP-Protocol-Version": version, "Mcp-Method": method, "Mcp-Name": name} {
			if v != "" {
				r.Header[http.CanonicalHeaderKey(k)] = []string{v}
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 200 || w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("status %d for %q (headers %q %q %q): %s", w.Code, body, version, method, name, w.Body.Bytes())
		}
	})
}
