package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
)

// TestOutageIsOneOutage: a backend that goes down and comes back again and
// again, more often than the schedule has steps, starts every outage at the
// first step once its connection had stayed up for StableAfter; it never
// becomes unavailable while it is up. A connection that dies sooner
// continues the outage it ended.
func TestOutageIsOneOutage(t *testing.T) {
	e := newEnv(t)
	ls, b := e.liveHealthy("flap")

	steps := resilience.DefaultSchedule()
	for round := 1; round <= 2*len(steps); round++ {
		e.clock.Advance(StableAfter) // the connection stayed up
		ls.stop()
		// The loss is noticed from the event stream; the immediate
		// reconnect is refused: the outage's first failure, a 1 s wait.
		if got := e.waitTimer(); got != steps[0] {
			t.Fatalf("round %d: first wait of the outage = %v, want %v", round, got, steps[0])
		}
		if h := b.Health(); h.GetState() != stateRetrying || h.GetConsecutiveFailures() != 1 {
			t.Fatalf("round %d: health at the outage's first wait = %v, want retrying with 1 failure", round, h)
		}
		e.clock.Advance(steps[0])
		if got := e.waitTimer(); got != steps[1] {
			t.Fatalf("round %d: second wait = %v, want %v", round, got, steps[1])
		}
		ls.restart()
		e.clock.Advance(DefaultProbeInterval) // the probe finds the port open
		e.waitState(b, stateHealthy)
	}
	if strings.Contains(e.logs.String(), "state=unavailable") {
		t.Fatal("a flapping backend that is up was marked unavailable")
	}

	// A connection that dies within StableAfter is part of the outage it
	// ended: 2 failures so far, the loss is the third, so a 4 s wait.
	ls.stop()
	if got := e.waitTimer(); got != steps[2] {
		t.Fatalf("wait after a quick loss = %v, want %v (the outage goes on)", got, steps[2])
	}
	if n := b.Health().GetConsecutiveFailures(); n != 3 {
		t.Fatalf("failures after a quick loss = %d, want 3", n)
	}
	ls.restart()
	e.clock.Advance(DefaultProbeInterval)
	e.waitState(b, stateHealthy)
	e.clock.Advance(StableAfter)
	ls.stop()
	if got := e.waitTimer(); got != steps[0] {
		t.Fatalf("first wait of the next outage = %v, want %v", got, steps[0])
	}
}

// TestRecoveryImmediateInEveryState: whichever step of the schedule a
// backend is waiting out, or when it is already unavailable, it is
// reconnected at the first probe after its port opens, never at the end of
// the step.
func TestRecoveryImmediateInEveryState(t *testing.T) {
	e := newEnv(t)
	ls, b := e.liveHealthy("back")

	steps := resilience.DefaultSchedule()
	for failures := 1; failures <= len(steps)+1; failures++ {
		e.clock.Advance(StableAfter)
		ls.stop()
		for n := 1; n < failures; n++ {
			e.clock.Advance(e.waitTimer())
		}
		want := stateRetrying
		if failures > len(steps) {
			want = stateUnavailable
		}
		d := e.waitTimer()
		if s := b.State(); s != want {
			t.Fatalf("after %d failures: state %v, want %v", failures, s, want)
		}
		ls.restart()
		start := e.clock.Now()
		e.clock.Advance(DefaultProbeInterval)
		e.waitState(b, stateHealthy)
		took := e.clock.Now().Sub(start)
		t.Logf("measure: recovery after %d failures (%v, wait %v): %v on the clock", failures, want, d, took)
		if took >= time.Second {
			t.Fatalf("recovery after %d failures took %v, want under 1s", failures, took)
		}
	}
}

