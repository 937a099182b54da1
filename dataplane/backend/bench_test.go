package backend

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// benchBackend serves an in-process streamable HTTP mcp-go echo server and
// returns a connected backend for it. The allocations of a benchmark that
// uses it include the server's.
func benchBackend(b *testing.B) *Backend { return benchBackendOf(b, legacyOnly) }

// benchModernBackend is benchBackend of a server that speaks 2026-07-28.
func benchModernBackend(b *testing.B) *Backend { return benchBackendOf(b) }

func benchBackendOf(b *testing.B, opts ...server.StreamableHTTPOption) *Backend {
	b.Helper()
	s := server.NewMCPServer("bench", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo", mcp.WithString("text")), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(req.GetString("text", "")), nil
	})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s, opts...))
	m := NewManager(ManagerOptions{Logger: slog.New(slog.DiscardHandler), ListResync: -1})
	b.Cleanup(func() {
		_ = m.Close()
		_ = ts.Config.Close()
		ts.Close()
	})
	srv := &mcpmeshv1.Server{Name: "bench", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: ts.URL + "/mcp"}}
	if err := m.Apply(&mcpmeshv1.ConfigSnapshot{Revision: 1, Servers: []*mcpmeshv1.Server{srv}}); err != nil {
		b.Fatal(err)
	}
	be, _ := m.Get("bench")
	for deadline := time.Now().Add(testWait); !be.Connected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("bench backend did not connect")
		}
	}
	return be
}

var benchParams = json.RawMessage(`{"name":"echo","arguments":{"text":"hello","n":12345678901234567890}}`)

// BenchmarkRequestToolsCall: one tools/call through Request, serially.
func BenchmarkRequestToolsCall(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.Request(ctx, Request{Method: "tools/call", Params: benchParams}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestToolsCallParallel: the same from GOMAXPROCS goroutines.
func BenchmarkRequestToolsCallParallel(b *testing.B) {
	be := benchBackend(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := be.Request(ctx, Request{Method: "tools/call", Params: benchParams}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRequestToolsCallModern: one tools/call through Request, serially,
// to a backend of 2026-07-28, for a client (its _meta).
func BenchmarkRequestToolsCallModern(b *testing.B) {
	be := benchModernBackend(b)
	if p := be.Protocol(); p != modernVersion {
		b.Fatalf("protocol %q", p)
	}
	ctx := context.Background()
	who := &Caller{Capabilities: json.RawMessage(`{"sampling":{},"roots":{"listChanged":true}}`), Name: "bench-client", Version: "1.0.0"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := be.Request(ctx, Request{Method: "tools/call", Params: benchParams, Caller: who}); err != nil {
			b.Fatal(err)
		}
	}
}
