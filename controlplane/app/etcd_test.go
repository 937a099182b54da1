package app

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/etcdtest"
)

func etcdStore(t *testing.T, c *etcdtest.Cluster, keyFile string) *store.EtcdStore {
	t.Helper()
	s, err := store.OpenEtcd(context.Background(), store.EtcdConfig{Endpoints: c.Endpoints(), SecretsKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func keyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.key")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(make([]byte, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Three replicas campaign; exactly one runs the work at any time, and when
// it stops (its context ends: the replica shuts down and resigns) another
// takes over.
func TestRunElectedRunsOnce(t *testing.T) {
	c := etcdtest.Start(t, 1)
	kf := keyFile(t)
	var running, maxRunning atomic.Int32
	started := make(chan string, 10)
	var wg sync.WaitGroup
	cancels := map[string]context.CancelFunc{}
	for i := range 3 {
		es := etcdStore(t, c, kf)
		id := fmt.Sprintf("r%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		cancels[id] = cancel
		wg.Go(func() {
			runElected(ctx, es.Client(), es.Prefix()+"election/test", id, slog.New(slog.DiscardHandler), func(ctx context.Context) {
				n := running.Add(1)
				for {
					m := maxRunning.Load()
					if n <= m || maxRunning.CompareAndSwap(m, n) {
						break
					}
				}
				started <- id
				<-ctx.Done()
				running.Add(-1)
			})
		})
	}
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
		wg.Wait()
	}()
	seen := map[string]bool{}
	for range 3 {
		select {
		case id := <-started:
			if seen[id] {
				t.Fatalf("%s elected twice", id)
			}
			seen[id] = true
			cancels[id]() // the leader goes away: another must take over
		case <-time.After(30 * time.Second):
			t.Fatalf("no leader took over; elected so far: %v", seen)
		}
	}
	if m := maxRunning.Load(); m != 1 {
		t.Fatalf("%d replicas ran the work at once, want 1", m)
	}
}

// Data planes connected to one replica count as connected on every other;
// when that replica stops publishing, they stop counting.
func TestPresenceSharedAcrossReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	kf := keyFile(t)
	a, b := etcdStore(t, c, kf), etcdStore(t, c, kf)
	var mu sync.Mutex
	localA := map[string]bool{"dp-1": true}
	pa := newPresence(a, "ra", func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(localA)
	}, slog.New(slog.DiscardHandler))
	pb := newPresence(b, "rb", func() map[string]bool { return map[string]bool{"dp/local": true} }, slog.New(slog.DiscardHandler))
	changes := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pa.publish(ctx, changes) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := fmt.Sprint(slices.Sorted(maps.Keys(pb.connected())))
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: B counts %s, want %s", what, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("A's data plane", "[dp-1 dp/local]")
	mu.Lock()
	localA = map[string]bool{"dp-2": true}
	mu.Unlock()
	changes <- struct{}{}
	waitFor("A's data planes changed", "[dp-2 dp/local]")
	cancel() // A stops: its lease is revoked with it
	<-done
	// At once, not when the lease would have expired (etcdSessionTTL).
	if got := fmt.Sprint(slices.Sorted(maps.Keys(pb.connected()))); got != "[dp/local]" {
		t.Fatalf("right after A stopped, B counts %s, want [dp/local]: A's lease outlived it", got)
	}
}

// The elected replica's secret expiry restarts after every config revision
// (a rotation through another replica moves the next expiry), and stops
// with its context.
func TestRestartOnChange(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	starts := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		restartOnChange(ctx, st, func(ctx context.Context) { starts <- struct{}{}; <-ctx.Done() })
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-starts:
		case <-time.After(10 * time.Second):
			t.Fatalf("run not started %s", what)
		}
	}
	wait("at first")
	if _, err := st.RotateClusterSecret(context.Background(), time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wait("after a rotation")
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("restartOnChange did not return after its context ended")
	}
	select {
	case <-starts:
		t.Fatal("run started again after the context ended")
	default:
	}
}
