package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Populate fills s with one of everything a dump holds: servers a and b,
// settings, a revoked and a live token, a client key, and a rotated cluster
// secret (the previous one accepted for a day from now).
func Populate(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, n := range []string{"b", "a"} {
		if _, err := s.CreateServer(ctx, Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutSettings(ctx, &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true, PageSize: 7}}); err != nil {
		t.Fatal(err)
	}
	hash := []byte("0123456789abcdef0123456789abcdef")
	for _, id := range []string{"t2", "t1"} {
		tok := &mcpmeshv1.StoredToken{Token: &mcpmeshv1.Token{Id: id, Role: mcpmeshv1.Role_ROLE_VIEWER, CreatedAt: timestamppb.New(time.Unix(1700000000, 0))}, SecretSha256: hash}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RevokeToken(ctx, "t1", time.Unix(1700000100, 0)); err != nil {
		t.Fatal(err)
	}
	key := &mcpmeshv1.StoredClientKey{Key: &mcpmeshv1.ClientKey{Id: "k1", Tags: []string{"prod"}, CreatedAt: timestamppb.New(time.Unix(1700000000, 0))}, SecretSha256: hash}
	if _, err := s.CreateClientKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.RotateClusterSecret(ctx, now, now.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func dump(t *testing.T, s store.Store) *store.Dump {
	t.Helper()
	d, err := s.Dump(context.Background())
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	return d
}

// SameContent reports the first difference between what two dumps hold,
// ignoring revisions (a restore stamps its own) and nothing else.
func SameContent(a, b *store.Dump) string {
	if len(a.Servers) != len(b.Servers) {
		return "server count"
	}
	for i := range a.Servers {
		x, y := proto.CloneOf(a.Servers[i]), proto.CloneOf(b.Servers[i])
		x.CreateRevision, x.ModRevision, y.CreateRevision, y.ModRevision = 0, 0, 0, 0
		if !proto.Equal(x, y) {
			return "server " + x.GetName()
		}
	}
	if !proto.Equal(a.Settings, b.Settings) {
		return "settings"
	}
	if !bytes.Equal(a.ClusterSecret, b.ClusterSecret) {
		return "cluster secret"
	}
	if len(a.PreviousSecrets) != len(b.PreviousSecrets) {
		return "previous secret count"
	}
	for i := range a.PreviousSecrets {
		if !bytes.Equal(a.PreviousSecrets[i].Secret, b.PreviousSecrets[i].Secret) || !a.PreviousSecrets[i].ExpiresAt.Equal(b.PreviousSecrets[i].ExpiresAt) {
			return "previous secret"
		}
	}
	if len(a.Tokens) != len(b.Tokens) || len(a.ClientKeys) != len(b.ClientKeys) {
		return "token or client key count"
	}
	for i := range a.Tokens {
		if !proto.Equal(a.Tokens[i], b.Tokens[i]) {
			return "token " + a.Tokens[i].GetToken().GetId()
		}
	}
	for i := range a.ClientKeys {
		if !proto.Equal(a.ClientKeys[i], b.ClientKeys[i]) {
			return "client key " + a.ClientKeys[i].GetKey().GetId()
		}
	}
	return ""
}

// A restore refuses a store that holds something unless forced, refuses a
// bad dump, and changes nothing when it refuses; forced, it puts back
// exactly what was dumped at a revision past both, announced to watchers.
func testDumpRestoreRules(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	if d := dump(t, s); !d.Empty() || len(d.ClusterSecret) != 32 || d.Revision != rev(t, s) {
		t.Fatalf("fresh store dump: empty %v, secret %d bytes, revision %d (store %d)", d.Empty(), len(d.ClusterSecret), d.Revision, rev(t, s))
	}
	Populate(t, s)
	saved := dump(t, s)
	if saved.Empty() || saved.Counts() != (store.Counts{Servers: 2, Tokens: 2, ClientKeys: 1, PreviousSecrets: 1}) {
		t.Fatalf("populated dump counts = %+v", saved.Counts())
	}
	if saved.Servers[0].GetName() != "a" || saved.Tokens[0].GetToken().GetId() != "t1" || saved.Servers[0].GetStdio().GetEnv()["TOKEN"] != "secret-a" {
		t.Fatalf("dump not sorted or secrets not in clear: %v %v", saved.Servers, saved.Tokens)
	}

	// Change things after the dump.
	if _, err := s.DeleteServer(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, Server("c")); err != nil {
		t.Fatal(err)
	}
	changed := dump(t, s)

	if _, err := s.Restore(ctx, saved, false); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty store without force: err = %v, want ErrNotEmpty", err)
	}
	bad := func(name string, mut func(d *store.Dump)) {
		d := dump(t, s)
		d.State.Servers = append([]*mcpmeshv1.Server(nil), saved.Servers...)
		mut(d)
		if _, err := s.Restore(ctx, d, true); err == nil || errors.Is(err, store.ErrNotEmpty) {
			t.Errorf("restore of a dump with %s: err = %v, want a check error", name, err)
		}
	}
	bad("a revision past any store's", func(d *store.Dump) { d.Revision = store.MaxRestoreRevision + 1 })
	bad("a short cluster secret", func(d *store.Dump) { d.ClusterSecret = d.ClusterSecret[:16] })
	bad("a duplicate server", func(d *store.Dump) { d.Servers = append(d.Servers, Server("a")) })
	bad("a server without a name", func(d *store.Dump) { d.Servers = append(d.Servers, &mcpmeshv1.Server{}) })
	bad("a duplicate token", func(d *store.Dump) { d.Tokens = append(d.Tokens, d.Tokens[0]) })
	bad("a client key without a hash", func(d *store.Dump) {
		d.ClientKeys = append(d.ClientKeys, &mcpmeshv1.StoredClientKey{Key: &mcpmeshv1.ClientKey{Id: "k9"}})
	})
	bad("too many previous secrets", func(d *store.Dump) {
		for range store.MaxPreviousSecrets {
			d.PreviousSecrets = append(d.PreviousSecrets, d.PreviousSecrets[0])
		}
	})
	if _, err := s.Restore(ctx, nil, true); err == nil {
		t.Error("restore of nil succeeded")
	}
	if diff := SameContent(changed, dump(t, s)); diff != "" || rev(t, s) != changed.Revision {
		t.Fatalf("a refused restore changed the store (%s; revision %d, was %d)", diff, rev(t, s), changed.Revision)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.Watch(wctx)
	before := rev(t, s)
	got, err := s.Restore(ctx, saved, true)
	if err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if got <= before || got <= saved.Revision || rev(t, s) != got {
		t.Fatalf("restore revision %d: want past the store's %d and the dump's %d, and current (%d)", got, before, saved.Revision, rev(t, s))
	}
	select {
	case r := <-w:
		if r != got {
			t.Fatalf("watch saw %d, want %d", r, got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restore not announced to watchers")
	}
	after := dump(t, s)
	if diff := SameContent(saved, after); diff != "" {
		t.Fatalf("restored content differs from the dump: %s", diff)
	}
	for _, srv := range after.Servers {
		if srv.GetModRevision() != got || srv.GetCreateRevision() != got {
			t.Fatalf("restored server %q at revisions %d/%d, want %d", srv.GetName(), srv.GetCreateRevision(), srv.GetModRevision(), got)
		}
	}
	if _, err := s.GetServer(ctx, "c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("server made after the dump survived the restore: %v", err)
	}
	// The restored store works as usual: an update based on the restored
	// revision succeeds, a stale one conflicts.
	a, err := s.GetServer(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	a.Timeout = durationpb.New(9 * time.Second)
	if _, err := s.UpdateServer(ctx, a, got); err != nil {
		t.Fatalf("update at the restored revision: %v", err)
	}
	if _, err := s.UpdateServer(ctx, a, got); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update after restore: err = %v, want ErrConflict", err)
	}
	st := state(t, s)
	if !bytes.Equal(st.ClusterSecret, saved.ClusterSecret) || len(st.PreviousSecrets) != 1 || len(st.ClientKeys) != 1 {
		t.Fatalf("State after restore: secret restored %v, %d previous, %d client keys", bytes.Equal(st.ClusterSecret, saved.ClusterSecret), len(st.PreviousSecrets), len(st.ClientKeys))
	}
}

// What one store dumps, a fresh one restores without force; previous
// secrets that expired are not restored.
func testRestoreIntoEmpty(t *testing.T, open Open) {
	ctx := context.Background()
	src, dst := open(t), open(t)
	t.Cleanup(func() { _ = src.Close(); _ = dst.Close() })
	Populate(t, src)
	d := dump(t, src)
	d.PreviousSecrets = append(d.PreviousSecrets, store.PreviousSecret{Secret: bytes.Repeat([]byte{7}, 32), ExpiresAt: time.Unix(1, 0)})
	got, err := dst.Restore(ctx, d, false)
	if err != nil {
		t.Fatalf("restore into a fresh store: %v", err)
	}
	if got <= d.Revision {
		t.Fatalf("restore revision %d not past the dump's %d", got, d.Revision)
	}
	d.PreviousSecrets = d.PreviousSecrets[:1]
	if diff := SameContent(d, dump(t, dst)); diff != "" {
		t.Fatalf("restored content differs: %s", diff)
	}
	if _, err := dst.Restore(ctx, d, false); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("second restore without force: err = %v, want ErrNotEmpty", err)
	}
}
