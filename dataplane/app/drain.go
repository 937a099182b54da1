package app

import (
	"context"
	"net/http"
	"sync"
)

// drainer counts the client requests being answered, other than the
// long-lived GET streams (/mcp GET, /sse), so that a shutdown can wait for
// the calls in flight before it ends the streams, and turns /readyz to 503
// while it drains, so a load balancer stops sending new work.
type drainer struct {
	mu       sync.Mutex
	n        int           // requests in flight
	draining bool          // set by start
	idle     chan struct{} // closed when n reaches 0 while draining
}

func newDrainer() *drainer { return &drainer{idle: make(chan struct{})} }

func (d *drainer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			// Streams end when the front closes them; /readyz says no
			// while draining; the rest of the GETs are quick.
			if r.URL.Path == "/readyz" && d.isDraining() {
				http.Error(w, "draining: the data plane is shutting down", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		d.add(1)
		defer d.add(-1)
		next.ServeHTTP(w, r)
	})
}

func (d *drainer) isDraining() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.draining
}

func (d *drainer) add(delta int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n += delta
	if d.draining && d.n == 0 {
		d.closeIdle()
	}
}

// closeIdle closes idle once; d.mu must be held.
func (d *drainer) closeIdle() {
	select {
	case <-d.idle:
	default:
		close(d.idle)
	}
}

// start marks the drain begun; wait then returns once no request is in
// flight.
func (d *drainer) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
	if d.n == 0 {
		d.closeIdle()
	}
}

// wait blocks until no request is in flight after start, or ctx ends; it
// returns how many were still in flight.
func (d *drainer) wait(ctx context.Context) int {
	select {
	case <-d.idle:
		return 0
	case <-ctx.Done():
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.n
	}
}
