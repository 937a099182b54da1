package resilience

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// recorder collects OnStateChange reports.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) record(from, to BreakerState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, from.String()+">"+to.String())
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.got, " ")
}

func newTestBreaker(cfg BreakerConfig) (*Breaker, *FakeClock, *recorder) {
	clock := NewFakeClock(t0)
	b := NewBreaker(cfg, clock)
	rec := &recorder{}
	b.OnStateChange(rec.record)
	return b, clock, rec
}

// runScript drives a breaker through a compact script so that each table
// case reads as the story it tests. Words, space separated, optionally
// prefixed by "N*" to repeat:
//
//	ok / fail      Allow must pass; done(true) / done(false)
//	release        AllowRelease must pass; release()
//	deny           Allow must fail with *OpenError (RetryAt checked against RetryAt())
//	+D             advance the fake clock by duration D
//	reset          Reset()
//	state:S        State() must be S
//	consec:N       ConsecutiveFailures() must be N
//	retry:D        RetryAt() must be t0+D; "retry:none" means zero
func runScript(t *testing.T, b *Breaker, clock *FakeClock, script string) {
	t.Helper()
	for i, word := range strings.Fields(script) {
		n := 1
		if k, rest, ok := strings.Cut(word, "*"); ok {
			var err error
			if n, err = strconv.Atoi(k); err != nil {
				t.Fatalf("word %d %q: bad repeat", i, word)
			}
			word = rest
		}
		for range n {
			where := fmt.Sprintf("word %d %q at %v", i, word, clock.Now().Sub(t0))
			op, arg, _ := strings.Cut(word, ":")
			switch {
			case op == "ok" || op == "fail":
				done, err := b.Allow()
				if err != nil {
					t.Fatalf("%s: Allow = %v, want pass", where, err)
				}
				done(op == "ok")
			case op == "release":
				p, err := b.AllowRelease()
				if err != nil {
					t.Fatalf("%s: AllowRelease = %v, want pass", where, err)
				}
				p.Release()
			case op == "deny":
				done, err := b.Allow()
				if err == nil {
					done(true)
					t.Fatalf("%s: Allow passed, want *OpenError", where)
				}
				var oe *OpenError
				if !errors.As(err, &oe) || !errors.Is(err, ErrOpen) {
					t.Fatalf("%s: Allow error %v is not an *OpenError matching ErrOpen", where, err)
				}
				if want := b.RetryAt(); b.State() == BreakerOpen && !oe.RetryAt.Equal(want) {
					t.Fatalf("%s: OpenError.RetryAt = %v, RetryAt() = %v", where, oe.RetryAt, want)
				}
			case strings.HasPrefix(op, "+"):
				d, err := time.ParseDuration(op[1:])
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				clock.Advance(d)
			case op == "reset":
				b.Reset()
			case op == "state":
				if got := b.State().String(); got != arg {
					t.Fatalf("%s: State = %s", where, got)
				}
			case op == "consec":
				if got := strconv.Itoa(b.ConsecutiveFailures()); got != arg {
					t.Fatalf("%s: ConsecutiveFailures = %s", where, got)
				}
			case op == "retry":
				got := b.RetryAt()
				if arg == "none" {
					if !got.IsZero() {
						t.Fatalf("%s: RetryAt = %v, want zero", where, got)
					}
					continue
				}
				d, err := time.ParseDuration(arg)
				if err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				if !got.Equal(t0.Add(d)) {
					t.Fatalf("%s: RetryAt = t0+%v, want t0+%v", where, got.Sub(t0), d)
				}
			default:
				t.Fatalf("%s: unknown word", where)
			}
		}
	}
}

