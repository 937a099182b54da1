package ctltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/internal/version"
	"github.com/mcpmesh/mcpmesh/mcpctl/cmd"
)

func TestVersion(t *testing.T) {
	cp := startControlPlane(t)
	var v struct{ Client, Server, Addr string }
	if err := json.Unmarshal([]byte(cp.mustRun(t, "version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Client != version.Version || v.Server != version.Version || v.Addr != cp.addr {
		t.Errorf("version = %+v, want client and server %q at %s", v, version.Version, cp.addr)
	}
	if out := cp.mustRun(t, "version"); !strings.Contains(out, "Client:  "+version.Version) || !strings.Contains(out, "Server:  "+version.Version+" ("+cp.addr+")") {
		t.Errorf("version table:\n%s", out)
	}
	// --client needs no control plane; without it, a dead one is an error.
	dead := closedAddr(t)
	if out, errOut, code := runWith(t, noEnv, "--addr", dead, "version", "--client"); code != 0 || !strings.Contains(out, version.Version) || strings.Contains(out, "Server") {
		t.Errorf("version --client: exit %d, %q, %q", code, out, errOut)
	}
	if _, errOut, code := runWith(t, noEnv, "--addr", dead, "--token-file", cp.tokenFile, "version"); code != 1 || !strings.Contains(errOut, "cannot reach control plane at "+dead) {
		t.Errorf("version against a dead control plane: exit %d, %q", code, errOut)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// complete runs cobra's hidden __complete command as a shell does; its
// debug lines go to stderr, which the shell scripts discard.
func complete(t *testing.T, args ...string) (lines []string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = cmd.Run(ctx, append([]string{"__complete"}, args...), &out, &errb, noEnv)
	return strings.Split(strings.TrimSpace(out.String()), "\n"), code
}

func TestCompletion(t *testing.T) {
	cp := startControlPlane(t)
	for shell, want := range map[string]string{"bash": "bash completion", "zsh": "#compdef mcpctl", "fish": "complete -c mcpctl"} {
		if out := cp.mustRun(t, "completion", shell); !strings.Contains(out, want) {
			t.Errorf("completion %s lacks %q", shell, want)
		}
	}
	cp.mustRun(t, "server", "add", "files", "--description", "the files", "--", "x")
	cp.mustRun(t, "server", "add", "fetch", "--url", "http://127.0.0.1:9/mcp")
	cp.mustRun(t, "server", "add", "web", "--url", "http://127.0.0.1:9/mcp")

	for _, verb := range []string{"get", "update", "remove", "enable", "disable"} {
		lines, code := complete(t, "--addr", cp.addr, "--token-file", cp.tokenFile, "server", verb, "f")
		want := []string{"files\tthe files", "fetch\tstreamable-http", ":4"}
		if code != 0 || strings.Join(lines, "|") != strings.Join([]string{want[1], want[0], want[2]}, "|") {
			t.Errorf("complete server %s f: exit %d, %q; want %q (sorted by name, then :4 = no file completion)", verb, code, lines, []string{want[1], want[0], want[2]})
		}
	}
	// Only the first argument is a server name.
	if lines, _ := complete(t, "--addr", cp.addr, "--token-file", cp.tokenFile, "server", "get", "files", ""); len(lines) != 1 || lines[0] != ":4" {
		t.Errorf("second argument completed as %q", lines)
	}
	// A dead control plane completes nothing, quickly and without an error.
	start := time.Now()
	lines, code := complete(t, "--addr", closedAddr(t), "--token-file", cp.tokenFile, "server", "get", "")
	if code != 0 || len(lines) != 1 || lines[0] != ":4" || time.Since(start) > 15*time.Second {
		t.Errorf("completion against a dead control plane: exit %d, %q after %s", code, lines, time.Since(start))
	}
	if lines, _ := complete(t, "-o", ""); strings.Join(lines, ",") != "table,json,yaml,:4" {
		t.Errorf("-o completes %q", lines)
	}
	if lines, _ := complete(t, "server", "import", "--on-conflict", ""); strings.Join(lines, ",") != "fail,skip,rename,:4" {
		t.Errorf("--on-conflict completes %q", lines)
	}
}
