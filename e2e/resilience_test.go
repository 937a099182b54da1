//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// hostPort is the host:port of a URL.
func hostPort(t testing.TB, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("URL %q: no host (%v)", rawURL, err)
	}
	return u.Host
}

// outcome is one failed connect (or lost connection) of a backend, as the
// data plane logged it: when, which failure of the schedule, and the state
// it left the backend in.
type outcome struct {
	at       time.Time
	failures string
	state    string
}

// failures returns the failure outcomes of server the data plane logged at or
// after since, in order.
func failures(dp *dataPlane, server string, since time.Time) []outcome {
	var out []outcome
	for _, l := range dp.logLines("server", server, "failures", "*", "state", "*") {
		if !l.Time.Before(since) {
			out = append(out, outcome{l.Time, fmt.Sprint(l.Attrs["failures"]), fmt.Sprint(l.Attrs["state"])})
		}
	}
	return out
}

// TestRetryScheduleUnavailableAndRecovery kills an HTTP backend and watches it
// go retrying → unavailable on the 1-2-4-8 s schedule while another backend
// keeps answering, then brings it back on the same port and sees it healthy
// and listed again. The schedule and the recovery are measured from the data
// plane's own timestamps (its log and /health's since), not from how fast
// the test noticed.
func TestRetryScheduleUnavailableAndRecovery(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-r")
	flaky, flakyURL := startHTTPBackend(t, "flaky")
	addr := hostPort(t, flakyURL)
	mustCtl(t, cp, "server", "add", "flaky", "--url", flakyURL)
	mustCtl(t, cp, "server", "add", "steady", "--", bin("demo-backend"), "--name", "steady")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "both backends listed", func() error {
		return toolsListed(c, []string{"flaky__echo", "steady__echo"})
	})
	dp.waitState(t, "flaky", "healthy")
	dp.waitState(t, "steady", "healthy")

	beforeKill := time.Now()
	flaky.kill()
	// Until flaky is unavailable, the healthy backend keeps answering.
	var retrying, unavailable serverHealth
	var steadyCalls, steadyFails int
	var steadyErr error
	eventually(t, 60*time.Second, "flaky unavailable", func() error {
		steadyCalls++
		if _, err := callErr(c, callTimeout, "steady__echo", map[string]any{"text": "x"}); err != nil {
			steadyFails++
			steadyErr = err
		}
		s, err := dp.server("flaky")
		if err != nil {
			return err
		}
		switch s.State {
		case "retrying":
			if retrying.State == "" {
				retrying = s
			}
		case "unavailable":
			unavailable = s
			return nil
		}
		return fmt.Errorf("flaky is %s", s.State)
	})
	if steadyFails != 0 {
		t.Errorf("%d of %d calls to the healthy backend failed while flaky was down; last: %v", steadyFails, steadyCalls, steadyErr)
	}
	if retrying.State == "" {
		t.Fatalf("/health never showed flaky retrying before unavailable (since %v)", unavailable.Since)
	}

	// The schedule, from the data plane's log: the loss is failure 1; the
	// retries after 1, 2, 4 and 8 s are failures 2-5; the last one makes the
	// backend unavailable.
	steps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	var got []outcome
	eventually(t, waitTimeout, "the data plane's log of flaky's 5 failures", func() error {
		got = failures(dp, "flaky", beforeKill)
		if len(got) < len(steps)+1 {
			return fmt.Errorf("%d failures logged: %v", len(got), got)
		}
		return nil
	})
	got = got[:len(steps)+1]
	var waits []time.Duration
	for i, o := range got {
		wantState := "retrying"
		if i == len(steps) {
			wantState = "unavailable"
		}
		if o.failures != fmt.Sprint(i+1) || o.state != wantState {
			t.Errorf("failure %d logged as failures=%s state=%s, want failures=%d state=%s (all: %v)", i+1, o.failures, o.state, i+1, wantState, got)
		}
		if i > 0 {
			waits = append(waits, got[i].at.Sub(got[i-1].at))
		}
	}
	noticed := got[0].at.Sub(beforeKill)
	total := unavailable.Since.Sub(retrying.Since)
	t.Logf("measure: flaky's loss noticed %v after the kill; waits between failures %v (spec 1s 2s 4s 8s); unavailable %v after the first failure by /health since (spec 15s)",
		ms(noticed), waits, ms(total))
	for i, w := range waits {
		// A wait can only run late (timer, connect time, load), never early.
		if w < steps[i]-10*time.Millisecond || w > steps[i]+3*time.Second {
			t.Errorf("wait %d of the retry schedule was %v, want %v (failure bounds -10ms/+3s)", i+1, w, steps[i])
		}
	}
	if total < 15*time.Second-10*time.Millisecond || total > 20*time.Second {
		t.Errorf("unavailable %v after the first failure, want 15s (failure bounds 15s-20s)", total)
	}
	if d := retrying.Since.Sub(got[0].at); d < -time.Second || d > time.Second {
		t.Errorf("/health says retrying since %v, the log has the loss at %v", retrying.Since, got[0].at)
	}
	if noticed > 10*time.Second {
		t.Errorf("the loss of the backend was noticed only %v after the kill (failure bound 10s)", noticed)
	}

	eventually(t, waitTimeout, "flaky's tools leave the list", func() error {
		return toolsListed(c, []string{"steady__echo"}, "flaky__echo")
	})
	// A call to the unavailable backend fails fast (one inline reconnect,
	// refused at once) with a message naming it, not at its 60 s timeout.
	start := time.Now()
	_, err := callErr(c, 60*time.Second, "flaky__echo", map[string]any{"text": "x"})
	took := time.Since(start)
	t.Logf("measure: call to the unavailable backend failed after %v", ms(took))
	if err == nil || !strings.Contains(err.Error(), "flaky") {
		t.Errorf("call to unavailable backend: err = %v, want an error naming flaky", err)
	}
	if took > 10*time.Second {
		t.Errorf("call to unavailable backend took %v, want a fast failure (failure bound 10s)", took)
	}

	// Bring it back on the same port: the probe finds it and it is healthy
	// and listed again (spec: under 1 s from the port answering).
	back, _ := startHTTPBackendAt(t, "flaky", addr)
	up := back.listenedAt()
	eventually(t, waitTimeout, "flaky healthy and listed", func() error {
		return toolsListed(c, []string{"flaky__echo", "steady__echo"})
	})
	s := dp.waitState(t, "flaky", "healthy")
	recovery := s.Since.Sub(up)
	t.Logf("measure: flaky healthy %v after its port answered again, by the data plane's /health since (spec: under 1s)", ms(recovery))
	if recovery < 0 || recovery > 5*time.Second {
		t.Errorf("flaky healthy %v after it came back, want under 1s (failure bound 5s)", recovery)
	}
}

