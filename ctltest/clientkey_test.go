package ctltest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// TestClientKeyLifecycle: create (printed once or written to a 0600 file),
// list (never a secret), revoke; each write moves the config revision so
// data planes get the live keys.
func TestClientKeyLifecycle(t *testing.T) {
	cp := startControlPlane(t)
	rev := func() uint64 {
		t.Helper()
		st, err := mcpmeshv1.NewRegistryServiceClient(cp.cc).GetStatus(context.Background(), &mcpmeshv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.GetRevision()
	}
	before := rev()
	out := cp.mustRun(t, "client-key", "create", "--tag", "team-a", "--tag", "team-b", "--ttl", "1h", "--description", "laptops", "-o", "json")
	var created struct {
		ID, State, Secret string
		Tags              []string
		ExpiresAt         string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.State != "active" || len(created.Tags) != 2 ||
		!strings.HasPrefix(created.Secret, "mcpk_"+created.ID+"_") || created.ExpiresAt == "" {
		t.Fatalf("create -o json = %s (%v)", out, err)
	}
	if rev() == before {
		t.Error("creating a client key did not move the config revision")
	}
	file := filepath.Join(t.TempDir(), "ci.key")
	out = cp.mustRun(t, "client-key", "create", "--secret-file", file)
	if !strings.Contains(out, "secret written to "+file) || strings.Contains(out, "mcpk_") || !strings.Contains(out, "(all servers)") {
		t.Errorf("create --secret-file output %q", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	cp.wantFail(t, "--secret-file", "client-key", "create", "--secret-file", file)
	cp.wantFail(t, "--ttl must not be negative", "client-key", "create", "--ttl", "-1h")
	cp.wantFail(t, `tag "Bad Tag" is invalid`, "client-key", "create", "--tag", "Bad Tag")

	out = cp.mustRun(t, "client-key", "list", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 || strings.Contains(out, "mcpk_") || strings.Contains(out, "secret") {
		t.Fatalf("client-key list = %s (%v)", out, err)
	}
	mid := rev()
	out = cp.mustRun(t, "client-key", "revoke", created.ID)
	if !strings.Contains(out, "client key "+created.ID+" revoked") || rev() == mid {
		t.Errorf("revoke: %q (revision %d, was %d)", out, rev(), mid)
	}
	if out = cp.mustRun(t, "client-key", "list"); !strings.Contains(out, "revoked") {
		t.Errorf("list after revoke:\n%s", out)
	}
	cp.wantFail(t, "does not exist", "client-key", "revoke", "0000000000000000")
}
