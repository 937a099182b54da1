package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	st     store.Store
	disc   *discovery.Server
	health *health.Aggregator
	client mcpmeshv1.DiscoveryServiceClient
	addr   string
}

func start(t *testing.T, opts ...discovery.Option) *env {
	t.Helper()
	return startLogged(t, nil, opts...)
}

func startLogged(t *testing.T, logger *slog.Logger, opts ...discovery.Option) *env {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return startStore(t, st, logger, opts...)
}

// startStore serves discovery over st on a real TCP listener and closes st
// at the end.
func startStore(t *testing.T, st store.Store, logger *slog.Logger, opts ...discovery.Option) *env {
	t.Helper()
	e := &env{st: st}
	e.health = health.New(st, func() map[string]bool { return e.disc.ConnectedIDs() }, nil)
	e.disc = discovery.New(st, e.health, logger, opts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.StreamInterceptor(testIdentity))
	mcpmeshv1.RegisterDiscoveryServiceServer(gs, e.disc)
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = mcpmeshv1.NewDiscoveryServiceClient(cc)
	e.addr = lis.Addr().String()
	t.Cleanup(func() {
		cc.Close()
		gs.Stop()
		<-served
		e.disc.Close()
		st.Close()
	})
	return e
}

// roleHeader names the role testIdentity gives a stream (dataplane when
// absent), standing in for the auth interceptor that app wires.
const roleHeader = "x-test-role"

// testIdentity stores the caller's identity as access's interceptor does.
func testIdentity(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	role := mcpmeshv1.Role_ROLE_DATAPLANE
	if md, ok := metadata.FromIncomingContext(ss.Context()); ok && len(md.Get(roleHeader)) > 0 {
		role = mcpmeshv1.Role(mcpmeshv1.Role_value[md.Get(roleHeader)[0]])
	}
	ctx := access.WithIdentity(ss.Context(), access.Identity{TokenID: "test", Role: role})
	return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

type dpClient struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[mcpmeshv1.StreamConfigRequest, mcpmeshv1.StreamConfigResponse]
	cancel context.CancelFunc
	msgs   chan *mcpmeshv1.StreamConfigResponse
	errs   chan error
}

func (e *env) connect(t *testing.T, id string, lastRev uint64) *dpClient {
	t.Helper()
	return e.connectWith(t, e.client, id, lastRev)
}

func (e *env) connectWith(t *testing.T, client mcpmeshv1.DiscoveryServiceClient, id string, lastRev uint64) *dpClient {
	t.Helper()
	return e.connectCtx(t, context.Background(), client, id, lastRev)
}

// connectAs connects with a credential of role (a Role enum name).
func (e *env) connectAs(t *testing.T, role, id string) *dpClient {
	t.Helper()
	return e.connectCtx(t, metadata.AppendToOutgoingContext(context.Background(), roleHeader, role), e.client, id, 0)
}

func (e *env) connectCtx(t *testing.T, base context.Context, client mcpmeshv1.DiscoveryServiceClient, id string, lastRev uint64) *dpClient {
	t.Helper()
	ctx, cancel := context.WithCancel(base)
	stream, err := client.StreamConfig(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &dpClient{t: t, stream: stream, cancel: cancel, msgs: make(chan *mcpmeshv1.StreamConfigResponse, 1000), errs: make(chan error, 1)}
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{
		DataplaneId: id, Version: "test", LastRevision: lastRev, ListenAddr: "127.0.0.1:9999",
	}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := stream.Recv()
			if err != nil {
				c.errs <- err
				return
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func (c *dpClient) send(req *mcpmeshv1.StreamConfigRequest) {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *dpClient) next() *mcpmeshv1.StreamConfigResponse {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case err := <-c.errs:
		c.t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		c.t.Fatal("no snapshot within 10s")
	}
	return nil
}

func (c *dpClient) ack(m *mcpmeshv1.StreamConfigResponse) {
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Ack{Ack: &mcpmeshv1.Ack{
		Revision: m.GetSnapshot().GetRevision(), Nonce: m.GetNonce(),
	}}})
}

