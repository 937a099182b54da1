package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/app"
	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "test-token"

type env struct {
	st   store.Store
	disc *discovery.Server
	reg  mcpmeshv1.RegistryServiceClient
	dc   mcpmeshv1.DiscoveryServiceClient
	bk   mcpmeshv1.BackupServiceClient
	addr string
}

func start(t *testing.T) *env {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return startWith(t, st, discardLogger())
}

// startWith serves the registry and discovery over st, wired as the control
// plane's app wires them, on a real TCP listener; it closes st at the end.
func startWith(t *testing.T, st store.Store, logger *slog.Logger) *env {
	t.Helper()
	e := &env{st: st}
	agg := health.New(st, func() map[string]bool { return e.disc.ConnectedIDs() }, logger)
	e.disc = discovery.New(st, agg, logger)
	gs := grpc.NewServer(app.ServerOptions(logger, access.NewAuthenticator(token, st, logger), app.NewMetrics())...)
	reg := registry.New(st, e.disc, agg, logger)
	mcpmeshv1.RegisterRegistryServiceServer(gs, reg)
	mcpmeshv1.RegisterBackupServiceServer(gs, reg.Backup("bolt"))
	mcpmeshv1.RegisterDiscoveryServiceServer(gs, e.disc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	cc := dial(t, e.addr, token)
	e.reg = mcpmeshv1.NewRegistryServiceClient(cc)
	e.dc = mcpmeshv1.NewDiscoveryServiceClient(cc)
	e.bk = mcpmeshv1.NewBackupServiceClient(cc)
	t.Cleanup(func() {
		gs.Stop()
		<-served
		e.disc.Close()
		st.Close()
	})
	return e
}

func dial(t *testing.T, addr, tok string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(authtoken.Credentials(tok)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func stdio(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
		Stdio: &mcpmeshv1.StdioConfig{Command: "echo", Env: map[string]string{"API_KEY": "s3cret"}},
	}
}

func httpSrv(name, u string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http: &mcpmeshv1.HttpConfig{Url: u, Headers: map[string]string{"Authorization": "Bearer x"}},
	}
}

// entries returns n env or header entries K0..K<n-1>.
func entries(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("K%d", i)] = "v"
	}
	return m
}

func wantCode(t *testing.T, err error, code codes.Code, msgPart string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msgPart) {
		t.Fatalf("err = %v, want %s containing %q", err, code, msgPart)
	}
}

func TestAuth(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for name, tok := range map[string]string{"no token": "", "wrong token": "nope"} {
		t.Run(name, func(t *testing.T) {
			cc := dial(t, e.addr, tok)
			_, err := mcpmeshv1.NewRegistryServiceClient(cc).ListServers(ctx, &mcpmeshv1.ListServersRequest{})
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("unary err = %v, want Unauthenticated", err)
			}
			stream, err := mcpmeshv1.NewDiscoveryServiceClient(cc).StreamConfig(ctx)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("stream err = %v, want Unauthenticated", err)
			}
		})
	}
	_, err := mcpmeshv1.NewRegistryServiceClient(dial(t, e.addr, "nope")).GetStatus(ctx, &mcpmeshv1.GetStatusRequest{})
	wantCode(t, err, codes.Unauthenticated, "invalid token")
}

func TestCreateGetListDelete(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	resp, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("alpha")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision() != 1 || resp.GetServer().GetModRevision() != 1 || !resp.GetServer().GetRedacted() ||
		resp.GetServer().GetStdio().GetEnv()["API_KEY"] != "***" {
		t.Fatalf("create response = %v", resp)
	}
	stored, _ := e.st.GetServer(ctx, "alpha")
	if stored.GetStdio().GetEnv()["API_KEY"] != "s3cret" {
		t.Fatal("secret not stored verbatim")
	}
	_, err = e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("alpha")})
	wantCode(t, err, codes.AlreadyExists, `server "alpha" already exists`)

	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: httpSrv("web", "https://example.test/mcp")}); err != nil {
		t.Fatal(err)
	}
	got, err := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetServer().GetHttp().GetHeaders()["Authorization"] != "***" || got.GetStatus().GetState() != health.StateUnknown || got.GetStatus().GetName() != "web" {
		t.Fatalf("get = %v", got)
	}
	_, err = e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "ghost"})
	wantCode(t, err, codes.NotFound, `server "ghost" not found`)

	list, err := e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetServers()) != 2 || list.GetServers()[0].GetName() != "alpha" || list.GetRevision() != 2 {
		t.Fatalf("list = %v", list)
	}
	for _, s := range list.GetServers() {
		if !s.GetRedacted() {
			t.Fatalf("list leaks secrets: %v", s)
		}
	}

	_, err = e.reg.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: "alpha", ExpectedRevision: 99})
	wantCode(t, err, codes.Aborted, `server "alpha" was changed`)
	del, err := e.reg.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: "alpha"})
	if err != nil || del.GetRevision() != 3 {
		t.Fatalf("delete = %v, %v", del, err)
	}
	_, err = e.reg.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: "alpha"})
	wantCode(t, err, codes.NotFound, `server "alpha" not found`)
}

