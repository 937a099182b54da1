package ctltest_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/app"
	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/secrets"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/faultstore"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/mcpctl/cmd"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// controlPlane is the control plane's services over a real bbolt file,
// wired as controlplane/app wires them (same interceptor chain, same
// constructors), behind a fault store the tests may use to break the disk.
type controlPlane struct {
	addr, tokenFile, token string
	st                     *faultstore.Fault
	disc                   *discovery.Server
	health                 *health.Aggregator
	authn                  *access.Authenticator
	cc                     *grpc.ClientConn // admin-token client for the test's own calls
	dpToken                string           // a dataplane token, what data planes hold
	dpcc                   *grpc.ClientConn // dataplane-token client for the config streams
}

// startControlPlane serves the control plane on 127.0.0.1:0. extra server
// options run after the control plane's own interceptors (innermost).
func startControlPlane(t *testing.T, extra ...grpc.ServerOption) *controlPlane {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, authtoken.FileName)
	token, err := authtoken.LoadOrCreate(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	bolt, err := store.OpenBolt(filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{tokenFile: tokenFile, token: token, st: faultstore.New(bolt)}
	log := slog.New(slog.DiscardHandler)
	cp.health = health.New(cp.st, func() map[string]bool { return cp.disc.ConnectedIDs() }, log)
	cp.disc = discovery.New(cp.st, cp.health, log)
	cp.authn = access.NewAuthenticator(token, cp.st, log)
	gs := grpc.NewServer(append(app.ServerOptions(log, cp.authn, app.NewMetrics()), extra...)...)
	reg := registry.New(cp.st, cp.disc, cp.health, log)
	mcpmeshv1.RegisterRegistryServiceServer(gs, reg)
	mcpmeshv1.RegisterBackupServiceServer(gs, reg.Backup("bolt"))
	mcpmeshv1.RegisterDiscoveryServiceServer(gs, cp.disc)
	mcpmeshv1.RegisterTokenServiceServer(gs, access.NewService(cp.st, cp.authn, log))
	mcpmeshv1.RegisterSecretServiceServer(gs, secrets.New(cp.st, log))
	mcpmeshv1.RegisterClientKeyServiceServer(gs, access.NewClientKeyService(cp.st, log))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = lis.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	cp.cc, err = grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(authtoken.Credentials(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cp.dpcc != nil {
			cp.dpcc.Close()
		}
		cp.cc.Close()
		cp.disc.Shutdown() // as app.Run: config streams never end on their own
		gs.Stop()
		<-served
		cp.disc.Close()
		if err := cp.st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return cp
}

// waitFor re-checks cond whenever a data plane or a health report changes,
// for up to 30 s.
func (cp *controlPlane) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	dch, stopD := cp.disc.Subscribe()
	defer stopD()
	hch, stopH := cp.health.Subscribe()
	defer stopH()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-dch:
		case <-hch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// dataPlane speaks the data plane's side of the config stream: it ACKs every
// snapshot and sends the health reports the test asks for. One goroutine
// sends, as gRPC requires.
type dataPlane struct {
	out chan *mcpmeshv1.StreamConfigRequest
	mu  sync.Mutex
	got *mcpmeshv1.ConfigSnapshot // newest snapshot received
}

func (cp *controlPlane) connectDataPlane(t *testing.T, id string) *dataPlane {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := mcpmeshv1.NewDiscoveryServiceClient(cp.dataplaneConn(t)).StreamConfig(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	dp := &dataPlane{out: make(chan *mcpmeshv1.StreamConfigRequest, 16)}
	dp.out <- &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: id, Version: "test"}}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the only sender
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-dp.out:
				if err := stream.Send(m); err != nil {
					return // the receiver below sees why
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			dp.mu.Lock()
			dp.got = m.GetSnapshot()
			dp.mu.Unlock()
			select {
			case dp.out <- &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Ack{Ack: &mcpmeshv1.Ack{Revision: m.GetSnapshot().GetRevision(), Nonce: m.GetNonce()}}}:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return dp
}

func (dp *dataPlane) snapshot() *mcpmeshv1.ConfigSnapshot {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	return dp.got
}

func (dp *dataPlane) report(backends ...*mcpmeshv1.BackendHealth) {
	dp.out <- &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{Backends: backends}}}
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

// run runs mcpctl against cp with its admin token file.
func (cp *controlPlane) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runWith(t, noEnv, append([]string{"--addr", cp.addr, "--token-file", cp.tokenFile}, args...)...)
}

// runWith runs mcpctl as the binary does and checks its output contract:
// a failure is exactly one "Error: " line on stderr, a success writes none.
func runWith(t *testing.T, getenv func(string) string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := cmd.Run(ctx, args, &out, &errb, getenv)
	if code != 0 && (strings.Count(errb.String(), "\n") != 1 || !strings.HasPrefix(errb.String(), "Error: ")) {
		t.Errorf("mcpctl %q: stderr is not one 'Error: ' line: %q", args, errb.String())
	}
	if code == 0 && errb.Len() > 0 {
		t.Errorf("mcpctl %q succeeded but wrote to stderr: %q", args, errb.String())
	}
	return out.String(), errb.String(), code
}

func (cp *controlPlane) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := cp.run(t, args...)
	if code != 0 {
		t.Fatalf("mcpctl %q: exit %d: %s", args, code, errOut)
	}
	return out
}

func (cp *controlPlane) wantFail(t *testing.T, wantErr string, args ...string) {
	t.Helper()
	_, errOut, code := cp.run(t, args...)
	if code != 1 || !strings.Contains(errOut, wantErr) {
		t.Errorf("mcpctl %q: exit %d, stderr %q; want exit 1 and %q", args, code, errOut, wantErr)
	}
}

// dataplaneConn returns a client holding a dataplane token (issued on first
// use), as data planes do: only it is sent the snapshots' secrets.
func (cp *controlPlane) dataplaneConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	if cp.dpcc != nil {
		return cp.dpcc
	}
	created, err := mcpmeshv1.NewTokenServiceClient(cp.cc).CreateToken(context.Background(), &mcpmeshv1.CreateTokenRequest{Role: mcpmeshv1.Role_ROLE_DATAPLANE})
	if err != nil {
		t.Fatal(err)
	}
	cp.dpToken = created.GetSecret()
	cp.dpcc, err = grpc.NewClient(cp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(authtoken.Credentials(cp.dpToken)))
	if err != nil {
		t.Fatal(err)
	}
	return cp.dpcc
}
