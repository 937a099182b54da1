package configclient

import (
	"strings"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"google.golang.org/grpc"
)

// A snapshot past gRPC's 4 MiB default reaches the data plane: the client
// sets its message limit explicitly (five 1 MB registrations used to cut
// every config stream in a loop).
func TestSnapshotPastGRPCDefaultIsReceived(t *testing.T) {
	cp := newFakeCP()
	cp.start(t, "127.0.0.1:0", grpc.MaxRecvMsgSize(limits.MaxMessageSize), grpc.MaxSendMsgSize(limits.MaxMessageSize))
	applied := make(chan uint64, 8)
	c := New(Options{
		Addr: cp.addr, Token: token, DataPlaneID: "dp-1", Apply: applier(applied),
		HealthInterval: time.Hour, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	run(t, c)
	recv(t, cp.hellos, "hello")
	snap := snapshot(7, "a", "b", "c", "d", "e")
	for _, s := range snap.GetServers() {
		s.Description = strings.Repeat("d", 1<<20)
	}
	cp.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snap, Nonce: "n7"}
	if rev := recv(t, applied, "apply of a 5 MB snapshot"); rev != 7 {
		t.Fatalf("applied %d, want 7", rev)
	}
	if ack := recv(t, cp.replies, "ack").GetAck(); ack.GetRevision() != 7 {
		t.Fatalf("ack = %v, want revision 7", ack)
	}
}
