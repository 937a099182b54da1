package configclient

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "s3cret"

// fakeCP is a minimal but real DiscoveryService on 127.0.0.1, behind the
// same auth interceptor the control plane uses. It reports what it receives
// on channels and sends whatever the test puts on send.
type fakeCP struct {
	mcpmeshv1.UnimplementedDiscoveryServiceServer
	hellos  chan *mcpmeshv1.Hello
	replies chan *mcpmeshv1.StreamConfigRequest // acks and nacks
	health  chan *mcpmeshv1.HealthReport
	send    chan *mcpmeshv1.StreamConfigResponse

	addr string
	srv  *grpc.Server
}

func newFakeCP() *fakeCP {
	return &fakeCP{
		hellos:  make(chan *mcpmeshv1.Hello, 8),
		replies: make(chan *mcpmeshv1.StreamConfigRequest, 8),
		health:  make(chan *mcpmeshv1.HealthReport, 64),
		send:    make(chan *mcpmeshv1.StreamConfigResponse),
	}
}

// start serves on addr ("127.0.0.1:0" the first time, the same address on
// restart), with opts added to the server's options.
func (f *fakeCP) start(t *testing.T, addr string, opts ...grpc.ServerOption) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	f.addr = lis.Addr().String()
	f.srv = grpc.NewServer(append([]grpc.ServerOption{grpc.StreamInterceptor(auth.StreamServerInterceptor(authtoken.AuthFunc(token)))}, opts...)...)
	mcpmeshv1.RegisterDiscoveryServiceServer(f.srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.srv.Serve(lis)
	}()
	srv := f.srv
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
}

func (f *fakeCP) StreamConfig(st mcpmeshv1.DiscoveryService_StreamConfigServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	if first.GetHello() == nil {
		return errors.New("first message is not a hello")
	}
	f.hellos <- first.GetHello()
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			switch {
			case m.GetHealth() != nil:
				f.health <- m.GetHealth()
			default:
				f.replies <- m
			}
		}
	}()
	for {
		select {
		case err := <-errc:
			return err
		case <-st.Context().Done():
			return st.Context().Err()
		case r := <-f.send:
			if err := st.Send(r); err != nil {
				return err
			}
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// applier accepts snapshots unless they carry a server named "bad".
func applier(applied chan<- uint64) func(context.Context, *mcpmeshv1.ConfigSnapshot) error {
	return func(_ context.Context, s *mcpmeshv1.ConfigSnapshot) error {
		for _, srv := range s.GetServers() {
			if srv.GetName() == "bad" {
				return errors.New(`server "bad": stdio.command is required`)
			}
		}
		applied <- s.GetRevision()
		return nil
	}
}

func snapshot(rev uint64, servers ...string) *mcpmeshv1.ConfigSnapshot {
	s := &mcpmeshv1.ConfigSnapshot{Revision: rev}
	for _, n := range servers {
		s.Servers = append(s.Servers, &mcpmeshv1.Server{Name: n})
	}
	return s
}

func run(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	})
}

func TestHelloAckNackReconnect(t *testing.T) {
	cp := newFakeCP()
	cp.start(t, "127.0.0.1:0")
	applied := make(chan uint64, 8)
	health := []*mcpmeshv1.BackendHealth{{Server: "alpha", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY, Tools: 3}}
	c := New(Options{
		Addr: cp.addr, Token: token, DataPlaneID: "dp-1", Version: "v9", ListenAddr: "127.0.0.1:8080",
		Apply:          applier(applied),
		Health:         func() []*mcpmeshv1.BackendHealth { return health },
		HealthInterval: time.Hour, // periodic reports have their own test
		MinBackoff:     5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	run(t, c)

	h := recv(t, cp.hellos, "hello")
	if h.GetDataplaneId() != "dp-1" || h.GetVersion() != "v9" || h.GetListenAddr() != "127.0.0.1:8080" || h.GetLastRevision() != 0 {
		t.Fatalf("hello = %v", h)
	}
	if r := recv(t, cp.health, "initial health report"); len(r.GetBackends()) != 1 || r.GetBackends()[0].GetServer() != "alpha" || r.GetAt() == nil {
		t.Fatalf("health report = %v", r)
	}
	if !c.Connected() {
		t.Error("Connected = false with an open stream")
	}

	cp.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(2, "alpha"), Nonce: "n2"}
	if rev := recv(t, applied, "apply of rev 2"); rev != 2 {
		t.Fatalf("applied %d", rev)
	}
	ack := recv(t, cp.replies, "ack").GetAck()
	if ack.GetRevision() != 2 || ack.GetNonce() != "n2" {
		t.Fatalf("ack = %v, want revision 2 nonce n2", ack)
	}
	if c.Revision() != 2 || c.Snapshot().GetRevision() != 2 {
		t.Fatalf("Revision = %d, Snapshot = %v", c.Revision(), c.Snapshot())
	}

	cp.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(3, "alpha", "bad"), Nonce: "n3"}
	nack := recv(t, cp.replies, "nack").GetNack()
	if nack.GetRevision() != 3 || nack.GetNonce() != "n3" || !strings.Contains(nack.GetError(), `server "bad"`) {
		t.Fatalf("nack = %v", nack)
	}
	if c.Revision() != 2 || len(c.Snapshot().GetServers()) != 1 {
		t.Fatalf("after NACK: revision %d, snapshot %v; want the last good rev 2", c.Revision(), c.Snapshot())
	}

	health = nil // read by the client only after NotifyHealth below
	c.NotifyHealth()
	if r := recv(t, cp.health, "notified health report"); len(r.GetBackends()) != 0 {
		t.Fatalf("notified report = %v, want the current (empty) health", r)
	}

	// The control plane restarts: the client reconnects and resumes from
	// its last good revision.
	cp.srv.Stop()
	cp.start(t, cp.addr)
	if h := recv(t, cp.hellos, "hello after restart"); h.GetLastRevision() != 2 {
		t.Fatalf("hello after restart has last_revision %d, want 2", h.GetLastRevision())
	}
	cp.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(4), Nonce: "n4"}
	if ack := recv(t, cp.replies, "ack after restart").GetAck(); ack.GetRevision() != 4 {
		t.Fatalf("ack after restart = %v", ack)
	}
	if c.Revision() != 4 {
		t.Errorf("Revision = %d, want 4", c.Revision())
	}
}

