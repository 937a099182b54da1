package store_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/etcdtest"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// rawEtcd is a plain etcd client, to read what the store wrote as etcd
// itself sees it.
func rawEtcd(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// etcdRev is etcd's current revision.
func etcdRev(t *testing.T, cli *clientv3.Client) uint64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	return uint64(resp.Header.Revision)
}

// modRev and createRev are etcd's revisions of key (0 if absent).
func modRev(t *testing.T, cli *clientv3.Client, key string) (mod, create uint64) {
	t.Helper()
	resp, err := cli.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0
	}
	return uint64(resp.Kvs[0].ModRevision), uint64(resp.Kvs[0].CreateRevision)
}

func storedToken(id string) *mcpmeshv1.StoredToken {
	return &mcpmeshv1.StoredToken{
		Token:        &mcpmeshv1.Token{Id: id, Role: mcpmeshv1.Role_ROLE_VIEWER, CreatedAt: timestamppb.New(time.Unix(1700000000, 0))},
		SecretSha256: []byte("0123456789abcdef0123456789abcdef"),
	}
}

// The config revision is etcd's: a config write through either of two
// replicas has the etcd revision of its transaction, which is etcd's
// current revision right after it, and both replicas read it; a server's
// revisions are its key's. Writes that are not config move etcd's revision
// but not the config revision.
func TestEtcdConfigRevisionIsEtcds(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	key := writeKey(t)
	a := openEtcd(t, c, "/rev/", key)
	b := openEtcd(t, c, "/rev/", key)
	cli := rawEtcd(t, c)

	if r, err := a.Revision(ctx); err != nil || r != 0 {
		t.Fatalf("fresh store at %d, %v; want 0", r, err)
	}
	// Writes of another prefix move etcd's revision: the config revision
	// is not a count of this store's writes.
	for range 3 {
		if _, err := cli.Put(ctx, "/elsewhere", "x"); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, rev uint64) {
		t.Helper()
		if now := etcdRev(t, cli); rev != now {
			t.Fatalf("%s at config revision %d, etcd at %d: want etcd's", what, rev, now)
		}
		if mod, _ := modRev(t, cli, "/rev/meta/revision"); mod != rev {
			t.Fatalf("%s at config revision %d, meta/revision modified at %d", what, rev, mod)
		}
		for name, s := range map[string]store.Store{"A": a, "B": b} {
			if r, err := s.Revision(ctx); err != nil || r != rev {
				t.Fatalf("after %s replica %s reads revision %d, %v; want %d", what, name, r, err, rev)
			}
		}
	}

	created, err := b.CreateServer(ctx, storetest.Server("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	check("create through B", created.GetModRevision())
	if mod, create := modRev(t, cli, "/rev/servers/alpha"); created.GetCreateRevision() != create || created.GetModRevision() != mod {
		t.Fatalf("created at %d/%d, the key at %d/%d", created.GetCreateRevision(), created.GetModRevision(), create, mod)
	}
	upd := storetest.Server("alpha")
	upd.Description = "v2"
	updated, err := a.UpdateServer(ctx, upd, created.GetModRevision())
	if err != nil {
		t.Fatal(err)
	}
	check("update through A", updated.GetModRevision())
	if updated.GetCreateRevision() != created.GetCreateRevision() {
		t.Fatalf("update moved the create revision from %d to %d", created.GetCreateRevision(), updated.GetCreateRevision())
	}
	got, err := b.GetServer(ctx, "alpha")
	if err != nil || got.GetModRevision() != updated.GetModRevision() || got.GetCreateRevision() != created.GetCreateRevision() {
		t.Fatalf("B reads alpha at %d/%d, %v; want %d/%d", got.GetCreateRevision(), got.GetModRevision(), err, created.GetCreateRevision(), updated.GetModRevision())
	}
	settings, err := b.PutSettings(ctx, &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	check("settings through B", settings)
	if _, r, err := a.GetSettings(ctx); err != nil || r != settings {
		t.Fatalf("A's GetSettings at %d, %v; want %d", r, err, settings)
	}
	if _, r, err := a.ListServers(ctx); err != nil || r != settings {
		t.Fatalf("A's ListServers at %d, %v; want %d", r, err, settings)
	}
	if st, err := a.State(ctx); err != nil || st.Revision != settings || st.Servers[0].GetModRevision() != updated.GetModRevision() {
		t.Fatalf("A's State = %v, %v; want revision %d, alpha at %d", st, err, settings, updated.GetModRevision())
	}

	// Not config: health, events, tokens. etcd's revision moves, the config
	// revision and the watchers do not.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchA, watchB := a.Watch(wctx), b.Watch(wctx)
	before := etcdRev(t, cli)
	hl := &mcpmeshv1.BackendHealth{DataplaneId: "dp", Server: "alpha", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}
	if err := a.PutHealth(ctx, "dp", []*mcpmeshv1.BackendHealth{hl}, []*mcpmeshv1.BackendHealth{hl}); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateToken(ctx, storedToken("tok")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeToken(ctx, "tok", time.Unix(1700000100, 0)); err != nil {
		t.Fatal(err)
	}
	if after := etcdRev(t, cli); after != before+3 {
		t.Fatalf("three non-config writes moved etcd from %d to %d, want 3 transactions", before, after)
	}
	for name, s := range map[string]store.Store{"A": a, "B": b} {
		if r, err := s.Revision(ctx); err != nil || r != settings {
			t.Fatalf("after health and token writes replica %s reads %d, %v; want %d", name, r, err, settings)
		}
	}
	// The next config write is the first notification either replica gets:
	// a non-config write would have been announced before it.
	del, err := a.DeleteServer(ctx, "alpha", updated.GetModRevision())
	if err != nil {
		t.Fatal(err)
	}
	check("delete through A", del)
	for name, w := range map[string]<-chan uint64{"A": watchA, "B": watchB} {
		select {
		case r := <-w:
			if r != del {
				t.Fatalf("replica %s watched %d first, want the delete's %d", name, r, del)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("replica %s saw no notification of the delete", name)
		}
	}
}

// A restore never takes the config revision back, whether the backup came
// from a store further ahead (a busy bbolt control plane) or behind; the
// offset it needs holds for every replica, those opened after it too, and
// later writes go on from it.
func TestEtcdRestoreKeepsRevisionsMonotonic(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	key := writeKey(t)
	a := openEtcd(t, c, "/mono/", key)
	b := openEtcd(t, c, "/mono/", key)
	cli := rawEtcd(t, c)

	bolt, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	storetest.Populate(t, bolt)
	ahead, err := bolt.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// As if the bbolt control plane had made a million writes: its data
	// planes hold a revision etcd is far from.
	ahead.Revision = 1_000_000

	if _, err := a.CreateServer(ctx, storetest.Server("before")); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchB := b.Watch(wctx)
	r1, err := a.Restore(ctx, ahead, true)
	if err != nil {
		t.Fatal(err)
	}
	if r1 <= ahead.Revision {
		t.Fatalf("restore of a backup at %d is at %d: data planes that hold %d would not take it", ahead.Revision, r1, ahead.Revision)
	}
	// B may first hand on the notification of the create before it (its
	// watch started after that write, but its watch loop can deliver it
	// late on a loaded machine); what it must reach is the restore's.
	deadline := time.After(30 * time.Second)
	for seen := uint64(0); seen != r1; {
		select {
		case seen = <-watchB:
			if seen > r1 {
				t.Fatalf("replica B watched %d, past the restore's %d", seen, r1)
			}
		case <-deadline:
			t.Fatalf("replica B saw no notification of the restore (%d); last %d", r1, seen)
		}
	}
	restoreEtcd := etcdRev(t, cli)
	offset := r1 - restoreEtcd
	if mod, _ := modRev(t, cli, "/mono/meta/revision"); mod != restoreEtcd {
		t.Fatalf("meta/revision at %d, want the restore's etcd revision %d", mod, restoreEtcd)
	}
	late := openEtcd(t, c, "/mono/", key) // a replica started after the restore
	for name, s := range map[string]store.Store{"A": a, "B": b, "late": late} {
		list, r, err := s.ListServers(ctx)
		if err != nil || r != r1 || len(list) != 2 {
			t.Fatalf("replica %s lists %d servers at %d, %v; want 2 at %d", name, len(list), r, err, r1)
		}
		for _, srv := range list {
			if srv.GetCreateRevision() != r1 || srv.GetModRevision() != r1 {
				t.Fatalf("replica %s has %q at %d/%d, want both the restore's %d", name, srv.GetName(), srv.GetCreateRevision(), srv.GetModRevision(), r1)
			}
		}
	}

	// Later writes, through any replica, go on from there: etcd's revision
	// plus the same offset.
	w, err := late.CreateServer(ctx, storetest.Server("after"))
	if err != nil {
		t.Fatal(err)
	}
	if w.GetModRevision() <= r1 || w.GetModRevision() != etcdRev(t, cli)+offset {
		t.Fatalf("write after the restore at %d, want past %d and etcd's revision + %d", w.GetModRevision(), r1, offset)
	}
	a0, err := b.GetServer(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateServer(ctx, a0, r1); err != nil {
		t.Fatalf("update expecting the restored revision: %v", err)
	}

	// A backup from behind (a fresh bbolt store): the revision still goes
	// forward, and the offset stays (it never shrinks).
	behind, err := bolt.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := b.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.Restore(ctx, behind, true)
	if err != nil {
		t.Fatal(err)
	}
	if r2 <= prev || r2 != etcdRev(t, cli)+offset {
		t.Fatalf("restore of a backup at %d after revision %d is at %d, want past it and etcd's revision + %d", behind.Revision, prev, r2, offset)
	}
	for name, s := range map[string]store.Store{"A": a, "B": b, "late": late} {
		if r, err := s.Revision(ctx); err != nil || r != r2 {
			t.Fatalf("replica %s at %d, %v; want %d", name, r, err, r2)
		}
	}
	// The servers the first restore wrote over existing keys are stamped
	// with the second restore's revision, not their keys' first creation.
	if srv, err := a.GetServer(ctx, "a"); err != nil || srv.GetCreateRevision() != r2 {
		t.Fatalf("server a after the second restore: %v, %v; want created at %d", srv, err, r2)
	}
}

// A dump at MaxRestoreRevision restores into etcd (far past its own
// revision) and later writes go past it without wrapping; one past the
// bound is refused (storetest checks that for every engine).
func TestEtcdRestoreAtTheRevisionBound(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	e := openEtcd(t, c, "/bound/", writeKey(t))
	mem := store.NewMemory()
	defer mem.Close()
	storetest.Populate(t, mem)
	d, err := mem.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.Revision = store.MaxRestoreRevision + 1
	if _, err := e.Restore(ctx, d, true); err == nil || !strings.Contains(err.Error(), "past any store's") {
		t.Fatalf("restore of a dump at %d: err = %v, want it refused naming the revision", d.Revision, err)
	}
	d.Revision = store.MaxRestoreRevision
	r, err := e.Restore(ctx, d, true)
	if err != nil || r <= store.MaxRestoreRevision {
		t.Fatalf("restore at the bound = %d, %v; want past it", r, err)
	}
	srv, err := e.CreateServer(ctx, storetest.Server("next"))
	if err != nil || srv.GetModRevision() <= r || srv.GetModRevision() > math.MaxInt64 {
		t.Fatalf("write after it = %v, %v; want past %d", srv, err, r)
	}
}