func TestBreakerScripts(t *testing.T) {
	// Rate-only and consecutive-only configurations isolate each trip.
	consecOnly := BreakerConfig{ConsecutiveFailures: 5, ErrorRate: 2}
	rateOnly := BreakerConfig{ConsecutiveFailures: -1, ErrorRate: 0.5, MinRequests: 10, Window: 10 * time.Second}
	tests := []struct {
		name        string
		cfg         BreakerConfig
		script      string
		transitions string
	}{
		{"defaults: four failures stay closed", BreakerConfig{},
			"4*fail state:closed consec:4 retry:none", ""},
		{"defaults: fifth failure trips", BreakerConfig{},
			"4*fail state:closed fail state:open consec:5 retry:5s deny", "closed>open"},
		{"success resets the consecutive count", consecOnly,
			"4*fail ok consec:0 4*fail state:closed consec:4 fail state:open", "closed>open"},
		{"custom consecutive threshold", BreakerConfig{ConsecutiveFailures: 2, ErrorRate: 2},
			"fail state:closed fail state:open", "closed>open"},
		{"threshold one", BreakerConfig{ConsecutiveFailures: 1, ErrorRate: 2},
			"ok fail state:open", "closed>open"},
		{"consecutive disabled, rate off: never trips", BreakerConfig{ConsecutiveFailures: -1, ErrorRate: 2},
			"100*fail state:closed consec:100", ""},

		{"rate needs MinRequests", rateOnly,
			"9*fail state:closed fail state:open", "closed>open"},
		{"rate below threshold stays closed", rateOnly,
			"6*ok 4*fail state:closed 6*ok 4*fail state:closed", ""},
		{"rate exactly at threshold trips", rateOnly,
			"5*ok 4*fail state:closed fail state:open", "closed>open"},
		{"rate mixed order trips on the failure that reaches it", rateOnly,
			"ok fail ok fail ok fail ok fail ok state:closed fail state:open", "closed>open"},
		{"a success never trips even past the rate", rateOnly,
			"6*fail 4*ok state:closed fail state:open", "closed>open"},
		{"rate counts within the window (9s later)", rateOnly,
			"9*fail +9s state:closed fail state:open", "closed>open"},
		{"old buckets expire (10s later)", rateOnly,
			"9*fail +10s fail state:closed 8*fail state:closed fail state:open", "closed>open"},
		{"only the expired buckets leave the window", rateOnly,
			"6*fail +5s 3*ok +5s 6*fail state:closed fail state:open", "closed>open"},
		{"expiry slides bucket by bucket", rateOnly,
			"5*fail +1s 4*fail +9s fail state:closed 4*fail state:closed fail state:open", "closed>open"},
		{"old buckets expire without being reused", rateOnly,
			"9*fail +15s fail state:closed", ""},
		{"a long idle gap empties the window", rateOnly,
			"9*fail +1h5s 9*fail state:closed", ""},

		{"open fails fast until OpenFor has passed", consecOnly,
			"5*fail +4999ms deny state:open retry:5s +1ms state:half_open", "closed>open open>half_open"},
		{"half-open admits one probe", consecOnly,
			"5*fail +5s state:half_open ok state:closed consec:0 retry:none ok",
			"closed>open open>half_open half_open>closed"},
		{"probe failure re-opens with a new RetryAt", consecOnly,
			"5*fail +5s fail state:open consec:6 retry:10s deny +2s deny +3s state:half_open ok state:closed",
			"closed>open open>half_open half_open>open open>half_open half_open>closed"},
		{"half-open without State: Allow opens the door", consecOnly,
			"5*fail +7s ok state:closed", "closed>open open>half_open half_open>closed"},
		{"open for a custom duration", BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Minute},
			"fail retry:1m +59s deny +1s state:half_open", "closed>open open>half_open"},
		{"window is fresh after a probe closes it", rateOnly,
			"10*fail state:open +5s ok state:closed 9*fail state:closed fail state:open",
			"closed>open open>half_open half_open>closed closed>open"},
		{"consecutive count is fresh after a probe closes it", consecOnly,
			"5*fail +5s ok 4*fail state:closed", "closed>open open>half_open half_open>closed"},

		{"release when closed counts nothing", consecOnly,
			"4*fail release consec:4 state:closed fail state:open", "closed>open"},
		{"release of the probe lets the next request probe", consecOnly,
			"5*fail +5s release state:half_open consec:5 ok state:closed",
			"closed>open open>half_open half_open>closed"},
		{"released probe leaves the door to a failing probe", consecOnly,
			"5*fail +5s release fail state:open consec:6 retry:10s",
			"closed>open open>half_open half_open>open"},

		{"reset from open", consecOnly,
			"5*fail reset state:closed consec:0 retry:none ok", "closed>open open>closed"},
		{"reset from half-open", consecOnly,
			"5*fail +5s state:half_open reset state:closed 4*fail state:closed",
			"closed>open open>half_open half_open>closed"},
		{"reset when closed clears counters silently", consecOnly,
			"4*fail reset consec:0 4*fail state:closed", ""},
		{"reset clears the window", rateOnly,
			"9*fail reset 9*fail state:closed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clock, rec := newTestBreaker(tt.cfg)
			runScript(t, b, clock, tt.script)
			if got := rec.String(); got != tt.transitions {
				t.Errorf("transitions = %q, want %q", got, tt.transitions)
			}
		})
	}
}

