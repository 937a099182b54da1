package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	addr, tokenFile string
	peer            *registryPeer
}

// startPeer serves a registryPeer over real gRPC on 127.0.0.1:0 behind the
// same auth interceptor the control plane uses.
func startPeer(t *testing.T) env {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, authtoken.FileName)
	tok, err := authtoken.LoadOrCreate(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(auth.UnaryServerInterceptor(authtoken.AuthFunc(tok))),
		grpc.StreamInterceptor(auth.StreamServerInterceptor(authtoken.AuthFunc(tok))),
	)
	peer := newRegistryPeer()
	mcpmeshv1.RegisterRegistryServiceServer(srv, peer)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return env{addr: ln.Addr().String(), tokenFile: tokenFile, peer: peer}
}

// syncBuffer lets a test read output while a command is still writing it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
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

func mustRun(t *testing.T, e env, args ...string) string {
	t.Helper()
	out, errOut, code := e.run(t, args...)
	if code != 0 {
		t.Fatalf("mcpctl %q: exit %d: %s", args, code, errOut)
	}
	return out
}

func wantFail(t *testing.T, e env, wantErr string, args ...string) {
	t.Helper()
	_, errOut, code := e.run(t, args...)
	if code != 1 || !strings.Contains(errOut, wantErr) {
		t.Errorf("mcpctl %q: exit %d, stderr %q; want exit 1 and %q", args, code, errOut, wantErr)
	}
}

