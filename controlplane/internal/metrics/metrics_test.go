package metrics

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("mcpmesh_things_total", "Things.\nSecond line.", "kind")
	c.Inc("a\"b")
	c.Add(2.5, "plain")
	r.GaugeFunc("mcpmesh_level", "Level.", func() float64 { return 3 })
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"# HELP mcpmesh_things_total Things.\\nSecond line.\n",
		"# TYPE mcpmesh_things_total counter\n",
		`mcpmesh_things_total{kind="a\"b"} 1` + "\n",
		`mcpmesh_things_total{kind="plain"} 2.5` + "\n",
		"# TYPE mcpmesh_level gauge\nmcpmesh_level 3\n",
		"# TYPE go_goroutines gauge\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("output lacks %q:\n%s", want, body)
		}
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
}

func TestGRPCInterceptorCountsCodes(t *testing.T) {
	r := NewRegistry()
	g := NewGRPC(r)
	u := g.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: "/mcpmesh.v1.RegistryService/GetServer"}
	_, _ = u(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, nil })
	_, _ = u(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, status.Error(codes.NotFound, "x")
	})
	_, _ = u(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, errors.New("plain") })
	if v := g.Handled("unary", info.FullMethod, "OK"); v != 1 {
		t.Errorf("OK = %v", v)
	}
	if v := g.Handled("unary", info.FullMethod, "NotFound"); v != 1 {
		t.Errorf("NotFound = %v", v)
	}
	if v := g.Handled("unary", info.FullMethod, "Unknown"); v != 1 {
		t.Errorf("Unknown = %v", v)
	}
	s := g.StreamServerInterceptor()
	sinfo := &grpc.StreamServerInfo{FullMethod: "/mcpmesh.v1.DiscoveryService/StreamConfig", IsClientStream: true, IsServerStream: true}
	_ = s(nil, nil, sinfo, func(any, grpc.ServerStream) error { return nil })
	var b strings.Builder
	r.WriteText(&b)
	if !strings.Contains(b.String(), `grpc_server_started_total{grpc_type="bidi_stream",grpc_service="mcpmesh.v1.DiscoveryService",grpc_method="StreamConfig"} 1`) {
		t.Errorf("stream not counted:\n%s", b.String())
	}
}

func TestDuplicateRegistrationPanics(t *testing.T) {
	r := NewRegistry()
	r.Counter("x_total", "x")
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on duplicate registration")
		}
	}()
	r.Counter("x_total", "x")
}
