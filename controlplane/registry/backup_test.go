package registry_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A backup over gRPC restores into another control plane's store (a fresh
// one without force, a used one only with it); validate_only changes
// nothing; what the registry would refuse is refused with the field named.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	src := start(t)
	storetest.Populate(t, src.st)
	if _, err := src.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: httpSrv("web", "https://example.com/mcp")}); err != nil {
		t.Fatal(err)
	}
	b, err := src.bk.Backup(ctx, &mcpmeshv1.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	bk := b.GetBackup()
	if bk.GetFormatVersion() != 1 || bk.GetSourceStore() != "bolt" || bk.GetCreatedAt() == nil || len(bk.GetServers()) != 3 ||
		len(bk.GetTokens()) != 2 || len(bk.GetClientKeys()) != 1 || len(bk.GetClusterSecret()) != 32 || len(bk.GetPreviousSecrets()) != 1 {
		t.Fatalf("backup = %v", bk)
	}
	if got := bk.GetServers()[2].GetHttp().GetHeaders()["Authorization"]; got != "Bearer x" {
		t.Fatalf("backup holds header %q, want the secret in clear", got)
	}

	dstStore, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	dst := startWith(t, dstStore, discardLogger())
	if _, err := dst.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("other")}); err != nil {
		t.Fatal(err)
	}
	_, err = dst.bk.Restore(ctx, &mcpmeshv1.RestoreRequest{Backup: bk})
	wantCode(t, err, codes.FailedPrecondition, "use --force")
	v, err := dst.bk.Restore(ctx, &mcpmeshv1.RestoreRequest{Backup: bk, Force: true, ValidateOnly: true})
	if err != nil || v.GetReplaced().GetServers() != 1 || v.GetRestored().GetServers() != 3 {
		t.Fatalf("validate-only restore = %v, %v", v, err)
	}
	if l, _ := dst.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{}); len(l.GetServers()) != 1 {
		t.Fatalf("validate-only restore changed the store: %v", l.GetServers())
	}
	r, err := dst.bk.Restore(ctx, &mcpmeshv1.RestoreRequest{Backup: bk, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetRevision() <= bk.GetRevision() || r.GetRestored().GetTokens() != 2 {
		t.Fatalf("restore = %v", r)
	}
	want, _ := src.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	got, _ := dst.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	if len(got.GetServers()) != len(want.GetServers()) {
		t.Fatalf("restored %d servers, want %d", len(got.GetServers()), len(want.GetServers()))
	}
	for i := range want.GetServers() {
		w, g := want.GetServers()[i], got.GetServers()[i]
		w.CreateRevision, w.ModRevision, g.CreateRevision, g.ModRevision = 0, 0, 0, 0
		if !proto.Equal(w, g) {
			t.Fatalf("restored server %d = %v, want %v", i, g, w)
		}
	}
	// The restored tokens authenticate; the cluster secret is the source's.
	sd, _ := src.st.Dump(ctx)
	dd, _ := dst.st.Dump(ctx)
	if diff := storetest.SameContent(sd, dd); diff != "" {
		t.Fatalf("restored store differs in its %s", diff)
	}

	bad := func(name, field string, mut func(b *mcpmeshv1.Backup)) {
		t.Helper()
		c := proto.CloneOf(bk)
		mut(c)
		_, err := dst.bk.Restore(ctx, &mcpmeshv1.RestoreRequest{Backup: c, Force: true})
		wantCode(t, err, codes.InvalidArgument, field)
	}
	bad("no version", "backup.format_version: is missing", func(b *mcpmeshv1.Backup) { b.FormatVersion = 0 })
	bad("newer version", "newer mcpmesh", func(b *mcpmeshv1.Backup) { b.FormatVersion = 2 })
	bad("redacted server", "backup.servers[0]", func(b *mcpmeshv1.Backup) { b.Servers[0].Redacted = true })
	bad("bad server name", "backup.servers[1].server.name", func(b *mcpmeshv1.Backup) { b.Servers[1].Name = "no spaces" })
	bad("bad timeout", "backup.servers[0].server.timeout", func(b *mcpmeshv1.Backup) { b.Servers[0].Timeout = durationpb.New(-1) })
	bad("bad settings", "backup.settings", func(b *mcpmeshv1.Backup) { b.Settings.Pagination.PageSize = 1 << 30 })
	bad("short secret", "cluster secret is 3 bytes", func(b *mcpmeshv1.Backup) { b.ClusterSecret = []byte("abc") })
	bad("duplicate", "appears twice", func(b *mcpmeshv1.Backup) { b.Servers = append(b.Servers, b.Servers[0]) })
	_, err = dst.bk.Restore(ctx, &mcpmeshv1.RestoreRequest{})
	wantCode(t, err, codes.InvalidArgument, "backup")
	if after, _ := dst.st.Dump(ctx); after.Revision != r.GetRevision() {
		t.Fatalf("a refused restore moved the revision from %d to %d", r.GetRevision(), after.Revision)
	}
}
