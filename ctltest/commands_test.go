package ctltest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/mcpmesh/mcpmesh/controlplane/app"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/mcpctl/cmd"
)

func healthy(server string) *mcpmeshv1.BackendHealth {
	return &mcpmeshv1.BackendHealth{Server: server, State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY,
		Breaker: mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED, Tools: 3}
}

func TestServerLifecycle(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()
	dp := cp.connectDataPlane(t, "dp-1")

	out := cp.mustRun(t, "server", "add", "files", "--env", "TOKEN=s3cret", "--tag", "local", "--timeout", "5s", "--", "npx", "-y", "fs", "/srv")
	if want := `server "files" created (revision 1)`; !strings.Contains(out, want) {
		t.Errorf("add output %q, want %q", out, want)
	}
	cp.wantFail(t, `server "files" already exists (remove it first or choose another name)`, "server", "add", "files", "--", "other")

	out = cp.mustRun(t, "server", "add", "gh", "--url", "https://h/mcp", "--header", "Authorization=Bearer xyz", "--dry-run", "-o", "json")
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
	cp.wantFail(t, `server "files" already exists`, "server", "add", "files", "--dry-run", "--", "other")
	cp.mustRun(t, "server", "add", "sse1", "--url", "http://127.0.0.1:9/sse", "--transport", "sse", "--tag", "remote")

	var list []map[string]any
	out = cp.mustRun(t, "server", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("server list -o json is not an array: %v\n%s", err, out)
	}
	if len(list) != 2 || list[0]["name"] != "files" || list[1]["name"] != "sse1" || list[1]["transport"] != "sse" {
		t.Errorf("server list = %v, want files and sse1 (the dry run stored nothing)", list)
	}
	if out = cp.mustRun(t, "server", "list", "--tag", "remote"); !strings.Contains(out, "sse1") || strings.Contains(out, "files") {
		t.Errorf("list --tag remote =\n%s", out)
	}

	// The data plane got revision 2 with the secret in clear (it is the one
	// reader that needs it) and reports both servers healthy.
	cp.waitFor(t, "dp-1 at revision 2", func() bool {
		for _, d := range cp.disc.ListDataPlanes() {
			if d.GetId() == "dp-1" && d.GetRevision() == 2 {
				return true
			}
		}
		return false
	})
	if env := dp.snapshot().GetServers()[0].GetStdio().GetEnv(); env["TOKEN"] != "s3cret" {
		t.Fatalf("snapshot env = %v, want the stored secret", env)
	}
	dp.report(healthy("files"), healthy("sse1"))
	cp.waitFor(t, "files healthy", func() bool {
		sts, err := cp.health.Statuses(ctx, []*mcpmeshv1.Server{{Name: "files"}})
		return err == nil && sts[0].GetHealthyDataplanes() == 1
	})

	out = cp.mustRun(t, "server", "get", "files")
	for _, want := range []string{"TOKEN=***", "npx -y fs /srv", "5s", "healthy (1/1 healthy)", "dp-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("server get output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("server get printed a secret:\n%s", out)
	}
	cp.wantFail(t, `server "nope" not found (see 'mcpctl server list')`, "server", "get", "nope")

	out = cp.mustRun(t, "server", "disable", "files")
	if !strings.Contains(out, `server "files" disabled (revision 3)`) {
		t.Errorf("disable output %q", out)
	}
	if out = cp.mustRun(t, "server", "get", "files", "-o", "yaml"); !strings.Contains(out, "enabled: false") || !strings.Contains(out, "disabled") {
		t.Errorf("after disable, get =\n%s", out)
	}
	// The update sent back what get returned ("***"): the stored secret is intact.
	stored, err := cp.st.GetServer(ctx, "files")
	if err != nil || stored.GetStdio().GetEnv()["TOKEN"] != "s3cret" {
		t.Errorf("stored server after disable = %v, %v; want TOKEN=s3cret", stored, err)
	}
	if out = cp.mustRun(t, "server", "disable", "files"); !strings.Contains(out, `server "files" disabled (revision 3)`) {
		t.Errorf("disabling again wrote something: %q", out)
	}
	cp.mustRun(t, "server", "enable", "files")
	if out = cp.mustRun(t, "server", "get", "files", "-o", "json"); !strings.Contains(out, `"enabled": true`) {
		t.Errorf("after enable, get =\n%s", out)
	}
	cp.wantFail(t, `server "ghost" not found`, "server", "enable", "ghost")

	cp.waitFor(t, "dp-1 at revision 4", func() bool { return dp.snapshot().GetRevision() == 4 && cp.disc.ListDataPlanes()[0].GetRevision() == 4 })
	var st struct {
		Revision   *json.Number `json:"revision"`
		Dataplanes []struct {
			ID        string       `json:"id"`
			Revision  *json.Number `json:"revision"`
			Connected *bool        `json:"connected"`
		} `json:"dataplanes"`
		Servers []struct{ Name, State string } `json:"servers"`
	}
	out = cp.mustRun(t, "status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Revision == nil || st.Revision.String() != "4" || len(st.Dataplanes) != 1 ||
		st.Dataplanes[0].ID != "dp-1" || st.Dataplanes[0].Revision == nil || st.Dataplanes[0].Revision.String() != "4" ||
		st.Dataplanes[0].Connected == nil || !*st.Dataplanes[0].Connected ||
		len(st.Servers) != 2 || st.Servers[0].Name != "files" || st.Servers[0].State != "healthy" {
		t.Errorf("status -o json = %s (%v)", out, err)
	}
	if out = cp.mustRun(t, "status"); !strings.Contains(out, "1/1 healthy") || !strings.Contains(out, "Config revision: 4") {
		t.Errorf("status =\n%s", out)
	}
	if out = cp.mustRun(t, "dataplane", "list"); !strings.Contains(out, "dp-1") {
		t.Errorf("dataplane list =\n%s", out)
	}

	cp.mustRun(t, "server", "remove", "files")
	cp.wantFail(t, `server "files" not found`, "server", "remove", "files")
	cp.wantFail(t, `server name "UPPER" is invalid`, "server", "remove", "UPPER")
	if _, rev, err := cp.st.ListServers(ctx); err != nil || rev != 5 {
		t.Errorf("revision after remove = %d, %v; want 5", rev, err)
	}
}

// Input mcpctl passes on but the control plane refuses: the message names
// the field, and nothing is stored.
func TestServerValidationNamesTheField(t *testing.T) {
	cp := startControlPlane(t)
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"server", "add", "a", "--tag", "Not-Lower", "--", "cmd"}, `server.tags[0]: tag "Not-Lower" is invalid`},
		{[]string{"server", "add", "a", "--timeout", "2h", "--", "cmd"}, "server.timeout: 2h0m0s is out of range"},
		{[]string{"server", "add", "a", "--backoff", "1s,11m", "--", "cmd"}, "server.backoff[1]: 11m0s is out of range"},
		// mcpctl itself refuses a header Go's HTTP client would not send,
		// naming the flag and key but not the (secret) value.
		{[]string{"server", "add", "a", "--url", "http://h/mcp", "--header", "Bad Name=v"}, `--header "Bad Name=…": KEY "Bad Name" is not an HTTP header name`},
		{[]string{"server", "add", "a", "--", "  "}, "server.stdio.command: is required"},
		{[]string{"server", "add", "a", "--dry-run", "--tag", "Not-Lower", "--", "cmd"}, "server.tags[0]"},
	} {
		cp.wantFail(t, tc.wantErr, tc.args...)
	}
	if out := cp.mustRun(t, "server", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused adds stored something: %s", out)
	}
}

