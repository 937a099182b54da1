package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/faultstore"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

// envCrashChild makes the test binary act as the writer that gets SIGKILLed.
const envCrashChild = "MCPMESH_STORE_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashChild); path != "" {
		crashChild(path)
		return
	}
	goleak.VerifyTestMain(m)
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestBoltSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.CreateServer(ctx, storetest.Server("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	settings := &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true}}
	if _, err := s.PutSettings(ctx, settings); err != nil {
		t.Fatal(err)
	}
	hl := &mcpmeshv1.BackendHealth{DataplaneId: "dp", Server: "alpha", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}
	if err := s.PutHealth(ctx, "dp", []*mcpmeshv1.BackendHealth{hl}, []*mcpmeshv1.BackendHealth{hl}); err != nil {
		t.Fatal(err)
	}
	before, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetServer(ctx, "alpha"); err == nil {
		t.Fatal("GetServer after Close succeeded")
	}

	s2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	after, err := s2.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Revision != 2 || len(after.Servers) != 1 || !proto.Equal(after.Servers[0], created) {
		t.Fatalf("after reopen: rev %d servers %v", after.Revision, after.Servers)
	}
	if !proto.Equal(after.Settings, settings) {
		t.Fatalf("settings after reopen = %v", after.Settings)
	}
	if string(after.ClusterSecret) != string(before.ClusterSecret) {
		t.Fatal("cluster secret changed across reopen")
	}
	hs, err := s2.ListHealth(ctx)
	if err != nil || len(hs) != 1 || !proto.Equal(hs[0], hl) {
		t.Fatalf("health after reopen = %v, %v", hs, err)
	}
	evs, err := s2.ListEvents(ctx, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events after reopen = %v, %v", evs, err)
	}
	// The event sequence continues after a reopen.
	if err := s2.PutHealth(ctx, "dp", nil, []*mcpmeshv1.BackendHealth{hl}); err != nil {
		t.Fatal(err)
	}
	evs, _ = s2.ListEvents(ctx, 0)
	if len(evs) != 2 || evs[1].Seq != evs[0].Seq+1 {
		t.Fatalf("event seqs after reopen = %v", evs)
	}
}

func TestBoltSecondOpenFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = store.OpenBolt(path)
	if err == nil || !strings.Contains(err.Error(), "database is locked by another process") {
		t.Fatalf("second open err = %v, want a locked error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second open took %v", d)
	}
}

func TestBoltBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	if err := os.WriteFile(path, []byte("this is not a bbolt file, not at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("open garbage err = %v, want an error naming the file", err)
	}
	if _, err := store.OpenBolt(filepath.Join(t.TempDir(), "missing-dir", store.FileName)); err == nil {
		t.Fatal("open in a missing dir succeeded")
	}
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, storetest.Server("alpha")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	newer := store.SchemaVersion + 1
	if err := store.PokeBolt(path, func(_, _, meta *bolt.Bucket) error {
		return meta.Put(store.MetaSchemaVersion, store.U64(newer))
	}); err != nil {
		t.Fatal(err)
	}

	_, err = store.OpenBolt(path)
	var se *store.SchemaError
	if !errors.As(err, &se) || se.Found != newer || se.Supported != store.SchemaVersion {
		t.Fatalf("open a newer file: err = %v, want a SchemaError %d > %d", err, newer, store.SchemaVersion)
	}
	for _, want := range []string{path, fmt.Sprintf("store schema version %d is newer than this binary supports (%d)", newer, store.SchemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("open error %q lacks %q", err, want)
		}
	}
	// The refused open must not have rewritten the version (or anything else),
	// and must have released the file.
	if err := store.PokeBolt(path, func(servers, _, meta *bolt.Bucket) error {
		if got := meta.Get(store.MetaSchemaVersion); string(got) != string(store.U64(newer)) {
			return fmt.Errorf("schema version after the refused open = %x", got)
		}
		if servers.Get([]byte("alpha")) == nil {
			return errors.New("server alpha gone after the refused open")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A value damaged on disk must fail the reads that decode it, the way the
// fault store says it does: same operations, same errors, same partial list.
func TestBoltCorruptValueReadsLikeFault(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	onDisk, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	fake := faultstore.New(store.NewMemory())
	defer fake.Close()
	for _, s := range []store.Store{onDisk, fake} {
		for _, n := range []string{"a", "b", "c"} {
			if _, err := s.CreateServer(ctx, storetest.Server(n)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PutSettings(ctx, &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := onDisk.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.PokeBolt(path, func(servers, settings, _ *bolt.Bucket) error {
		if err := servers.Put([]byte("b"), faultstore.Garbage()); err != nil {
			return err
		}
		return settings.Put(store.SettingsKey, faultstore.Garbage())
	}); err != nil {
		t.Fatal(err)
	}
	fake.CorruptServer("b")
	fake.CorruptSettings()
	onDisk, err = store.OpenBolt(path)
	if err != nil {
		t.Fatalf("a damaged value must not stop the store from opening: %v", err)
	}
	defer onDisk.Close()

	type result struct {
		val string
		err string
	}
	reads := map[string]func(store.Store) result{
		"GetServer(b)": func(s store.Store) result { _, err := s.GetServer(ctx, "b"); return result{err: fmt.Sprint(err)} },
		"GetServer(a)": func(s store.Store) result {
			v, err := s.GetServer(ctx, "a")
			return result{v.GetName(), fmt.Sprint(err)}
		},
		"ListServers": func(s store.Store) result {
			v, rev, err := s.ListServers(ctx)
			var names []string
			for _, x := range v {
				names = append(names, x.GetName())
			}
			return result{fmt.Sprint(names, rev), fmt.Sprint(err)}
		},
		"State": func(s store.Store) result {
			v, err := s.State(ctx)
			return result{fmt.Sprint(v == nil), fmt.Sprint(err)}
		},
		"GetSettings": func(s store.Store) result { _, _, err := s.GetSettings(ctx); return result{err: fmt.Sprint(err)} },
		"UpdateServer": func(s store.Store) result {
			_, err := s.UpdateServer(ctx, storetest.Server("b"), 0)
			return result{err: fmt.Sprint(err)}
		},
		"DeleteServer": func(s store.Store) result { _, err := s.DeleteServer(ctx, "b", 0); return result{err: fmt.Sprint(err)} },
		"Revision":     func(s store.Store) result { v, err := s.Revision(ctx); return result{fmt.Sprint(v), fmt.Sprint(err)} },
	}
	for name, read := range reads {
		got, want := read(onDisk), read(fake)
		if got != want {
			t.Errorf("%s on the damaged file = %+v; the fault store says %+v", name, got, want)
		}
		if name != "GetServer(a)" && name != "Revision" && !strings.Contains(got.err, "decode ") {
			t.Errorf("%s on the damaged file: err %q, want a decode error", name, got.err)
		}
	}
}

// crashChild creates servers in a loop and prints each name once CreateServer
// has returned; the parent kills it with SIGKILL at a random point.
func crashChild(path string) {
	s, err := store.OpenBolt(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		name := "s" + strconv.Itoa(i)
		if _, err := s.CreateServer(context.Background(), storetest.Server(name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(name) // unbuffered: the parent sees it only after the commit returned
	}
}

func TestBoltKill9KeepsAcknowledgedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), store.FileName)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashChild+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		acked = append(acked, sc.Text())
		if len(acked) == 40 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	// Names printed after we stopped reading were acknowledged too.
	for sc.Scan() {
		acked = append(acked, sc.Text())
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 {
		t.Fatalf("child did not die by the signal: %v, stderr: %s", err, stderr.String())
	}
	if len(acked) < 40 {
		t.Fatalf("child acknowledged only %d writes; stderr: %s", len(acked), stderr.String())
	}

	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer s.Close()
	for _, name := range acked {
		if _, err := s.GetServer(context.Background(), name); err != nil {
			t.Errorf("acknowledged write %s lost after kill -9: %v", name, err)
		}
	}
	list, rev, err := s.ListServers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rev != uint64(len(list)) {
		t.Fatalf("revision %d does not match %d committed creates", rev, len(list))
	}
}
