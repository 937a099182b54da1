//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
)

// The chaos soak: the original spec promises 99.9 % effective uptime through
// backends that are up 95 % of the time, and immediate reconnection when a
// server recovers. Each endpoint of one server is killed (SIGKILL) and
// restarted at random, up 5-15 s and down 0.25-0.75 s, so it is up about
// 95 % of the time; two clients call a read-only, idempotent tool through one
// data plane and every call is counted. `make test` runs it for 30 s;
// `make soak` for 10 minutes (MCPMESH_SOAK=10m).

const (
	soakUpMin, soakUpMax     = 5 * time.Second, 15 * time.Second
	soakDownMin, soakDownMax = 250 * time.Millisecond, 750 * time.Millisecond
	soakCallers              = 2
	// soakPace spaces each caller's calls, so the soak measures the
	// gateway's resilience rather than how fast two cores can spin.
	soakPace = 4 * time.Millisecond
)

func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("MCPMESH_SOAK")
	if v == "" {
		return 30 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("MCPMESH_SOAK=%q: want a positive duration such as 10m", v)
	}
	return d
}

// soakBounds are what a run must meet. The full soak checks the spec's
// targets; the 30-second variant in `make test` runs on a machine that may be
// loaded by a second test run, where restarting a backend alone can take
// seconds, so it checks generous bounds and reports the figures.
type soakBounds struct {
	twoEndpoints  float64       // minimum success rate
	oneEndpointOf float64       // allowed shortfall below the endpoint's uptime
	recoveryP50   time.Duration // maximum
	recoveryMax   time.Duration
}

func boundsFor(d time.Duration) soakBounds {
	if d >= 5*time.Minute {
		return soakBounds{twoEndpoints: 0.999, oneEndpointOf: 0.005, recoveryP50: time.Second, recoveryMax: 5 * time.Second}
	}
	return soakBounds{twoEndpoints: 0.99, oneEndpointOf: 0.02, recoveryP50: 5 * time.Second, recoveryMax: 15 * time.Second}
}

func TestSoakFlappingEndpoints(t *testing.T) {
	d := soakDuration(t)
	bounds := boundsFor(d)
	t.Run("two-endpoints", func(t *testing.T) {
		t.Parallel()
		r := runSoak(t, d, 2, bounds)
		// With two endpoints both must be down at once for a call to wait,
		// and a held call rides out an outage: nearly every call succeeds.
		if r.rate() < bounds.twoEndpoints {
			t.Errorf("success rate %.4f%% over %v with two endpoints, want >= %.2f%%", 100*r.rate(), d, 100*bounds.twoEndpoints)
		}
	})
	t.Run("one-endpoint", func(t *testing.T) {
		t.Parallel()
		r := runSoak(t, d, 1, bounds)
		if want := r.uptime[0] - bounds.oneEndpointOf; r.rate() < want {
			t.Errorf("success rate %.4f%% over %v with one endpoint up %.2f%%, want >= %.2f%%", 100*r.rate(), d, 100*r.uptime[0], 100*want)
		}
	})
	t.Run("recovery-from-unavailable", func(t *testing.T) {
		t.Parallel()
		n := max(1, int(d/time.Minute))
		soakUnavailableRecovery(t, n, bounds)
	})
}

// soakResult is what one soak measured.
type soakResult struct {
	calls, ok int64
	uptime    []float64       // per endpoint, over the soak
	recovery  []time.Duration // backend listening again -> data plane connected
}

func (r soakResult) rate() float64 {
	if r.calls == 0 {
		return 0
	}
	return float64(r.ok) / float64(r.calls)
}

