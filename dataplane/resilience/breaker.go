package resilience

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// BreakerState is the state of a circuit breaker.
type BreakerState int

const (
	// BreakerClosed lets every request through and counts outcomes.
	BreakerClosed BreakerState = iota
	// BreakerOpen fails every request fast until its RetryAt.
	BreakerOpen
	// BreakerHalfOpen lets exactly one probe request through; its outcome
	// closes or re-opens the breaker.
	BreakerHalfOpen
)

// String returns the name used in health reports and logs.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	default:
		return fmt.Sprintf("BreakerState(%d)", int(s))
	}
}

// Defaults used for zero fields of BreakerConfig.
const (
	DefaultConsecutiveFailures = 5
	DefaultErrorRate           = 0.5
	DefaultMinRequests         = 20
	DefaultWindow              = 10 * time.Second
	DefaultOpenFor             = 5 * time.Second
)

// windowBuckets is how finely the error-rate window slides: outcomes expire a
// tenth of the window at a time, which bounds memory without a per-request log.
const windowBuckets = 10

// BreakerConfig sets when a breaker trips. Zero fields take the defaults.
type BreakerConfig struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row; 0 means 5, a negative value disables this trip.
	ConsecutiveFailures int
	// ErrorRate trips the breaker when failures/total over Window is at least
	// ErrorRate and total is at least MinRequests; 0 means 0.5, a value above
	// 1 disables this trip.
	ErrorRate float64
	// MinRequests is the least number of outcomes in the window before the
	// error rate is trusted; 0 means 20.
	MinRequests int
	// Window is the span the error rate is measured over, in 10 buckets;
	// 0 means 10 s.
	Window time.Duration
	// OpenFor is how long the breaker stays open before it lets one probe
	// through; 0 means 5 s.
	OpenFor time.Duration
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if c.ErrorRate <= 0 {
		c.ErrorRate = DefaultErrorRate
	}
	if c.MinRequests <= 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.OpenFor <= 0 {
		c.OpenFor = DefaultOpenFor
	}
	return c
}

// ErrOpen is matched (errors.Is) by every error Allow returns.
var ErrOpen = errors.New("circuit breaker open")

// OpenError is the error of a request refused by an open (or probing
// half-open) breaker.
type OpenError struct {
	// RetryAt is when the breaker lets a probe through. While a probe is
	// already in flight it is the time of the refusal: the probe's outcome,
	// due any moment, decides.
	RetryAt time.Time
}

func (e *OpenError) Error() string {
	return "circuit breaker open until " + e.RetryAt.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrOpen) true.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// Breaker is a circuit breaker for one backend endpoint: it stops sending
// requests to an endpoint that keeps failing, so a sick backend costs its
// callers an immediate error rather than a timeout each, and gets room to
// recover. It runs no goroutine and no timer: the passing of OpenFor is
// noticed the next time the breaker is consulted. Safe for concurrent use.
type Breaker struct {
	cfg    BreakerConfig
	clock  Clock
	epoch  time.Time     // bucket indexes count from here
	bucket time.Duration // width of one window bucket

	mu        sync.Mutex
	state     BreakerState
	gen       uint64 // bumped on every transition and Reset; stale outcomes are dropped
	openUntil time.Time
	probing   bool // half-open and the single probe is in flight
	consec    int
	buckets   [windowBuckets]bucket
	onChange  func(from, to BreakerState)
	pending   []transition // to be reported, in order, outside mu
	notifying bool         // some goroutine is draining pending
}

type bucket struct {
	idx       int64 // which bucket-width slot since epoch this counts
	successes int
	failures  int
}

type transition struct{ from, to BreakerState }

// NewBreaker returns a closed breaker. A nil clock means the wall clock.
func NewBreaker(cfg BreakerConfig, clock Clock) *Breaker {
	cfg = cfg.withDefaults()
	clock = OrReal(clock)
	width := max(cfg.Window/windowBuckets, 1)
	b := &Breaker{cfg: cfg, clock: clock, epoch: clock.Now(), bucket: width}
	b.clearWindowLocked()
	return b
}