// TestRecoveryTime measures how long a backend that returns takes to be
// healthy again (median and p99 of 20), from the backend's own "listening"
// timestamp to the data plane's healthy since, with a short retry schedule
// so that the backend is unavailable (and probed) before it returns.
func TestRecoveryTime(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	mustCtl(t, cp, "config", "set", "resilience.backoff", "50ms,50ms")
	dp := startDataPlane(t, cp, "dp-rt")
	b, recURL := startHTTPBackend(t, "rec")
	addr := hostPort(t, recURL)
	mustCtl(t, cp, "server", "add", "rec", "--url", recURL)
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "rec listed", func() error { return toolsListed(c, []string{"rec__echo"}) })

	var rec []time.Duration
	for i := 0; i < 20; i++ {
		b.kill()
		dp.waitState(t, "rec", "unavailable")
		b, _ = startHTTPBackendAt(t, "rec", addr)
		up := b.listenedAt()
		eventually(t, waitTimeout, "rec served again", func() error {
			if _, err := callErr(c, rpcTimeout, "rec__echo", map[string]any{"text": "x"}); err != nil {
				return err
			}
			return toolsListed(c, []string{"rec__echo"})
		})
		s := dp.waitState(t, "rec", "healthy")
		rec = append(rec, s.Since.Sub(up))
	}
	sort.Slice(rec, func(i, j int) bool { return rec[i] < rec[j] })
	t.Logf("measure: recovery after backend returns (n=20, probe interval 500ms, by the data plane's healthy since): median %v, p99 %v, min %v (spec: under 1s)",
		ms(rec[len(rec)/2]), ms(rec[len(rec)-1]), ms(rec[0]))
	if rec[0] < 0 || rec[len(rec)-1] > 5*time.Second {
		t.Errorf("recoveries ranged %v to %v, want under 1s (failure bounds 0-5s)", rec[0], rec[len(rec)-1])
	}
}

