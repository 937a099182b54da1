package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// wantRoles is the RPC × role table, written out here on purpose rather
// than read from access's rules: it is the security contract, and a change
// to either side must be made twice. Every RPC of every service in the
// mcpmesh.v1 proto package must be listed (TestRPCRoleTable fails on a new
// RPC until it is).
var wantRoles = map[string][]string{
	"/mcpmesh.v1.RegistryService/CreateServer":   {"admin"},
	"/mcpmesh.v1.RegistryService/UpdateServer":   {"admin"},
	"/mcpmesh.v1.RegistryService/DeleteServer":   {"admin"},
	"/mcpmesh.v1.RegistryService/GetServer":      {"admin", "viewer"},
	"/mcpmesh.v1.RegistryService/ListServers":    {"admin", "viewer"},
	"/mcpmesh.v1.RegistryService/GetSettings":    {"admin", "viewer"},
	"/mcpmesh.v1.RegistryService/SetSetting":     {"admin"},
	"/mcpmesh.v1.RegistryService/ListDataPlanes": {"admin", "viewer"},
	"/mcpmesh.v1.RegistryService/GetStatus":      {"admin", "viewer"},
	"/mcpmesh.v1.RegistryService/WatchStatus":    {"admin", "viewer"},
	"/mcpmesh.v1.RegistryService/CreateServers":  {"admin"},
	"/mcpmesh.v1.RegistryService/GetVersion":     {"admin", "viewer"},
	"/mcpmesh.v1.DiscoveryService/StreamConfig":  {"admin", "dataplane"},
	"/mcpmesh.v1.TokenService/CreateToken":       {"admin"},
	"/mcpmesh.v1.TokenService/ListTokens":        {"admin", "viewer"},
	"/mcpmesh.v1.TokenService/RevokeToken":       {"admin"},
	"/mcpmesh.v1.TokenService/WhoAmI":            {"admin", "viewer", "dataplane"},

	"/mcpmesh.v1.OAuthService/ListAuthorizations":    {"admin", "viewer"},
	"/mcpmesh.v1.OAuthService/BeginAuthorization":    {"admin"},
	"/mcpmesh.v1.OAuthService/CompleteAuthorization": {"admin"},
	"/mcpmesh.v1.OAuthService/RevokeAuthorization":   {"admin"},
	"/mcpmesh.v1.OAuthService/RefreshAuthorization":  {"admin", "dataplane"},
	"/mcpmesh.v1.SecretService/RotateClusterSecret":  {"admin"},

	"/mcpmesh.v1.ClientKeyService/CreateClientKey": {"admin"},
	"/mcpmesh.v1.ClientKeyService/ListClientKeys":  {"admin", "viewer"},
	"/mcpmesh.v1.ClientKeyService/RevokeClientKey": {"admin"},

	"/mcpmesh.v1.BackupService/Backup":  {"admin"},
	"/mcpmesh.v1.BackupService/Restore": {"admin"},
}

// rpc is one method of a service, as the descriptors spell it.
type rpc struct {
	name string // "/pkg.Service/Method"
	desc protoreflect.MethodDescriptor
}

// allRPCs lists every method of every service declared in the mcpmesh.v1
// proto package, from the generated descriptors.
func allRPCs(t *testing.T) []rpc {
	t.Helper()
	var out []rpc
	protoregistry.GlobalFiles.RangeFilesByPackage("mcpmesh.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				out = append(out, rpc{name: fmt.Sprintf("/%s/%s", sd.FullName(), md.Name()), desc: md})
			}
		}
		return true
	})
	slices.SortFunc(out, func(a, b rpc) int { return strings.Compare(a.name, b.name) })
	if len(out) < len(wantRoles) {
		t.Fatalf("found %d RPCs in the descriptors, fewer than the %d in the table", len(out), len(wantRoles))
	}
	return out
}