// waitFor re-evaluates cond on every discovery change until it holds.
func (e *env) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ch, stop := e.disc.Subscribe()
	defer stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (e *env) dataplane(id string) *mcpmeshv1.DataPlane {
	for _, dp := range e.disc.ListDataPlanes() {
		if dp.GetId() == id {
			return dp
		}
	}
	return nil
}

func TestFirstMessageMustBeHello(t *testing.T) {
	e := start(t)
	for name, first := range map[string]*mcpmeshv1.StreamConfigRequest{
		"ack first": {Msg: &mcpmeshv1.StreamConfigRequest_Ack{Ack: &mcpmeshv1.Ack{Revision: 1}}},
		"empty id":  {Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{}}},
	} {
		t.Run(name, func(t *testing.T) {
			stream, err := e.client.StreamConfig(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(first); err != nil {
				t.Fatal(err)
			}
			_, err = stream.Recv()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
	if n := len(e.disc.ListDataPlanes()); n != 0 {
		t.Fatalf("rejected streams were listed as data planes: %d", n)
	}
}

func TestSnapshotContent(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for _, n := range []string{"charlie", "alpha", "bravo"} {
		s := storetest.Server(n)
		if n == "bravo" {
			s.Enabled = proto.Bool(false)
		}
		if _, err := e.st.CreateServer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	c := e.connect(t, "dp1", 0)
	m := c.next()
	snap := m.GetSnapshot()
	if snap.GetRevision() != 3 || m.GetNonce() == "" {
		t.Fatalf("snapshot revision %d nonce %q", snap.GetRevision(), m.GetNonce())
	}
	var names []string
	for _, s := range snap.GetServers() {
		names = append(names, s.GetName())
	}
	if !slices.Equal(names, []string{"alpha", "charlie"}) {
		t.Fatalf("snapshot servers = %v, want enabled ones sorted", names)
	}
	if snap.GetServers()[0].GetStdio().GetEnv()["TOKEN"] != "secret-alpha" || snap.GetServers()[0].GetRedacted() {
		t.Fatal("snapshot must carry secrets")
	}
	st, _ := e.st.State(ctx)
	if len(snap.GetClusterSecret()) != 32 || string(snap.GetClusterSecret()) != string(st.ClusterSecret) {
		t.Fatal("snapshot lacks the cluster secret")
	}
	if snap.GetSettings().GetPagination().GetPageSize() != 100 || len(snap.GetSettings().GetResilience().GetBackoff()) != 4 {
		t.Fatalf("snapshot settings lack defaults: %v", snap.GetSettings())
	}
}

func TestEmptyStoreStillSendsOnce(t *testing.T) {
	e := start(t)
	c := e.connect(t, "dp1", 0)
	if m := c.next(); m.GetSnapshot().GetRevision() != 0 || len(m.GetSnapshot().GetClusterSecret()) != 32 {
		t.Fatalf("first snapshot on empty store = %v", m)
	}
}

func TestUpToDateDataPlaneGetsOnlyNewRevisions(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 1) // already serves revision 1
	e.waitFor(t, "dp1 connected", func() bool { return e.dataplane("dp1").GetConnected() })
	if _, err := e.st.CreateServer(ctx, storetest.Server("b")); err != nil {
		t.Fatal(err)
	}
	// The first message is revision 2: revision 1 was not re-sent.
	if m := c.next(); m.GetSnapshot().GetRevision() != 2 {
		t.Fatalf("first snapshot revision %d, want 2", m.GetSnapshot().GetRevision())
	}
}

func TestNewConfigLatency(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c1 := e.connect(t, "dp1", 0)
	c2 := e.connect(t, "dp2", 0)
	c1.next()
	c2.next()
	var lat []time.Duration
	for i := range 20 {
		s := storetest.Server("s" + string(rune('a'+i)))
		created, err := e.st.CreateServer(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, c := range []*dpClient{c1, c2} {
			m := c.next()
			for m.GetSnapshot().GetRevision() < created.GetModRevision() {
				m = c.next()
			}
			if m.GetSnapshot().GetRevision() != created.GetModRevision() {
				t.Fatalf("got revision %d, want %d", m.GetSnapshot().GetRevision(), created.GetModRevision())
			}
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	median := lat[len(lat)/2]
	// The design promises well under 100 ms; that is a figure to report, not
	// a budget a loaded 2-core machine under -race can be held to. The bound
	// below fails only when fan-out is broken (e.g. waits for a timer).
	t.Logf("measure: commit → both data planes: median %v, max %v over %d commits (design target: well under 100ms)", median, lat[len(lat)-1], len(lat))
	if median > 2*time.Second {
		t.Fatalf("median fan-out latency %v: far over the 100ms the design promises", median)
	}
}

func TestCoalescingKeepsOrderAndEndsAtNewest(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c := e.connect(t, "dp1", 0)
	c.next()
	var last uint64
	for i := range 30 {
		s, err := e.st.CreateServer(ctx, storetest.Server("s"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		last = s.GetModRevision()
	}
	var prev uint64
	nonces := map[string]bool{}
	for prev != last {
		m := c.next()
		r := m.GetSnapshot().GetRevision()
		if r <= prev {
			t.Fatalf("revision %d after %d: snapshots must only move forward", r, prev)
		}
		if nonces[m.GetNonce()] {
			t.Fatalf("nonce %q reused", m.GetNonce())
		}
		nonces[m.GetNonce()] = true
		prev = r
	}
}

func TestNackedRevisionIsNotResent(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 0)
	m := c.next()
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Nack{Nack: &mcpmeshv1.Nack{
		Revision: m.GetSnapshot().GetRevision(), Nonce: m.GetNonce(), Error: "bad config",
	}}})
	e.waitFor(t, "nack recorded", func() bool { return e.dataplane("dp1").GetNackedRevision() == 1 })
	if dp := e.dataplane("dp1"); dp.GetLastError() != "bad config" {
		t.Fatalf("nack error not kept: %v", dp)
	}
	// Reconnect still serving nothing: revision 1 must not come again.
	c.cancel()
	e.waitFor(t, "dp1 disconnected", func() bool { return !e.dataplane("dp1").GetConnected() })
	c2 := e.connect(t, "dp1", 0)
	e.waitFor(t, "dp1 reconnected", func() bool { return e.dataplane("dp1").GetConnected() })
	if _, err := e.st.CreateServer(ctx, storetest.Server("b")); err != nil {
		t.Fatal(err)
	}
	m2 := c2.next()
	if m2.GetSnapshot().GetRevision() != 2 {
		t.Fatalf("after NACK of 1 got revision %d first, want 2", m2.GetSnapshot().GetRevision())
	}
	c2.ack(m2)
	e.waitFor(t, "ack clears the nack", func() bool {
		dp := e.dataplane("dp1")
		return dp.GetRevision() == 2 && dp.GetNackedRevision() == 0 && dp.GetLastError() == ""
	})
}

func TestDataPlaneRegistryAndHealth(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 0)
	c.ack(c.next())
	e.waitFor(t, "ack", func() bool { return e.dataplane("dp1").GetRevision() == 1 })
	dp := e.dataplane("dp1")
	if !dp.GetConnected() || dp.GetVersion() != "test" || dp.GetListenAddr() != "127.0.0.1:9999" || dp.GetPeer() == "" || dp.GetConnectedAt() == nil || dp.GetLastSeen() == nil {
		t.Fatalf("data plane record = %v", dp)
	}
	hch, stop := e.health.Subscribe()
	defer stop()
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{
		Backends: []*mcpmeshv1.BackendHealth{{Server: "a", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}},
	}}})
	select {
	case <-hch:
	case <-time.After(10 * time.Second):
		t.Fatal("health report did not reach the health component")
	}
	srv, _ := e.st.GetServer(ctx, "a")
	stt, err := e.health.Status(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	if stt.GetState() != health.StateHealthy || stt.GetHealthyDataplanes() != 1 {
		t.Fatalf("status after report = %v", stt)
	}
	c.cancel()
	e.waitFor(t, "disconnect", func() bool { return !e.dataplane("dp1").GetConnected() })
	if len(e.disc.ListDataPlanes()) != 1 {
		t.Fatal("a disconnected data plane must stay listed")
	}
	if stt, _ := e.health.Status(ctx, srv); stt.GetState() != health.StateUnknown {
		t.Fatalf("status with no connected data plane = %v, want unknown", stt.GetState())
	}
}

func TestSecondHelloRejected(t *testing.T) {
	e := start(t)
	c := e.connect(t, "dp1", 0)
	c.next()
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "dp1"}}})
	select {
	case err := <-c.errs:
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second hello not rejected")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// smallWindowClient dials with the smallest HTTP/2 flow-control windows gRPC
// allows (64 KiB), so a client that stops reading fills them quickly.
func (e *env) smallWindowClient(t *testing.T) mcpmeshv1.DiscoveryServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return mcpmeshv1.NewDiscoveryServiceClient(cc)
}