func TestServerLifecycle(t *testing.T) {
	e := startPeer(t)

	out := mustRun(t, e, "server", "add", "files", "--env", "TOKEN=s3cret", "--tag", "local", "--timeout", "5s", "--", "npx", "-y", "fs", "/srv")
	if want := `server "files" created (revision 1)`; !strings.Contains(out, want) {
		t.Errorf("add output %q, want %q", out, want)
	}
	wantFail(t, e, `server "files" already exists`, "server", "add", "files", "--", "other")
	wantFail(t, e, `"false" is not allowed here`, "server", "add", "bad", "--", "false")

	out = mustRun(t, e, "server", "add", "gh", "--url", "https://h/mcp", "--header", "Authorization=Bearer xyz", "--dry-run", "-o", "json")
	var dry struct {
		DryRun bool `json:"dry_run"`
		Server struct {
			Name    string            `json:"name"`
			Headers map[string]string `json:"headers"`
		} `json:"server"`
	}
	if err := json.Unmarshal([]byte(out), &dry); err != nil || !dry.DryRun || dry.Server.Name != "gh" || dry.Server.Headers["Authorization"] != "***" {
		t.Errorf("dry-run json = %s (%v)", out, err)
	}
	mustRun(t, e, "server", "add", "sse1", "--url", "http://127.0.0.1:9/sse", "--transport", "sse", "--tag", "remote")

	var list []map[string]any
	out = mustRun(t, e, "server", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("server list -o json is not an array: %v\n%s", err, out)
	}
	if len(list) != 2 || list[0]["name"] != "files" || list[1]["name"] != "sse1" || list[1]["transport"] != "sse" {
		t.Errorf("server list = %v, want files and sse1 (the dry run stored nothing)", list)
	}
	if out = mustRun(t, e, "server", "list", "--tag", "remote"); !strings.Contains(out, "sse1") || strings.Contains(out, "files") {
		t.Errorf("list --tag remote =\n%s", out)
	}

	out = mustRun(t, e, "server", "get", "files")
	for _, want := range []string{"TOKEN=***", "npx -y fs /srv", "5s", "healthy (1/1 healthy)", "dp-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("server get output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("server get printed a secret:\n%s", out)
	}
	wantFail(t, e, `server "nope" not found`, "server", "get", "nope")

	out = mustRun(t, e, "server", "disable", "files")
	if !strings.Contains(out, `server "files" disabled`) {
		t.Errorf("disable output %q", out)
	}
	if out = mustRun(t, e, "server", "get", "files", "-o", "yaml"); !strings.Contains(out, "enabled: false") {
		t.Errorf("after disable, get =\n%s", out)
	}
	// The update sent back "***": the stored secret must be intact.
	e.peer.mu.Lock()
	got := e.peer.servers["files"].GetStdio().GetEnv()["TOKEN"]
	e.peer.mu.Unlock()
	if got != "s3cret" {
		t.Errorf("stored TOKEN after disable = %q, want s3cret", got)
	}
	mustRun(t, e, "server", "enable", "files")
	if out = mustRun(t, e, "server", "get", "files", "-o", "json"); !strings.Contains(out, `"enabled": true`) {
		t.Errorf("after enable, get =\n%s", out)
	}
	wantFail(t, e, `server "ghost" not found`, "server", "enable", "ghost")

	var st struct {
		Revision   *json.Number `json:"revision"`
		Dataplanes []struct {
			ID        string       `json:"id"`
			Revision  *json.Number `json:"revision"`
			Connected *bool        `json:"connected"`
		} `json:"dataplanes"`
		Servers []struct{ Name, State string } `json:"servers"`
	}
	out = mustRun(t, e, "status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Revision == nil || len(st.Dataplanes) != 1 ||
		st.Dataplanes[0].ID != "dp-1" || st.Dataplanes[0].Revision == nil || st.Dataplanes[0].Connected == nil ||
		len(st.Servers) != 2 || st.Servers[0].Name != "files" || st.Servers[0].State != "healthy" {
		t.Errorf("status -o json = %s (%v)", out, err)
	}
	if out = mustRun(t, e, "status"); !strings.Contains(out, "1/1 healthy") || !strings.Contains(out, "Config revision: 4") {
		t.Errorf("status =\n%s", out)
	}
	if out = mustRun(t, e, "dataplane", "list"); !strings.Contains(out, "dp-1") {
		t.Errorf("dataplane list =\n%s", out)
	}

	mustRun(t, e, "server", "remove", "files")
	wantFail(t, e, `server "files" not found`, "server", "remove", "files")
	wantFail(t, e, "server name", "server", "remove", "UPPER")
}

func TestConfig(t *testing.T) {
	e := startPeer(t)
	out := mustRun(t, e, "config", "set", "pagination.enabled", "1")
	if !strings.Contains(out, "pagination.enabled") || !strings.Contains(out, "true") {
		t.Errorf("config set output %q, want the normalised value true", out)
	}
	out = mustRun(t, e, "config", "get", "-o", "json")
	var values map[string]string
	if err := json.Unmarshal([]byte(out), &values); err != nil || values["pagination.enabled"] != "true" || values["pagination.page_size"] != "100" {
		t.Errorf("config get -o json = %s (%v)", out, err)
	}
	if out = mustRun(t, e, "config", "get", "pagination.page_size"); !strings.Contains(out, "100") || strings.Contains(out, "pagination.enabled") {
		t.Errorf("config get KEY =\n%s", out)
	}
	wantFail(t, e, `unknown setting "nope"`, "config", "get", "nope")
	wantFail(t, e, `key: unknown setting "x.y"`, "config", "set", "x.y", "1")
	wantFail(t, e, "wants true or false", "config", "set", "pagination.enabled", "maybe")
	wantFail(t, e, "takes KEY VALUE", "config", "set", "pagination.enabled")
}

func TestBadToken(t *testing.T) {
	e := startPeer(t)
	wrong := filepath.Join(t.TempDir(), "wrong.token")
	if err := os.WriteFile(wrong, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"server", "list"}, {"status", "--watch"}} {
		_, errOut, code := runWith(t, noEnv, append([]string{"--addr", e.addr, "--token-file", wrong}, args...)...)
		if want := "control plane rejected the admin token from " + wrong; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v with a wrong token: exit %d, %q; want %q", args, code, errOut, want)
		}
	}
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
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%v took %v against a closed port, want < 2s", args, d)
		}
		if want := "cannot reach control plane at " + e.addr + ": is it running? (set --addr or MCPMESH_ADDR)"; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v: exit %d, %q; want %q", args, code, errOut, want)
		}
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	e := startPeer(t)
	getenv := func(k string) string {
		return map[string]string{EnvAddr: e.addr, authtoken.EnvTokenFile: e.tokenFile}[k]
	}
	if out, errOut, code := runWith(t, getenv, "server", "list", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("with env: exit %d, out %q, err %q; want []", code, out, errOut)
	}
	// Flags win over the environment.
	if _, errOut, code := runWith(t, getenv, "--addr", closedPort(t), "server", "list"); code != 1 || !strings.Contains(errOut, "cannot reach") {
		t.Errorf("--addr over env: exit %d, %q", code, errOut)
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
	} {
		_, errOut, code := e.run(t, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("%q: exit %d, %q; want %q", tc.args, code, errOut, tc.wantErr)
		}
	}
}

func TestStatusWatch(t *testing.T) {
	e := startPeer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--addr", e.addr, "--token-file", e.tokenFile, "status", "--watch", "-o", "json"}, &out, &errOut, noEnv)
	}()
	waitFor := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; output so far:\n%s\nstderr: %s", what, out.String(), errOut.String())
			}
			time.Sleep(5 * time.Millisecond) // polling the output, not timing the logic
		}
	}
	waitFor("the first status", func(s string) bool { return strings.Contains(s, `"revision": 0`) })
	mustRun(t, e, "server", "add", "w1", "--", "cmd")
	waitFor("the status after a change", func(s string) bool { return strings.Contains(s, `"name": "w1"`) })

	// Every printed status is a complete JSON object.
	dec := json.NewDecoder(strings.NewReader(out.String()))
	n := 0
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("watch output is not a stream of JSON objects: %v", err)
		}
		n++
	}
	if n < 2 {
		t.Errorf("got %d statuses, want at least 2", n)
	}

	cancel() // as Ctrl-C does
	select {
	case code := <-done:
		if code != 0 || errOut.String() != "" {
			t.Errorf("interrupted watch: exit %d, stderr %q; want 0 and nothing", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop after cancellation")
	}
}
