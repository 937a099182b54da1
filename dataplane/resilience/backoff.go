package resilience

import (
	"context"
	"math/rand/v2"
	"time"
)

// DefaultSchedule is the product's promise: a failed connect is retried after
// 1 s, 2 s, 4 s and 8 s before the backend is declared unavailable.
func DefaultSchedule() []time.Duration {
	return []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
}

// Schedule is a fixed list of waits between attempts. After the last step the
// schedule is exhausted, and callers keep waiting the last step.
type Schedule struct {
	Steps []time.Duration
	// Jitter picks each wait uniformly in [0, step] (full jitter), so that many
	// data planes do not retry a recovered backend in lockstep.
	Jitter bool
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// Delay returns the wait after failure number failure (1-based). Failures past
// the end of the schedule wait the last step. An empty schedule uses
// DefaultSchedule.
func (s Schedule) Delay(failure int) time.Duration {
	steps := s.Steps
	if len(steps) == 0 {
		steps = DefaultSchedule()
	}
	i := min(max(failure, 1), len(steps)) - 1
	d := steps[i]
	if s.Jitter {
		d = FullJitter(d, s.Rand)
	}
	return d
}

// FullJitter returns a uniformly random wait in [0, d]: the spread that lets
// many data planes retry a recovered backend without a thundering herd. rnd
// returns a number in [0, 1); nil uses math/rand/v2. A d <= 0 gives 0.
func FullJitter(d time.Duration, rnd func() float64) time.Duration {
	if d <= 0 {
		return 0
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	j := time.Duration(rnd() * float64(d))
	return min(max(j, 0), d) // a misbehaving rnd cannot widen the range
}

// Exhausted reports whether failure number failure (1-based) came after the
// last step, the point at which a backend is declared unavailable.
func (s Schedule) Exhausted(failure int) bool {
	n := len(s.Steps)
	if n == 0 {
		n = len(DefaultSchedule())
	}
	return failure > n
}

// Last returns the schedule's last step, without jitter.
func (s Schedule) Last() time.Duration {
	steps := s.Steps
	if len(steps) == 0 {
		steps = DefaultSchedule()
	}
	return steps[len(steps)-1]
}

// Exponential is a doubling backoff between Min and Max, for dialing the
// control plane.
type Exponential struct {
	Min, Max time.Duration
	// Jitter picks each wait uniformly in [d/2, d], which keeps the growth but
	// spreads reconnecting data planes apart.
	Jitter bool
	Rand   func() float64
}

// Delay returns the wait before retry number attempt (0-based).
func (e Exponential) Delay(attempt int) time.Duration {
	lo, hi := e.Min, e.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if e.Jitter {
		r := rand.Float64
		if e.Rand != nil {
			r = e.Rand
		}
		d = d/2 + time.Duration(r()*float64(d/2))
	}
	return d
}

// Sleep waits d on clock, returning ctx.Err() if ctx ends first.
func Sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := OrReal(clock).NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