// TestHoldRidesOutShortOutage: with a hold, a call that arrives while the
// backend is retrying waits for it instead of failing, and succeeds the
// moment it is back; one that waits longer than the hold fails naming the
// state and the hold.
func TestHoldRidesOutShortOutage(t *testing.T) {
	const hold = 2 * time.Second
	e := newEnv(t, func(o *ManagerOptions) { o.Hold = hold })
	ls, b := e.liveHealthy("hold")

	e.clock.Advance(StableAfter)
	ls.stop()
	e.waitTimer() // retrying: the outage's first wait
	res := make(chan error, 1)
	go func() {
		_, err := callTool(context.Background(), b, "echo") // not retryable: it was never sent
		res <- err
	}()
	e.waitPending(hold)
	ls.restart()
	e.clock.Advance(DefaultProbeInterval)
	if err := recvWithin(t, res, "the held call"); err != nil {
		t.Fatalf("call held over a short outage: %v", err)
	}

	e.clock.Advance(StableAfter)
	ls.stop()
	e.waitTimer()
	go func() {
		_, err := callTool(context.Background(), b, "echo")
		res <- err
	}()
	e.waitPending(hold)
	e.clock.Advance(hold)
	err := recvWithin(t, res, "the call held past the hold")
	if err == nil || !strings.Contains(err.Error(), `backend "hold" is retrying`) || !strings.Contains(err.Error(), "held the request 2s") {
		t.Fatalf("call held past the hold = %v, want the retrying state and the hold named", err)
	}
}

// TestSessionForgottenByRestart: a backend that restarted forgets our
// session and answers 404. A call that hits the stale session is repeated
// on a new one (it never ran, so even a plain call is safe), and a restart
// that also dropped the event stream is noticed without any call: the data
// plane re-initializes at once.
func TestSessionForgottenByRestart(t *testing.T) {
	e := newEnv(t)
	ls, b := e.liveHealthy("re")

	// The sessions are forgotten, the connections stay: the call finds out.
	e.clock.Advance(StableAfter)
	inits := ls.inits.Load()
	ls.forgetSessions()
	if got := callText(t, b, "echo", map[string]any{"text": "again"}); got != "re:again" {
		t.Fatalf("echo across a forgotten session = %q", got)
	}
	if n := ls.inits.Load() - inits; n != 1 {
		t.Fatalf("initializes for a forgotten session = %d, want 1", n)
	}

	// A real restart: connections dropped, sessions forgotten. The event
	// stream's end makes the data plane check and re-initialize by itself.
	e.clock.Advance(StableAfter)
	inits = ls.inits.Load()
	ls.stop()
	ls.forgetSessions()
	ls.restart()
	// If the port was found closed in that instant, the probe's next round
	// (on the fake clock) reconnects; nudge it along.
	e.waitForNudging("a re-initialize without any call", func() bool {
		return ls.inits.Load() > inits && b.State() == stateHealthy
	}, func() { e.clock.Advance(DefaultProbeInterval) })
	if got := callText(t, b, "echo", map[string]any{"text": "x"}); got != "re:x" {
		t.Fatalf("echo after the restart = %q", got)
	}
	if n := ls.inits.Load() - inits; n != 1 {
		t.Fatalf("initializes after the restart = %d, want 1", n)
	}
}

// TestPortWasClosed: a loss found with the port not answering, however the
// dial failed, makes a reopened port a recovery, as a refused connect does.
func TestPortWasClosed(t *testing.T) {
	reset := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"loss, port reset", fmt.Errorf("connection lost: %w", fmt.Errorf("event stream lost (EOF) and %w", fmt.Errorf("%w: %w", errPortClosed, reset))), true},
		{"connect refused", fmt.Errorf("connect: initialize: %w", fmt.Errorf("failed to send request: %w", refused)), true},
		{"connect 503", errors.New("connect: initialize: 503 Service Unavailable"), false},
		{"session gone", fmt.Errorf("connection lost: event stream lost and the session is gone: %w", errors.New("404")), false},
		{"none", nil, false},
	}
	for _, tc := range tests {
		if got := portWasClosed(tc.err); got != tc.want {
			t.Errorf("%s: portWasClosed(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
