package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TestMessageLimits runs the control plane over real gRPC on TCP, with the
// call options data planes and mcpctl use: snapshots and health reports
// past gRPC's 4 MiB default go through, a registration that would push the
// snapshot past 16 MiB is refused with InvalidArgument, and the config
// stream stays up through all of it.
func TestMessageLimits(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Ready: func(g, _ string) { ready <- g }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Run failed: %v", err)
	}
	tok, err := authtoken.Read(filepath.Join(dir, authtoken.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(authtoken.Credentials(tok)), limits.CallOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	reg := mcpmeshv1.NewRegistryServiceClient(cc)

	sctx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	stream, err := mcpmeshv1.NewDiscoveryServiceClient(cc).StreamConfig(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "dp1"}}}); err != nil {
		t.Fatal(err)
	}
	type recv struct {
		m   *mcpmeshv1.StreamConfigResponse
		err error
	}
	msgs := make(chan recv, 100)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			m, err := stream.Recv()
			msgs <- recv{m, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() { stopStream(); <-recvDone }()
	// waitRev reads snapshots until one of revision rev, ACKing each.
	waitRev := func(rev uint64) *mcpmeshv1.ConfigSnapshot {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case r := <-msgs:
				if r.err != nil {
					t.Fatalf("config stream ended waiting for revision %d: %v", rev, r.err)
				}
				snap := r.m.GetSnapshot()
				if err := stream.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Ack{Ack: &mcpmeshv1.Ack{
					Revision: snap.GetRevision(), Nonce: r.m.GetNonce()}}}); err != nil {
					t.Fatal(err)
				}
				if snap.GetRevision() >= rev {
					return snap
				}
			case <-timeout:
				t.Fatalf("no snapshot of revision %d within 30s", rev)
			}
		}
	}
	waitRev(0)

	// Servers of about 3 MB each: five fit in a 16 MiB snapshot, a sixth does not.
	big := func(name string) *mcpmeshv1.Server {
		env := map[string]string{}
		for i := range 192 {
			env[fmt.Sprintf("PAD_%d", i)] = strings.Repeat("x", 16<<10)
		}
		return &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
			Stdio: &mcpmeshv1.StdioConfig{Command: "demo", Env: env}}
	}
	var snap *mcpmeshv1.ConfigSnapshot
	for i := range 5 {
		resp, err := reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: big(fmt.Sprintf("s%d", i))})
		if err != nil {
			t.Fatalf("server %d of 3 MB refused: %v", i, err)
		}
		snap = waitRev(resp.GetRevision())
	}
	if len(snap.GetServers()) != 5 {
		t.Fatalf("snapshot has %d servers, want 5", len(snap.GetServers()))
	}
	_, err = reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: big("s5")})
	want := fmt.Sprintf("over its limit of %d bytes", limits.MaxSnapshotSize(limits.MaxMessageSize))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "server: the config snapshot sent to data planes would be ") {
		t.Fatalf("sixth 3 MB server: err = %v, want InvalidArgument %q", err, want)
	}

	// The stream is still up and keeps receiving config.
	resp, err := reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: &mcpmeshv1.Server{
		Name: "tiny", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{Command: "demo"}}})
	if err != nil {
		t.Fatalf("a small server after the refusal: %v", err)
	}
	if snap := waitRev(resp.GetRevision()); len(snap.GetServers()) != 6 {
		t.Fatalf("snapshot after the refusal has %d servers, want 6", len(snap.GetServers()))
	}

	// A health report past 4 MiB (a backend's 5 MB initialize error) is
	// taken, and its error is kept to 1 KB.
	if err := stream.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{
		Backends: []*mcpmeshv1.BackendHealth{{Server: "tiny", State: mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE, LastError: strings.Repeat("e", 5<<20)}},
	}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := reg.GetStatus(ctx, &mcpmeshv1.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(st.GetDataplanes()) != 1 || !st.GetDataplanes()[0].GetConnected() {
			t.Fatalf("data planes = %v, want dp1 connected", st.GetDataplanes())
		}
		var lastErr string
		for _, s := range st.GetServers() {
			if s.GetName() == "tiny" && len(s.GetBackends()) == 1 {
				lastErr = s.GetBackends()[0].GetLastError()
			}
		}
		if lastErr != "" {
			if len(lastErr) != textlimit.ErrorText {
				t.Fatalf("last_error served as %d bytes, want %d", len(lastErr), textlimit.ErrorText)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the health report did not arrive")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-msgs:
		if r.err != nil {
			t.Fatalf("config stream ended: %v", r.err)
		}
	default:
	}
}
