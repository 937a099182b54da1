package httpapi

import (
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultReadyGrace bounds how long readiness waits for backends still making
// their first connect attempt: a hung backend must not keep a replica out of
// its load balancer forever.
const DefaultReadyGrace = 10 * time.Second

// ReadinessOptions configure a Readiness.
type ReadinessOptions struct {
	// Grace is how long after the first snapshot was applied readiness stops
	// waiting for backends' first connect attempts; 0 means DefaultReadyGrace.
	Grace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets one line when the data plane becomes ready.
	Logger *slog.Logger
}

// Readiness is what /readyz answers. A data plane is ready once it applied a
// config snapshot and then rebuilt its aggregated lists from backends that had
// all finished their first connect attempt, so a replica put behind a load
// balancer serves the same lists as the others from its first request. If
// some backend is still on its first attempt Grace after the first snapshot,
// the lists rebuilt for that snapshot are served without it.
//
// Once ready, it stays ready: later snapshots and lost backends change what
// is served, not whether this replica should get traffic.
type Readiness struct {
	grace time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	applied   uint64    // snapshots applied
	appliedAt time.Time // when the first one was
	rebuilt   bool      // lists were rebuilt after a snapshot was applied
	pending   int       // backends on their first attempt, as the last rebuild saw them
	ready     bool
	why       string // the answer once ready
}

// NewReadiness returns a Readiness that is not ready.
func NewReadiness(opts ReadinessOptions) *Readiness {
	r := &Readiness{grace: opts.Grace, now: opts.Now, log: opts.Logger}
	if r.grace <= 0 {
		r.grace = DefaultReadyGrace
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Applied records that a config snapshot was applied: the backends it names
// exist. Call it before the Rebuild for that snapshot.
func (r *Readiness) Applied() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied == 0 {
		r.appliedAt = r.now()
	}
	r.applied++
}

// Rebuild runs rebuild, which rebuilds the aggregated lists from the current
// backends, and records it. pending counts the backends still making their
// first connect attempt; it is called before rebuild, so a count of zero
// means rebuild saw every backend's first outcome. A rebuild that started
// before any snapshot was applied counts for nothing, even if it ends after.
func (r *Readiness) Rebuild(pending func() int, rebuild func()) {
	r.mu.Lock()
	applied := r.applied
	r.mu.Unlock()
	n := pending()
	rebuild()

	r.mu.Lock()
	defer r.mu.Unlock()
	if applied == 0 || r.ready {
		return
	}
	r.rebuilt, r.pending = true, n
	if n == 0 {
		r.becomeReadyLocked("ok")
	}
}

// Ready reports whether the data plane is ready and says why (or why not).
func (r *Readiness) Ready() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.ready:
		return true, r.why
	case r.applied == 0:
		return false, "no config snapshot applied yet"
	case !r.rebuilt:
		return false, "config snapshot applied, aggregated lists not rebuilt yet"
	}
	if waited := r.now().Sub(r.appliedAt); waited >= r.grace {
		r.becomeReadyLocked(fmt.Sprintf("ok: %d backends were still on their first connect attempt %v after the first snapshot, serving without them", r.pending, r.grace))
		return true, r.why
	}
	return false, fmt.Sprintf("waiting for %d backends' first connect attempt", r.pending)
}

func (r *Readiness) becomeReadyLocked(why string) {
	r.ready, r.why = true, why
	r.log.Info("data plane ready", "reason", why, "after_first_snapshot", r.now().Sub(r.appliedAt))
}
