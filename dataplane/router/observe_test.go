package router_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/router"
	"github.com/mcpmesh/mcpmesh/internal/logging"
)

type observed struct{ method, server, status string }

func TestAccessLogAndObserve(t *testing.T) {
	gh := &fakeServer{name: "github", items: [4][]catalog.Item{catalog.Tools: {tool("search"), tool("fail")}},
		do: func(_ context.Context, r backend.Request) (json.RawMessage, error) {
			if strings.Contains(string(r.Params), `"fail"`) {
				return nil, &jsonrpc.Error{Code: -32050, Message: "boom"}
			}
			return json.RawMessage(`{"content":[],"isError":true}`), nil
		}}
	var buf bytes.Buffer
	log, err := logging.New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []observed
	r := router.New(router.Options{Servers: fakeServers{gh}, AccessLog: log,
		Observe: func(method, server, status string, d time.Duration) {
			mu.Lock()
			got = append(got, observed{method, server, status})
			mu.Unlock()
		}})
	r.Refresh()
	s := &front.Session{ID: "s1", Principal: "client-key:k1", Transport: front.TransportStreamableHTTP}
	for _, req := range []*jsonrpc.Message{
		request("tools/call", `{"name":"github__search","arguments":{}}`),
		request("tools/call", `{"name":"github__fail"}`),
		request("tools/list", `{}`),
		request("no/such", `{}`),
	} {
		_, _ = r.Handle(context.Background(), s, req, newStream())
	}
	want := []observed{
		{"tools/call", "github", router.OutcomeToolError},
		{"tools/call", "github", router.OutcomeError},
		{"tools/list", "", router.OutcomeOK},
		{"no/such", "", router.OutcomeError},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("observation %d = %v, want %v", i, got[i], want[i])
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4: %s", len(lines), buf.String())
	}
	first, second, last := lines[0], lines[1], lines[3]
	for k, v := range map[string]any{"msg": "mcp request", "method": "tools/call", "server": "github", "tool": "github__search",
		"outcome": "tool_error", "id": "7", "credential": "client-key:k1", "backend_state": "healthy", "transport": "streamable-http"} {
		if first[k] != v {
			t.Errorf("first line %s = %v, want %v (%v)", k, first[k], v, first)
		}
	}
	if _, ok := first["duration"].(float64); !ok {
		t.Errorf("first line has no duration: %v", first)
	}
	if second["code"] != float64(-32050) || second["err"] != "boom" || second["outcome"] != "error" {
		t.Errorf("second line %v, want code -32050, err boom", second)
	}
	if last["code"] != float64(jsonrpc.CodeMethodNotFound) || last["server"] != "" {
		t.Errorf("last line %v, want -32601 and no server", last)
	}
}

func TestAccessLogOffAtWarn(t *testing.T) {
	var buf bytes.Buffer
	log, _ := logging.New(&buf, "warn", "text")
	r := router.New(router.Options{Servers: fakeServers{}, AccessLog: log})
	_, _ = r.Handle(context.Background(), session, request("ping", `{}`), newStream())
	if buf.Len() != 0 {
		t.Errorf("an info access line was written at warn: %s", buf.String())
	}
}

func TestTracing(t *testing.T) {
	gh := &fakeServer{name: "github", items: [4][]catalog.Item{catalog.Tools: {tool("search")}}}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	r := router.New(router.Options{Servers: fakeServers{gh}, Tracer: tp.Tracer("test")})
	r.Refresh()
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name   string
		s      *front.Session
		params string
	}{
		{"header", &front.Session{TraceParent: "00-" + clientTrace + "-00f067aa0ba902b7-01"}, `{"name":"github__search","arguments":{"q":1}}`},
		{"meta", &front.Session{}, `{"name":"github__search","_meta":{"traceparent":"00-` + clientTrace + `-00f067aa0ba902b7-01","progressToken":3}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gh.mu.Lock()
			gh.sent = nil
			gh.mu.Unlock()
			n := len(rec.Ended())
			if _, err := r.Handle(context.Background(), tc.s, request("tools/call", tc.params), newStream()); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()[n:]
			if len(spans) != 2 {
				t.Fatalf("%d spans, want the upstream and the request's", len(spans))
			}
			up, srv := spans[0], spans[1]
			if srv.Name() != "tools/call github__search" || up.Name() != "tools/call search" {
				t.Errorf("span names %q, %q", srv.Name(), up.Name())
			}
			if srv.SpanContext().TraceID().String() != clientTrace || srv.Parent().SpanID().String() != "00f067aa0ba902b7" {
				t.Errorf("request span not in the client's trace: %v parent %v", srv.SpanContext().TraceID(), srv.Parent().SpanID())
			}
			if up.Parent().SpanID() != srv.SpanContext().SpanID() {
				t.Error("upstream span is not the request span's child")
			}
			attrs := map[string]string{}
			for _, a := range srv.Attributes() {
				attrs[string(a.Key)] = a.Value.Emit()
			}
			for k, v := range map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "github__search",
				"jsonrpc.request.id": "7", "network.transport": "tcp", "mcpmesh.server": "github", "gen_ai.operation.name": "execute_tool"} {
				if attrs[k] != v {
					t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
				}
			}
			sent := gh.requests()
			if len(sent) != 1 {
				t.Fatalf("%d requests upstream", len(sent))
			}
			want := "00-" + clientTrace + "-" + up.SpanContext().SpanID().String() + "-01"
			if sent[0].TraceParent != want {
				t.Errorf("traceparent upstream %q, want %q", sent[0].TraceParent, want)
			}
			var p struct {
				Name string
				Meta struct {
					TraceParent   string `json:"traceparent"`
					ProgressToken any    `json:"progressToken"`
				} `json:"_meta"`
				Arguments json.RawMessage
			}
			if err := json.Unmarshal(sent[0].Params, &p); err != nil {
				t.Fatalf("params upstream %s: %v", sent[0].Params, err)
			}
			if p.Meta.TraceParent != want || p.Name != "search" {
				t.Errorf("params upstream %s: want _meta.traceparent %s", sent[0].Params, want)
			}
			if tc.name == "meta" && p.Meta.ProgressToken == nil {
				t.Errorf("progress token lost: %s", sent[0].Params)
			}
			if tc.name == "header" && string(p.Arguments) != `{"q":1}` {
				t.Errorf("arguments changed: %s", sent[0].Params)
			}
		})
	}
}

func TestUpstreamSpanRecordsFailure(t *testing.T) {
	gh := &fakeServer{name: "github", items: [4][]catalog.Item{catalog.Tools: {tool("search")}},
		do: func(context.Context, backend.Request) (json.RawMessage, error) {
			return nil, errors.New("connection refused")
		}}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r := router.New(router.Options{Servers: fakeServers{gh}, Tracer: tp.Tracer("test"), Logger: slog.New(slog.DiscardHandler)})
	r.Refresh()
	res, err := r.Handle(context.Background(), session, request("tools/call", `{"name":"github__search"}`), newStream())
	if err != nil || !strings.Contains(string(res), `"isError":true`) {
		t.Fatalf("res %s err %v, want a tool error", res, err)
	}
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Status().Code.String() != "Error" || spans[1].Status().Code.String() != "Error" {
		t.Fatalf("spans %v: want both failed", spans)
	}
}