func runSoak(t *testing.T, d time.Duration, endpoints int, bounds soakBounds) soakResult {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, fmt.Sprintf("dp-soak-%d", endpoints))
	flappers := make([]*flapper, endpoints)
	urls := make([]string, endpoints)
	for i := range flappers {
		flappers[i] = newFlapper(t, fmt.Sprintf("ep%d", i))
		urls[i] = "http://" + flappers[i].addr + "/mcp"
	}
	args := []string{"server", "add", "flaky", "--url", urls[0]}
	for _, u := range urls[1:] {
		args = append(args, "--endpoint", u)
	}
	mustCtl(t, cp, args...)
	clients := make([]*client.Client, soakCallers)
	for i := range clients {
		clients[i] = mcpClient(t, dp.mcpURL())
	}
	eventually(t, 30*time.Second, "flaky__add answers through the data plane", func() error {
		_, err := soakCall(clients[0], 1)
		return err
	})

	ctx, stop := context.WithTimeout(context.Background(), d)
	defer stop()
	var wg sync.WaitGroup
	start := time.Now()
	for i, f := range flappers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.flap(ctx, rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(i))))
		}()
	}
	var calls, ok atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	var lat []time.Duration // guarded by errMu
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				began := time.Now()
				_, err := soakCall(c, n+i)
				took := time.Since(began)
				if ctx.Err() != nil && err != nil {
					break // cut off by the end of the soak, not by the gateway
				}
				calls.Add(1)
				errMu.Lock()
				lat = append(lat, took)
				if err == nil {
					ok.Add(1)
				} else {
					errs[shortErr(err)]++
				}
				errMu.Unlock()
				time.Sleep(soakPace)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	r := soakResult{calls: calls.Load(), ok: ok.Load()}
	connected := connectedTimes(dp)
	for i, f := range flappers {
		up, restarts := f.report(start, start.Add(elapsed))
		r.uptime = append(r.uptime, up)
		rec := recoveries(restarts, connected[urls[i]])
		r.recovery = append(r.recovery, rec...)
		t.Logf("measure: soak %d endpoint(s): endpoint %d up %.2f%% of %v, %d restarts", endpoints, i, 100*up, elapsed.Round(time.Second), len(restarts))
	}
	t.Logf("measure: soak %d endpoint(s): %d of %d safe calls succeeded (%.4f%%) over %v", endpoints, r.ok, r.calls, 100*r.rate(), elapsed.Round(time.Second))
	l50, l99, lmax := percentiles(lat)
	t.Logf("measure: soak %d endpoint(s): call latency p50 %v p99 %v max %v (calls held over outages included)", endpoints, l50, l99, lmax)
	p50, p99, worst := percentiles(r.recovery)
	t.Logf("measure: soak %d endpoint(s): recovery while retrying (listening again -> connected, data plane log) n=%d p50 %v p99 %v max %v", endpoints, len(r.recovery), p50, p99, worst)
	for e, n := range errs {
		t.Logf("soak %d endpoint(s): %d calls failed with: %s", endpoints, n, e)
	}
	if r.calls < 100 {
		t.Fatalf("only %d calls in %v: the soak did not run", r.calls, elapsed)
	}
	if len(r.recovery) > 0 && p50 >= bounds.recoveryP50 {
		t.Errorf("median recovery %v while retrying, want under %v", p50, bounds.recoveryP50)
	}
	if worst > bounds.recoveryMax {
		t.Errorf("slowest recovery %v while retrying, want under %v", worst, bounds.recoveryMax)
	}
	return r
}

// soakUnavailableRecovery kills a backend until the data plane reports it
// unavailable (15 s into the default schedule), restarts it and measures,
// from the data plane's log, how long it took to be connected again.
func soakUnavailableRecovery(t *testing.T, rounds int, bounds soakBounds) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-soak-unavailable")
	f := newFlapper(t, "down")
	url := "http://" + f.addr + "/mcp"
	mustCtl(t, cp, "server", "add", "down", "--url", url)
	eventually(t, 30*time.Second, "down healthy", func() error { return soakState(dp, "down", "healthy") })
	var restarts []time.Time
	for i := 0; i < rounds; i++ {
		f.kill()
		eventually(t, 60*time.Second, "down unavailable", func() error { return soakState(dp, "down", "unavailable") })
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second)))) // anywhere in a probe's cycle
		restarts = append(restarts, f.start())
		eventually(t, 30*time.Second, "down healthy again", func() error { return soakState(dp, "down", "healthy") })
		// Up for longer than backend.StableAfter, so the next kill is a new
		// outage, not the continuation of this one.
		time.Sleep(2 * backend.StableAfter)
	}
	f.kill()
	rec := recoveries(restarts, connectedTimes(dp)[url])
	p50, p99, worst := percentiles(rec)
	t.Logf("measure: recovery from unavailable (listening again -> connected, data plane log) n=%d p50 %v p99 %v max %v", len(rec), p50, p99, worst)
	if len(rec) != rounds {
		t.Fatalf("found %d recoveries in the data plane's log, want %d", len(rec), rounds)
	}
	if p50 >= bounds.recoveryP50 || worst > bounds.recoveryMax {
		t.Errorf("recovery from unavailable p50 %v max %v, want p50 under %v and max under %v", p50, worst, bounds.recoveryP50, bounds.recoveryMax)
	}
}

// flapper runs one endpoint's backend process on a fixed port, killing and
// restarting it, and keeps when the port was open.
type flapper struct {
	t    *testing.T
	name string
	addr string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	upSince time.Time
	ups     [][2]time.Time // closed up intervals
	starts  []time.Time    // when the port accepted connections again
}

func newFlapper(t *testing.T, name string) *flapper {
	f := &flapper{t: t, name: name, addr: freeAddr(t)}
	f.start()
	t.Cleanup(f.kill)
	return f
}

