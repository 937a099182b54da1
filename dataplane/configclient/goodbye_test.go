package configclient

import (
	"context"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Goodbye is the stream's last message: the control plane gets it with its
// reason, the client half-closes, and Run returns without reconnecting.
func TestGoodbyeIsLastAndStopsReconnects(t *testing.T) {
	cp := newFakeCP()
	cp.start(t, "127.0.0.1:0")
	c := New(Options{
		Addr: cp.addr, Token: token, DataPlaneID: "dp-1",
		Apply:          applier(make(chan uint64, 8)),
		Health:         func() []*mcpmeshv1.BackendHealth { return nil },
		HealthInterval: time.Hour,
		MinBackoff:     time.Millisecond, MaxBackoff: time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	recv(t, cp.hellos, "hello")
	recv(t, cp.health, "first health report") // sent once Connected is true

	gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer gcancel()
	if !c.Goodbye(gctx, "shutting down") {
		t.Fatal("Goodbye = false with an open stream")
	}
	if g := recv(t, cp.replies, "goodbye").GetGoodbye(); g.GetReason() != "shutting down" {
		t.Fatalf("last message = %v, want goodbye \"shutting down\"", g)
	}
	// The fake ends the stream on the half-close; the client must not dial again.
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after goodbye = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going after goodbye")
	}
	select {
	case h := <-cp.hellos:
		t.Fatalf("reconnected after goodbye: %v", h)
	default:
	}
	// A second Goodbye neither blocks nor panics.
	if c.Goodbye(gctx, "again") {
		t.Error("second Goodbye reported a send")
	}
}

// With no stream open there is nobody to tell: Goodbye returns at once and
// Run, still dialing, stops at its next attempt.
func TestGoodbyeWithoutStream(t *testing.T) {
	c := New(Options{Addr: "127.0.0.1:1", Token: token, DataPlaneID: "dp-1", Apply: applier(make(chan uint64, 1))})
	start := time.Now()
	if c.Goodbye(context.Background(), "bye") {
		t.Fatal("Goodbye = true with no stream")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Goodbye without a stream took %v", d)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("Run after goodbye = %v", err)
	}
}
