package ctltest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// runAs runs mcpctl against cp with the token in file.
func (cp *controlPlane) runAs(t *testing.T, file string, args ...string) (string, string, int) {
	t.Helper()
	return runWith(t, noEnv, append([]string{"--addr", cp.addr, "--token-file", file}, args...)...)
}

func TestTokenLifecycle(t *testing.T) {
	cp := startControlPlane(t)
	dir := t.TempDir()

	// create, with the secret written to a file or printed once.
	viewerFile := filepath.Join(dir, "viewer.token")
	out := cp.mustRun(t, "token", "create", "--role", "viewer", "--description", "dashboards", "--secret-file", viewerFile)
	if !strings.Contains(out, "role viewer") || !strings.Contains(out, "secret written to "+viewerFile) || strings.Contains(out, "mcpm_") {
		t.Errorf("create --secret-file output %q", out)
	}
	if fi, err := os.Stat(viewerFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	cp.wantFail(t, "--secret-file", "token", "create", "--role", "viewer", "--secret-file", viewerFile) // exists: never overwritten
	out = cp.mustRun(t, "token", "create", "--role", "dataplane", "--ttl", "1h", "-o", "json")
	var created struct {
		ID, Role, State, Secret string
		ExpiresAt               string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Role != "dataplane" || created.State != "active" ||
		!strings.HasPrefix(created.Secret, "mcpm_"+created.ID+"_") || created.ExpiresAt == "" {
		t.Fatalf("create -o json = %s (%v)", out, err)
	}
	dpFile := filepath.Join(dir, "dp.token")
	if err := os.WriteFile(dpFile, []byte(created.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cp.wantFail(t, `--role: role "root" is not one of admin, viewer, dataplane`, "token", "create", "--role", "root")
	cp.wantFail(t, `required flag(s) "role" not set`, "token", "create")
	cp.wantFail(t, "--ttl must not be negative", "token", "create", "--role", "viewer", "--ttl", "-1h")

	// list shows both, never a secret; the bootstrap token stays unlisted.
	out = cp.mustRun(t, "token", "list", "-o", "json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 2 {
		t.Fatalf("token list = %s (%v)", out, err)
	}
	if strings.Contains(out, "mcpm_") || strings.Contains(out, "secret") {
		t.Errorf("token list shows a secret: %s", out)
	}

	// viewer: reads, never writes.
	if _, errOut, code := cp.runAs(t, viewerFile, "server", "list"); code != 0 {
		t.Errorf("viewer server list: %s", errOut)
	}
	if _, errOut, code := cp.runAs(t, viewerFile, "token", "list"); code != 0 {
		t.Errorf("viewer token list: %s", errOut)
	}
	for _, args := range [][]string{{"server", "add", "x", "--", "cmd"}, {"config", "set", "pagination.enabled", "true"}, {"token", "create", "--role", "admin"}} {
		if _, errOut, code := cp.runAs(t, viewerFile, args...); code != 1 || !strings.Contains(errOut, "control plane denied the request: a viewer token may not call") {
			t.Errorf("viewer %v: exit %d, %q; want permission denied", args, code, errOut)
		}
	}
	// dataplane: no admin call at all, but the config stream.
	if _, errOut, code := cp.runAs(t, dpFile, "status"); code != 1 || !strings.Contains(errOut, "a dataplane token may not call /mcpmesh.v1.RegistryService/GetStatus") {
		t.Errorf("dataplane status: exit %d, %q", code, errOut)
	}
	cc, err := grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(authtoken.Credentials(created.Secret)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := mcpmeshv1.NewDiscoveryServiceClient(cc).StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "dp-tok"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("config stream with a dataplane token: %v", err)
	}

	// revoke ends the open stream and every later call.
	start := time.Now()
	out = cp.mustRun(t, "token", "revoke", created.ID)
	if want := "token " + created.ID + " revoked (role dataplane"; !strings.Contains(out, want) {
		t.Errorf("revoke output %q, want %q", out, want)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated || time.Since(start) > time.Second {
		t.Errorf("open stream after revoke: %v after %v; want Unauthenticated within 1s", err, time.Since(start))
	}
	if _, errOut, code := cp.runAs(t, dpFile, "status"); code != 1 || !strings.Contains(errOut, "control plane rejected the token from "+dpFile+": token "+created.ID+" is revoked") {
		t.Errorf("revoked token: exit %d, %q", code, errOut)
	}
	out = cp.mustRun(t, "token", "list")
	if !strings.Contains(out, created.ID) || !strings.Contains(out, "revoked") {
		t.Errorf("token list after revoke:\n%s", out)
	}
	cp.wantFail(t, `not found: token "0000000000000000" does not exist (see 'mcpctl token list')`, "token", "revoke", "0000000000000000")
	cp.wantFail(t, "the bootstrap admin.token cannot be revoked", "token", "revoke", "bootstrap")
}