func TestTagFilter(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	a, b := stdio("a"), stdio("b")
	a.Tags = []string{"prod", "db"}
	b.Tags = []string{"prod"}
	for _, s := range []*mcpmeshv1.Server{a, b} {
		if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: s}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{Tags: []string{"prod", "db"}})
	if err != nil || len(list.GetServers()) != 1 || list.GetServers()[0].GetName() != "a" {
		t.Fatalf("tag filter = %v, %v", list, err)
	}
}

func TestValidation(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	mod := func(base *mcpmeshv1.Server, f func(s *mcpmeshv1.Server)) *mcpmeshv1.Server {
		s := proto.Clone(base).(*mcpmeshv1.Server)
		f(s)
		return s
	}
	tests := []struct {
		name  string
		srv   *mcpmeshv1.Server
		field string
	}{
		{"missing server", nil, "server"},
		{"bad name", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Name = "Bad_Name" }), "server.name"},
		{"empty name", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Name = "" }), "server.name"},
		{"no transport", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Transport = 0 }), "server.transport"},
		{"stdio without command", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Command = " " }), "server.stdio.command"},
		{"stdio with http", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Http = &mcpmeshv1.HttpConfig{Url: "http://a"} }), "server.http"},
		{"stdio with endpoints", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Endpoints = []string{"http://a"} }), "server.endpoints"},
		{"env key with =", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Env = map[string]string{"A=B": "c"} }), "server.stdio.env"},
		{"env key empty", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Env = map[string]string{"": "c"} }), "server.stdio.env"},
		{"secret arg out of range", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Args, s.Stdio.SecretArgs = []string{"a"}, []uint32{1} }), "server.stdio.secret_args[0]"},
		{"http without url", mod(httpSrv("x", ""), func(*mcpmeshv1.Server) {}), "server.http.url"},
		{"http bad scheme", httpSrv("x", "ftp://host/x"), "server.http.url"},
		{"http no host", httpSrv("x", "http:///x"), "server.http.url"},
		{"http unparseable", httpSrv("x", "http://[::1"), "server.http.url"},
		{"http with stdio", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) { s.Stdio = &mcpmeshv1.StdioConfig{Command: "x"} }), "server.stdio"},
		{"bad endpoint", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) { s.Endpoints = []string{"http://ok", "nope"} }), "server.endpoints[1]"},
		{"bad header", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) { s.Http.Headers = map[string]string{"a b": "c"} }), "server.http.headers"},
		{"negative timeout", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Timeout = durationpb.New(-time.Second) }), "server.timeout"},
		{"zero backoff step", mod(stdio("x"), func(s *mcpmeshv1.Server) {
			s.Backoff = []*durationpb.Duration{durationpb.New(time.Second), durationpb.New(0)}
		}), "server.backoff[1]"},
		{"huge backoff step", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Backoff = []*durationpb.Duration{durationpb.New(time.Hour)} }), "server.backoff[0]"},
		{"huge timeout", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Timeout = durationpb.New(2 * time.Hour) }), "server.timeout"},
		{"prefix with a space", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Prefix = proto.String("a b") }), "server.prefix"},
		{"prefix too long", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Prefix = proto.String(strings.Repeat("p", 33)) }), "server.prefix"},
		{"unknown session mode", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Session = 9 }), "server.session"},
		{"per-client stdio", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Session = mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT }), "server.session"},
		{"bad tag", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Tags = []string{"ok", "Not OK"} }), "server.tags[1]"},
		{"tiny backoff step", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Backoff = []*durationpb.Duration{durationpb.New(time.Millisecond)} }), "server.backoff[0]"},
		// Field sizes (limits.go).
		{"url too long", httpSrv("x", "http://h/"+strings.Repeat("a", registry.MaxURLLen)), "server.http.url"},
		{"endpoint too long", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) {
			s.Endpoints = []string{"http://ok", "http://h/" + strings.Repeat("a", registry.MaxURLLen)}
		}), "server.endpoints[1]"},
		{"too many endpoints", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) {
			s.Endpoints = slices.Repeat([]string{"http://h2"}, registry.MaxEndpoints+1)
		}), "server.endpoints"},
		{"command too long", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Command = strings.Repeat("c", registry.MaxCommandLen+1) }), "server.stdio.command"},
		{"too many args", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Args = slices.Repeat([]string{"-v"}, registry.MaxArgs+1) }), "server.stdio.args"},
		{"arg too long", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Args = []string{"-v", strings.Repeat("a", registry.MaxArgLen+1)} }), "server.stdio.args[1]"},
		{"working dir too long", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.WorkingDir = "/" + strings.Repeat("d", registry.MaxWorkingDirLen) }), "server.stdio.working_dir"},
		{"too many env entries", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Stdio.Env = entries(registry.MaxMapEntries + 1) }), "server.stdio.env"},
		{"env name too long", mod(stdio("x"), func(s *mcpmeshv1.Server) {
			s.Stdio.Env = map[string]string{strings.Repeat("K", registry.MaxMapKeyLen+1): "v"}
		}), "server.stdio.env"},
		{"env value too long", mod(stdio("x"), func(s *mcpmeshv1.Server) {
			s.Stdio.Env = map[string]string{"K": strings.Repeat("v", registry.MaxMapValueLen+1)}
		}), "server.stdio.env"},
		{"too many headers", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) { s.Http.Headers = entries(registry.MaxMapEntries + 1) }), "server.http.headers"},
		{"header value too long", mod(httpSrv("x", "http://h"), func(s *mcpmeshv1.Server) {
			s.Http.Headers = map[string]string{"Authorization": strings.Repeat("v", registry.MaxMapValueLen+1)}
		}), "server.http.headers"},
		{"too many tags", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Tags = slices.Repeat([]string{"t"}, registry.MaxTags+1) }), "server.tags"},
		{"description too long", mod(stdio("x"), func(s *mcpmeshv1.Server) { s.Description = strings.Repeat("d", registry.MaxDescriptionLen+1) }), "server.description"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: tc.srv})
			wantCode(t, err, codes.InvalidArgument, tc.field+":")
			var br *errdetails.BadRequest
			for _, d := range status.Convert(err).Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			if br == nil || br.GetFieldViolations()[0].GetField() != tc.field {
				t.Fatalf("BadRequest detail = %v, want field %s", br, tc.field)
			}
		})
	}
	// Valid edge cases.
	okSrv := httpSrv("ok-1", "https://h:8443/mcp")
	okSrv.Transport = mcpmeshv1.Transport_TRANSPORT_SSE
	okSrv.Endpoints = []string{"http://127.0.0.1:9/x"}
	okSrv.Timeout = durationpb.New(time.Hour)
	okSrv.Tags = []string{"a.b_c-d"}
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: okSrv}); err != nil {
		t.Fatalf("valid server rejected: %v", err)
	}
	// Every field at its bound is accepted.
	big := stdio("big-1")
	big.Stdio.Command = strings.Repeat("c", registry.MaxCommandLen)
	big.Stdio.Args = slices.Repeat([]string{strings.Repeat("a", registry.MaxArgLen)}, registry.MaxArgs)
	big.Stdio.WorkingDir = strings.Repeat("d", registry.MaxWorkingDirLen)
	big.Stdio.Env = entries(registry.MaxMapEntries)
	big.Stdio.Env[strings.Repeat("K", registry.MaxMapKeyLen)] = strings.Repeat("v", registry.MaxMapValueLen)
	delete(big.Stdio.Env, "K0")
	big.Tags = slices.Repeat([]string{"t"}, registry.MaxTags)
	big.Description = strings.Repeat("d", registry.MaxDescriptionLen)
	big.Backoff = []*durationpb.Duration{durationpb.New(registry.MinBackoffStep)}
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: big}); err != nil {
		t.Fatalf("server with every field at its bound rejected: %v", err)
	}
	bigHTTP := httpSrv("big-2", "http://h/"+strings.Repeat("a", registry.MaxURLLen-len("http://h/")))
	bigHTTP.Endpoints = slices.Repeat([]string{bigHTTP.Http.Url}, registry.MaxEndpoints)
	bigHTTP.Http.Headers = entries(registry.MaxMapEntries)
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: bigHTTP}); err != nil {
		t.Fatalf("HTTP server with every field at its bound rejected: %v", err)
	}
	if r, _ := e.st.Revision(ctx); r != 3 {
		t.Fatalf("invalid requests changed the store: revision %d", r)
	}
}

