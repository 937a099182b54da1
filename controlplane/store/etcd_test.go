package store_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/etcdtest"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// writeKey writes a fresh secrets key file and returns its path.
func writeKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + len(t.Name()))
	}
	path := filepath.Join(t.TempDir(), "secrets.key")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var prefixSeq atomic.Int64

func openEtcd(t *testing.T, c *etcdtest.Cluster, prefix, keyFile string) *store.EtcdStore {
	t.Helper()
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: prefix, SecretsKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// One etcd for the whole suite; every case gets an empty prefix of its own.
// Config revisions are etcd's, which every case's writes move: increasing,
// not consecutive.
func TestEtcdConformance(t *testing.T) {
	c := etcdtest.Start(t, 1)
	key := writeKey(t)
	storetest.RunWith(t, func(t *testing.T) store.Store {
		return openEtcd(t, c, fmt.Sprintf("/conformance/%d", prefixSeq.Add(1)), key)
	}, storetest.Increasing)
}

// Two stores on the same etcd and prefix are two control plane replicas:
// each sees the other's writes, watches included, and racing writes are
// serialised by the transactions (no lost update, no duplicate revision).
func TestEtcdReplicasShareState(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	key := writeKey(t)
	a := openEtcd(t, c, "/shared/", key)
	b := openEtcd(t, c, "/shared/", key)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchB := b.Watch(wctx)
	created, err := a.CreateServer(ctx, storetest.Server("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-watchB:
		if r != created.GetModRevision() {
			t.Fatalf("replica B watched revision %d, want %d", r, created.GetModRevision())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replica B's watch saw nothing of replica A's write")
	}
	got, err := b.GetServer(ctx, "alpha")
	if err != nil || !proto.Equal(got, created) {
		t.Fatalf("B reads %v, %v; want %v", got, err, created)
	}
	stA, _ := a.State(ctx)
	stB, _ := b.State(ctx)
	if string(stA.ClusterSecret) != string(stB.ClusterSecret) || len(stA.ClusterSecret) != 32 {
		t.Fatal("replicas see different cluster secrets")
	}
	hl := &mcpmeshv1.BackendHealth{DataplaneId: "dp", Server: "alpha", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}
	if err := a.PutHealth(ctx, "dp", []*mcpmeshv1.BackendHealth{hl}, []*mcpmeshv1.BackendHealth{hl}); err != nil {
		t.Fatal(err)
	}
	hs, err := b.ListHealth(ctx)
	if err != nil || len(hs) != 1 || !proto.Equal(hs[0], hl) {
		t.Fatalf("B's health = %v, %v", hs, err)
	}
	evs, err := b.ListEvents(ctx, 0)
	if err != nil || len(evs) != 1 || evs[0].Seq != 1 {
		t.Fatalf("B's events = %v, %v", evs, err)
	}

	// Racing writers through both replicas: every create gets its own
	// revision, and the last revision counts them all.
	const perReplica = 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	var revs []uint64
	for i, s := range []store.Store{a, b} {
		wg.Go(func() {
			for j := range perReplica {
				srv, err := s.CreateServer(ctx, storetest.Server(fmt.Sprintf("r%d-%d", i, j)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				revs = append(revs, srv.GetModRevision())
				mu.Unlock()
			}
		})
	}
	// And racing conditional updates of one server: exactly one of the two
	// updates expecting the same revision wins.
	var wins atomic.Int32
	for _, s := range []store.Store{a, b} {
		wg.Go(func() {
			upd := storetest.Server("alpha")
			_, err := s.UpdateServer(ctx, upd, created.GetModRevision())
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("racing update: %v, want success or ErrConflict", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d racing conditional updates won, want 1", wins.Load())
	}
	slices.Sort(revs)
	if len(slices.Compact(slices.Clone(revs))) != 2*perReplica {
		t.Fatalf("racing creates share revisions: %v", revs)
	}
	list, rev, err := a.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2*perReplica+1 || rev != max(revs[len(revs)-1], list[0].GetModRevision()) {
		t.Fatalf("after the race: %d servers at revision %d, want %d at the newest write's", len(list), rev, 2*perReplica+1)
	}
}

func TestEtcdCreateServers(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	s := openEtcd(t, c, "/batch/", writeKey(t))
	if _, err := s.CreateServer(ctx, storetest.Server("taken")); err != nil {
		t.Fatal(err)
	}
	out, rev, err := s.CreateServers(ctx, []*mcpmeshv1.Server{storetest.Server("a"), storetest.Server("b")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].GetCreateRevision() != rev || out[1].GetModRevision() != rev {
		t.Fatalf("CreateServers = %v at %d, want both at its revision", out, rev)
	}
	for _, batch := range [][]*mcpmeshv1.Server{
		{storetest.Server("c"), storetest.Server("taken")},
		{storetest.Server("d"), storetest.Server("d")},
	} {
		if _, _, err := s.CreateServers(ctx, batch); !errors.Is(err, store.ErrExists) {
			t.Fatalf("CreateServers with a taken name: %v, want ErrExists", err)
		}
	}
	if _, _, err := s.CreateServers(ctx, []*mcpmeshv1.Server{storetest.Server("e"), {}}); err == nil {
		t.Fatal("CreateServers with a nameless server succeeded")
	}
	list, after, _ := s.ListServers(ctx)
	if len(list) != 3 || after != rev {
		t.Fatalf("failed batches left %d servers at revision %d, want 3 at %d", len(list), after, rev)
	}
}

func TestEtcdSecretsKey(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	key := writeKey(t)
	s := openEtcd(t, c, "/keys/", key)
	if _, err := s.CreateServer(ctx, storetest.Server("alpha")); err != nil {
		t.Fatal(err)
	}
	// The server record is sealed in etcd: its secret env value is not there
	// in the clear.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/keys/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var sawServer bool
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Value), "secret-alpha") {
			t.Fatalf("%s holds the secret in the clear", kv.Key)
		}
		sawServer = sawServer || string(kv.Key) == "/keys/servers/alpha"
	}
	if !sawServer {
		t.Fatal("no /keys/servers/alpha key in etcd")
	}

	other := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(other, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ file, want string }{
		"other key":   {other, "not the key this etcd prefix was sealed with"},
		"missing key": {filepath.Join(t.TempDir(), "nope.key"), "does not exist: create it once with `openssl rand -hex 32"},
		"no key":      {"", "--secrets-key-file"},
	} {
		_, err := store.OpenEtcd(ctx, store.EtcdConfig{Endpoints: c.Endpoints(), Prefix: "/keys/", SecretsKeyFile: tc.file})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "did not answer") {
			t.Errorf("%s: reported as unreachable: %v", name, err)
		}
	}
	// Another prefix is another store: any key opens it.
	openEtcd(t, c, "/keys2/", other)
}

func TestEtcdUnreachableFailsClearly(t *testing.T) {
	c := etcdtest.Start(t, 1)
	eps := c.Endpoints()
	c.Stop()
	start := time.Now()
	_, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: eps, SecretsKeyFile: writeKey(t), DialTimeout: 2 * time.Second})
	if err == nil || !strings.Contains(err.Error(), eps[0]) || !strings.Contains(err.Error(), "did not answer within 2s") {
		t.Fatalf("open with etcd down: %v, want an error naming %s and the timeout", err, eps[0])
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("open with etcd down took %v", d)
	}
	if _, err := store.OpenEtcd(context.Background(), store.EtcdConfig{SecretsKeyFile: writeKey(t)}); err == nil || !strings.Contains(err.Error(), "--etcd-endpoints") {
		t.Fatalf("open without endpoints: %v", err)
	}
}

// A store call while etcd has lost its quorum fails within a bound instead
// of hanging; after the quorum is back the store works again.
func TestEtcdQuorumLossIsBounded(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 3)
	s := openEtcd(t, c, "/quorum/", writeKey(t))
	if _, err := s.CreateServer(ctx, storetest.Server("before")); err != nil {
		t.Fatal(err)
	}
	c.Members[2].Stop()
	if _, err := s.CreateServer(ctx, storetest.Server("one-down")); err != nil {
		t.Fatalf("write with one of three members down: %v", err)
	}
	c.Members[1].Stop()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.CreateServer(wctx, storetest.Server("two-down"))
	if err == nil {
		t.Fatal("write with two of three members down succeeded")
	}
	if wctx.Err() != nil {
		t.Fatalf("write with two of three members down hung until the caller's deadline (%v): %v", time.Since(start), err)
	}
	t.Logf("write without quorum failed after %v: %v", time.Since(start), err)
}

// TestWriteLatencyBoltVsEtcd measures CreateServer latency, the same run,
// on a bbolt file and on a three-member etcd cluster that syncs its log
// (MCPMESH_MEASURE=1; it only reports).
func TestWriteLatencyBoltVsEtcd(t *testing.T) {
	if os.Getenv("MCPMESH_MEASURE") == "" {
		t.Skip("set MCPMESH_MEASURE=1 to measure")
	}
	ctx := context.Background()
	bs, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	c := etcdtest.Start(t, 3, etcdtest.Options{Fsync: true})
	es := openEtcd(t, c, "/latency/", writeKey(t))
	const n = 200
	for _, tc := range []struct {
		name string
		s    store.Store
	}{{"bbolt", bs}, {"etcd (3 members, fsync)", es}} {
		var took []time.Duration
		for i := range n {
			start := time.Now()
			if _, err := tc.s.CreateServer(ctx, storetest.Server(fmt.Sprintf("s%03d", i))); err != nil {
				t.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		t.Logf("MEASURE CreateServer on %s: p50 %v, p99 %v, max %v over %d calls", tc.name,
			took[n/2].Round(time.Microsecond), took[n*99/100].Round(time.Microsecond), took[n-1].Round(time.Microsecond), n)
	}
}