func TestBreakerHalfOpenAdmitsExactlyOneConcurrently(t *testing.T) {
	b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 1})
	const goroutines = 64
	for round := range 20 {
		fail, _ := b.Allow()
		if fail == nil {
			t.Fatalf("round %d: closed breaker refused", round)
		}
		fail(false)
		clock.Advance(5 * time.Second)

		var (
			start  = make(chan struct{})
			wg     sync.WaitGroup
			passed atomic.Int32
			dones  = make(chan func(bool), goroutines)
		)
		for range goroutines {
			wg.Go(func() {
				<-start
				done, err := b.Allow()
				if err != nil {
					if !errors.Is(err, ErrOpen) {
						t.Errorf("refusal %v does not match ErrOpen", err)
					}
					return
				}
				passed.Add(1)
				dones <- done
			})
		}
		close(start)
		wg.Wait()
		close(dones)
		if n := passed.Load(); n != 1 {
			t.Fatalf("round %d: %d requests passed half-open, want exactly 1", round, n)
		}
		probe := <-dones
		success := round%2 == 0 // alternate closing and re-opening
		probe(success)
		want := BreakerOpen
		if success {
			want = BreakerClosed
		}
		if s := b.State(); s != want {
			t.Fatalf("round %d: state %v after probe (success %v), want %v", round, s, success, want)
		}
		b.Reset()
	}
}

func TestBreakerDoneTwiceIsIgnored(t *testing.T) {
	b, _, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 2, ErrorRate: 2})
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(false)
	done(false) // would trip if counted
	done(true)  // would reset the count if counted
	if s, n := b.State(), b.ConsecutiveFailures(); s != BreakerClosed || n != 1 {
		t.Fatalf("after one outcome reported three times: state %v consec %d, want closed 1", s, n)
	}

	// The probe's done twice: the second success must not close a breaker a
	// later failure re-opened.
	b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 1})
	fail, _ := b.Allow()
	fail(false)
	clock.Advance(5 * time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	probe(false)
	probe(true)
	if s := b.State(); s != BreakerOpen {
		t.Fatalf("state %v after failed probe reported twice, want open", s)
	}
}

func TestBreakerIgnoresStaleOutcomes(t *testing.T) {
	tests := []struct {
		name  string
		event func(b *Breaker, clock *FakeClock)
		late  bool // outcome of the early request
		want  BreakerState
		cons  int
	}{
		{"failure after trip does not extend open", func(b *Breaker, _ *FakeClock) {
			for range 2 {
				d, _ := b.Allow()
				d(false)
			}
		}, false, BreakerOpen, 2},
		{"success after trip does not close", func(b *Breaker, _ *FakeClock) {
			for range 2 {
				d, _ := b.Allow()
				d(false)
			}
		}, true, BreakerOpen, 2},
		{"success in half-open is not the probe", func(b *Breaker, clock *FakeClock) {
			for range 2 {
				d, _ := b.Allow()
				d(false)
			}
			clock.Advance(5 * time.Second)
			b.State()
		}, true, BreakerHalfOpen, 2},
		{"failure after reset is not counted", func(b *Breaker, _ *FakeClock) {
			d, _ := b.Allow()
			d(false)
			b.Reset()
		}, false, BreakerClosed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 2, ErrorRate: 2})
			early, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			tt.event(b, clock)
			retry := b.RetryAt()
			early(tt.late)
			if s, n := b.State(), b.ConsecutiveFailures(); s != tt.want || n != tt.cons {
				t.Errorf("state %v consec %d, want %v %d", s, n, tt.want, tt.cons)
			}
			if !b.RetryAt().Equal(retry) {
				t.Errorf("RetryAt moved from %v to %v", retry, b.RetryAt())
			}
			if tt.want == BreakerHalfOpen {
				// The probe slot is still free.
				if _, err := b.Allow(); err != nil {
					t.Errorf("probe refused after a stale outcome: %v", err)
				}
			}
		})
	}
}

