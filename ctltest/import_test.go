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

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// createdAt returns each server's create_revision, read from the store.
func createdAt(t *testing.T, cp *controlPlane) map[string]uint64 {
	t.Helper()
	list, _, err := cp.st.ListServers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, s := range list {
		out[s.GetName()] = s.GetCreateRevision()
	}
	return out
}

// TestServerImportFormats imports each client's file into its own control
// plane: every server of a file lands in one revision.
func TestServerImportFormats(t *testing.T) {
	files := map[string]struct {
		file string
		want map[string]mcpmeshv1.Transport
	}{
		"claude_desktop_config.json": {`{"mcpServers": {
  "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
  "GitHub": {"command": "docker", "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"], "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_s3cret"}}
}}`, map[string]mcpmeshv1.Transport{"filesystem": mcpmeshv1.Transport_TRANSPORT_STDIO, "github": mcpmeshv1.Transport_TRANSPORT_STDIO}},
		"cursor-mcp.json": {`{"mcpServers": {
  "remote": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer s3cret"}},
  "legacy": {"url": "http://127.0.0.1:9/sse"}
}}`, map[string]mcpmeshv1.Transport{"remote": mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, "legacy": mcpmeshv1.Transport_TRANSPORT_SSE}},
		"vscode-mcp.json": {`// VS Code
{"inputs": [], "servers": {
  "fetch": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
  "events": {"type": "sse", "url": "http://127.0.0.1:9/events"},
  "local": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}, // trailing comma
}}`, map[string]mcpmeshv1.Transport{"fetch": mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, "events": mcpmeshv1.Transport_TRANSPORT_SSE, "local": mcpmeshv1.Transport_TRANSPORT_STDIO}},
		"windsurf-mcp_config.json": {`{"mcpServers": {
  "ws": {"serverUrl": "http://127.0.0.1:9/mcp", "headers": {"X-Key": "s3cret"}},
  "off": {"command": "x", "disabled": true}
}}`, map[string]mcpmeshv1.Transport{"ws": mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, "off": mcpmeshv1.Transport_TRANSPORT_STDIO}},
	}
	for name, tc := range files {
		t.Run(name, func(t *testing.T) {
			cp := startControlPlane(t)
			cp.mustRun(t, "server", "add", "first", "--", "x")
			path := writeFile(t, name, tc.file)
			out := cp.mustRun(t, "server", "import", path)
			if !strings.Contains(out, "server(s) from "+path+" created (revision 2)") || strings.Contains(out, "s3cret") {
				t.Errorf("import output:\n%s", out)
			}
			got := createdAt(t, cp)
			if len(got) != len(tc.want)+1 {
				t.Fatalf("servers after import: %v, want first and %d imported", got, len(tc.want))
			}
			for n, tr := range tc.want {
				if got[n] != 2 {
					t.Errorf("server %q created at revision %d, want 2 (all in one revision)", n, got[n])
				}
				s, _ := cp.st.GetServer(context.Background(), n)
				if s.GetTransport() != tr {
					t.Errorf("server %q transport %v, want %v", n, s.GetTransport(), tr)
				}
			}
			if r, _ := cp.st.Revision(context.Background()); r != 2 {
				t.Errorf("revision after import = %d, want 2", r)
			}
		})
	}
}