func TestSlowDataPlaneIsDisconnected(t *testing.T) {
	const timeout = 300 * time.Millisecond
	logs := &syncBuf{}
	e := startLogged(t, slog.New(slog.NewTextHandler(logs, nil)), discovery.WithSendTimeout(timeout))
	ctx := context.Background()
	// About 2.6 MB of snapshot: far more than the 64 KiB windows plus gRPC's
	// 64 KiB per-stream write quota, so the second Send to a client that does
	// not read cannot complete. (The first always returns: gRPC queues a
	// message as long as some quota is left.)
	long := strings.Repeat("x", 16<<10)
	for i := range 20 {
		s := storetest.Server(fmt.Sprintf("s%02d", i))
		for range 8 {
			s.Stdio.Args = append(s.Stdio.Args, long)
		}
		if _, err := e.st.CreateServer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// The slow one: hello, then never a Recv.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slow, err := e.smallWindowClient(t).StreamConfig(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{DataplaneId: "slow"}}}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "slow connected", func() bool { return e.dataplane("slow").GetConnected() })
	// Its first snapshot must have been handed to gRPC before the next
	// revision exists, or the two would coalesce into one Send. Sends do not
	// signal subscribers, hence the poll.
	for deadline := time.Now().Add(10 * time.Second); e.disc.SnapshotsSent() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("first snapshot to the slow data plane not sent within 10s")
		}
	}

	// The control: same windows, same snapshots, but it reads.
	reader := e.connectWith(t, e.smallWindowClient(t), "reader", 0)
	if m := reader.next(); m.GetSnapshot().GetRevision() != 20 {
		t.Fatalf("reader got revision %d first, want 20", m.GetSnapshot().GetRevision())
	}

	start := time.Now()
	if _, err := e.st.CreateServer(ctx, storetest.Server("trigger")); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "slow disconnected", func() bool { return !e.dataplane("slow").GetConnected() })
	took := time.Since(start)
	t.Logf("slow data plane disconnected %v after the revision it could not take (send timeout %v)", took, timeout)
	if took < timeout {
		t.Fatalf("disconnected after %v, before the %v send timeout", took, timeout)
	}
	if m := reader.next(); m.GetSnapshot().GetRevision() != 21 {
		t.Fatalf("reader got revision %d, want 21", m.GetSnapshot().GetRevision())
	}
	if !e.dataplane("reader").GetConnected() {
		t.Fatal("the data plane that reads was disconnected too")
	}
	// Slow got one snapshot, reader two; the stuck one was never counted.
	if n := e.disc.SnapshotsSent(); n != 3 {
		t.Fatalf("snapshots sent = %d, want 3", n)
	}
	out := logs.String()
	for _, want := range []string{"data plane is not reading its config stream; disconnecting it", "dataplane=slow", "revision=21", "timeout=300ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestDisconnectedDataPlaneIsForgottenAfterAnHour(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	e := start(t, discovery.WithClock(clock.Now))
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	gone := e.connect(t, "gone", 0)
	stays := e.connect(t, "stays", 0)
	gone.next()
	stays.next()
	hch, stop := e.health.Subscribe()
	defer stop()
	gone.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{
		Backends: []*mcpmeshv1.BackendHealth{{Server: "a", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}},
	}}})
	select {
	case <-hch:
	case <-time.After(10 * time.Second):
		t.Fatal("health report not recorded")
	}
	gone.cancel()
	e.waitFor(t, "gone disconnected", func() bool { return !e.dataplane("gone").GetConnected() })

	ids := func() []string {
		var out []string
		for _, dp := range e.disc.ListDataPlanes() {
			out = append(out, dp.GetId())
		}
		return out
	}
	clock.Advance(discovery.ForgetAfter)
	if got := ids(); !slices.Equal(got, []string{"gone", "stays"}) {
		t.Fatalf("exactly an hour after disconnecting: %v, want both listed", got)
	}
	clock.Advance(time.Second)
	// "stays" has not been seen for an hour either, but it is connected.
	if got := ids(); !slices.Equal(got, []string{"stays"}) {
		t.Fatalf("after an hour and a second: %v, want only the connected one", got)
	}
	hs, err := e.st.ListHealth(ctx)
	if err != nil || len(hs) != 1 || hs[0].GetDataplaneId() != "gone" {
		t.Fatalf("stored reports after forgetting = %v, %v; want gone's kept", hs, err)
	}
	// It may come back under the same id.
	back := e.connect(t, "gone", 1)
	e.waitFor(t, "gone back", func() bool { return e.dataplane("gone").GetConnected() })
	back.cancel()
	e.waitFor(t, "gone disconnected again", func() bool { return !e.dataplane("gone").GetConnected() })
	clock.Advance(2 * discovery.ForgetAfter)
	if got := ids(); !slices.Equal(got, []string{"stays"}) {
		t.Fatalf("two hours later: %v", got)
	}
}

