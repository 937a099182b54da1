package configclient

import (
	"strings"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{in: "127.0.0.1:7070", want: []string{"127.0.0.1:7070"}},
		{in: "dns:///cp.example:7070", want: []string{"dns:///cp.example:7070"}},
		{in: "a:1, b:2,c:3", want: []string{"a:1", "b:2", "c:3"}},
		{in: "", err: "empty"},
		{in: "a:1,,b:2", err: "empty entry"},
		{in: "a:1,b", err: `"b"`},
		{in: "a:1,:2", err: `":2"`},
		{in: "a:1,a:1", err: "twice"},
	} {
		got, err := Targets(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Targets(%q) = %v, %v; want an error naming %s", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Targets(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestFailoverToAnotherControlPlane: with two control planes, killing the
// one the data plane streams from moves the stream to the other, whose hello
// carries the revision the data plane holds.
func TestFailoverToAnotherControlPlane(t *testing.T) {
	a, b := newFakeCP(), newFakeCP()
	a.start(t, "127.0.0.1:0")
	b.start(t, "127.0.0.1:0")
	applied := make(chan uint64, 8)
	c := New(Options{
		Addr: a.addr + "," + b.addr, Token: token, DataPlaneID: "dp-1",
		Apply:          applier(applied),
		HealthInterval: time.Hour,
		MinBackoff:     5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	run(t, c)

	// The address order is shuffled: find the one streamed from.
	var first, second *fakeCP
	select {
	case h := <-a.hellos:
		first, second = a, b
		_ = h
	case h := <-b.hellos:
		first, second = b, a
		_ = h
	case <-time.After(10 * time.Second):
		t.Fatal("no hello on either control plane")
	}
	first.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(5, "alpha"), Nonce: "n5"}
	if rev := recv(t, applied, "apply of rev 5"); rev != 5 {
		t.Fatalf("applied %d", rev)
	}
	recv(t, first.replies, "ack")

	killed := time.Now()
	first.srv.Stop() // closes its listener and connections, as a killed process's kernel does
	h := recv(t, second.hellos, "hello on the other control plane")
	took := time.Since(killed)
	if h.GetLastRevision() != 5 {
		t.Fatalf("hello after failover carries revision %d, want 5", h.GetLastRevision())
	}
	if c.Revision() != 5 {
		t.Fatalf("Revision = %d after failover, want the held 5", c.Revision())
	}
	if took > 2*time.Second {
		t.Errorf("failover took %s, want under 2 s", took)
	}
	t.Logf("failover to the other control plane in %s", took.Round(time.Millisecond))
	second.send <- &mcpmeshv1.StreamConfigResponse{Snapshot: snapshot(6, "alpha", "beta"), Nonce: "n6"}
	if rev := recv(t, applied, "apply of rev 6 from the other control plane"); rev != 6 {
		t.Fatalf("applied %d", rev)
	}
}