// Config returns the effective configuration, defaults filled in.
func (b *Breaker) Config() BreakerConfig { return b.cfg }

// Allow asks to send one request. On success the caller must call done
// exactly once with the outcome; later calls are ignored. An open breaker
// fails fast with *OpenError. After OpenFor it is half-open and lets exactly
// one request through (others get *OpenError); that request's success closes
// it, its failure re-opens it for OpenFor again. Outcomes of requests let
// through before the latest transition or Reset are ignored: they describe a
// state the breaker has already left.
func (b *Breaker) Allow() (done func(success bool), err error) {
	p, err := b.AllowRelease()
	if err != nil {
		return nil, err
	}
	return p.Done, nil
}

// A Permit is one request let through by AllowRelease. Only the first of
// Done and Release counts.
type Permit struct {
	b    *Breaker
	gen  uint64
	used atomic.Bool
}

// Done reports the request's outcome.
func (p *Permit) Done(success bool) {
	if p.used.Swap(true) {
		return
	}
	p.b.record(p.gen, success)
}

// Release hands the permission back with no outcome, for a caller that had
// no request to send after all: a half-open breaker lets the next request
// probe instead.
func (p *Permit) Release() {
	if p.used.Swap(true) {
		return
	}
	p.b.unprobe(p.gen)
}

// AllowRelease is Allow for a caller that may find it has no request to send
// after all (what it was let through for needed no call): the Permit's
// Release hands the permission back. It is one allocation, where Allow's
// func is three.
func (b *Breaker) AllowRelease() (*Permit, error) {
	b.mu.Lock()
	now := b.clock.Now()
	b.advanceLocked(now)
	switch b.state {
	case BreakerClosed:
	case BreakerHalfOpen:
		if b.probing {
			b.unlockAndNotify()
			return nil, &OpenError{RetryAt: now}
		}
		b.probing = true
	default:
		retry := b.openUntil
		b.unlockAndNotify()
		return nil, &OpenError{RetryAt: retry}
	}
	p := &Permit{b: b, gen: b.gen}
	b.unlockAndNotify()
	return p, nil
}

// unprobe gives back the probe of generation gen, when it was one.
func (b *Breaker) unprobe(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen == b.gen && b.state == BreakerHalfOpen {
		b.probing = false
	}
}

// record applies one outcome of a request let through in generation gen.
func (b *Breaker) record(gen uint64, success bool) {
	b.mu.Lock()
	if gen != b.gen {
		b.mu.Unlock()
		return
	}
	now := b.clock.Now()
	switch b.state {
	case BreakerClosed:
		bk := b.bucketLocked(now)
		if success {
			b.consec = 0
			bk.successes++
			break
		}
		b.consec++
		bk.failures++
		if b.cfg.ConsecutiveFailures > 0 && b.consec >= b.cfg.ConsecutiveFailures {
			b.tripLocked(now)
			break
		}
		if total, failed := b.countLocked(now); total >= b.cfg.MinRequests && float64(failed) >= b.cfg.ErrorRate*float64(total) {
			b.tripLocked(now)
		}
	case BreakerHalfOpen:
		b.probing = false
		if success {
			b.consec = 0
			// A fresh window: the failures that tripped the breaker must not
			// trip it again the moment it closes.
			b.clearWindowLocked()
			b.setLocked(BreakerClosed)
		} else {
			b.consec++
			b.tripLocked(now)
		}
	}
	b.unlockAndNotify()
}

// State returns the current state. An open breaker whose OpenFor has passed
// reports (and becomes) half-open even before a request arrives.
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	b.advanceLocked(b.clock.Now())
	s := b.state
	b.unlockAndNotify()
	return s
}

