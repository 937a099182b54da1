package ctltest_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestServerUpdate(t *testing.T) {
	cp := startControlPlane(t)
	ctx := context.Background()
	cp.mustRun(t, "server", "add", "files", "--env", "TOKEN=s3cret", "--env", "DEBUG=1", "--tag", "a", "--timeout", "5s", "--", "npx", "-y", "fs")
	cp.mustRun(t, "server", "add", "web", "--url", "http://127.0.0.1:9/mcp", "--header", "Authorization=Bearer xyz")

	// A dry run prints the diff and writes nothing.
	out := cp.mustRun(t, "server", "update", "files", "--timeout", "10s", "--tag", "b", "--env", "NEW=n3w", "--env", "TOKEN=other", "--unset-env", "DEBUG", "--dry-run")
	for _, want := range []string{`dry run: would update server "files" (checked at revision 2); nothing was changed`,
		"~ timeout: 5s -> 10s", "~ tags: a -> a, b", "+ env.NEW: ***", "~ env.TOKEN: *** -> *** (new value)", "- env.DEBUG: ***"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "n3w") || strings.Contains(out, "other") {
		t.Errorf("dry run printed a secret:\n%s", out)
	}
	if r, _ := cp.st.Revision(ctx); r != 2 {
		t.Fatalf("dry run moved the revision to %d", r)
	}

	out = cp.mustRun(t, "server", "update", "files", "--timeout", "10s", "--tag", "b", "--env", "NEW=n3w", "--unset-env", "DEBUG")
	if !strings.Contains(out, `server "files" updated (revision 3)`) || !strings.Contains(out, "~ timeout: 5s -> 10s") {
		t.Errorf("update output:\n%s", out)
	}
	got, err := cp.st.GetServer(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	env := got.GetStdio().GetEnv()
	if env["TOKEN"] != "s3cret" || env["NEW"] != "n3w" || len(env) != 2 {
		t.Errorf("stored env = %v, want TOKEN kept, NEW added, DEBUG gone", env)
	}
	if !slices.Equal(got.GetTags(), []string{"a", "b"}) || got.GetTimeout().AsDuration() != 10*time.Second ||
		got.GetStdio().GetCommand() != "npx" || !slices.Equal(got.GetStdio().GetArgs(), []string{"-y", "fs"}) || got.GetCreateRevision() != 1 {
		t.Errorf("stored server = %v", got)
	}

	// A new command after --, and -o json.
	out = cp.mustRun(t, "-o", "json", "server", "update", "files", "--untag", "a", "--", "uvx", "fs-server")
	var res struct {
		Action   string `json:"action"`
		Revision uint64 `json:"revision"`
		Changes  []struct{ Field, Op, Old, New string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Action != "updated" || res.Revision != 4 || len(res.Changes) != 3 {
		t.Errorf("update -o json = %s (%v), want 3 changes (command, args, tags) at revision 4", out, err)
	}

	// The header of a URL server changes; its secret never shows.
	cp.mustRun(t, "server", "update", "web", "--header", "Authorization=Bearer new", "--transport", "sse")
	if w, _ := cp.st.GetServer(ctx, "web"); w.GetHttp().GetHeaders()["Authorization"] != "Bearer new" || w.GetTransport() != mcpmeshv1.Transport_TRANSPORT_SSE {
		t.Errorf("web = %v", w)
	}

	cp.wantFail(t, "nothing to change", "server", "update", "files")
	cp.wantFail(t, `--url does not apply: server "files" is a stdio server`, "server", "update", "files", "--url", "http://h/mcp")
	cp.wantFail(t, `--env does not apply: server "web" is a URL server`, "server", "update", "web", "--env", "A=b")
	cp.wantFail(t, "--unset-env NOPE: the server has no such key", "server", "update", "files", "--unset-env", "NOPE")
	cp.wantFail(t, `server "nope" not found`, "server", "update", "nope", "--timeout", "1s")
	cp.wantFail(t, "timeout", "server", "update", "files", "--timeout", "2h") // the registry's limit, named
	if r, _ := cp.st.Revision(ctx); r != 5 {
		t.Errorf("refused updates moved the revision to %d, want 5", r)
	}
}

// TestServerUpdateStale: someone else changes the server between mcpctl's
// read and its write. The update fails naming what they changed and writes
// nothing; with --force it goes through over their change.
func TestServerUpdateStale(t *testing.T) {
	var cp *controlPlane
	var race atomic.Bool
	var races atomic.Int64
	cp = startControlPlane(t, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if info.FullMethod == mcpmeshv1.RegistryService_UpdateServer_FullMethodName && race.CompareAndSwap(true, false) {
			s, err := cp.st.GetServer(ctx, "files")
			if err != nil {
				return nil, err
			}
			n := races.Add(1) // their timeout: 1m, then 2m
			s.Timeout, s.Tags = durationpb.New(time.Duration(n)*time.Minute), []string{"theirs"}
			if _, err := cp.st.UpdateServer(ctx, s, 0); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}))
	ctx := context.Background()
	cp.mustRun(t, "server", "add", "files", "--timeout", "5s", "--", "npx", "fs")

	race.Store(true)
	cp.wantFail(t, `server "files" was changed by someone else since you read it at revision 1 (it is now at revision 2): + tags: theirs; ~ timeout: 5s -> 1m0s. Nothing was written`,
		"server", "update", "files", "--description", "mine")
	got, _ := cp.st.GetServer(ctx, "files")
	if got.GetDescription() != "" || got.GetModRevision() != 2 {
		t.Fatalf("the stale update wrote: %v", got)
	}

	race.Store(true)
	out := cp.mustRun(t, "server", "update", "files", "--description", "mine", "--force")
	if !strings.Contains(out, `server "files" updated (revision 4)`) {
		t.Errorf("forced update output:\n%s", out)
	}
	got, _ = cp.st.GetServer(ctx, "files")
	// Read at revision 2 (timeout 1m); they set 2m at 3; --force wrote the
	// version read, with our change, over theirs.
	if got.GetDescription() != "mine" || got.GetTimeout().AsDuration() != time.Minute {
		t.Errorf("after --force: %v, want our description over the version we read (timeout 1m)", got)
	}
}