func TestValidateOnly(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	resp, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a"), ValidateOnly: true})
	if err != nil || resp.GetServer().GetName() != "a" || !resp.GetServer().GetRedacted() {
		t.Fatalf("dry-run create = %v, %v", resp, err)
	}
	if _, err := e.st.GetServer(ctx, "a"); err == nil {
		t.Fatal("dry run stored the server")
	}
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a")}); err != nil {
		t.Fatal(err)
	}
	_, err = e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a"), ValidateOnly: true})
	wantCode(t, err, codes.AlreadyExists, `server "a" already exists`)
	upd := stdio("a")
	upd.Description = "dry"
	if _, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: upd, ValidateOnly: true}); err != nil {
		t.Fatal(err)
	}
	if s, _ := e.st.GetServer(ctx, "a"); s.GetDescription() != "" {
		t.Fatal("dry-run update stored")
	}
	if _, err := e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "pagination.enabled", Value: "true", ValidateOnly: true}); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := e.st.GetSettings(ctx); st.GetPagination().GetEnabled() {
		t.Fatal("dry-run setting stored")
	}
}

func TestUpdateConcurrencyAndSecrets(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a")})
	if err != nil {
		t.Fatal(err)
	}
	// Send back what Get returned (redacted) with one change, as `server disable` does.
	got, _ := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
	s := got.GetServer()
	s.Enabled = proto.Bool(false)
	s.Stdio.Env["NEW"] = "v"
	u, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: s, ExpectedRevision: c.GetServer().GetModRevision()})
	if err != nil {
		t.Fatal(err)
	}
	if u.GetServer().GetModRevision() != 2 || u.GetServer().GetCreateRevision() != 1 || u.GetServer().GetEnabled() {
		t.Fatalf("update = %v", u)
	}
	stored, _ := e.st.GetServer(ctx, "a")
	if stored.GetStdio().GetEnv()["API_KEY"] != "s3cret" || stored.GetStdio().GetEnv()["NEW"] != "v" {
		t.Fatalf("redacted round trip clobbered secrets: %v", stored.GetStdio().GetEnv())
	}
	// Stale revision.
	_, err = e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: s, ExpectedRevision: 1})
	wantCode(t, err, codes.Aborted, "get it again and retry")
	_, err = e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: stdio("ghost")})
	wantCode(t, err, codes.NotFound, `server "ghost" not found`)
	// Status shows disabled.
	g, _ := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
	if g.GetStatus().GetState() != health.StateDisabled {
		t.Fatalf("disabled server state = %s", g.GetStatus().GetState())
	}
}