// A prefix set with --prefix, including the empty one, is stored and shown;
// without the flag none is stored (the data planes use NAME__).
func TestServerPrefix(t *testing.T) {
	cp := startControlPlane(t)
	cp.mustRun(t, "server", "add", "bare", "--prefix", "", "--", "cmd")
	cp.mustRun(t, "server", "add", "dotted", "--prefix", "gh.", "--", "cmd")
	cp.mustRun(t, "server", "add", "plain", "--", "cmd")
	for name, want := range map[string]string{"bare": `"prefix": ""`, "dotted": `"prefix": "gh."`} {
		if out := cp.mustRun(t, "server", "get", name, "-o", "json"); !strings.Contains(out, want) {
			t.Errorf("server get %s -o json = %s, want %s", name, out, want)
		}
	}
	if out := cp.mustRun(t, "server", "get", "plain", "-o", "json"); strings.Contains(out, `"prefix"`) {
		t.Errorf("server get plain -o json = %s, want no prefix", out)
	}
	if out := cp.mustRun(t, "server", "get", "bare"); !strings.Contains(out, "PREFIX:") || !strings.Contains(out, "(none: tools and prompts keep their own names)") {
		t.Errorf("server get bare =\n%s", out)
	}
	cp.wantFail(t, `--prefix: prefix "a b" is invalid`, "server", "add", "x", "--prefix", "a b", "--", "cmd")
}