func TestServerImportConflictsAndDryRun(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()
	cp.mustRun(t, "server", "add", "files", "--", "x")
	path := writeFile(t, "claude.json", `{"mcpServers": {
  "files": {"command": "npx", "args": ["fs"]},
  "Files!": {"command": "npx", "args": ["fs2"]},
  "new": {"command": "new", "env": {"K": "${input:k}"}}
}}`)

	cp.wantFail(t, `nothing was created: 2 name(s) are taken: "files" (already registered), "files" (already registered) (use --on-conflict skip or rename)`, "server", "import", path)
	cp.wantFail(t, "--on-conflict \"merge\" is not supported", "server", "import", path, "--on-conflict", "merge")

	out := cp.mustRun(t, "server", "import", path, "--on-conflict", "skip", "--dry-run")
	for _, want := range []string{"skip", "already registered", "create", "new", "dry run: 1 server(s)", "nothing was changed", "env K holds a ${...} placeholder"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run plan lacks %q:\n%s", want, out)
		}
	}
	if r, _ := cp.st.Revision(ctx); r != 1 {
		t.Fatalf("dry run wrote: revision %d", r)
	}

	out = cp.mustRun(t, "-o", "json", "server", "import", path, "--on-conflict", "rename", "--tag", "imported")
	var plan struct {
		Created  int    `json:"created"`
		Revision uint64 `json:"revision"`
		Servers  []struct{ Action, Name, Source string }
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("import -o json: %v\n%s", err, out)
	}
	if plan.Created != 3 || plan.Revision != 2 || len(plan.Servers) != 3 ||
		plan.Servers[0].Name != "files-2" || plan.Servers[0].Action != "rename" || plan.Servers[1].Name != "files-3" || plan.Servers[2].Name != "new" {
		t.Errorf("rename plan = %+v", plan)
	}
	got := createdAt(t, cp)
	if got["files-2"] != 2 || got["files-3"] != 2 || got["new"] != 2 {
		t.Errorf("created at %v, want the three at revision 2", got)
	}
	if s, _ := cp.st.GetServer(ctx, "files-3"); len(s.GetTags()) != 1 || s.GetTags()[0] != "imported" || s.GetStdio().GetArgs()[0] != "fs2" {
		t.Errorf("files-3 = %v", s)
	}

	// One invalid entry: the registry names it, and nothing is created.
	bad := writeFile(t, "bad.json", `{"mcpServers": {"ok": {"command": "x"}, "bad": {"url": "ftp://h/mcp"}}}`)
	cp.wantFail(t, `(server "bad")`, "server", "import", bad)
	if _, err := cp.st.GetServer(ctx, "ok"); err == nil {
		t.Error("a refused import created its valid entry")
	}
	cp.wantFail(t, `server "a": has neither command nor url`, "server", "import", writeFile(t, "x.json", `{"mcpServers": {"a": {}}}`))
	cp.wantFail(t, "no such file", "server", "import", filepath.Join(t.TempDir(), "missing.json"))
}

// TestServerExportRoundTrip: what one control plane exports, another
// imports as the same servers; secrets are masked in the file.
func TestServerExportRoundTrip(t *testing.T) {
	src := startControlPlane(t)
	src.mustRun(t, "server", "add", "files", "--env", "TOKEN=s3cret", "--tag", "t", "--", "npx", "-y", "fs")
	src.mustRun(t, "server", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--header", "Authorization=Bearer xyz")
	src.mustRun(t, "server", "add", "old", "--url", "http://127.0.0.1:9/sse", "--transport", "sse", "--disabled")

	stdout := src.mustRun(t, "server", "export")
	file := filepath.Join(t.TempDir(), "mcp.json")
	out := src.mustRun(t, "server", "export", "-f", file)
	if !strings.Contains(out, "3 server(s) exported to "+file) || !strings.Contains(out, "files: not in the file format, left out: tags") {
		t.Errorf("export -f output:\n%s", out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != stdout {
		t.Errorf("export -f wrote something else than export to stdout")
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600", st.Mode().Perm())
	}
	for _, secret := range []string{"s3cret", "xyz"} {
		if strings.Contains(stdout, secret) {
			t.Errorf("export shows %q:\n%s", secret, stdout)
		}
	}
	if !strings.Contains(stdout, `"mcpServers"`) || !strings.Contains(stdout, `"TOKEN": "***"`) || !strings.Contains(stdout, `"disabled": true`) {
		t.Errorf("export:\n%s", stdout)
	}

	dst := startControlPlane(t)
	out = dst.mustRun(t, "server", "import", file)
	if !strings.Contains(out, `TOKEN is "***" (masked by mcpctl server export)`) {
		t.Errorf("import of an export does not warn about masked values:\n%s", out)
	}
	type row struct {
		Name, Transport, URL, Command string
		Args                          []string
		Env, Headers                  map[string]string
		Enabled                       bool
	}
	list := func(cp *controlPlane) []row {
		var rows []row
		if err := json.Unmarshal([]byte(cp.mustRun(t, "server", "list", "-o", "json")), &rows); err != nil {
			t.Fatal(err)
		}
		return rows
	}
	a, b := list(src), list(dst)
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if string(aj) != string(bj) {
		t.Errorf("round trip differs:\nsource %s\nimport %s", aj, bj)
	}
}
