package resilience

import (
	"context"
	"sync"
	"time"
)

// FakeClock is a manually advanced Clock for tests. It lives in a non-test
// file so that other packages' tests can drive their own waits with it.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever the set of timers changes
}

// NewFakeClock returns a FakeClock that reads start until advanced.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake current time.
func (f *FakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the clock is advanced past d.
// A timer with d <= 0 fires at once.
func (f *FakeClock) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, when: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t
	}
	f.timers = append(f.timers, t)
	f.signalLocked()
	return t
}

// Advance moves the clock forward by d and fires every timer that is due.
func (f *FakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.timers[:0]
	for _, t := range f.timers {
		if !t.when.After(f.now) {
			t.c <- f.now // buffered 1 and fired once: never blocks
			continue
		}
		kept = append(kept, t)
	}
	clear(f.timers[len(kept):])
	f.timers = kept
	f.signalLocked()
}

// Waiters returns the number of pending timers.
func (f *FakeClock) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// PendingDurations returns, for each pending timer, how long until it fires.
func (f *FakeClock) PendingDurations() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]time.Duration, 0, len(f.timers))
	for _, t := range f.timers {
		out = append(out, t.when.Sub(f.now))
	}
	return out
}

// BlockUntilWaiters waits until at least n timers are pending, so a test can
// advance the clock only once the code under test is actually waiting.
func (f *FakeClock) BlockUntilWaiters(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		got, ch := len(f.timers), f.changed
		f.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// BlockUntilPending waits until a pending timer fires exactly d from now,
// for tests that must tell a backoff wait from other timers.
func (f *FakeClock) BlockUntilPending(ctx context.Context, d time.Duration) error {
	for {
		f.mu.Lock()
		found, ch := false, f.changed
		for _, t := range f.timers {
			if t.when.Sub(f.now) == d {
				found = true
			}
		}
		f.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *FakeClock) signalLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *FakeClock) stop(t *fakeTimer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			f.signalLocked()
			return true
		}
	}
	return false
}

type fakeTimer struct {
	clock *FakeClock
	when  time.Time
	c     chan time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool          { return t.clock.stop(t) }
