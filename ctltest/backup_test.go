package ctltest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// serverList is `server list -o json` with the revisions (which a restore
// stamps anew) removed, to compare two control planes.
func serverList(t *testing.T, cp *controlPlane) []map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal([]byte(cp.mustRun(t, "server", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		delete(s, "create_revision")
		delete(s, "mod_revision")
		delete(s, "revision")
	}
	return list
}

// mcpctl backup from one control plane and mcpctl restore into another: the
// second serves the same servers, its data planes (holding a token issued by
// the first) receive them, a viewer token of the first works on it; a used
// control plane is refused without --force, --dry-run changes nothing, bad
// files are refused with the reason and change nothing.
func TestBackupRestore(t *testing.T) {
	src := startControlPlane(t)
	dir := t.TempDir()
	src.mustRun(t, "server", "add", "files", "--env", "TOKEN=s3cret", "--", "npx", "-y", "@mcp/files", "/srv")
	src.mustRun(t, "server", "add", "web", "--url", "https://example.com/mcp", "--header", "Authorization=Bearer xyz")
	src.mustRun(t, "config", "set", "pagination.page_size", "25")
	src.mustRun(t, "client-key", "create", "--tag", "prod")
	dpFile, viewerFile := filepath.Join(dir, "dp.token"), filepath.Join(dir, "viewer.token")
	src.mustRun(t, "token", "create", "--role", "dataplane", "--secret-file", dpFile)
	src.mustRun(t, "token", "create", "--role", "viewer", "--secret-file", viewerFile)

	file := filepath.Join(dir, "backup.json")
	out := src.mustRun(t, "backup", file)
	if !strings.Contains(out, "written to "+file) || !strings.Contains(out, "2 servers, 2 tokens, 1 client keys") || !strings.Contains(out, "in clear") {
		t.Fatalf("backup output %q", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode())
	}
	raw, _ := os.ReadFile(file)
	if m := decode(t, raw); m["format_version"] != 1.0 || !strings.Contains(string(raw), "Bearer xyz") {
		t.Fatalf("backup file is not the dump with secrets in clear:\n%.400s", raw)
	}
	src.wantFail(t, "exists", "backup", file)
	src.mustRun(t, "backup", "--force", file)
	if stdout := src.mustRun(t, "backup", "-"); !strings.HasPrefix(stdout, "{") || !strings.Contains(stdout, `"cluster_secret"`) {
		t.Fatalf("backup - wrote %.200q", stdout)
	}
	// (re-read: the --force run rewrote it)
	raw, _ = os.ReadFile(file)

	dst := startControlPlane(t)
	dst.mustRun(t, "server", "add", "other", "--", "/bin/other")
	dst.wantFail(t, "not empty (1 servers", "restore", file)
	out = dst.mustRun(t, "restore", "--dry-run", "--force", file)
	if !strings.Contains(out, "would restore") || !strings.Contains(out, "replaced: 1 servers") {
		t.Fatalf("dry-run output %q", out)
	}
	if got := serverList(t, dst); len(got) != 1 || got[0]["name"] != "other" {
		t.Fatalf("dry run changed the servers: %v", got)
	}

	for _, bad := range []struct{ name, content, want string }{
		{"empty.json", "", "is empty"},
		{"text.json", "not json", "is not JSON"},
		{"noversion.json", `{"servers": []}`, "no format_version"},
		{"newer.json", `{"format_version": 9, "future": 1}`, "newer than this mcpctl reads"},
		{"unknown.json", `{"format_version": 1, "surprise": 1}`, "surprise"},
		{"badname.json", mutate(t, raw, func(m map[string]any) { m["servers"].([]any)[0].(map[string]any)["name"] = "bad name" }), "backup.servers[0].server.name"},
		{"redacted.json", mutate(t, raw, func(m map[string]any) { m["servers"].([]any)[1].(map[string]any)["redacted"] = true }), "backup.servers[1]: server \"web\" has its secrets redacted"},
		{"shortsecret.json", mutate(t, raw, func(m map[string]any) { m["cluster_secret"] = "AAAA" }), "cluster secret is 3 bytes"},
	} {
		p := filepath.Join(dir, bad.name)
		if err := os.WriteFile(p, []byte(bad.content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := dst.run(t, "restore", "--force", p)
		if code != 1 || !strings.Contains(errOut, bad.want) {
			t.Errorf("restore %s: exit %d, %q; want %q", bad.name, code, errOut, bad.want)
		}
	}
	dst.wantFail(t, "no such file", "restore", filepath.Join(dir, "missing.json"))
	if got := serverList(t, dst); len(got) != 1 {
		t.Fatalf("a refused restore changed the servers: %v", got)
	}

	out = dst.mustRun(t, "restore", "--force", file)
	if !strings.Contains(out, "restored "+file) || !strings.Contains(out, "restored: 2 servers, 2 tokens, 1 client keys") {
		t.Fatalf("restore output %q", out)
	}
	want, got := serverList(t, src), serverList(t, dst)
	if wj, gj := mustJSON(t, want), mustJSON(t, got); wj != gj {
		t.Fatalf("restored servers differ:\n got %s\nwant %s", gj, wj)
	}
	if a, b := src.mustRun(t, "config", "get", "-o", "json"), dst.mustRun(t, "config", "get", "-o", "json"); a != b {
		t.Fatalf("restored settings differ:\n got %s\nwant %s", b, a)
	}

	// A data plane holding the token the first control plane issued is
	// served by the second, with both servers.
	dpTok, err := authtoken.Read(dpFile)
	if err != nil {
		t.Fatal(err)
	}
	dst.dpcc, err = grpc.NewClient(dst.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(authtoken.Credentials(dpTok)))
	if err != nil {
		t.Fatal(err)
	}
	dp := dst.connectDataPlane(t, "dp-restored")
	dst.waitFor(t, "the data plane's snapshot", func() bool { return len(dp.snapshot().GetServers()) == 2 })
	if len(dp.snapshot().GetClientKeys()) != 1 {
		t.Fatalf("restored snapshot has %d client keys, want 1", len(dp.snapshot().GetClientKeys()))
	}
	if _, errOut, code := runWith(t, noEnv, "--addr", dst.addr, "--token-file", viewerFile, "server", "list"); code != 0 {
		t.Fatalf("the restored viewer token is refused: %s", errOut)
	}
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// mutate returns the backup raw with fn applied to its JSON.
func mutate(t *testing.T, raw []byte, fn func(map[string]any)) string {
	t.Helper()
	m := decode(t, raw)
	fn(m)
	return mustJSON(t, m)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