func TestBreakerHalfOpenRefusalRetryAt(t *testing.T) {
	b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 1})
	d, _ := b.Allow()
	d(false)
	clock.Advance(6 * time.Second)
	if _, err := b.Allow(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	_, err := b.Allow()
	var oe *OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("second request in half-open: %v, want *OpenError", err)
	}
	if !oe.RetryAt.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("RetryAt while probing = t0+%v, want now (t0+7s)", oe.RetryAt.Sub(t0))
	}
	if got := b.RetryAt(); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("RetryAt() in half-open = t0+%v, want when the door opened (t0+5s)", got.Sub(t0))
	}
}

func TestBreakerOnStateChangeOutsideLock(t *testing.T) {
	b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 1})
	var got []string
	b.OnStateChange(func(from, to BreakerState) {
		if to == BreakerOpen && len(got) == 0 {
			// A transition caused from inside a report must be reported
			// after it, not in the middle of it.
			b.Reset()
		}
		// Calling back in would deadlock if the lock were held.
		got = append(got, fmt.Sprintf("%s>%s(now %s)", from, to, b.State()))
	})
	d, _ := b.Allow()
	d(false)
	want := "closed>open(now closed) open>closed(now closed)"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("reports = %q, want %q", s, want)
	}

	got = nil
	b.OnStateChange(nil)
	d, _ = b.Allow()
	d(false)
	clock.Advance(5 * time.Second)
	b.State()
	if len(got) != 0 {
		t.Fatalf("removed callback still called: %v", got)
	}
}

func TestBreakerOnStateChangeOrderUnderConcurrency(t *testing.T) {
	// Every report must continue from where the previous one ended, even
	// when many goroutines cause transitions at once.
	b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 1})
	var (
		mu   sync.Mutex
		last = BreakerClosed
		bad  []string
		n    int
	)
	b.OnStateChange(func(from, to BreakerState) {
		mu.Lock()
		defer mu.Unlock()
		if from != last || !legalTransition(from, to) {
			bad = append(bad, fmt.Sprintf("%s>%s after %s", from, to, last))
		}
		last = to
		n++
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				switch (g + i) % 5 {
				case 0:
					clock.Advance(time.Second)
				case 1:
					if g == 0 && i%50 == 1 {
						b.Reset()
					}
				default:
					if d, err := b.Allow(); err == nil {
						d(i%3 == 0)
					}
				}
			}
		})
	}
	wg.Wait()
	s := b.State() // may report open>half_open itself, so before taking mu
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("%d out-of-order or illegal reports, first: %v", len(bad), bad[0])
	}
	if n == 0 {
		t.Fatal("no transitions reported")
	}
	if s != last {
		t.Fatalf("last report ended in %v but state is %v", last, s)
	}
}

func legalTransition(from, to BreakerState) bool {
	switch {
	case from == BreakerClosed && to == BreakerOpen,
		from == BreakerOpen && to == BreakerHalfOpen,
		from == BreakerHalfOpen && to == BreakerClosed,
		from == BreakerHalfOpen && to == BreakerOpen,
		from != BreakerClosed && to == BreakerClosed: // Reset
		return true
	}
	return false
}

