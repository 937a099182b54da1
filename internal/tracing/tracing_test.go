package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/mcpmesh/mcpmesh/internal/tracing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOffWithoutEndpoint(t *testing.T) {
	t.Setenv(tracing.EnvEndpoint, "")
	t.Setenv(tracing.EnvTracesEndpoint, "")
	p, err := tracing.New(context.Background(), tracing.Config{Service: "x"})
	if err != nil || p.Tracer != nil {
		t.Fatalf("New without an endpoint = %v, %v: want tracing off", p, err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, e := range []string{"127.0.0.1:4318", "ftp://h:1", "http://", "::"} {
		if err := tracing.CheckEndpoint(e); err == nil || !strings.Contains(err.Error(), "--otlp-endpoint") {
			t.Errorf("CheckEndpoint(%q) = %v", e, err)
		}
		if _, err := tracing.New(context.Background(), tracing.Config{Endpoint: e}); err == nil {
			t.Errorf("New(%q) accepted it", e)
		}
	}
}

// TestExportsToOTLP: spans reach a real OTLP/HTTP endpoint (base URL given,
// /v1/traces added), with the resource's service name, and Shutdown flushes.
func TestExportsToOTLP(t *testing.T) {
	var spans atomic.Int64
	var service atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service.Store(a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				spans.Add(int64(len(ss.GetSpans())))
			}
		}
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	p, err := tracing.New(context.Background(), tracing.Config{Endpoint: srv.URL, Service: "mcpmesh-test", BatchTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tracing.Extract(context.Background(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k=v")
	ctx, span := p.Tracer.Start(ctx, "op")
	parent, state := tracing.Inject(ctx)
	span.End()
	if !strings.HasPrefix(parent, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || strings.Contains(parent, "00f067aa0ba902b7") || state != "k=v" {
		t.Errorf("Inject = %q %q: want the trace id, a new span id and the tracestate", parent, state)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans.Load() != 1 || service.Load() != "mcpmesh-test" {
		t.Errorf("receiver got %d spans of %v", spans.Load(), service.Load())
	}
}

func TestExtractIgnoresGarbage(t *testing.T) {
	ctx := tracing.Extract(context.Background(), "not-a-traceparent", "")
	if p, _ := tracing.Inject(ctx); p != "" {
		t.Errorf("garbage traceparent gave %q", p)
	}
}