func TestPeriodicHealthReports(t *testing.T) {
	cp := newFakeCP()
	cp.start(t, "127.0.0.1:0")
	clock := resilience.NewFakeClock(time.Unix(1_700_000_000, 0))
	c := New(Options{
		Addr: cp.addr, Token: token, DataPlaneID: "dp-2",
		Apply:          func(context.Context, *mcpmeshv1.ConfigSnapshot) error { return nil },
		Health:         func() []*mcpmeshv1.BackendHealth { return []*mcpmeshv1.BackendHealth{{Server: "x"}} },
		HealthInterval: 7 * time.Second,
		Clock:          clock,
	})
	run(t, c)
	recv(t, cp.hellos, "hello")
	first := recv(t, cp.health, "initial report")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 3; i++ {
		if err := clock.BlockUntilPending(ctx, 7*time.Second); err != nil {
			t.Fatalf("health ticker not armed: %v", err)
		}
		select {
		case r := <-cp.health:
			t.Fatalf("report %v before the interval passed", r)
		default:
		}
		clock.Advance(7 * time.Second)
		r := recv(t, cp.health, "periodic report")
		if got := r.GetAt().AsTime().Sub(first.GetAt().AsTime()); got != time.Duration(i)*7*time.Second {
			t.Errorf("report %d at +%v, want +%v", i, got, time.Duration(i)*7*time.Second)
		}
	}
}

func TestRejectedTokenWaitsMaxBackoff(t *testing.T) {
	cp := newFakeCP()
	cp.start(t, "127.0.0.1:0")
	clock := resilience.NewFakeClock(time.Unix(0, 0))
	logs := &syncBuffer{}
	var applied atomic.Int32
	c := New(Options{
		Addr: cp.addr, Token: "wrong",
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Apply: func(context.Context, *mcpmeshv1.ConfigSnapshot) error {
			applied.Add(1)
			return nil
		},
		HealthInterval: time.Hour,
		MaxBackoff:     3 * time.Second,
		Clock:          clock,
	})
	run(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if err := clock.BlockUntilPending(ctx, 3*time.Second); err != nil {
			t.Fatalf("no max-backoff wait after a rejected token: %v; logs:\n%s", err, logs.String())
		}
		// Checked while it waits: once the clock moves, the next attempt
		// counts as connected from its Hello until the rejection arrives.
		if c.Connected() {
			t.Error("a client whose token was rejected says it is connected")
		}
		clock.Advance(3 * time.Second)
	}
	if !strings.Contains(logs.String(), "control plane rejected the token") {
		t.Errorf("logs lack the rejected-token message:\n%s", logs.String())
	}
	if c.Revision() != 0 || c.Snapshot() != nil || applied.Load() != 0 {
		t.Errorf("a client whose token was rejected has revision %d, snapshot %v, %d applies; want none", c.Revision(), c.Snapshot(), applied.Load())
	}
	select {
	case h := <-cp.hellos:
		t.Fatalf("hello %v reached the service through the auth interceptor", h)
	default:
	}
}

func TestBackoffGrowsWithoutMessages(t *testing.T) {
	// Nothing listens here: every attempt fails before a message arrives,
	// so the waits double up to the cap and never reset.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	clock := resilience.NewFakeClock(time.Unix(0, 0))
	c := New(Options{
		Addr: addr, Token: token, NoJitter: true,
		Logger:     slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
		Apply:      func(context.Context, *mcpmeshv1.ConfigSnapshot) error { return nil },
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Clock: clock,
	})
	run(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, want := range []time.Duration{100, 200, 400, 400} {
		if err := clock.BlockUntilPending(ctx, want*time.Millisecond); err != nil {
			t.Fatalf("no %v wait: %v (pending %v)", want*time.Millisecond, err, clock.PendingDurations())
		}
		clock.Advance(want * time.Millisecond)
	}
	if c.Connected() {
		t.Error("Connected with nothing listening")
	}
}