// TestSecretArgs: args marked secret come back as "***" and survive a
// read-modify-write of the redacted server.
func TestSecretArgs(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	in := stdio("a")
	in.Stdio.Args, in.Stdio.SecretArgs = []string{"--token", "t0ps3cret", "--v"}, []uint32{1}
	c, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: in})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.GetServer().GetStdio().GetArgs(); !slices.Equal(got, []string{"--token", registry.Redacted, "--v"}) {
		t.Fatalf("create answered args %q", got)
	}
	g, _ := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
	l, _ := e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	for _, s := range []*mcpmeshv1.Server{g.GetServer(), l.GetServers()[0]} {
		if s.GetStdio().GetArgs()[1] != registry.Redacted {
			t.Fatalf("answered args %q", s.GetStdio().GetArgs())
		}
	}
	s := g.GetServer()
	s.Enabled = proto.Bool(false)
	if _, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: s}); err != nil {
		t.Fatal(err)
	}
	stored, _ := e.st.GetServer(ctx, "a")
	if got := stored.GetStdio().GetArgs(); !slices.Equal(got, []string{"--token", "t0ps3cret", "--v"}) {
		t.Fatalf("redacted round trip clobbered the secret arg: %q", got)
	}
}

func TestSettings(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	g, err := e.reg.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.GetValues()) != 7 || g.GetValues()["pagination.page_size"] != "100" || g.GetValues()["resilience.backoff"] != "1s,2s,4s,8s" {
		t.Fatalf("defaults = %v", g.GetValues())
	}
	s, err := e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "resilience.backoff", Value: "10ms,20ms"})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetRevision() != 1 || s.GetValues()["resilience.backoff"] != "10ms,20ms" || s.GetValues()["pagination.page_size"] != "100" {
		t.Fatalf("set = %v", s)
	}
	_, err = e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "bogus", Value: "1"})
	wantCode(t, err, codes.InvalidArgument, "valid keys are pagination.enabled, pagination.page_size, resilience.backoff, resilience.jitter, resilience.probe_interval, resilience.request_timeout")
	_, err = e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "pagination.page_size", Value: "5000"})
	wantCode(t, err, codes.InvalidArgument, "value: pagination.page_size")
}

