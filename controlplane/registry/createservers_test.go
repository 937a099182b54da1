package registry_test

import (
	"context"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"google.golang.org/grpc/codes"
)

// TestCreateServers: several servers land in one revision, redacted in the
// answer; a dry run stores nothing; any bad server, taken name or repeated
// name refuses the whole call, naming which one, and leaves the store alone.
func TestCreateServers(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("taken")}); err != nil {
		t.Fatal(err)
	}

	batch := []*mcpmeshv1.Server{stdio("a"), httpSrv("b", "https://b.example/mcp"), stdio("c")}
	dry, err := e.reg.CreateServers(ctx, &mcpmeshv1.CreateServersRequest{Servers: batch, ValidateOnly: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if dry.GetRevision() != 1 || len(dry.GetServers()) != 3 || dry.GetServers()[0].GetStdio().GetEnv()["API_KEY"] != registry.Redacted {
		t.Fatalf("dry run = %v, want 3 redacted servers at the current revision 1", dry)
	}
	if _, rev, _ := e.st.ListServers(ctx); rev != 1 {
		t.Fatalf("dry run moved the revision to %d", rev)
	}

	bad := []struct {
		name string
		srvs []*mcpmeshv1.Server
		code codes.Code
		msg  string
	}{
		{"empty", nil, codes.InvalidArgument, "servers: is empty"},
		{"invalid second", []*mcpmeshv1.Server{stdio("ok"), {Name: "Bad Name", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "x"}}}, codes.InvalidArgument, "servers[1].name:"},
		{"invalid url", []*mcpmeshv1.Server{httpSrv("h", "ftp://h/mcp")}, codes.InvalidArgument, `(server "h")`},
		{"taken", []*mcpmeshv1.Server{stdio("new"), stdio("taken")}, codes.AlreadyExists, `server "taken" already exists`},
		{"twice", []*mcpmeshv1.Server{stdio("dup"), stdio("x"), stdio("dup")}, codes.AlreadyExists, `server "dup" is given twice (servers[0] and servers[2])`},
	}
	for _, tc := range bad {
		for _, validateOnly := range []bool{true, false} {
			_, err := e.reg.CreateServers(ctx, &mcpmeshv1.CreateServersRequest{Servers: tc.srvs, ValidateOnly: validateOnly})
			t.Run(tc.name, func(t *testing.T) { wantCode(t, err, tc.code, tc.msg) })
		}
	}
	if list, rev, _ := e.st.ListServers(ctx); rev != 1 || len(list) != 1 {
		t.Fatalf("refused calls left %d servers at revision %d, want 1 at 1", len(list), rev)
	}

	resp, err := e.reg.CreateServers(ctx, &mcpmeshv1.CreateServersRequest{Servers: batch})
	if err != nil {
		t.Fatalf("CreateServers: %v", err)
	}
	if resp.GetRevision() != 2 {
		t.Fatalf("revision = %d, want 2 (one for all three)", resp.GetRevision())
	}
	for i, s := range resp.GetServers() {
		if s.GetName() != batch[i].GetName() || s.GetModRevision() != 2 || !s.GetRedacted() {
			t.Errorf("server %d = %v, want %q at revision 2, redacted", i, s, batch[i].GetName())
		}
	}
	if h := resp.GetServers()[1].GetHttp().GetHeaders()["Authorization"]; h != registry.Redacted {
		t.Errorf("header answered back as %q", h)
	}
	stored, err := e.st.GetServer(ctx, "a")
	if err != nil || stored.GetStdio().GetEnv()["API_KEY"] != "s3cret" {
		t.Fatalf("stored a = %v, %v; want the secret kept", stored, err)
	}
}

// TestCreateServersSnapshotLimit: a batch that would overflow the snapshot
// is refused as a whole, though each server alone would fit.
func TestCreateServersSnapshotLimit(t *testing.T) {
	ctx := context.Background()
	const maxMsg = 1 << 20
	st := store.NewMemory()
	agg := health.New(st, nil, nil)
	disc := discovery.New(st, agg, nil)
	t.Cleanup(func() { disc.Close(); st.Close() })
	svc := registry.New(st, disc, agg, nil, registry.WithMaxMessageSize(maxMsg))
	one := []*mcpmeshv1.Server{padded("p0", 300<<10)}
	if _, err := svc.CreateServers(ctx, &mcpmeshv1.CreateServersRequest{Servers: one, ValidateOnly: true}); err != nil {
		t.Fatalf("one 300 KB server: %v", err)
	}
	var many []*mcpmeshv1.Server
	for _, n := range []string{"p0", "p1", "p2", "p3", "p4"} {
		many = append(many, padded(n, 300<<10))
	}
	_, err := svc.CreateServers(ctx, &mcpmeshv1.CreateServersRequest{Servers: many})
	wantTooLarge(t, err, "servers", limits.MaxSnapshotSize(maxMsg))
	if list, rev, _ := st.ListServers(ctx); rev != 0 || len(list) != 0 {
		t.Fatalf("refused batch stored %d servers (revision %d)", len(list), rev)
	}
}

func TestGetVersion(t *testing.T) {
	e := start(t)
	resp, err := e.reg.GetVersion(context.Background(), &mcpmeshv1.GetVersionRequest{})
	if err != nil || resp.GetVersion() != version.Version {
		t.Fatalf("GetVersion = %v, %v; want %q", resp, err, version.Version)
	}
}