func TestBreakerStringsAndErrors(t *testing.T) {
	for s, want := range map[BreakerState]string{
		BreakerClosed: "closed", BreakerOpen: "open", BreakerHalfOpen: "half_open", 7: "BreakerState(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(s), got, want)
		}
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600))
	err := fmt.Errorf("call backend %q: %w", "github", &OpenError{RetryAt: at})
	if want := `call backend "github": circuit breaker open until 2026-03-04T04:06:07Z`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, ErrOpen) {
		t.Error("wrapped *OpenError does not match ErrOpen")
	}
	if errors.Is(errors.New("circuit breaker open"), ErrOpen) {
		t.Error("an unrelated error matches ErrOpen")
	}
}

func TestBreakerConfigDefaults(t *testing.T) {
	got := NewBreaker(BreakerConfig{}, nil).Config()
	want := BreakerConfig{ConsecutiveFailures: 5, ErrorRate: 0.5, MinRequests: 20, Window: 10 * time.Second, OpenFor: 5 * time.Second}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	custom := BreakerConfig{ConsecutiveFailures: -1, ErrorRate: 0.9, MinRequests: 3, Window: time.Minute, OpenFor: time.Second}
	if got := NewBreaker(custom, nil).Config(); got != custom {
		t.Errorf("custom config changed: %+v, want %+v", got, custom)
	}
}

func TestBreakerClockStepsBack(t *testing.T) {
	// Wall clocks jump; a step back must neither panic nor count stale
	// buckets from the future as current.
	clock := NewFakeClock(t0)
	b := NewBreaker(BreakerConfig{ConsecutiveFailures: -1, MinRequests: 4, Window: 4 * time.Second}, clock)
	for range 3 {
		d, _ := b.Allow()
		d(false)
	}
	clock.Advance(-90 * time.Second)
	d, _ := b.Allow()
	d(false)
	if s := b.State(); s != BreakerClosed {
		t.Fatalf("state %v after a clock step back, want closed (old failures are not in this window)", s)
	}
	for range 3 {
		d, _ := b.Allow()
		d(false)
	}
	if s := b.State(); s != BreakerOpen {
		t.Fatalf("state %v after 4 failures in one window, want open", s)
	}
}