// RetryAt returns when an open breaker lets a probe through (in the past once
// it is half-open); zero when closed.
func (b *Breaker) RetryAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerClosed {
		return time.Time{}
	}
	return b.openUntil
}

// ConsecutiveFailures returns the number of failures since the last success,
// including failed probes.
func (b *Breaker) ConsecutiveFailures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consec
}

// Reset closes the breaker and clears its counters, for when the endpoint was
// reconnected and its past failures no longer say anything about it.
// Outcomes of requests let through before Reset are ignored.
func (b *Breaker) Reset() {
	b.mu.Lock()
	b.consec = 0
	b.probing = false
	b.openUntil = time.Time{}
	b.clearWindowLocked()
	b.gen++
	b.setLocked(BreakerClosed)
	b.unlockAndNotify()
}

// OnStateChange sets the function called after each transition (nil
// removes it). It runs synchronously on the goroutine whose call caused the
// transition (Allow, done, State or Reset; time-driven open → half-open is
// noticed by the first of them after OpenFor), outside the breaker's lock, so
// it may call back into the breaker but must not block, nor take a lock that
// callers hold while they consult the breaker. Reports come one at a time, in
// the order the transitions happened, possibly from the goroutine of a later
// transition.
func (b *Breaker) OnStateChange(f func(from, to BreakerState)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onChange = f
}

// advanceLocked lets time open the half-open door.
func (b *Breaker) advanceLocked(now time.Time) {
	if b.state == BreakerOpen && !now.Before(b.openUntil) {
		b.probing = false
		b.setLocked(BreakerHalfOpen)
	}
}

func (b *Breaker) tripLocked(now time.Time) {
	b.openUntil = now.Add(b.cfg.OpenFor)
	b.probing = false
	b.setLocked(BreakerOpen)
}

// setLocked moves to state to and queues the report; every state change,
// and every Reset, starts a new generation.
func (b *Breaker) setLocked(to BreakerState) {
	b.gen++
	if to == b.state {
		return
	}
	if b.onChange != nil {
		b.pending = append(b.pending, transition{b.state, to})
	}
	b.state = to
}

// unlockAndNotify must be called with mu held; it releases mu and then reports queued transitions. Only one
// goroutine drains at a time, so reports keep their order even when
// transitions race; a callback that causes a transition finds the drain busy
// and its report is delivered by the same loop.
func (b *Breaker) unlockAndNotify() {
	if b.notifying || len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	b.notifying = true
	for len(b.pending) > 0 {
		t := b.pending[0]
		b.pending = b.pending[1:]
		f := b.onChange
		b.mu.Unlock()
		if f != nil {
			f(t.from, t.to)
		}
		b.mu.Lock()
	}
	b.pending = nil
	b.notifying = false
	b.mu.Unlock()
}

func (b *Breaker) slot(now time.Time) int64 {
	d := now.Sub(b.epoch)
	i := int64(d / b.bucket)
	if d < 0 && d%b.bucket != 0 {
		i-- // floor, so a clock that steps back still lands in one slot
	}
	return i
}

// bucketLocked returns the bucket counting now, emptied if it last counted
// an older slot.
func (b *Breaker) bucketLocked(now time.Time) *bucket {
	i := b.slot(now)
	bk := &b.buckets[((i%windowBuckets)+windowBuckets)%windowBuckets]
	if bk.idx != i {
		*bk = bucket{idx: i}
	}
	return bk
}

// countLocked sums the outcomes of the buckets inside the window ending now.
func (b *Breaker) countLocked(now time.Time) (total, failures int) {
	cur := b.slot(now)
	for _, bk := range b.buckets {
		if bk.idx <= cur && bk.idx > cur-windowBuckets {
			total += bk.successes + bk.failures
			failures += bk.failures
		}
	}
	return total, failures
}

func (b *Breaker) clearWindowLocked() {
	for i := range b.buckets {
		// An index no window can contain, so a cleared bucket never counts.
		b.buckets[i] = bucket{idx: -1 << 62}
	}
}
