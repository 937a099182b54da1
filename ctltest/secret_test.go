package ctltest_test

import (
	"bytes"
	"strings"
	"testing"
)

// mcpctl secret rotate replaces the cluster secret; a data plane's next
// snapshot carries the new one and the old one as previous, until the grace.
func TestSecretRotate(t *testing.T) {
	cp := startControlPlane(t)
	dp := cp.connectDataPlane(t, "dp-1")
	cp.waitFor(t, "the first snapshot", func() bool { return dp.snapshot() != nil })
	old := dp.snapshot().GetClusterSecret()

	cp.wantFail(t, "--grace 10s is out of range: use 1m to 168h", "secret", "rotate", "--grace", "10s")
	cp.wantFail(t, "--grace 169h0m0s is out of range", "secret", "rotate", "--grace", "169h")
	cp.wantFail(t, "--grace 10s is out of range", "secret", "rotate", "--grace", "10s", "--dry-run")
	if out := cp.mustRun(t, "secret", "rotate", "--grace", "2h", "--dry-run"); !strings.Contains(out, "nothing was changed") || !strings.Contains(out, "accepted for 2h0m0s") {
		t.Fatalf("rotate --dry-run printed %q", out)
	}
	out := cp.mustRun(t, "secret", "rotate", "--grace", "2h")
	if !strings.Contains(out, "cluster secret rotated at revision 1; the old one is accepted until ") {
		t.Fatalf("rotate printed %q", out)
	}
	cp.waitFor(t, "the rotated snapshot", func() bool { return dp.snapshot().GetRevision() == 1 })
	snap := dp.snapshot()
	if len(snap.GetClusterSecret()) != 32 || bytes.Equal(snap.GetClusterSecret(), old) ||
		len(snap.GetPreviousSecrets()) != 1 || !bytes.Equal(snap.GetPreviousSecrets()[0].GetSecret(), old) {
		t.Fatalf("snapshot after rotate: %d previous", len(snap.GetPreviousSecrets()))
	}
	if strings.Contains(out, string(old)) {
		t.Fatal("rotate printed a secret")
	}
}