// start launches the backend and returns, once its port accepts
// connections, the time it logged that it listened.
func (f *flapper) start() time.Time {
	f.t.Helper()
	cmd := exec.Command(bin("demo-backend"), "--name", f.name, "--http", f.addr, "--stateful")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lockedBuffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start backend %s: %v", f.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	var listened time.Time
	for {
		if m := listenedRE.FindStringSubmatch(out.String()); m != nil {
			ts, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				f.t.Fatalf("backend %s log time %q: %v", f.name, m[1], err)
			}
			if c, err := net.DialTimeout("tcp", f.addr, time.Second); err == nil {
				c.Close()
				listened = ts
				break
			}
		}
		select {
		case <-done:
			f.t.Fatalf("backend %s exited before listening on %s:\n%s", f.name, f.addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("backend %s not listening on %s within 30s:\n%s", f.name, f.addr, out.String())
		}
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	f.cmd, f.done, f.upSince = cmd, done, listened
	f.starts = append(f.starts, listened)
	f.mu.Unlock()
	return listened
}

// kill SIGKILLs the backend, as a crash would.
func (f *flapper) kill() {
	f.mu.Lock()
	cmd, done, since := f.cmd, f.done, f.upSince
	f.cmd = nil
	f.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	f.mu.Lock()
	f.ups = append(f.ups, [2]time.Time{since, time.Now()})
	f.mu.Unlock()
}

// flap alternates up and down periods until ctx ends, leaving it up.
func (f *flapper) flap(ctx context.Context, rnd *rand.Rand) {
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rnd.Int64N(int64(hi-lo))) }
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(between(soakUpMin, soakUpMax)):
		}
		f.kill()
		time.Sleep(between(soakDownMin, soakDownMax))
		f.start()
	}
}

// report returns the share of [from, to] the port was open and the restart
// times within it.
func (f *flapper) report(from, to time.Time) (float64, []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ups := append([][2]time.Time(nil), f.ups...)
	if f.cmd != nil {
		ups = append(ups, [2]time.Time{f.upSince, to})
	}
	var up time.Duration
	for _, u := range ups {
		a, b := u[0], u[1]
		if a.Before(from) {
			a = from
		}
		if b.After(to) {
			b = to
		}
		if b.After(a) {
			up += b.Sub(a)
		}
	}
	var restarts []time.Time
	for _, s := range f.starts {
		if s.After(from) && !s.After(to) {
			restarts = append(restarts, s)
		}
	}
	return float64(up) / float64(to.Sub(from)), restarts
}

// connectedTimes reads, per endpoint, when the data plane logged it connected.
func connectedTimes(dp *dataPlane) map[string][]time.Time {
	out := map[string][]time.Time{}
	for _, l := range dp.logLines("msg", "backend connected", "endpoint", "*") {
		ep := fmt.Sprint(l.Attrs["endpoint"])
		out[ep] = append(out[ep], l.Time)
	}
	return out
}

// recoveries pairs each restart with the first connect logged after it. The
// log has millisecond precision, so a connect up to 1 ms "before" the port
// was seen open belongs to that restart.
func recoveries(restarts, connected []time.Time) []time.Duration {
	var out []time.Duration
	j := 0
	for i, r := range restarts {
		for j < len(connected) && connected[j].Before(r.Add(-time.Millisecond)) {
			j++
		}
		if j == len(connected) {
			break
		}
		if i+1 < len(restarts) && !connected[j].Before(restarts[i+1]) {
			continue // never connected to this run of the backend
		}
		out = append(out, max(0, connected[j].Sub(r)))
		j++
	}
	return out
}

func percentiles(ds []time.Duration) (p50, p99, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.5), at(0.99), s[len(s)-1]
}

// soakCall calls the read-only, idempotent add tool and checks the sum.
func soakCall(c *client.Client, n int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var req mcp.CallToolRequest
	req.Params.Name = "flaky__add"
	req.Params.Arguments = map[string]any{"a": n, "b": 1}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return "", err
	}
	if len(res.Content) != 1 {
		return "", fmt.Errorf("add: %d contents", len(res.Content))
	}
	tc, _ := mcp.AsTextContent(res.Content[0])
	if res.IsError || tc.Text != strconv.Itoa(n+1) {
		return "", fmt.Errorf("add(%d, 1) = %q (error result: %v)", n, tc.Text, res.IsError)
	}
	return tc.Text, nil
}

// shortErr groups failures by message, without the numbers that vary.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return regexp.MustCompile(`[0-9]+(\.[0-9]+)?(ms|s|µs)?`).ReplaceAllString(s, "N")
}

// soakState checks the state the data plane's /health reports for a server.
func soakState(dp *dataPlane, name, want string) error {
	s, err := dp.server(name)
	if err != nil {
		return err
	}
	if s.State != want {
		return fmt.Errorf("%s is %s (last error %q)", name, s.State, s.LastError)
	}
	return nil
}