// Only a dataplane credential gets the secrets of a snapshot: an admin one
// (also allowed on the stream) gets every secret masked, as the registry
// masks them, and no cluster secret; a stream without an identity gets
// nothing either.
func TestSnapshotSecretsOnlyForDataplane(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	srvs := []*mcpmeshv1.Server{
		{Name: "stdio", Transport: mcpmeshv1.Transport_TRANSPORT_STDIO, Stdio: &mcpmeshv1.StdioConfig{
			Command: "run", Args: []string{"--token", "arg-secret"}, SecretArgs: []uint32{1}, Env: map[string]string{"API_KEY": "env-secret"}}},
		{Name: "web", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{
			Url: "https://alice:url-secret@example.com/mcp?api_key=query-secret", Headers: map[string]string{"Authorization": "Bearer header-secret"}},
			Endpoints: []string{"https://ep-secret@replica.example.com/mcp"}},
	}
	for _, srv := range srvs {
		if _, err := e.st.CreateServer(ctx, srv); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if _, err := e.st.RotateClusterSecret(ctx, now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st, err := e.st.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"arg-secret", "env-secret", "url-secret", "query-secret", "header-secret", "ep-secret"}

	for _, tc := range []struct {
		role    string
		secrets bool
	}{
		{"ROLE_DATAPLANE", true},
		{"ROLE_ADMIN", false},
		{"ROLE_VIEWER", false},
		{"ROLE_UNSPECIFIED", false},
	} {
		t.Run(tc.role, func(t *testing.T) {
			snap := e.connectAs(t, tc.role, "dp-"+tc.role).next().GetSnapshot()
			if snap.GetRevision() != st.Revision || len(snap.GetServers()) != 2 {
				t.Fatalf("snapshot revision %d with %d servers, want %d with 2", snap.GetRevision(), len(snap.GetServers()), st.Revision)
			}
			text := prototext(snap)
			for _, sec := range secrets {
				if got := strings.Contains(text, sec); got != tc.secrets {
					t.Errorf("snapshot holds %q: %v, want %v", sec, got, tc.secrets)
				}
			}
			hasKeys := bytes.Equal(snap.GetClusterSecret(), st.ClusterSecret) && len(snap.GetPreviousSecrets()) == 1 &&
				bytes.Equal(snap.GetPreviousSecrets()[0].GetSecret(), st.PreviousSecrets[0].Secret)
			if hasKeys != tc.secrets {
				t.Errorf("snapshot carries the cluster secrets: %v, want %v", hasKeys, tc.secrets)
			}
			if !tc.secrets {
				if len(snap.GetClusterSecret()) != 0 || len(snap.GetPreviousSecrets()) != 0 {
					t.Errorf("masked snapshot has cluster secret %d bytes, %d previous", len(snap.GetClusterSecret()), len(snap.GetPreviousSecrets()))
				}
				web := snap.GetServers()[1]
				if !web.GetRedacted() || web.GetHttp().GetHeaders()["Authorization"] != "***" || snap.GetServers()[0].GetStdio().GetArgs()[1] != "***" {
					t.Errorf("masked servers: %v", snap.GetServers())
				}
			}
		})
	}
	// The stored servers are untouched by the masking.
	got, err := e.st.GetServer(ctx, "web")
	if err != nil || got.GetHttp().GetHeaders()["Authorization"] != "Bearer header-secret" {
		t.Fatalf("stored server after masking: %v, %v", got, err)
	}
}

func prototext(m proto.Message) string {
	b, _ := proto.Marshal(m)
	return string(b)
}

// A goodbye marks the data plane departed while its stream is still open
// (the client neither cancels nor half-closes here), ends the stream
// cleanly, and a new hello clears the mark.
func TestGoodbyeMarksDepartedAtOnce(t *testing.T) {
	e := start(t)
	c := e.connect(t, "dp1", 0)
	c.ack(c.next())
	e.waitFor(t, "ack", func() bool { return e.dataplane("dp1").GetConnected() })
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Goodbye{Goodbye: &mcpmeshv1.Goodbye{Reason: "shutting down"}}})
	e.waitFor(t, "departed", func() bool {
		dp := e.dataplane("dp1")
		return !dp.GetConnected() && dp.GetDeparted() == "shutting down"
	})
	select {
	case err := <-c.errs:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("stream after goodbye ended with %v, want a clean end (EOF)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the control plane kept the stream open after goodbye")
	}
	// The stream's own end must not count it a second time.
	c2 := e.connect(t, "dp1", 1)
	e.waitFor(t, "reconnect", func() bool { dp := e.dataplane("dp1"); return dp.GetConnected() && dp.GetDeparted() == "" })
	c2.cancel()
	e.waitFor(t, "disconnect", func() bool { return !e.dataplane("dp1").GetConnected() })
	if d := e.dataplane("dp1").GetDeparted(); d != "" {
		t.Fatalf("a stream that failed without goodbye left departed = %q", d)
	}
}

// A goodbye on one of two streams of the same id leaves it connected.
func TestGoodbyeOfOneStreamKeepsTheOther(t *testing.T) {
	e := start(t)
	a := e.connect(t, "dp1", 0)
	a.next()
	b := e.connect(t, "dp1", 0)
	b.next()
	a.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Goodbye{Goodbye: &mcpmeshv1.Goodbye{}}})
	select {
	case <-a.errs:
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end after goodbye")
	}
	if dp := e.dataplane("dp1"); !dp.GetConnected() || dp.GetDeparted() != "" {
		t.Fatalf("with a second stream open: %v", dp)
	}
	b.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Goodbye{Goodbye: &mcpmeshv1.Goodbye{}}})
	e.waitFor(t, "departed", func() bool { dp := e.dataplane("dp1"); return !dp.GetConnected() && dp.GetDeparted() == "goodbye" })
}