func TestStatusAndWatch(t *testing.T) {
	e := start(t)
	// Every wait below is bounded by this deadline: Recv returns
	// DeadlineExceeded when it passes, so a missing update fails the test
	// instead of hanging the package.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := e.reg.WatchStatus(ctx, &mcpmeshv1.WatchStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || first.GetStatus().GetRevision() != 0 {
		t.Fatalf("first watch = %v, %v", first, err)
	}
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a")}); err != nil {
		t.Fatal(err)
	}
	next := func(what string, pred func(*mcpmeshv1.GetStatusResponse) bool) *mcpmeshv1.GetStatusResponse {
		t.Helper()
		var last *mcpmeshv1.GetStatusResponse
		for {
			m, err := w.Recv()
			if err != nil {
				t.Fatalf("watch, waiting for %s: %v; last status: %v", what, err, last)
			}
			if last = m.GetStatus(); pred(last) {
				return last
			}
		}
	}
	next("the new server", func(s *mcpmeshv1.GetStatusResponse) bool { return s.GetRevision() == 1 && len(s.GetServers()) == 1 })

	// A data plane connects and reports the server healthy.
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	stream, err := e.dc.StreamConfig(sctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *mcpmeshv1.StreamConfigRequest) {
		t.Helper()
		if err := stream.Send(m); err != nil {
			// Send reports io.EOF when the server ended the stream; Recv has the status.
			_, rerr := stream.Recv()
			t.Fatalf("config stream send: %v (stream status: %v)", err, rerr)
		}
	}
	send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "dp1"}}})
	snap, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetSnapshot().GetRevision() != 1 {
		t.Fatalf("data plane got revision %d, want 1", snap.GetSnapshot().GetRevision())
	}
	send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Ack{Ack: &mcpmeshv1.Ack{Revision: snap.GetSnapshot().GetRevision(), Nonce: snap.GetNonce()}}})
	send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{
		Backends: []*mcpmeshv1.BackendHealth{{Server: "a", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}},
	}}})
	st := next("dp1 healthy at revision 1", func(s *mcpmeshv1.GetStatusResponse) bool {
		return len(s.GetServers()) == 1 && s.GetServers()[0].GetState() == health.StateHealthy &&
			len(s.GetDataplanes()) == 1 && s.GetDataplanes()[0].GetRevision() == 1
	})
	if !st.GetDataplanes()[0].GetConnected() || st.GetServers()[0].GetHealthyDataplanes() != 1 {
		t.Fatalf("status = %v", st)
	}
	got, err := e.reg.GetStatus(ctx, &mcpmeshv1.GetStatusRequest{})
	if err != nil || got.GetServers()[0].GetState() != health.StateHealthy {
		t.Fatalf("GetStatus = %v, %v", got, err)
	}
	dps, err := e.reg.ListDataPlanes(ctx, &mcpmeshv1.ListDataPlanesRequest{})
	if err != nil || len(dps.GetDataplanes()) != 1 || dps.GetDataplanes()[0].GetId() != "dp1" {
		t.Fatalf("ListDataPlanes = %v, %v", dps, err)
	}
	// It disconnects: listed as not connected, the server's state becomes unknown.
	scancel()
	next("dp1 disconnected", func(s *mcpmeshv1.GetStatusResponse) bool {
		return len(s.GetDataplanes()) == 1 && !s.GetDataplanes()[0].GetConnected() && s.GetServers()[0].GetState() == health.StateUnknown
	})
}
