package discovery_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A snapshot over the message limit (stored before the registry checked,
// or written around it) is not sent: sending it would end the stream and
// the data plane would reconnect into it forever. The stream stays up and
// the next snapshot that fits is sent.
func TestOversizedSnapshotIsNotSent(t *testing.T) {
	logs := &syncBuf{}
	e := startLogged(t, slog.New(slog.NewTextHandler(logs, nil)), discovery.WithMaxMessageSize(1<<20))
	ctx := context.Background()
	if _, err := e.st.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, "dp1", 0)
	c.ack(c.next())
	big := storetest.Server("big")
	big.Description = strings.Repeat("d", 2<<20)
	if _, err := e.st.CreateServer(ctx, big); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "over the gRPC message limit"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the oversized snapshot was not logged")
		}
	}
	select {
	case m := <-c.msgs:
		t.Fatalf("a snapshot of revision %d was sent over the limit", m.GetSnapshot().GetRevision())
	case err := <-c.errs:
		t.Fatalf("the stream ended: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if !e.dataplane("dp1").GetConnected() {
		t.Fatal("data plane shown disconnected")
	}
	if _, err := e.st.DeleteServer(ctx, "big", 0); err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m.GetSnapshot().GetRevision() != 3 || len(m.GetSnapshot().GetServers()) != 1 {
		t.Fatalf("after the delete got revision %d with %d servers, want 3 with 1", m.GetSnapshot().GetRevision(), len(m.GetSnapshot().GetServers()))
	}
}

func TestHelloAndNackTextsAreBounded(t *testing.T) {
	e := start(t)
	stream, err := e.client.StreamConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{
		DataplaneId: strings.Repeat("x", discovery.MaxDataPlaneID+1),
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "hello.dataplane_id") {
		t.Fatalf("a %d-byte id: err = %v, want InvalidArgument naming hello.dataplane_id", discovery.MaxDataPlaneID+1, err)
	}

	c := e.connect(t, "dp1", 0)
	m := c.next()
	c.send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Nack{Nack: &mcpmeshv1.Nack{
		Revision: m.GetSnapshot().GetRevision() + 1, Nonce: m.GetNonce(), Error: strings.Repeat("e", 3<<20),
	}}})
	e.waitFor(t, "nack recorded", func() bool { return e.dataplane("dp1").GetLastError() != "" })
	if got := e.dataplane("dp1").GetLastError(); len(got) != textlimit.ErrorText || !strings.HasSuffix(got, "…(truncated)") {
		t.Fatalf("nack error kept as %d bytes, want %d ending in the marker", len(got), textlimit.ErrorText)
	}
}
