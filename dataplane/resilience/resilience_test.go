package resilience

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestScheduleDelay(t *testing.T) {
	def := Schedule{}
	custom := Schedule{Steps: []time.Duration{10 * time.Millisecond, 30 * time.Millisecond}}
	half := Schedule{Steps: []time.Duration{4 * time.Second}, Jitter: true, Rand: func() float64 { return 0.5 }}
	tests := []struct {
		name      string
		s         Schedule
		failure   int
		want      time.Duration
		exhausted bool
	}{
		{"default first", def, 1, time.Second, false},
		{"default second", def, 2, 2 * time.Second, false},
		{"default third", def, 3, 4 * time.Second, false},
		{"default fourth", def, 4, 8 * time.Second, false},
		{"default past end keeps last", def, 5, 8 * time.Second, true},
		{"default far past end", def, 100, 8 * time.Second, true},
		{"zero treated as first", def, 0, time.Second, false},
		{"custom", custom, 2, 30 * time.Millisecond, false},
		{"custom exhausted", custom, 3, 30 * time.Millisecond, true},
		{"full jitter", half, 1, 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Delay(tt.failure); got != tt.want {
				t.Errorf("Delay(%d) = %v, want %v", tt.failure, got, tt.want)
			}
			if got := tt.s.Exhausted(tt.failure); got != tt.exhausted {
				t.Errorf("Exhausted(%d) = %v, want %v", tt.failure, got, tt.exhausted)
			}
		})
	}
}

func TestExponentialDelay(t *testing.T) {
	e := Exponential{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i, w := range want {
		if got := e.Delay(i); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	j := Exponential{Min: time.Second, Max: time.Second, Jitter: true, Rand: func() float64 { return 0 }}
	if got := j.Delay(3); got != 500*time.Millisecond {
		t.Errorf("jittered Delay = %v, want 500ms (half of the cap)", got)
	}
	if got := (Exponential{}).Delay(0); got != 100*time.Millisecond {
		t.Errorf("zero-value Delay(0) = %v, want 100ms default", got)
	}
}

func TestFakeClock(t *testing.T) {
	start := time.Unix(1000, 0)
	c := NewFakeClock(start)
	t1 := c.NewTimer(time.Second)
	t2 := c.NewTimer(3 * time.Second)
	t3 := c.NewTimer(2 * time.Second)
	if n := c.Waiters(); n != 3 {
		t.Fatalf("Waiters = %d, want 3", n)
	}
	if !t3.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	c.Advance(time.Second)
	select {
	case got := <-t1.C():
		if !got.Equal(start.Add(time.Second)) {
			t.Errorf("t1 fired at %v", got)
		}
	default:
		t.Fatal("t1 did not fire after 1s")
	}
	select {
	case <-t2.C():
		t.Fatal("t2 fired early")
	default:
	}
	c.Advance(2 * time.Second)
	select {
	case <-t2.C():
	default:
		t.Fatal("t2 did not fire after 3s")
	}
	if t2.Stop() {
		t.Error("Stop of a fired timer returned true")
	}
	select {
	case <-t3.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if n := c.Waiters(); n != 0 {
		t.Errorf("Waiters = %d, want 0", n)
	}
}

func TestSleepWithFakeClock(t *testing.T) {
	c := NewFakeClock(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() { done <- Sleep(context.Background(), c, 5*time.Second) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.BlockUntilPending(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := c.PendingDurations(); len(got) != 1 || got[0] != 5*time.Second {
		t.Fatalf("pending = %v, want [5s]", got)
	}
	c.Advance(5 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Sleep = %v", err)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(cctx, c, time.Hour) }()
	if err := c.BlockUntilWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ccancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Sleep after cancel = %v, want context.Canceled", err)
	}
}
