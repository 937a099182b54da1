package configclient

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/faultproxy"
)

// startWithKeepalive serves f on a fresh loopback port with the enforcement
// policy the control plane uses (pings allowed every 5 s, also without a
// stream); without it the server would GOAWAY a client pinging every 10 s.
func startWithKeepalive(t *testing.T, f *fakeCP) {
	t.Helper()
	f.start(t, "127.0.0.1:0",
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}))
}

// waitUntil polls cond every 50 ms until it holds or d passes, and returns
// how long it took.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// TestKeepaliveNoticesBlackholedStream puts a network that silently drops
// every byte (no FIN, no RST) between the client and a real gRPC server: the
// open stream must be noticed dead through keepalive pings and redialled,
// the last good config kept meanwhile, and the stream reopened from that
// revision once the network passes traffic again.
func TestKeepaliveNoticesBlackholedStream(t *testing.T) {
	cp := newFakeCP()
	startWithKeepalive(t, cp)
	px, err := faultproxy.New(cp.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })

	const kaTime, kaTimeout = 10 * time.Second, time.Second // 10 s is gRPC's floor
	logs := &syncBuffer{}
	applied := make(chan uint64, 8)
	c := New(Options{
		Addr: px.Addr(), Token: token, DataPlaneID: "dp-ka",
		Logger:         slog.New(slog.NewTextHandler(logs, nil)),
		Apply:          applier(applied),
		HealthInterval: time.Hour, // no traffic of ours: only pings can tell
		MinBackoff:     50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		KeepaliveTime: kaTime, KeepaliveTimeout: kaTimeout,
	})
	run(t, c)
	recv(t, cp.hellos, "hello")
	cp.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(5, "alpha"), Nonce: "n5"}
	if rev := recv(t, applied, "apply of rev 5"); rev != 5 {
		t.Fatalf("applied %d, want 5", rev)
	}
	if ack := recv(t, cp.replies, "ack of rev 5").GetAck(); ack.GetRevision() != 5 {
		t.Fatalf("ack = %v, want revision 5", ack)
	}
	if !c.Connected() {
		t.Fatal("Connected = false with an open stream")
	}

	acceptedBefore := px.Accepted()
	px.Blackhole()
	// The ping goes out after kaTime of silence and fails after kaTimeout;
	// the slack is for a loaded machine, not for the mechanism.
	bound := kaTime + kaTimeout + 15*time.Second
	noticed := waitUntil(t, bound, "the blackholed stream to be noticed dead", func() bool { return !c.Connected() })
	t.Logf("blackholed stream noticed dead after %v (keepalive %v + %v)", noticed, kaTime, kaTimeout)
	if noticed < kaTime/2 {
		// Something other than keepalive ended the stream (the proxy must
		// not send FIN or RST): this test would then prove nothing.
		t.Fatalf("stream ended after %v, well before the first keepalive ping was due; logs:\n%s", noticed, logs.String())
	}
	if !strings.Contains(logs.String(), "config stream ended") {
		t.Errorf("no \"config stream ended\" log line:\n%s", logs.String())
	}
	if c.Revision() != 5 || len(c.Snapshot().GetServers()) != 1 {
		t.Fatalf("while disconnected: revision %d, snapshot %v; want the last good rev 5", c.Revision(), c.Snapshot())
	}
	waitUntil(t, 10*time.Second, "a redial through the proxy", func() bool { return px.Accepted() > acceptedBefore })
	if c.Connected() {
		t.Fatal("Connected = true while every byte is dropped")
	}

	px.Pass()
	h := recv(t, cp.hellos, "hello after the network came back")
	if h.GetLastRevision() != 5 {
		t.Fatalf("hello after reconnect has last_revision %d, want 5", h.GetLastRevision())
	}
	waitUntil(t, 10*time.Second, "Connected after reconnect", c.Connected)
	cp.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(6, "alpha", "beta"), Nonce: "n6"}
	if rev := recv(t, applied, "apply of rev 6"); rev != 6 {
		t.Fatalf("applied %d, want 6", rev)
	}
	if ack := recv(t, cp.replies, "ack of rev 6").GetAck(); ack.GetRevision() != 6 {
		t.Fatalf("ack = %v, want revision 6", ack)
	}
}
