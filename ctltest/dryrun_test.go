package ctltest_test

import (
	"strings"
	"testing"
)

// TestDryRunAfterDash: "server add x -- cmd --dry-run" creates nothing (it
// is refused, saying how to write either meaning); with mcpctl's --dry-run
// before --, the same line is a dry run of cmd --dry-run; with
// --dry-run=false, a real create of it.
func TestDryRunAfterDash(t *testing.T) {
	cp := startControlPlane(t)
	cp.wantFail(t, "--dry-run after -- is an argument of the command", "server", "add", "x", "--", "cmd", "--dry-run")
	if out := cp.mustRun(t, "server", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("the refused line stored a server: %s", out)
	}
	out := cp.mustRun(t, "-o", "json", "server", "add", "x", "--dry-run", "--", "cmd", "--dry-run")
	if !strings.Contains(out, `"dry_run": true`) || !strings.Contains(out, `"--dry-run"`) {
		t.Errorf("dry run of cmd --dry-run = %s", out)
	}
	if out := cp.mustRun(t, "server", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("the dry run stored a server: %s", out)
	}
	cp.mustRun(t, "server", "add", "x", "--dry-run=false", "--", "cmd", "--dry-run")
	if out := cp.mustRun(t, "server", "get", "x", "-o", "json"); !strings.Contains(out, `"--dry-run"`) {
		t.Errorf("server x = %s, want --dry-run among its args", out)
	}
}
