package secrets_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/secrets"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a fake secrets.Clock: After registers a timer that advance
// fires once the time reaches it.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []timer
	added  chan struct{} // a timer was registered
}

type timer struct {
	at time.Time
	ch chan time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), added: make(chan struct{}, 64)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires at once for d <= 0, as time.After does. Run computes its
// wait from a second reading of the clock; when the test advances the clock
// in between (Run starved under load, handling a rotation's signal late),
// the wait is 0, and a timer that never fired left Run asleep forever.
func (c *clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	c.added <- struct{}{}
	return ch
}

// waitTimer waits until a timer for at is pending.
func (c *clock) waitTimer(t *testing.T, at time.Time) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		for _, tm := range c.timers {
			if tm.at.Equal(at) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-c.added:
		case <-deadline:
			t.Fatalf("Run set no timer for %v", at)
		}
	}
}

// advance moves the time to to and fires the timers due.
func (c *clock) advance(to time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = to
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(to) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- to
	}
	c.timers = kept
}

func (c *clock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func rotate(ctx context.Context, svc *secrets.Service, grace *durationpb.Duration) (*mcpmeshv1.RotateClusterSecretResponse, error) {
	return svc.RotateClusterSecret(ctx, &mcpmeshv1.RotateClusterSecretRequest{Grace: grace})
}

func TestGraceBounds(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	svc := secrets.New(st, nil, secrets.WithClock(newClock()))
	for _, tc := range []struct {
		grace *durationpb.Duration
		ok    bool
	}{
		{nil, false},
		{durationpb.New(0), false},
		{durationpb.New(time.Minute - time.Second), false},
		{durationpb.New(time.Minute), true},
		{durationpb.New(7 * 24 * time.Hour), true},
		{durationpb.New(7*24*time.Hour + time.Second), false},
		{durationpb.New(-time.Hour), false},
	} {
		before, _ := st.Revision(context.Background())
		_, err := rotate(context.Background(), svc, tc.grace)
		after, _ := st.Revision(context.Background())
		if tc.ok != (err == nil) || (err != nil && status.Code(err) != codes.InvalidArgument) {
			t.Errorf("grace %v: err %v, want ok=%v (else InvalidArgument)", tc.grace.AsDuration(), err, tc.ok)
		}
		if moved := after != before; moved != tc.ok {
			t.Errorf("grace %v: revision moved %v", tc.grace.AsDuration(), moved)
		}
	}
}

// A rotation answers with the revision and the expiry; Run drops the
// replaced secret exactly at its expiry, with a new revision, and waits for
// nothing once none is left.
func TestRunDropsAtExpiry(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	c := newClock()
	svc := secrets.New(st, nil, secrets.WithClock(c))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(runCtx) }()
	defer func() { stop(); <-done }()

	t0 := c.Now()
	resp, err := rotate(ctx, svc, durationpb.New(20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetPreviousExpiresAt().AsTime().Equal(t0.Add(20*time.Minute)) || resp.GetPreviousSecrets() != 1 || resp.GetRevision() != 1 {
		t.Fatalf("rotate = %v", resp)
	}
	expiry := t0.Add(20 * time.Minute)
	c.waitTimer(t, expiry)
	watch := st.Watch(runCtx)
	c.advance(expiry.Add(-time.Nanosecond))
	select {
	case rev := <-watch:
		t.Fatalf("revision %d before the expiry", rev)
	case <-time.After(50 * time.Millisecond):
	}
	c.advance(expiry)
	select {
	case rev := <-watch:
		if rev != 2 {
			t.Fatalf("drop at revision %d, want 2", rev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the expired secret was not dropped")
	}
	s, err := st.State(ctx)
	if err != nil || len(s.PreviousSecrets) != 0 {
		t.Fatalf("after the expiry: %d previous secrets (%v)", len(s.PreviousSecrets), err)
	}
	time.Sleep(50 * time.Millisecond) // Run's next round, which must set no timer
	if n := c.pending(); n != 0 {
		t.Fatalf("%d timers pending with nothing left to expire", n)
	}
}

// Secrets that expired while the control plane was down go when Run starts.
func TestRunDropsExpiredOnStart(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	defer st.Close()
	c := newClock()
	if _, err := st.RotateClusterSecret(ctx, c.Now().Add(-2*time.Hour), c.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	watch := st.Watch(ctx)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); secrets.New(st, nil, secrets.WithClock(c)).Run(runCtx) }()
	defer func() { stop(); <-done }()
	select {
	case <-watch:
	case <-time.After(10 * time.Second):
		t.Fatal("an expired secret was kept at start")
	}
}