// TestStdioBackendRestarted kills a stdio backend's process and sees the data
// plane spawn a new one.
func TestStdioBackendRestarted(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-s")
	mustCtl(t, cp, "server", "add", "kid", "--", bin("demo-backend"), "--name", "kid")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "kid listed", func() error { return toolsListed(c, []string{"kid__whoami"}) })
	who := callText(t, c, "kid__whoami", nil)
	var pid int
	if i := strings.Index(who, "pid="); i < 0 {
		t.Fatalf("whoami = %q: no pid", who)
	} else if _, err := fmt.Sscanf(who[i+4:], "%d", &pid); err != nil || pid <= 0 {
		t.Fatalf("whoami = %q: no pid", who)
	}
	beforeKill := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill stdio backend %d: %v", pid, err)
	}
	eventually(t, waitTimeout, "a new kid process answers", func() error {
		w, err := callErr(c, rpcTimeout, "kid__whoami", nil)
		if err != nil {
			return err
		}
		if strings.Contains(w, fmt.Sprintf("pid=%d", pid)) {
			return fmt.Errorf("whoami %q: still the killed process", w)
		}
		return nil
	})
	var lost []outcome
	eventually(t, waitTimeout, "the data plane's log of kid's exit", func() error {
		if lost = failures(dp, "kid", beforeKill); len(lost) == 0 {
			return fmt.Errorf("no failure of kid logged")
		}
		return nil
	})
	s := dp.waitState(t, "kid", "healthy")
	respawn := s.Since.Sub(lost[0].at)
	t.Logf("measure: stdio backend healthy again %v after the data plane saw it exit (retry schedule's first step: 1s)", ms(respawn))
	if respawn < 0 || respawn > 10*time.Second {
		t.Errorf("stdio backend respawned %v after its exit (failure bounds 0-10s)", respawn)
	}
}

