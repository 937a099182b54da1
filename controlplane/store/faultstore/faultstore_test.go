package faultstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/faultstore"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Without a fault set, the wrapper must keep every rule of the store it wraps.
func TestConformanceWithoutFaults(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			s, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
			if err != nil {
				t.Fatal(err)
			}
			return faultstore.New(s)
		})
	})
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return faultstore.New(store.NewMemory()) })
	})
}

func open(t *testing.T) (*faultstore.Fault, store.Store) {
	t.Helper()
	inner, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	f := faultstore.New(inner)
	t.Cleanup(func() { _ = f.Close() })
	return f, inner
}

func TestFailWritesLeavesNothingAndAnnouncesNothing(t *testing.T) {
	ctx := context.Background()
	f, inner := open(t)
	if _, err := f.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := f.Watch(wctx)

	f.FailWrites(syscall.ENOSPC)
	upd := storetest.Server("a")
	upd.Description = "changed"
	hl := &mcpmeshv1.BackendHealth{Server: "a", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}
	for name, write := range map[string]func() error{
		`create server "b"`: func() error { _, err := f.CreateServer(ctx, storetest.Server("b")); return err },
		`update server "a"`: func() error { _, err := f.UpdateServer(ctx, upd, 0); return err },
		`delete server "a"`: func() error { _, err := f.DeleteServer(ctx, "a", 0); return err },
		"put settings": func() error {
			_, err := f.PutSettings(ctx, &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true}})
			return err
		},
		`put health of data plane "dp"`: func() error { return f.PutHealth(ctx, "dp", []*mcpmeshv1.BackendHealth{hl}, nil) },
	} {
		err := write()
		if !errors.Is(err, syscall.ENOSPC) || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%s: err = %v, want ENOSPC prefixed with the operation", name, err)
		}
	}
	// Reads still work and show the state before the failed writes.
	st, err := f.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 1 || len(st.Servers) != 1 || st.Servers[0].GetDescription() != "" || st.Settings.GetPagination().GetEnabled() {
		t.Fatalf("state after failed writes = rev %d %v %v", st.Revision, st.Servers, st.Settings)
	}
	if hs, err := inner.ListHealth(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("health after failed write = %v, %v", hs, err)
	}
	select {
	case rev := <-watch:
		t.Fatalf("a failed write was announced as revision %d", rev)
	default:
	}

	f.FailWrites(nil)
	if _, err := f.CreateServer(ctx, storetest.Server("b")); err != nil {
		t.Fatalf("create after FailWrites(nil): %v", err)
	}
	select {
	case rev := <-watch:
		if rev != 2 {
			t.Fatalf("announced revision %d, want 2", rev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write after healing was not announced")
	}
}

func TestCorruptServer(t *testing.T) {
	ctx := context.Background()
	f, _ := open(t)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := f.CreateServer(ctx, storetest.Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	f.CorruptServer("b")
	f.CorruptServer("ghost") // not stored: nothing to decode, nothing fails

	wantDecode := func(what string, err error, prefix string) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), prefix+`: decode server "b": proto:`) {
			t.Errorf("%s: err = %v, want %q then a protobuf decode error", what, err, prefix)
		}
	}
	_, err := f.GetServer(ctx, "b")
	wantDecode("GetServer(b)", err, `get server "b"`)
	if s, err := f.GetServer(ctx, "a"); err != nil || s.GetName() != "a" {
		t.Errorf("GetServer(a) = %v, %v; only b is corrupt", s, err)
	}
	if _, err := f.GetServer(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetServer(ghost) = %v, want ErrNotFound", err)
	}
	list, _, err := f.ListServers(ctx)
	wantDecode("ListServers", err, "list servers")
	if len(list) != 1 || list[0].GetName() != "a" {
		t.Errorf("ListServers returned %v with its error, want only what came before b (as bbolt does)", list)
	}
	st, err := f.State(ctx)
	wantDecode("State", err, "read state")
	if st != nil {
		t.Errorf("State returned %v with its error", st)
	}
	_, err = f.UpdateServer(ctx, storetest.Server("b"), 0)
	wantDecode("UpdateServer(b)", err, `update server "b"`)
	_, err = f.DeleteServer(ctx, "b", 0)
	wantDecode("DeleteServer(b)", err, `delete server "b"`)
	if _, err := f.CreateServer(ctx, storetest.Server("b")); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateServer(b) = %v, want ErrExists (the key is there, only its value is bad)", err)
	}
	if r, _ := f.Revision(ctx); r != 3 {
		t.Errorf("revision = %d after failed writes, want 3", r)
	}

	f.Heal()
	if list, _, err := f.ListServers(ctx); err != nil || len(list) != 3 {
		t.Fatalf("after Heal: %v, %v", list, err)
	}
}

func TestCorruptSettings(t *testing.T) {
	ctx := context.Background()
	f, _ := open(t)
	f.CorruptSettings()
	if _, _, err := f.GetSettings(ctx); err == nil || !strings.HasPrefix(err.Error(), "get settings: decode settings: proto:") {
		t.Errorf("GetSettings err = %v", err)
	}
	if _, err := f.State(ctx); err == nil || !strings.HasPrefix(err.Error(), "read state: decode settings: proto:") {
		t.Errorf("State err = %v", err)
	}
	if _, _, err := f.ListServers(ctx); err != nil {
		t.Errorf("ListServers with corrupt settings: %v", err)
	}
}

func TestNewerSchemaFailsEveryCall(t *testing.T) {
	ctx := context.Background()
	f, _ := open(t)
	if _, err := f.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	f.NewerSchema()
	calls := map[string]func() error{
		"CreateServer": func() error { _, err := f.CreateServer(ctx, storetest.Server("b")); return err },
		"UpdateServer": func() error { _, err := f.UpdateServer(ctx, storetest.Server("a"), 0); return err },
		"DeleteServer": func() error { _, err := f.DeleteServer(ctx, "a", 0); return err },
		"GetServer":    func() error { _, err := f.GetServer(ctx, "a"); return err },
		"ListServers":  func() error { _, _, err := f.ListServers(ctx); return err },
		"GetSettings":  func() error { _, _, err := f.GetSettings(ctx); return err },
		"PutSettings":  func() error { _, err := f.PutSettings(ctx, nil); return err },
		"Revision":     func() error { _, err := f.Revision(ctx); return err },
		"State":        func() error { _, err := f.State(ctx); return err },
		"PutHealth":    func() error { return f.PutHealth(ctx, "dp", nil, nil) },
		"ListHealth":   func() error { _, err := f.ListHealth(ctx); return err },
		"ListEvents":   func() error { _, err := f.ListEvents(ctx, 0); return err },
	}
	for name, call := range calls {
		var se *store.SchemaError
		if err := call(); !errors.As(err, &se) || se.Found != store.SchemaVersion+1 || se.Supported != store.SchemaVersion {
			t.Errorf("%s: err = %v, want a SchemaError %d > %d", name, err, store.SchemaVersion+1, store.SchemaVersion)
		}
	}
	f.Heal()
	got, err := f.GetServer(ctx, "a")
	if err != nil || !proto.Equal(got.GetStdio(), storetest.Server("a").GetStdio()) {
		t.Fatalf("after Heal: %v, %v", got, err)
	}
}