func TestConfig(t *testing.T) {
	cp := startControlPlane(t)
	out := cp.mustRun(t, "config", "set", "pagination.enabled", "1")
	if !strings.Contains(out, "pagination.enabled") || !strings.Contains(out, "true") {
		t.Errorf("config set output %q, want the normalised value true", out)
	}
	out = cp.mustRun(t, "config", "get", "-o", "json")
	var values map[string]string
	if err := json.Unmarshal([]byte(out), &values); err != nil || values["pagination.enabled"] != "true" || values["pagination.page_size"] != "100" {
		t.Errorf("config get -o json = %s (%v)", out, err)
	}
	if out = cp.mustRun(t, "config", "get", "pagination.page_size"); !strings.Contains(out, "100") || strings.Contains(out, "pagination.enabled") {
		t.Errorf("config get KEY =\n%s", out)
	}
	cp.wantFail(t, `unknown setting "nope"`, "config", "get", "nope")
	cp.wantFail(t, `key: unknown setting "x.y": valid keys are pagination.enabled`, "config", "set", "x.y", "1")
	cp.wantFail(t, `value: pagination.enabled: "maybe" is not a boolean (use true or false)`, "config", "set", "pagination.enabled", "maybe")
	cp.wantFail(t, `value: pagination.page_size: "0" is not a whole number`, "config", "set", "pagination.page_size", "0")
	cp.wantFail(t, "takes KEY VALUE", "config", "set", "pagination.enabled")
	if _, rev, err := cp.st.GetSettings(context.Background()); err != nil || rev != 1 {
		t.Errorf("revision after one good set and refused ones = %d, %v; want 1", rev, err)
	}
}

func TestBadToken(t *testing.T) {
	cp := startControlPlane(t)
	wrong := filepath.Join(t.TempDir(), "wrong.token")
	if err := os.WriteFile(wrong, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"server", "list"}, {"server", "add", "x", "--", "cmd"}, {"status", "--watch"}} {
		_, errOut, code := runWith(t, noEnv, append([]string{"--addr", cp.addr, "--token-file", wrong}, args...)...)
		if want := "control plane rejected the token from " + wrong; code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%v with a wrong token: exit %d, %q; want %q", args, code, errOut, want)
		}
	}
	if _, err := cp.st.GetServer(context.Background(), "x"); err == nil {
		t.Error("a rejected token created a server")
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	cp := startControlPlane(t)
	getenv := func(k string) string {
		return map[string]string{cmd.EnvAddr: cp.addr, authtoken.EnvTokenFile: cp.tokenFile}[k]
	}
	if out, errOut, code := runWith(t, getenv, "server", "list", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("with env: exit %d, out %q, err %q; want []", code, out, errOut)
	}
}

// concurrentWriter changes the server an UpdateServer is about, through the
// store, just before the registry sees the call: what a second operator
// does between mcpctl's read and its write. times bounds how often.
func concurrentWriter(cp **controlPlane, times int32, updates *atomic.Int32) grpc.ServerOption {
	return grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if u, ok := req.(*mcpmeshv1.UpdateServerRequest); ok {
			if n := updates.Add(1); n <= times {
				st := (*cp).st
				cur, err := st.GetServer(ctx, u.GetServer().GetName())
				if err == nil {
					cur.Description = fmt.Sprintf("edited by someone else (%d)", n)
					_, err = st.UpdateServer(ctx, cur, 0)
				}
				if err != nil {
					return nil, fmt.Errorf("concurrent writer: %w", err)
				}
			}
		}
		return handler(ctx, req)
	})
}