// inFlightPOSTs reads the data plane's count of POST requests being served
// (each MCP request of a streamable HTTP client is one).
func inFlightPOSTs(dp *dataPlane) (int, error) {
	resp, err := httpc.Get("http://" + dp.listen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	const name = `mcpmesh_dataplane_http_requests_in_flight{method="POST"} `
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, nil // no POST seen yet
}

// TestHungToolTimesOut: a tool that hangs gets a timeout error naming its
// backend, at the server's timeout, while calls to another backend keep
// succeeding during the hang.
func TestHungToolTimesOut(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-h")
	_, slowURL := startHTTPBackend(t, "slow")
	// The timeout is long enough for the fast calls below to run inside it
	// on a loaded machine, and far below the tool's 30 s sleep.
	const timeout = 5 * time.Second
	mustCtl(t, cp, "server", "add", "slow", "--url", slowURL, "--timeout", timeout.String())
	mustCtl(t, cp, "server", "add", "fast", "--", bin("demo-backend"), "--name", "fast")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "both listed", func() error {
		return toolsListed(c, []string{"slow__sleep", "fast__echo"})
	})
	dp.waitState(t, "slow", "healthy")
	dp.waitState(t, "fast", "healthy")

	const hung = 4
	var wg sync.WaitGroup
	var hungDone atomic.Int32
	hungErr := make(chan error, hung)
	hungTook := make(chan time.Duration, hung)
	for i := 0; i < hung; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := callErr(c, 60*time.Second, "slow__sleep", map[string]any{"ms": 30000})
			hungDone.Add(1)
			hungErr <- err
			hungTook <- time.Since(start)
		}()
	}
	eventually(t, waitTimeout, "the hung calls in flight on the data plane", func() error {
		n, err := inFlightPOSTs(dp)
		if err != nil {
			return err
		}
		if n < hung {
			return fmt.Errorf("%d POSTs in flight", n)
		}
		return nil
	})
	// Calls to the fast backend while every hung call is still waiting: if
	// they queued behind the slow backend, none would finish before the
	// hung calls' timeout.
	var fastMax time.Duration
	during := 0
	for i := 0; i < 20 && hungDone.Load() == 0; i++ {
		start := time.Now()
		if _, err := callErr(c, callTimeout, "fast__echo", map[string]any{"text": "x"}); err != nil {
			t.Errorf("call to fast backend while slow hangs: %v", err)
		}
		if hungDone.Load() == 0 {
			during++
			fastMax = max(fastMax, time.Since(start))
		}
	}
	wg.Wait()
	close(hungErr)
	close(hungTook)
	t.Logf("measure: %d calls to a healthy backend finished while %d calls hung on another; slowest %v", during, hung, fastMax.Round(time.Microsecond))
	if during < 5 {
		t.Errorf("only %d calls to the fast backend finished while the slow one hung, want at least 5", during)
	}
	for err := range hungErr {
		if err == nil || !strings.Contains(err.Error(), `"slow"`) || !strings.Contains(err.Error(), timeout.String()) {
			t.Errorf("hung call: err = %v, want the data plane's timeout error naming backend slow and %v", err, timeout)
		}
	}
	var took []time.Duration
	for d := range hungTook {
		took = append(took, d)
		// Not before the server's timeout; long before the tool would end.
		if d < timeout || d > 25*time.Second {
			t.Errorf("hung call returned after %v, want the server timeout %v (failure bounds %v-25s)", d, timeout, timeout)
		}
	}
	t.Logf("measure: hung calls returned after %v (server timeout %v)", took, timeout)
}

