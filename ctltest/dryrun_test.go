package ctltest_test

import (
	"context"
	"encoding/json"
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

// TestDryRunDiffs: every write's --dry-run prints what would change and
// changes nothing.
func TestDryRunDiffs(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()
	cp.mustRun(t, "server", "add", "files", "--env", "TOKEN=s3cret", "--", "npx", "fs")
	tok := cp.mustRun(t, "token", "create", "--role", "viewer", "-o", "json")
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(tok), &created); err != nil || created.ID == "" {
		t.Fatalf("token create: %s (%v)", tok, err)
	}
	key := cp.mustRun(t, "client-key", "create", "-o", "json")
	var ck struct{ ID string }
	if err := json.Unmarshal([]byte(key), &ck); err != nil || ck.ID == "" {
		t.Fatalf("client-key create: %s (%v)", key, err)
	}
	rev := func() uint64 { r, _ := cp.st.Revision(ctx); return r }
	before := rev()

	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"server", "remove", "files", "--dry-run"}, []string{`dry run: would remove server "files" (checked at revision 2); nothing was changed`, "- name: files", "- env.TOKEN: ***"}},
		{[]string{"server", "disable", "files", "--dry-run"}, []string{`would disable server "files"`, "~ enabled: true -> false"}},
		{[]string{"server", "enable", "files", "--dry-run"}, []string{`would enable server "files"`, "(no changes)"}},
		{[]string{"config", "set", "pagination.page_size", "50", "--dry-run"}, []string{`would set setting "pagination.page_size"`, "~ pagination.page_size: 100 -> 50"}},
		{[]string{"token", "revoke", created.ID, "--dry-run"}, []string{`would revoke token "` + created.ID + `"`, "~ state: active -> revoked", "+ revoked_at: "}},
		{[]string{"client-key", "revoke", ck.ID, "--dry-run"}, []string{`would revoke client-key "` + ck.ID + `"`, "~ state: active -> revoked"}},
		{[]string{"token", "create", "--role", "dataplane", "--ttl", "24h", "--dry-run"}, []string{`would create token "dataplane"`, "+ role: dataplane", "+ ttl: 24h0m0s", "+ secret: printed once"}},
		{[]string{"client-key", "create", "--tag", "team-a", "--dry-run"}, []string{`would create client-key "(new)"`, "+ tags: team-a"}},
		{[]string{"server", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--dry-run"}, []string{`would create server "web"`, "+ url: http://127.0.0.1:9/mcp"}},
		{[]string{"server", "update", "files", "--timeout", "9s", "--dry-run"}, []string{`would update server "files"`, "~ timeout: default -> 9s"}},
	}
	for _, tc := range cases {
		out := cp.mustRun(t, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%q lacks %q:\n%s", tc.args, w, out)
			}
		}
		if strings.Contains(out, "s3cret") {
			t.Errorf("%q printed a secret:\n%s", tc.args, out)
		}
		jout := cp.mustRun(t, append(tc.args, "-o", "json")...)
		var v struct {
			DryRun  bool              `json:"dry_run"`
			Changes []json.RawMessage `json:"changes"`
		}
		if err := json.Unmarshal([]byte(jout), &v); err != nil || !v.DryRun || v.Changes == nil {
			t.Errorf("%q -o json = %s (%v), want dry_run and changes", tc.args, jout, err)
		}
	}
	if rev() != before {
		t.Errorf("dry runs moved the revision from %d to %d", before, rev())
	}
	if s, err := cp.st.GetServer(ctx, "files"); err != nil || !s.GetEnabled() || s.GetTimeout() != nil {
		t.Errorf("dry runs changed files: %v, %v", s, err)
	}
	if out := cp.mustRun(t, "token", "list"); strings.Contains(out, "revoked") || strings.Contains(out, "dataplane") {
		t.Errorf("token revoke or create --dry-run wrote:\n%s", out)
	}
	if out := cp.mustRun(t, "client-key", "list"); strings.Contains(out, "team-a") {
		t.Errorf("client-key create --dry-run created one:\n%s", out)
	}
	existing := writeFile(t, "taken.key", "x")
	cp.wantFail(t, "--secret-file "+existing+" already exists", "token", "create", "--role", "viewer", "--secret-file", existing, "--dry-run")
	cp.wantFail(t, `server "nope" not found`, "server", "remove", "nope", "--dry-run")
	cp.wantFail(t, `token "feedfacefeedface" not found`, "token", "revoke", "feedfacefeedface", "--dry-run")
	cp.wantFail(t, "pagination.page_size", "config", "set", "pagination.page_size", "0", "--dry-run")
}
