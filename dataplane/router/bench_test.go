package router_test

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/router"
	"github.com/mcpmesh/mcpmesh/internal/logging"
)

// benchRouter is a router with one shared server whose tools/call answers
// like the bench's backend, and a session initialized on it (so it carries
// an upstream payload, as real sessions do).
func benchRouter(b *testing.B, opts ...func(*router.Options)) (*router.Router, *front.Session) {
	b.Helper()
	srv := &fakeServer{name: "bench", items: [4][]catalog.Item{catalog.Tools: {tool("echo")}},
		do: func(context.Context, backend.Request) (json.RawMessage, error) {
			return json.RawMessage(`{"content":[{"type":"text","text":"hello"}]}`), nil
		}}
	o := router.Options{Servers: benchServers{srv}, Advertise: "127.0.0.1:1"}
	for _, f := range opts {
		f(&o)
	}
	r := router.New(o)
	r.SetClients(&clients{})
	r.Refresh()
	s := &front.Session{ID: "s1", Protocol: "2025-11-25", Capabilities: json.RawMessage(`{"sampling":{}}`), ClientName: "bench", ClientVersion: "1"}
	_, up, err := r.Initialize(context.Background(), s, json.RawMessage(`{"protocolVersion":"2025-11-25"}`))
	if err != nil {
		b.Fatal(err)
	}
	s.Upstream = up
	return r, s
}

// BenchmarkToolCall is the router's share of a tools/call: a session's
// (2025-11-25) and a stateless request's (2026-07-28).
func BenchmarkToolCall(b *testing.B) {
	const params = `{"name":"bench__echo","arguments":{"text":"hello"}}`
	b.Run("session", func(b *testing.B) {
		r, s := benchRouter(b)
		req, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + params + `}`))
		out := discard{}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Handle(context.Background(), s, &req, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	// observed: the access log at info in JSON (to io.Discard) and a span
	// per request and per upstream call (batched to an exporter that drops
	// them); ÷ session is their cost in the router.
	b.Run("logged", func(b *testing.B) {
		log, _ := logging.New(io.Discard, "info", "json")
		r, s := benchRouter(b, func(o *router.Options) { o.AccessLog = log })
		req, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + params + `}`))
		out := discard{}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Handle(context.Background(), s, &req, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("observed", func(b *testing.B) {
		log, _ := logging.New(io.Discard, "info", "json")
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(dropExporter{}))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		r, s := benchRouter(b, func(o *router.Options) { o.AccessLog, o.Tracer = log, tp.Tracer("bench") })
		req, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + params + `}`))
		out := discard{}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Handle(context.Background(), s, &req, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stateless", func(b *testing.B) {
		r, _ := benchRouter(b)
		s := &front.Session{Protocol: "2026-07-28", Capabilities: json.RawMessage(`{"sampling":{}}`), Transport: front.TransportStreamableHTTP}
		req, _ := jsonrpc.Parse([]byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"bench__echo","arguments":{"text":"hello"},` +
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}}`))
		out := discard{}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Handle(context.Background(), s, &req, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type dropExporter struct{}

func (dropExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (dropExporter) Shutdown(context.Context) error                             { return nil }

type discard struct{}

func (discard) Send([]byte) error { return nil }

// benchServer is a fakeServer that does not record its requests.
type benchServer struct{ *fakeServer }

func (b benchServer) Request(ctx context.Context, r backend.Request) (json.RawMessage, error) {
	return b.do(ctx, r)
}

type benchServers struct{ srv *fakeServer }

func (s benchServers) List() []router.Server { return []router.Server{benchServer{s.srv}} }
func (s benchServers) Get(name string) (router.Server, bool) {
	if name != s.srv.name {
		return nil, false
	}
	return benchServer{s.srv}, true
}