// TestTwoEndpoints: a server with two endpoints spreads calls evenly when both
// are up and keeps answering when one is killed under load.
func TestTwoEndpoints(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-lb")
	pa, ua := startHTTPBackend(t, "rep-a")
	_, ub := startHTTPBackend(t, "rep-b")
	// Shared upstream sessions: one client's requests are balanced request by
	// request. (Per-client sessions pin a client to the endpoint its session
	// lives on; TestPerClientSessionsSpread covers those.)
	mustCtl(t, cp, "server", "add", "rep", "--url", ua, "--endpoint", ub, "--session", "shared")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "rep listed", func() error { return toolsListed(c, []string{"rep__whoami"}) })
	eventually(t, waitTimeout, "both endpoints connected", func() error {
		seen := map[string]bool{}
		var lastErr error
		for i := 0; i < 10; i++ {
			w, err := callErr(c, rpcTimeout, "rep__whoami", nil)
			if err != nil {
				lastErr = err
				continue
			}
			seen[strings.Fields(w)[0]] = true
		}
		if len(seen) != 2 {
			return fmt.Errorf("10 calls answered by %v (last error %v)", seen, lastErr)
		}
		return nil
	})

	// Spread: concurrent callers, count which replica answered.
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				w, err := callErr(c, callTimeout, "rep__whoami", nil)
				if err != nil {
					t.Errorf("whoami: %v", err)
					return
				}
				mu.Lock()
				counts[strings.Fields(w)[0]]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("measure: 400 calls over two healthy endpoints: %v", counts)
	// The picker sends each call to the endpoint with fewer calls in flight
	// (round robin on ties), so on an idle machine the two get about 200
	// each; on a loaded one a replica that is descheduled for a moment
	// rightly gets less (35/65 was seen). What must hold is that both take
	// a real share: a picker stuck on one endpoint gives 400/0.
	if len(counts) != 2 {
		t.Errorf("calls answered by %v, want both endpoints", counts)
	}
	for name, n := range counts {
		if n < 100 {
			t.Errorf("endpoint %s got %d of 400 calls, want at least a quarter", name, n)
		}
	}

	// Kill one endpoint under load: idempotent calls are retried on the
	// other. The load runs until enough calls went through before the kill
	// and after the data plane saw the loss, however slow the machine.
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := callErr(c, callTimeout, "rep__add", map[string]any{"a": 1, "b": 2}); err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	atLeast := func(n int64) func() error {
		return func() error {
			if got := ok.Load(); got < n {
				return fmt.Errorf("%d calls succeeded so far", got)
			}
			return nil
		}
	}
	eventually(t, waitTimeout, "20 calls under load before the kill", atLeast(20))
	pa.kill()
	// rep stays healthy (rep-b answers) and its health names the lost endpoint.
	lossSeen := func() error {
		s, err := dp.server("rep")
		if err != nil {
			return err
		}
		if s.State != "healthy" || !strings.Contains(s.LastError, ua) {
			return fmt.Errorf("rep is %s with last error %q, want healthy with an error naming %s", s.State, s.LastError, ua)
		}
		return nil
	}
	eventually(t, waitTimeout, "the data plane sees rep-a gone", lossSeen)
	eventually(t, waitTimeout, "100 calls under load after the loss", atLeast(ok.Load()+100))
	close(stop)
	wg.Wait()
	t.Logf("measure: killing one of two endpoints under load (4 callers, idempotent tool): %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d idempotent calls failed while one of two endpoints was killed; last: %v", failed.Load(), lastErr.Load())
	}
	// The survivor answers everything now.
	for i := 0; i < 10; i++ {
		if w, err := callErr(c, callTimeout, "rep__whoami", nil); err != nil || !strings.HasPrefix(w, "rep-b") {
			t.Errorf("after killing rep-a: whoami = %q, %v", w, err)
		}
	}
	if err := lossSeen(); err != nil {
		t.Errorf("/health after the calls: %v", err)
	}
}

// TestPerClientSessionsSpread: with per-client upstream sessions (the default
// for HTTP servers) each client session's upstream session lives on one
// endpoint, so its calls stay there, and the picker spreads the clients'
// sessions over the endpoints. (2025-11-25 clients: 2026-07-28 has no
// sessions, so its requests use the shared connection.)
func TestPerClientSessionsSpread(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-pc")
	_, ua := startHTTPBackend(t, "pc-a")
	_, ub := startHTTPBackend(t, "pc-b")
	mustCtl(t, cp, "server", "add", "pc", "--url", ua, "--endpoint", ub)
	first := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "pc listed", func() error { return toolsListed(first, []string{"pc__whoami"}) })
	eventually(t, waitTimeout, "both endpoints healthy", func() error {
		s, err := dp.server("pc")
		if err != nil {
			return err
		}
		if s.State != "healthy" {
			return fmt.Errorf("pc is %s", s.State)
		}
		return nil
	})
	perEndpoint := map[string]int{}
	for i := 0; i < 8; i++ {
		c := mcpClientVersion(t, dp.mcpURL(), mcp.ProtocolVersion20251125)
		seen := map[string]bool{}
		for j := 0; j < 5; j++ {
			w, err := callErr(c, rpcTimeout, "pc__whoami", nil)
			if err != nil {
				t.Fatalf("client %d: whoami: %v", i, err)
			}
			seen[strings.Fields(w)[0]] = true
		}
		if len(seen) != 1 {
			t.Errorf("client %d was answered by %v: its upstream session must stay on one endpoint", i, seen)
		}
		for ep := range seen {
			perEndpoint[ep]++
		}
	}
	t.Logf("measure: 8 clients' upstream sessions per endpoint: %v", perEndpoint)
	if len(perEndpoint) != 2 {
		t.Errorf("sessions per endpoint %v: the picker must spread clients over both endpoints", perEndpoint)
	}
}
