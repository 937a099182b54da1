package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/httpapi"
)

// clock is a hand-moved clock for the grace period.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newReadiness(c *clock, grace time.Duration) *httpapi.Readiness {
	return httpapi.NewReadiness(httpapi.ReadinessOptions{
		Grace: grace, Now: c.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// pending is a Rebuild argument: n backends still on their first attempt.
func pending(n int) func() int { return func() int { return n } }

func noop() {}

func wantReady(t *testing.T, r *httpapi.Readiness, want bool, whyHas string) {
	t.Helper()
	got, why := r.Ready()
	if got != want || !strings.Contains(why, whyHas) {
		t.Fatalf("Ready() = %v, %q; want %v saying %q", got, why, want, whyHas)
	}
}

func TestReadinessNeedsASnapshotAndARebuildThatSawEveryBackend(t *testing.T) {
	r := newReadiness(&clock{now: time.Unix(1000, 0)}, time.Minute)
	wantReady(t, r, false, "no config snapshot applied")
	// A rebuild with nothing applied yet (the empty server served at start).
	r.Rebuild(pending(0), noop)
	wantReady(t, r, false, "no config snapshot applied")

	r.Applied()
	wantReady(t, r, false, "not rebuilt")
	r.Rebuild(pending(2), noop)
	wantReady(t, r, false, "waiting for 2 backends")
	r.Rebuild(pending(1), noop)
	wantReady(t, r, false, "waiting for 1 backends")
	r.Rebuild(pending(0), noop)
	wantReady(t, r, true, "ok")

	// Ready is kept: a new snapshot's backends connect while the old lists
	// are served.
	r.Applied()
	r.Rebuild(pending(3), noop)
	wantReady(t, r, true, "ok")
}

func TestReadinessIgnoresARebuildThatStartedBeforeTheSnapshot(t *testing.T) {
	r := newReadiness(&clock{now: time.Unix(1000, 0)}, time.Minute)
	// The snapshot is applied while a rebuild is under way: that rebuild
	// read the backends of no snapshot, so its "none pending" says nothing
	// about the snapshot's backends.
	r.Rebuild(pending(0), func() { r.Applied() })
	wantReady(t, r, false, "not rebuilt")
	r.Rebuild(pending(0), noop)
	wantReady(t, r, true, "ok")
}

func TestReadinessCountsPendingBeforeTheRebuild(t *testing.T) {
	r := newReadiness(&clock{now: time.Unix(1000, 0)}, time.Minute)
	r.Applied()
	// The last backend finishes its first attempt during the rebuild: the
	// rebuild may or may not have seen its lists, so it is not enough.
	left := 1
	r.Rebuild(func() int { return left }, func() { left = 0 })
	wantReady(t, r, false, "waiting for 1 backends")
	r.Rebuild(func() int { return left }, noop)
	wantReady(t, r, true, "ok")
}

func TestReadinessGraceBoundsTheWaitForFirstAttempts(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	r := newReadiness(c, 10*time.Second)

	// The grace runs from the first snapshot: time alone is not enough.
	c.Advance(time.Hour)
	wantReady(t, r, false, "no config snapshot applied")

	r.Applied()
	c.Advance(10 * time.Second)
	wantReady(t, r, false, "not rebuilt") // a snapshot without its lists is never ready

	r = newReadiness(c, 10*time.Second)
	r.Applied()
	r.Rebuild(pending(1), noop)
	c.Advance(10*time.Second - time.Nanosecond)
	wantReady(t, r, false, "waiting for 1 backends")
	c.Advance(time.Nanosecond)
	wantReady(t, r, true, "1 backends were still on their first connect attempt")
	r.Rebuild(pending(1), noop)
	wantReady(t, r, true, "1 backends were still")
}

func TestReadinessDefaultGrace(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	r := newReadiness(c, 0)
	r.Applied()
	r.Rebuild(pending(4), noop)
	c.Advance(httpapi.DefaultReadyGrace - time.Millisecond)
	wantReady(t, r, false, "waiting for 4 backends")
	c.Advance(time.Millisecond)
	wantReady(t, r, true, "4 backends")
}

func TestReadinessConcurrentRebuilds(t *testing.T) {
	r := newReadiness(&clock{now: time.Unix(1000, 0)}, time.Minute)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 4 {
				r.Applied()
			}
			r.Rebuild(pending(i%2), noop)
			r.Ready()
		}()
	}
	wg.Wait()
	r.Rebuild(pending(0), noop)
	wantReady(t, r, true, "ok")
}

func serve(t *testing.T, opts httpapi.Options) string {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	api, err := httpapi.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	ts := httptest.NewServer(api.Instrument(mux))
	t.Cleanup(ts.Close)
	return ts.URL
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestReadyzAnswersReadiness(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	r := newReadiness(c, 10*time.Second)
	url := serve(t, httpapi.Options{Ready: r.Ready})

	if code, _ := getText(t, url+"/livez"); code != http.StatusOK {
		t.Errorf("/livez = %d, want 200 while the process runs", code)
	}
	steps := []struct {
		do   func()
		code int
		body string
	}{
		{noop, 503, "no config snapshot applied yet"},
		{r.Applied, 503, "config snapshot applied, aggregated lists not rebuilt yet"},
		{func() { r.Rebuild(pending(2), noop) }, 503, "waiting for 2 backends' first connect attempt"},
		{func() { r.Rebuild(pending(0), noop) }, 200, "ok"},
	}
	for _, s := range steps {
		s.do()
		if code, body := getText(t, url+"/readyz"); code != s.code || body != s.body {
			t.Fatalf("/readyz = %d %q, want %d %q", code, body, s.code, s.body)
		}
	}
}

func TestReadyzWithoutReadinessIsNotReady(t *testing.T) {
	url := serve(t, httpapi.Options{})
	if code, body := getText(t, url+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with no Ready func = %d %q, want 503", code, body)
	}
}