// FuzzBreaker drives a breaker with random operations and checks the
// invariants a caller relies on.
func FuzzBreaker(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 3, 3, 3, 0, 2})
	f.Add([]byte{0, 2, 0, 2, 0, 2, 3, 200, 0, 0, 0, 1, 1, 4, 0, 1})
	f.Add([]byte("\x00\x02\x00\x02\x00\x02\x00\x02\x00\x02\x03\xff\x00\x00\x01\x01\x05"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		clock := NewFakeClock(t0)
		b := NewBreaker(BreakerConfig{ConsecutiveFailures: 3, ErrorRate: 0.5, MinRequests: 4, Window: 2 * time.Second, OpenFor: time.Second}, clock)
		var (
			last      = BreakerClosed
			halfEpoch int // bumped each time the breaker becomes half-open
			probes    int // probes let through in this half-open epoch and not yet reported
		)
		b.OnStateChange(func(from, to BreakerState) {
			if from != last {
				t.Fatalf("report %s>%s does not continue from %s", from, to, last)
			}
			if !legalTransition(from, to) {
				t.Fatalf("illegal transition %s>%s", from, to)
			}
			last = to
			if to == BreakerHalfOpen {
				halfEpoch++
				probes = 0
			}
		})
		type token struct {
			done     func(bool)
			probe    bool
			epoch    int
			reported bool
		}
		var pending []*token
		for i := 0; i < len(ops); i++ {
			op := ops[i]
			arg := byte(0)
			if i+1 < len(ops) {
				arg = ops[i+1]
			}
			switch op % 6 {
			case 0: // Allow
				before := b.State()
				retry := b.RetryAt()
				done, err := b.Allow()
				switch {
				case before == BreakerClosed && err != nil:
					t.Fatalf("op %d: closed breaker refused: %v", i, err)
				case before == BreakerOpen && err == nil:
					t.Fatalf("op %d: open breaker (until %v, now %v) let a request through", i, retry, clock.Now())
				case err != nil && !errors.Is(err, ErrOpen):
					t.Fatalf("op %d: refusal %v does not match ErrOpen", i, err)
				case before == BreakerOpen:
					var oe *OpenError
					if !errors.As(err, &oe) || !oe.RetryAt.Equal(retry) || !clock.Now().Before(retry) {
						t.Fatalf("op %d: refusal %v, RetryAt() %v, now %v", i, err, retry, clock.Now())
					}
				}
				if err == nil {
					p := before == BreakerHalfOpen
					if p {
						probes++
					}
					pending = append(pending, &token{done: done, probe: p, epoch: halfEpoch})
				}
			case 1, 2: // report an outcome of some pending request (maybe again)
				if len(pending) == 0 {
					continue
				}
				i++
				k := int(arg) % len(pending)
				tk := pending[k]
				if tk.probe && !tk.reported && tk.epoch == halfEpoch {
					probes--
				}
				tk.reported = true
				tk.done(op%6 == 1)
				if arg&0x80 == 0 { // keep it sometimes, to report twice
					pending = append(pending[:k], pending[k+1:]...)
				}
				if b.State() == BreakerClosed && b.ConsecutiveFailures() >= 3 {
					t.Fatalf("op %d: closed with %d consecutive failures", i, b.ConsecutiveFailures())
				}
			case 3: // time passes
				i++
				clock.Advance(time.Duration(arg) * 20 * time.Millisecond)
			case 4:
				b.Reset()
				if b.State() != BreakerClosed || b.ConsecutiveFailures() != 0 || !b.RetryAt().IsZero() {
					t.Fatalf("op %d: Reset left state %v consec %d retry %v", i, b.State(), b.ConsecutiveFailures(), b.RetryAt())
				}
			case 5:
				s := b.State()
				if s != last {
					t.Fatalf("op %d: State %v but last report ended in %v", i, s, last)
				}
				if (s == BreakerClosed) != b.RetryAt().IsZero() {
					t.Fatalf("op %d: state %v with RetryAt %v", i, s, b.RetryAt())
				}
			}
			if s := b.State(); s == BreakerHalfOpen && probes > 1 {
				t.Fatalf("op %d: %d probes in flight in half-open", i, probes)
			}
		}
	})
}

func BenchmarkBreakerAllowDone(b *testing.B) {
	br := NewBreaker(BreakerConfig{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		done, err := br.Allow()
		if err != nil {
			b.Fatal(err)
		}
		done(true)
	}
}

func BenchmarkBreakerAllowDoneParallel(b *testing.B) {
	br := NewBreaker(BreakerConfig{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(true)
		}
	})
}

func BenchmarkBreakerAllowOpen(b *testing.B) {
	br := NewBreaker(BreakerConfig{ConsecutiveFailures: 1, OpenFor: time.Hour}, nil)
	d, _ := br.Allow()
	d(false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Allow(); err == nil {
			b.Fatal("open breaker let a request through")
		}
	}
}

func TestBreakerRelease(t *testing.T) {
	b, clock, _ := newTestBreaker(BreakerConfig{ConsecutiveFailures: 1})
	fail, _ := b.Allow()
	fail(false)
	clock.Advance(5 * time.Second)
	p, err := b.AllowRelease()
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	p.Done(true) // after release: ignored, must not close the breaker
	if s := b.State(); s != BreakerHalfOpen {
		t.Fatalf("state %v after a released probe reported done, want half_open", s)
	}

	// A release from before a transition is stale: it must not free the
	// probe slot of a later half-open period.
	stale, err := b.AllowRelease()
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	fail, _ = b.Allow()
	fail(false)
	clock.Advance(5 * time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	stale.Release()
	if _, err := b.Allow(); err == nil {
		t.Fatal("a stale release let a second probe through")
	}
	probe(true)
	if s := b.State(); s != BreakerClosed {
		t.Fatalf("state %v after the probe succeeded, want closed", s)
	}
}
