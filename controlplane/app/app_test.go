package app

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// panicky is a registry whose handlers panic, to exercise the recovery
// interceptor through the real chain.
type panicky struct {
	mcpmeshv1.UnimplementedRegistryServiceServer
}

func (panicky) GetSettings(context.Context, *mcpmeshv1.GetSettingsRequest) (*mcpmeshv1.GetSettingsResponse, error) {
	panic("boom in handler")
}

func (panicky) WatchStatus(*mcpmeshv1.WatchStatusRequest, grpc.ServerStreamingServer[mcpmeshv1.WatchStatusResponse]) error {
	panic("boom in stream")
}

func TestInterceptorChain(t *testing.T) {
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	m := NewMetrics()
	gs := grpc.NewServer(ServerOptions(logger, access.NewAuthenticator("tok", store.NewMemory(), nil), m)...)
	mcpmeshv1.RegisterRegistryServiceServer(gs, panicky{})
	m.grpc.initialize(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	client := func(tok string) mcpmeshv1.RegistryServiceClient {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if tok != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(authtoken.Credentials(tok)))
		}
		cc, err := grpc.NewClient(lis.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return mcpmeshv1.NewRegistryServiceClient(cc)
	}
	ctx := context.Background()
	// Auth runs before the handler: a bad token never reaches the panic.
	if _, err := client("").GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if _, err := client("wrong").GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
	good := client("tok")
	_, err = good.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic in unary handler: %v, want Internal", err)
	}
	w, err := good.WatchStatus(ctx, &mcpmeshv1.WatchStatusRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic in stream handler: %v, want Internal", err)
	}
	// The server survived both panics.
	if _, err := good.GetStatus(ctx, &mcpmeshv1.GetStatusRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("after panics: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"panic in gRPC handler", "boom in handler", "boom in stream", "grpc.method=GetSettings", "grpc.code=Internal"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// Metrics run first: calls rejected by auth and calls that panicked are
	// counted, with the code the client saw.
	srv := httptest.NewServer(m.Handler(logger))
	defer srv.Close()
	fams := scrape(t, "http://"+srv.Listener.Addr().String())
	reg := series{"grpc_service": "mcpmesh.v1.RegistryService"}
	for _, tc := range []struct {
		name   string
		labels series
		want   float64
	}{
		{"grpc_server_handled_total", reg.with("grpc_type", "unary", "grpc_method", "GetSettings", "grpc_code", "Unauthenticated"), 2},
		{"grpc_server_handled_total", reg.with("grpc_type", "unary", "grpc_method", "GetSettings", "grpc_code", "Internal"), 1},
		{"grpc_server_handled_total", reg.with("grpc_type", "server_stream", "grpc_method", "WatchStatus", "grpc_code", "Internal"), 1},
		{"grpc_server_started_total", reg.with("grpc_type", "unary", "grpc_method", "GetSettings"), 3},
		{"grpc_server_handling_seconds", reg.with("grpc_type", "unary", "grpc_method", "GetSettings"), 3},
	} {
		if got := fams.value(t, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestRunServesAndStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	type addrs struct{ grpc, http string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Ready: func(g, h string) { ready <- addrs{g, h} }})
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("Run failed: %v", err)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "admin.token"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, mode)
		}
	}
	tok, err := authtoken.Read(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(authtoken.Credentials(tok)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	reg := mcpmeshv1.NewRegistryServiceClient(cc)
	if _, err := reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: &mcpmeshv1.Server{
		Name: "demo", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "demo"},
	}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + a.http + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h["status"] != "ok" || h["revision"] != float64(1) || h["servers"] != float64(1) || h["dataplanes_connected"] != float64(0) {
		t.Fatalf("/health = %v", h)
	}
	fams := scrape(t, "http://"+a.http)
	for name, want := range map[string]float64{
		"mcpmesh_config_revision":      1,
		"mcpmesh_servers":              1,
		"mcpmesh_dataplanes_connected": 0,
		"mcpmesh_dataplanes_known":     0,
		"mcpmesh_snapshots_sent_total": 0,
	} {
		if got := fams.value(t, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	create := series{"grpc_type": "unary", "grpc_service": "mcpmesh.v1.RegistryService", "grpc_method": "CreateServer"}
	if got := fams.value(t, "grpc_server_handled_total", create.with("grpc_code", "OK")); got != 1 {
		t.Errorf("CreateServer OK = %v, want 1", got)
	}
	if got := fams.value(t, "grpc_server_handling_seconds", create); got != 1 {
		t.Errorf("CreateServer handling-time observations = %v, want 1", got)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// A second control plane on the same data dir fails clearly.
	err = Run(context.Background(), Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "database is locked by another process") {
		t.Fatalf("second Run err = %v", err)
	}
	// An address in use fails with the flag named.
	err = Run(context.Background(), Config{DataDir: t.TempDir(), GRPCAddr: a.grpc, HTTPAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "listen on --grpc-addr "+a.grpc) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("address in use err = %v", err)
	}

	cc.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel", err)
	}
	// Restart: the token is kept and the registration survived.
	tok2, _ := authtoken.Read(filepath.Join(dir, "admin.token"))
	if tok2 != tok {
		t.Fatal("admin token changed across restart")
	}
}

// --pprof-addr serves net/http/pprof on its own listener only, and a taken
// address fails with the flag named.
func TestRunPprofAddr(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := l.Addr().String()
	err = Run(context.Background(), Config{DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", PprofAddr: pprofAddr})
	if err == nil || !strings.Contains(err.Error(), "--pprof-addr "+pprofAddr) {
		t.Fatalf("pprof address in use err = %v", err)
	}
	l.Close()

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", PprofAddr: pprofAddr,
			Ready: func(_, h string) { ready <- h }})
	}()
	var httpAddr string
	select {
	case httpAddr = <-ready:
	case err := <-done:
		t.Fatalf("Run failed: %v", err)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, tc := range []struct {
		base string
		want int
	}{{"http://" + pprofAddr, http.StatusOK}, {"http://" + httpAddr, http.StatusNotFound}} {
		resp, err := c.Get(tc.base + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s/debug/pprof/: %d, want %d", tc.base, resp.StatusCode, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