// TestEveryRPCHasARule: every RPC has a rule in access and a row in the
// table above, and the two agree.
func TestEveryRPCHasARule(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range allRPCs(t) {
		seen[r.name] = true
		want, ok := wantRoles[r.name]
		if !ok {
			t.Errorf("%s has no row in wantRoles: decide which roles may call it (here and in controlplane/access/rules.go)", r.name)
			continue
		}
		if !access.HasRule(r.name) {
			t.Errorf("%s has no rule in controlplane/access/rules.go: it is denied to everyone", r.name)
		}
		for _, role := range []mcpmeshv1.Role{mcpmeshv1.Role_ROLE_ADMIN, mcpmeshv1.Role_ROLE_VIEWER, mcpmeshv1.Role_ROLE_DATAPLANE} {
			if got, w := access.Allowed(role, r.name), slices.Contains(want, authtoken.RoleName(role)); got != w {
				t.Errorf("access.Allowed(%s, %s) = %v, the table says %v", authtoken.RoleName(role), r.name, got, w)
			}
		}
	}
	for name := range wantRoles {
		if !seen[name] {
			t.Errorf("wantRoles lists %s, which no service declares", name)
		}
	}
}

// cluster is a control plane started by Run on a temp data dir.
type cluster struct {
	addr      string
	bootstrap string
	admin     *grpc.ClientConn
}

// startCluster runs a control plane (startRun, tls_test.go) on a temp data
// dir and dials it with the bootstrap admin token.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{addr: startRun(t, Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownTimeout: 2 * time.Second})}
	var err error
	c.bootstrap, err = authtoken.Read(filepath.Join(dir, authtoken.FileName))
	if err != nil {
		t.Fatal(err)
	}
	c.admin = c.dial(t, c.bootstrap)
	return c
}

// dial returns a connection that sends tok ("" for none).
func (c *cluster) dial(t *testing.T, tok string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(authtoken.Credentials(tok)))
	}
	cc, err := grpc.NewClient(c.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (c *cluster) createToken(t *testing.T, role mcpmeshv1.Role, ttl time.Duration) *mcpmeshv1.CreateTokenResponse {
	t.Helper()
	req := &mcpmeshv1.CreateTokenRequest{Role: role}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := mcpmeshv1.NewTokenServiceClient(c.admin).CreateToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// call invokes r with an empty request (which no handler acts on: every
// write needs a name, a role or an id, except CreateClientKey, which
// issues an untagged key) and returns the first error.
func call(ctx context.Context, cc *grpc.ClientConn, r rpc) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	in, out := dynamicpb.NewMessage(r.desc.Input()), dynamicpb.NewMessage(r.desc.Output())
	if !r.desc.IsStreamingClient() && !r.desc.IsStreamingServer() {
		return cc.Invoke(ctx, r.name, in, out)
	}
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: r.desc.IsStreamingServer(), ClientStreams: r.desc.IsStreamingClient()}, r.name)
	if err != nil {
		return err
	}
	if err := s.SendMsg(in); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	return s.RecvMsg(out)
}

// outcome sorts an error into what the table checks.
func outcome(err error) string {
	switch status.Code(err) {
	case codes.PermissionDenied:
		return "denied"
	case codes.Unauthenticated:
		return "unauthenticated"
	case codes.Unimplemented:
		return "unimplemented" // never wanted: the service is not served
	default:
		return "allowed" // OK, or the handler's own answer to an empty request
	}
}