// A stale revision is refused with Aborted by the real registry; mcpctl
// re-reads and retries, and says what to do when the race keeps going.
func TestStaleRevisionAborted(t *testing.T) {
	for _, tc := range []struct {
		name        string
		races       int32
		wantUpdates int32
		wantErr     string
	}{
		{"one concurrent change: the retry succeeds", 1, 2, ""},
		{"changed on every attempt", 1 << 30, 3, `server "s" changed concurrently: server "s" was changed by someone else since you read it: get it again and retry (run the command again)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cp *controlPlane
			var updates atomic.Int32
			cp = startControlPlane(t, concurrentWriter(&cp, tc.races, &updates))
			cp.mustRun(t, "server", "add", "s", "--", "cmd")
			_, errOut, code := cp.run(t, "server", "disable", "s")
			stored, err := cp.st.GetServer(context.Background(), "s")
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantErr == "" {
				if code != 0 || stored.GetEnabled() {
					t.Errorf("disable: exit %d, %q, stored enabled=%v; want it disabled after a retry", code, errOut, stored.GetEnabled())
				}
			} else if code != 1 || !strings.Contains(errOut, tc.wantErr) || !stored.GetEnabled() {
				t.Errorf("disable: exit %d, %q, stored enabled=%v; want exit 1, %q and the server untouched", code, errOut, stored.GetEnabled(), tc.wantErr)
			}
			if n := updates.Load(); n != tc.wantUpdates {
				t.Errorf("mcpctl sent %d updates, want %d", n, tc.wantUpdates)
			}
		})
	}
}

// When the disk fails, mcpctl prints the control plane's own one-line reason.
func TestStoreFailureReachesTheOperator(t *testing.T) {
	cp := startControlPlane(t)
	cp.mustRun(t, "server", "add", "a", "--", "cmd")
	cp.mustRun(t, "server", "add", "b", "--", "cmd")

	cp.st.FailWrites(syscall.EIO)
	cp.wantFail(t, `control plane error (Internal): store: create server "c": input/output error`, "server", "add", "c", "--", "cmd")
	cp.wantFail(t, `control plane error (Internal): store: put settings: input/output error`, "config", "set", "pagination.enabled", "true")
	cp.st.FailWrites(nil)

	cp.st.CorruptServer("b")
	cp.wantFail(t, `control plane error (Internal): store: list servers: decode server "b": proto:`, "server", "list")
	cp.wantFail(t, `control plane error (Internal): store: get server "b": decode server "b": proto:`, "server", "get", "b")
	if out := cp.mustRun(t, "server", "get", "a"); !strings.Contains(out, "a") {
		t.Errorf("get a (intact) = %q", out)
	}
	cp.st.Heal()
	if out := cp.mustRun(t, "server", "list", "-o", "json"); strings.Count(out, `"name"`) != 2 {
		t.Errorf("after healing, list = %s", out)
	}
}

func TestStatusWatch(t *testing.T) {
	cp := startControlPlane(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cmd.Run(ctx, []string{"--addr", cp.addr, "--token-file", cp.tokenFile, "status", "--watch", "-o", "json"}, &out, &errOut, noEnv)
	}()
	waitFor := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond(out.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; output so far:\n%s\nstderr: %s", what, out.String(), errOut.String())
			}
			time.Sleep(20 * time.Millisecond) // polling the output, not timing the logic
		}
	}
	waitFor("the first status", func(s string) bool { return strings.Contains(s, `"revision": 0`) })
	cp.mustRun(t, "server", "add", "w1", "--", "cmd")
	waitFor("the status after a change", func(s string) bool { return strings.Contains(s, `"name": "w1"`) })
	cp.connectDataPlane(t, "dp-w")
	waitFor("the status after a data plane connected", func(s string) bool { return strings.Contains(s, `"id": "dp-w"`) })

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
	if n < 3 {
		t.Errorf("got %d statuses, want at least 3", n)
	}

	cancel() // as Ctrl-C does
	select {
	case code := <-done:
		if code != 0 || errOut.String() != "" {
			t.Errorf("interrupted watch: exit %d, stderr %q; want 0 and nothing", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not stop after cancellation")
	}
}

// The commands above run against the services wired by hand (to reach the
// store); this one runs against app.Run itself, the control plane binary's
// wiring, reading the token file it writes.
func TestAgainstAppRun(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			ShutdownTimeout: 10 * time.Second, Ready: func(grpcAddr, _ string) { addrs <- grpcAddr }})
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		cancel()
		t.Fatalf("control plane did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("control plane not ready within 30s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("control plane stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("control plane did not stop within 30s")
		}
	})
	cp := &controlPlane{addr: addr, tokenFile: filepath.Join(dir, authtoken.FileName)}
	if out := cp.mustRun(t, "server", "add", "files", "--env", "TOKEN=s3cret", "--", "npx", "fs"); !strings.Contains(out, `server "files" created (revision 1)`) {
		t.Errorf("add = %q", out)
	}
	cp.wantFail(t, `server "files" already exists`, "server", "add", "files", "--", "npx")
	cp.wantFail(t, `server.tags[0]: tag "Bad" is invalid`, "server", "add", "x", "--tag", "Bad", "--", "npx")
	if out := cp.mustRun(t, "server", "list", "-o", "json"); !strings.Contains(out, `"name": "files"`) || strings.Contains(out, "s3cret") {
		t.Errorf("list = %s", out)
	}
	if out := cp.mustRun(t, "status", "-o", "json"); !strings.Contains(out, `"revision": 1`) || !strings.Contains(out, `"state": "unknown"`) {
		t.Errorf("status = %s", out)
	}
	wrong := filepath.Join(t.TempDir(), "wrong.token")
	if err := os.WriteFile(wrong, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runWith(t, noEnv, "--addr", addr, "--token-file", wrong, "server", "list"); code != 1 || !strings.Contains(errOut, "rejected the token from") {
		t.Errorf("wrong token: exit %d, %q", code, errOut)
	}
}
