package ctltest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/configclient"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// eventually polls cond every 20 ms for up to 30 s; cond returns why it
// does not hold yet.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// When the control plane cannot read the revision it should send (a damaged
// value), the real data plane client keeps serving its last good snapshot
// through every failed reconnect, and takes the whole new one once the store
// reads again.
func TestDataPlaneKeepsLastGoodSnapshotWhileStoreIsDamaged(t *testing.T) {
	cp := startControlPlane(t)
	cp.mustRun(t, "server", "add", "a", "--", "cmd")

	cp.dataplaneConn(t) // issues cp.dpToken
	var mu sync.Mutex
	var applied []uint64
	logs := &syncBuffer{}
	client := configclient.New(configclient.Options{
		Addr: cp.addr, Token: cp.dpToken, DataPlaneID: "dp-real", Version: "test",
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Apply: func(_ context.Context, snap *mcpmeshv1.ConfigSnapshot) error {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, snap.GetRevision())
			return nil
		},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, NoJitter: true,
		HealthInterval: time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("config client: %v", err)
		}
	})
	eventually(t, "the data plane at revision 1", func() string {
		if r := client.Revision(); r != 1 {
			return fmt.Sprintf("revision %d", r)
		}
		return ""
	})

	cp.st.CorruptServer("b")
	cp.mustRun(t, "server", "add", "b", "--", "cmd") // commits revision 2; reading it back fails
	eventually(t, "two config streams refused for the damaged revision", func() string {
		if n := strings.Count(logs.String(), "build config snapshot: store unavailable"); n < 2 {
			return fmt.Sprintf("%d so far", n)
		}
		return ""
	})
	if snap := client.Snapshot(); snap.GetRevision() != 1 || len(snap.GetServers()) != 1 || snap.GetServers()[0].GetName() != "a" {
		t.Fatalf("data plane snapshot while the store is damaged = revision %d %v, want its last good revision 1", snap.GetRevision(), snap.GetServers())
	}
	var dps []struct {
		ID       string `json:"id"`
		Revision uint64 `json:"revision"`
	}
	if out := cp.mustRun(t, "dataplane", "list", "-o", "json"); json.Unmarshal([]byte(out), &dps) != nil || len(dps) != 1 || dps[0].ID != "dp-real" || dps[0].Revision != 1 {
		t.Errorf("dataplane list = %s, want dp-real at revision 1", out)
	}

	cp.st.Heal()
	eventually(t, "the data plane at revision 2", func() string {
		if r := client.Revision(); r != 2 {
			return fmt.Sprintf("revision %d", r)
		}
		return ""
	})
	var names []string
	for _, s := range client.Snapshot().GetServers() {
		names = append(names, s.GetName())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(names, []string{"a", "b"}) || !slices.Equal(applied, []uint64{1, 2}) {
		t.Fatalf("after healing: servers %v, applied revisions %v; want a, b and exactly 1 then 2", names, applied)
	}
}
