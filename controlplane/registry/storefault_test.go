package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/faultstore"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startFault serves the registry over a fault store wrapping a real bbolt
// file. At the end it checks that no handler panicked: the recovery
// interceptor would have turned a panic into a vague Internal error.
func startFault(t *testing.T) (*env, *faultstore.Fault) {
	t.Helper()
	inner, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	f := faultstore.New(inner)
	logs := &lockedBuf{}
	e := startWith(t, f, slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() {
		if out := logs.String(); strings.Contains(out, "panic") {
			t.Errorf("a handler panicked:\n%s", out)
		}
	})
	return e, f
}

const panicMessage = "internal error (the control plane log has details)"

// wantStoreFailure checks that err is code with a message naming what failed.
func wantStoreFailure(t *testing.T, what string, err error, code codes.Code, parts ...string) {
	t.Helper()
	msg := status.Convert(err).Message()
	if status.Code(err) != code || strings.Contains(msg, panicMessage) {
		t.Errorf("%s: err = %v, want %s naming the store failure", what, err, code)
		return
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("%s: message %q lacks %q", what, msg, p)
		}
	}
}

func TestStoreWriteFailure(t *testing.T) {
	e, f := startFault(t)
	ctx := context.Background()
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a")}); err != nil {
		t.Fatal(err)
	}
	before, err := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	settingsBefore, err := e.reg.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
	if err != nil {
		t.Fatal(err)
	}

	f.FailWrites(syscall.EIO)
	upd := stdio("a")
	upd.Description = "changed"
	for _, tc := range []struct {
		name, op string
		call     func() (any, error)
	}{
		{"create", `create server "b"`, func() (any, error) {
			return e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("b")})
		}},
		{"update", `update server "a"`, func() (any, error) {
			return e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: upd})
		}},
		{"delete", `delete server "a"`, func() (any, error) {
			return e.reg.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: "a"})
		}},
		{"set setting", "put settings", func() (any, error) {
			return e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "pagination.enabled", Value: "true"})
		}},
	} {
		resp, err := tc.call()
		wantStoreFailure(t, tc.name, err, codes.Internal, tc.op, syscall.EIO.Error())
		if !isNilResponse(resp) {
			t.Errorf("%s: a response came with the error: %v", tc.name, resp)
		}
	}
	// A dry run writes nothing, so it still works.
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("b"), ValidateOnly: true}); err != nil {
		t.Errorf("dry-run create while writes fail: %v", err)
	}

	// Nothing of the failed writes is visible.
	after, err := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
	if err != nil || after.GetServer().GetDescription() != "" || after.GetServer().GetModRevision() != before.GetServer().GetModRevision() {
		t.Errorf("server a after failed writes = %v, %v; want it unchanged", after, err)
	}
	if _, err := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "b"}); status.Code(err) != codes.NotFound {
		t.Errorf("server b after a failed create: err = %v, want NotFound", err)
	}
	settingsAfter, err := e.reg.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
	if err != nil || settingsAfter.GetValues()["pagination.enabled"] != settingsBefore.GetValues()["pagination.enabled"] || settingsAfter.GetRevision() != 1 {
		t.Errorf("settings after a failed set = %v, %v; want %v at revision 1", settingsAfter, err, settingsBefore.GetValues())
	}

	// Once the disk recovers, the next write takes the next revision: the
	// failed ones used none.
	f.FailWrites(nil)
	resp, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("b")})
	if err != nil || resp.GetRevision() != 2 {
		t.Fatalf("create after recovery = %v, %v; want revision 2", resp, err)
	}
}

// isNilResponse reports whether a gRPC client returned no message (a typed
// nil pointer in an interface).
func isNilResponse(v any) bool {
	switch r := v.(type) {
	case *mcpmeshv1.CreateServerResponse:
		return r == nil
	case *mcpmeshv1.UpdateServerResponse:
		return r == nil
	case *mcpmeshv1.DeleteServerResponse:
		return r == nil
	case *mcpmeshv1.SetSettingResponse:
		return r == nil
	case *mcpmeshv1.ListServersResponse:
		return r == nil
	case *mcpmeshv1.GetServerResponse:
		return r == nil
	case *mcpmeshv1.GetStatusResponse:
		return r == nil
	case *mcpmeshv1.GetSettingsResponse:
		return r == nil
	}
	return v == nil
}

