package cmd

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// These tests need no control plane: they check what mcpctl does before and
// around the network. The commands against the real control plane live in
// ctltest/, the one package the import rules let import both.

type env struct {
	addr, tokenFile string
}

func noEnv(string) string { return "" }

func (e env) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runWith(t, noEnv, append([]string{"--addr", e.addr, "--token-file", e.tokenFile}, args...)...)
}

func runWith(t *testing.T, getenv func(string) string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, &out, &errb, getenv)
	if code != 0 && (strings.Count(errb.String(), "\n") != 1 || !strings.HasPrefix(errb.String(), "Error: ")) {
		t.Errorf("mcpctl %q: stderr is not one 'Error: ' line: %q", args, errb.String())
	}
	if code == 0 && errb.Len() > 0 {
		t.Errorf("mcpctl %q succeeded but wrote to stderr: %q", args, errb.String())
	}
	return out.String(), errb.String(), code
}

func TestMissingTokenFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.token")
	_, errOut, code := runWith(t, noEnv, "--token-file", missing, "server", "list")
	if want := "read admin token " + missing + ": no such file"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, %q; want %q", code, errOut, want)
	}
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachableFailsFast(t *testing.T) {
	e := env{addr: closedPort(t), tokenFile: filepath.Join(t.TempDir(), "t")}
	if err := os.WriteFile(e.tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"server", "list"}, {"status"}, {"status", "--watch"}, {"server", "enable", "x"}} {
		start := time.Now()
		_, errOut, code := e.run(t, args...)
		// Failing fast means not waiting out the 10 s request timeout (or
		// gRPC's connect backoff); 5 s leaves room for a loaded machine.
		if d := time.Since(start); d > DefaultRequestTimeout/2 {
			t.Errorf("%v took %v against a closed port, want well under the %v request timeout", args, d, DefaultRequestTimeout)
		}
		if want := "cannot reach control plane at " + e.addr + ": is it running? (set --addr or MCPMESH_ADDR)"; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, %q; want %q", args, code, errOut, want)
		}
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	// Two closed ports: the address in the error says which one was used.
	fromEnv, fromFlag := closedPort(t), closedPort(t)
	tokenFile := filepath.Join(t.TempDir(), "t")
	if err := os.WriteFile(tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		return map[string]string{EnvAddr: fromEnv, authtoken.EnvTokenFile: tokenFile}[k]
	}
	if _, errOut, code := runWith(t, getenv, "server", "list"); code != 1 || !strings.Contains(errOut, "cannot reach control plane at "+fromEnv+":") {
		t.Errorf("with env only: exit %d, %q; want the address from %s", code, errOut, EnvAddr)
	}
	// Flags win over the environment.
	if _, errOut, code := runWith(t, getenv, "--addr", fromFlag, "server", "list"); code != 1 || !strings.Contains(errOut, "cannot reach control plane at "+fromFlag+":") {
		t.Errorf("--addr over env: exit %d, %q; want the address from --addr", code, errOut)
	}
	// The token file from the environment is the one read.
	missing := filepath.Join(t.TempDir(), "absent.token")
	getenv = func(k string) string { return map[string]string{authtoken.EnvTokenFile: missing}[k] }
	if _, errOut, code := runWith(t, getenv, "server", "list"); code != 1 || !strings.Contains(errOut, "read admin token "+missing) {
		t.Errorf("token file from env: exit %d, %q", code, errOut)
	}
}

func TestClientSideValidation(t *testing.T) {
	// Nothing listens and no token exists: these must fail before dialing.
	e := env{addr: closedPort(t), tokenFile: filepath.Join(t.TempDir(), "absent")}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-o", "xml", "status"}, `--output "xml" is not supported`},
		{[]string{"server", "get", "Bad"}, `server name "Bad" is invalid`},
		{[]string{"server", "add", "x", "--url", "http://h/", "--", "cmd"}, "not both"},
		{[]string{"server", "add", "x", "--env", "NOEQ", "--", "cmd"}, `--env "NOEQ": want KEY=VALUE`},
		{[]string{"server", "add", "x", "--header", "NOEQ", "--url", "http://h/"}, `--header "NOEQ": want KEY=VALUE`},
		{[]string{"server", "add", "x"}, "give a command after --"},
		{[]string{"server", "get"}, "takes one NAME"},
		{[]string{"server", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"--request-timeout", "0s", "status"}, "--request-timeout must be positive"},
		// After --, --dry-run is the command's: refused rather than a real create.
		{[]string{"server", "add", "x", "--", "cmd", "a", "--dry-run"}, `--dry-run after -- is an argument of the command "cmd", so the server would really be created: ` +
			`to validate only, put --dry-run before -- (mcpctl server add x --dry-run -- cmd a); to pass it to the command, say --dry-run=false before -- (mcpctl server add x --dry-run=false -- cmd a --dry-run)`},
		{[]string{"server", "add", "x", "--", "cmd", "--dry-run=true"}, "--dry-run=true after -- is an argument"},
		// mcpctl's --dry-run given: the line is unambiguous and gets as far as the token.
		{[]string{"server", "add", "x", "--dry-run", "--", "cmd", "--dry-run"}, "read admin token"},
		{[]string{"server", "add", "x", "--dry-run=false", "--", "cmd", "--dry-run"}, "read admin token"},
		{[]string{"server", "add", "x", "--dry-run", "--", "cmd"}, "read admin token"},
	} {
		_, errOut, code := e.run(t, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("%q: exit %d, %q; want %q", tc.args, code, errOut, tc.wantErr)
		}
	}
}