// TestRPCRoleTable calls every RPC of every service under every kind of
// credential against the control plane Run builds, and checks that it is
// let through exactly when the table says so.
func TestRPCRoleTable(t *testing.T) {
	c := startCluster(t)
	tokens := map[string]string{"admin": c.bootstrap, "none": "", "garbage": "mcpm_0123456789abcdef_" + strings.Repeat("ab", 32)}
	tokens["admin-issued"] = c.createToken(t, mcpmeshv1.Role_ROLE_ADMIN, 0).GetSecret()
	viewer := c.createToken(t, mcpmeshv1.Role_ROLE_VIEWER, 0)
	tokens["viewer"] = viewer.GetSecret()
	// A real token's id with a made-up secret.
	tokens["forged"] = "mcpm_" + viewer.GetToken().GetId() + "_" + strings.Repeat("0", 64)
	tokens["dataplane"] = c.createToken(t, mcpmeshv1.Role_ROLE_DATAPLANE, 0).GetSecret()
	revoked := c.createToken(t, mcpmeshv1.Role_ROLE_ADMIN, 0)
	if _, err := mcpmeshv1.NewTokenServiceClient(c.admin).RevokeToken(context.Background(), &mcpmeshv1.RevokeTokenRequest{Id: revoked.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	tokens["revoked"] = revoked.GetSecret()
	expired := c.createToken(t, mcpmeshv1.Role_ROLE_ADMIN, 200*time.Millisecond)
	tokens["expired"] = expired.GetSecret()
	time.Sleep(time.Until(expired.GetToken().GetExpiresAt().AsTime()) + 50*time.Millisecond)

	callers := []string{"admin", "admin-issued", "viewer", "dataplane", "revoked", "expired", "forged", "none", "garbage"}
	conns := map[string]*grpc.ClientConn{}
	for _, who := range callers {
		conns[who] = c.dial(t, tokens[who])
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| RPC | %s |\n|---|%s\n", strings.Join(callers, " | "), strings.Repeat("---|", len(callers)))
	for _, r := range allRPCs(t) {
		fmt.Fprintf(&table, "| %s |", strings.TrimPrefix(r.name, "/mcpmesh.v1."))
		for _, who := range callers {
			var want string
			switch who {
			case "admin", "admin-issued", "viewer", "dataplane":
				want = "denied"
				if slices.Contains(wantRoles[r.name], strings.TrimSuffix(who, "-issued")) {
					want = "allowed"
				}
			default:
				want = "unauthenticated"
			}
			err := call(context.Background(), conns[who], r)
			got := outcome(err)
			if got != want {
				t.Errorf("%s as %s: %s (%v), want %s", r.name, who, got, err, want)
			}
			fmt.Fprintf(&table, " %s |", got)
		}
		table.WriteString("\n")
	}
	t.Logf("RPC × role:\n%s", table.String())
}

// A revoked token's open config stream ends within a second, with
// Unauthenticated; so does a viewer's status watch.
func TestRevokeEndsOpenStreams(t *testing.T) {
	c := startCluster(t)
	dp := c.createToken(t, mcpmeshv1.Role_ROLE_DATAPLANE, 0)
	vw := c.createToken(t, mcpmeshv1.Role_ROLE_VIEWER, 0)
	ctx := t.Context()

	cfg, err := mcpmeshv1.NewDiscoveryServiceClient(c.dial(t, dp.GetSecret())).StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "dp-1"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Recv(); err != nil { // the first snapshot: the stream is open
		t.Fatal(err)
	}
	watch, err := mcpmeshv1.NewRegistryServiceClient(c.dial(t, vw.GetSecret())).WatchStatus(ctx, &mcpmeshv1.WatchStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatal(err)
	}

	tokens := mcpmeshv1.NewTokenServiceClient(c.admin)
	for _, tc := range []struct {
		id   string
		recv func() error
	}{
		{dp.GetToken().GetId(), func() error { _, err := cfg.Recv(); return err }},
		{vw.GetToken().GetId(), func() error {
			for {
				if _, err := watch.Recv(); err != nil {
					return err
				}
			}
		}},
	} {
		start := time.Now()
		if _, err := tokens.RevokeToken(ctx, &mcpmeshv1.RevokeTokenRequest{Id: tc.id}); err != nil {
			t.Fatal(err)
		}
		err := tc.recv()
		if d := time.Since(start); d > time.Second {
			t.Errorf("token %s: stream ended %v after the revocation, want within 1s", tc.id, d)
		}
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("token %s: stream ended with %v, want Unauthenticated: token revoked", tc.id, err)
		}
	}
	// A new stream with the revoked token is refused.
	again, err := mcpmeshv1.NewDiscoveryServiceClient(c.dial(t, dp.GetSecret())).StreamConfig(ctx)
	if err == nil {
		_, err = again.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("new stream with a revoked token: %v, want Unauthenticated", err)
	}
}

// An expiring token's open config stream ends within a second of the expiry.
func TestExpiryEndsOpenStreams(t *testing.T) {
	c := startCluster(t)
	dp := c.createToken(t, mcpmeshv1.Role_ROLE_DATAPLANE, 700*time.Millisecond)
	cfg, err := mcpmeshv1.NewDiscoveryServiceClient(c.dial(t, dp.GetSecret())).StreamConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "dp-1"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = cfg.Recv()
	late := time.Since(dp.GetToken().GetExpiresAt().AsTime())
	if late > time.Second {
		t.Errorf("stream ended %v after the token expired, want within 1s", late)
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Errorf("stream ended with %v, want Unauthenticated: token expired", err)
	}
}
