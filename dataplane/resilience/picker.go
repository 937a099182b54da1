package resilience

import "sync/atomic"

// Load is what the Picker knows of one endpoint.
type Load struct {
	// InFlight is the number of requests the endpoint is serving now.
	InFlight int64
	// Available is false when the endpoint is not connected or its breaker
	// is open; such an endpoint is never picked.
	Available bool
}

// Picker spreads requests over the endpoints of one backend: the available
// endpoint with the fewest requests in flight wins, so a slow replica gets
// less work; ties go round robin, so equal replicas get equal shares. The
// zero value is ready. Safe for concurrent use; it allocates nothing.
type Picker struct {
	// next is where the round robin resumes: one past the endpoint that won
	// the last tie. A tie goes to the first tied endpoint from there on, so
	// an endpoint that stays among the least loaded is reached within one
	// turn, however the set of tied endpoints changes between picks (a
	// ticket counter taken modulo the number of ties can starve one).
	// Retries (PickExcept) keep their own place, so that alternating picks
	// and retries does not send every retry to the same endpoint.
	next, retryNext atomic.Uint64
}

// Pick returns the index of the endpoint to use, or -1 when none is
// available.
func (p *Picker) Pick(loads []Load) int { return pick(loads, -1, &p.next) }

// PickExcept is Pick that never returns exclude, for retrying a request on
// another endpoint than the one that failed it; -1 when there is no other.
// An exclude outside loads excludes nothing.
func (p *Picker) PickExcept(loads []Load, exclude int) int {
	if exclude < 0 || exclude >= len(loads) {
		return p.Pick(loads)
	}
	return pick(loads, exclude, &p.retryNext)
}

func pick(loads []Load, exclude int, next *atomic.Uint64) int {
	best, ties, first := int64(0), 0, -1
	for i, l := range loads {
		if !l.Available || i == exclude {
			continue
		}
		switch {
		case ties == 0 || l.InFlight < best:
			best, ties, first = l.InFlight, 1, i
		case l.InFlight == best:
			ties++
		}
	}
	if ties <= 1 {
		return first
	}
	n := len(loads)
	for {
		// The CAS makes concurrent tie-breaks take turns, so equal endpoints
		// get exactly equal shares however goroutines interleave.
		cur := next.Load()
		start := int(cur % uint64(n))
		for j := range n {
			i := (start + j) % n
			if l := loads[i]; l.Available && i != exclude && l.InFlight == best {
				if next.CompareAndSwap(cur, uint64(i+1)) {
					return i
				}
				break
			}
		}
	}
}
