package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/faultstore"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func startFault(t *testing.T) (*env, *faultstore.Fault, *syncBuf) {
	t.Helper()
	inner, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	f := faultstore.New(inner)
	logs := &syncBuf{}
	return startStore(t, f, slog.New(slog.NewTextHandler(logs, nil))), f, logs
}

// wantEndedWithoutSnapshot waits for the stream to end with code and fails
// if a snapshot arrives first: a snapshot that could not be built must not
// be sent in part.
func (c *dpClient) wantEndedWithoutSnapshot(code codes.Code, msgPart string) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("got snapshot %d (%d servers), want the stream to end with %s", m.GetSnapshot().GetRevision(), len(m.GetSnapshot().GetServers()), code)
	case err := <-c.errs:
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msgPart) {
			c.t.Fatalf("stream ended with %v, want %s containing %q", err, code, msgPart)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("stream did not end within 10s, want %s", code)
	}
}

func serverNames(snap *mcpmeshv1.ConfigSnapshot) []string {
	var out []string
	for _, s := range snap.GetServers() {
		out = append(out, s.GetName())
	}
	return out
}

// A revision whose snapshot cannot be read is never sent: the data plane's
// stream ends (it reconnects with backoff and keeps serving what it has), it
// stays recorded at its last good revision, and once the store reads again
// it gets the whole new snapshot.
func TestUnreadableRevisionKeepsLastGoodSnapshot(t *testing.T) {
	e, f, logs := startFault(t)
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 0)
	c.ack(c.next())
	e.waitFor(t, "dp1 at revision 1", func() bool { return e.dataplane("dp1").GetRevision() == 1 })

	f.CorruptServer("b")
	if _, err := e.st.CreateServer(ctx, storetest.Server("b")); err != nil { // commits: only reading it back fails
		t.Fatal(err)
	}
	c.wantEndedWithoutSnapshot(codes.Internal, "build config snapshot")
	e.waitFor(t, "dp1 disconnected", func() bool { return !e.dataplane("dp1").GetConnected() })
	if dp := e.dataplane("dp1"); dp.GetRevision() != 1 || dp.GetNackedRevision() != 0 {
		t.Fatalf("dp1 after the failed build = %v, want still at its last good revision 1", dp)
	}
	if out := logs.String(); !strings.Contains(out, "cannot build config snapshot") || !strings.Contains(out, `decode server \"b\"`) {
		t.Errorf("the control plane log does not say why:\n%s", out)
	}

	// Reconnecting while the value is still unreadable: the same, again.
	again := e.connect(t, "dp1", 1)
	again.wantEndedWithoutSnapshot(codes.Internal, "build config snapshot")

	f.Heal()
	healed := e.connect(t, "dp1", 1)
	m := healed.next()
	if m.GetSnapshot().GetRevision() != 2 || !slices.Equal(serverNames(m.GetSnapshot()), []string{"a", "b"}) ||
		m.GetSnapshot().GetServers()[1].GetStdio().GetEnv()["TOKEN"] != "secret-b" {
		t.Fatalf("after healing got revision %d servers %v, want the whole revision 2", m.GetSnapshot().GetRevision(), serverNames(m.GetSnapshot()))
	}
}

// A write that fails commits nothing, so connected data planes see nothing of
// it: the next snapshot they get is the next successful write's.
func TestFailedWriteReachesNoDataPlane(t *testing.T) {
	e, f, _ := startFault(t)
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 0)
	c.ack(c.next())

	f.FailWrites(syscall.EIO)
	if _, err := e.st.CreateServer(ctx, storetest.Server("lost")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("create with failing writes: %v", err)
	}
	f.FailWrites(nil)
	if _, err := e.st.CreateServer(ctx, storetest.Server("c")); err != nil {
		t.Fatal(err)
	}
	m := c.next()
	if m.GetSnapshot().GetRevision() != 2 || !slices.Equal(serverNames(m.GetSnapshot()), []string{"a", "c"}) {
		t.Fatalf("next snapshot: revision %d servers %v, want revision 2 with a and c only", m.GetSnapshot().GetRevision(), serverNames(m.GetSnapshot()))
	}
}

// A health report the store cannot write is dropped and logged; the config
// stream it came on stays open.
func TestHealthWriteFailureKeepsStream(t *testing.T) {
	e, f, logs := startFault(t)
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 0)
	c.ack(c.next())

	f.FailWrites(syscall.ENOSPC)
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{
		Backends: []*mcpmeshv1.BackendHealth{{Server: "a", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}},
	}}})
	e.waitFor(t, "the dropped report logged", func() bool {
		out := logs.String()
		return strings.Contains(out, "health report dropped") && strings.Contains(out, syscall.ENOSPC.Error())
	})
	if hs, err := e.st.ListHealth(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("stored health = %v, %v; want none", hs, err)
	}
	f.FailWrites(nil)
	if _, err := e.st.CreateServer(ctx, storetest.Server("b")); err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m.GetSnapshot().GetRevision() != 2 {
		t.Fatalf("same stream got revision %d, want 2", m.GetSnapshot().GetRevision())
	}
	if !e.dataplane("dp1").GetConnected() {
		t.Fatal("dp1 was disconnected over a health write")
	}
}

func TestNewerSchemaSendsNothing(t *testing.T) {
	e, f, logs := startFault(t)
	if _, err := e.st.CreateServer(context.Background(), storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	f.NewerSchema()
	c := e.connect(t, "dp1", 0)
	c.wantEndedWithoutSnapshot(codes.Internal, "build config snapshot")
	if out := logs.String(); !strings.Contains(out, fmt.Sprintf("store schema version %d is newer than this binary supports (%d)", store.SchemaVersion+1, store.SchemaVersion)) {
		t.Errorf("the control plane log does not name the schema version:\n%s", out)
	}
}