func TestStoreCorruptValue(t *testing.T) {
	e, f := startFault(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio(n)}); err != nil {
			t.Fatal(err)
		}
	}
	f.CorruptServer("b")
	decode := `decode server "b"`
	for _, tc := range []struct {
		name string
		call func() (any, error)
	}{
		// The store hands back "a" with its error; none of it may reach the client.
		{"list", func() (any, error) { return e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{}) }},
		{"get b", func() (any, error) { return e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "b"}) }},
		{"status", func() (any, error) { return e.reg.GetStatus(ctx, &mcpmeshv1.GetStatusRequest{}) }},
		{"update b", func() (any, error) {
			return e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: stdio("b")})
		}},
		{"delete b", func() (any, error) {
			return e.reg.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: "b"})
		}},
	} {
		resp, err := tc.call()
		wantStoreFailure(t, tc.name, err, codes.Internal, decode)
		if !isNilResponse(resp) {
			t.Errorf("%s: a response came with the error: %v", tc.name, resp)
		}
	}
	if got, err := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"}); err != nil || got.GetServer().GetName() != "a" {
		t.Errorf("get a (intact) = %v, %v", got, err)
	}
	// A watch cannot build its first status: it ends with the error, it
	// does not hang or send a partial status.
	w, err := e.reg.WatchStatus(ctx, &mcpmeshv1.WatchStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := w.Recv()
	wantStoreFailure(t, "watch", err, codes.Internal, decode)
	if m != nil {
		t.Errorf("watch sent %v before failing", m)
	}

	f.CorruptSettings()
	_, err = e.reg.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
	wantStoreFailure(t, "get settings", err, codes.Internal, "decode settings")
	_, err = e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "pagination.enabled", Value: "true"})
	wantStoreFailure(t, "set setting", err, codes.Internal, "decode settings")
	if r, _ := f.Revision(ctx); r != 3 {
		t.Errorf("revision after failures = %d, want 3", r)
	}

	f.Heal()
	list, err := e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	if err != nil || len(list.GetServers()) != 3 {
		t.Fatalf("list after healing = %v, %v", list, err)
	}
}

func TestStoreNewerSchema(t *testing.T) {
	e, f := startFault(t)
	ctx := context.Background()
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("a")}); err != nil {
		t.Fatal(err)
	}
	f.NewerSchema()
	want := fmt.Sprintf("store schema version %d is newer than this binary supports (%d)", store.SchemaVersion+1, store.SchemaVersion)
	for name, call := range map[string]func() error{
		"create": func() error {
			_, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("b")})
			return err
		},
		"dry run": func() error {
			_, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("b"), ValidateOnly: true})
			return err
		},
		"update": func() error {
			_, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: stdio("a")})
			return err
		},
		"delete":   func() error { _, err := e.reg.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: "a"}); return err },
		"get":      func() error { _, err := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"}); return err },
		"list":     func() error { _, err := e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{}); return err },
		"settings": func() error { _, err := e.reg.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{}); return err },
		"set": func() error {
			_, err := e.reg.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "pagination.enabled", Value: "true"})
			return err
		},
		"status": func() error { _, err := e.reg.GetStatus(ctx, &mcpmeshv1.GetStatusRequest{}); return err },
	} {
		wantStoreFailure(t, name, call(), codes.Internal, want)
	}
	// What does not touch the store still answers.
	if _, err := e.reg.ListDataPlanes(ctx, &mcpmeshv1.ListDataPlanesRequest{}); err != nil {
		t.Errorf("ListDataPlanes: %v", err)
	}
}

// A store that closes under an open watch (the control plane stopping) ends
// it with Unavailable, which tells mcpctl to retry, rather than Internal.
func TestStoreClosedEndsWatchUnavailable(t *testing.T) {
	e, f := startFault(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := e.reg.WatchStatus(ctx, &mcpmeshv1.WatchStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := w.Recv()
		if err == nil {
			continue // a status that raced the close
		}
		if err == io.EOF || status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "shutting down") {
			t.Fatalf("watch after the store closed: %v, want Unavailable saying the control plane is shutting down", err)
		}
		return
	}
}
