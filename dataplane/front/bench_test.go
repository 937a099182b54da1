package front_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

// benchRouter answers every request with a fixed result.
type benchRouter struct{ *fakeRouter }

var benchResult = json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`)

func (*benchRouter) Handle(context.Context, *front.Session, *jsonrpc.Message, front.Stream) (json.RawMessage, error) {
	return benchResult, nil
}

// BenchmarkPostToolsCall is the transport's cost of one tools/call on the
// fast path (session decode, checks, one body read, one parse, JSON answer),
// without the network.
func BenchmarkPostToolsCall(b *testing.B) {
	k := keys.New()
	k.SetSecret(secretA)
	rt := &benchRouter{newFakeRouter()}
	f := front.New(front.Options{Router: rt, Keys: k, Logger: quiet()})
	defer f.Close()
	h := f.Handler()

	req := func(body string, sid string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json, text/event-stream")
		r.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		if sid != "" {
			r.Header.Set("Mcp-Session-Id", sid)
		}
		return r
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","clientInfo":{"name":"claude-code","version":"2.1.0"},"capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}}}`, ""))
	sid := w.Header().Get("Mcp-Session-Id")
	if sid == "" {
		b.Fatal("no session")
	}
	body := []byte(`{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"github__search","arguments":{"query":"mcp gateway","limit":10}}}`)
	r := req(string(body), sid)
	rd := bytes.NewReader(body)
	r.Body = io.NopCloser(rd)
	dw := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		clear(dw.h)
		h.ServeHTTP(dw, r)
		if dw.code != 200 {
			b.Fatal(dw.code)
		}
	}
}

// discard is a ResponseWriter that keeps nothing, so that the benchmark
// measures the transport rather than a recorder.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }
