//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// serverState returns the state the data plane's /health reports for name
// ("" when it is not listed).
func serverState(t testing.TB, dp *dataPlane, name string) string {
	t.Helper()
	var h dpHealth
	getJSON(t, "http://"+dp.listen+"/health", &h)
	for _, s := range h.Servers {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

// startHTTPBackendAt starts a demo backend on a fixed address (used to bring
// a killed backend back on the same port).
func startHTTPBackendAt(t testing.TB, name, addr string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--name", name, "--http", addr}, extra...)
	p := startProc(t, "backend "+name, nil, bin("demo-backend"), args...)
	p.waitLine(listeningRE, 10*time.Second)
	return p
}

// TestRetryScheduleUnavailableAndRecovery kills an HTTP backend and watches it
// go retrying → unavailable on the 1-2-4-8 s schedule while another backend
// keeps answering, then brings it back on the same port and sees it healthy
// and listed again within a second.
func TestRetryScheduleUnavailableAndRecovery(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-r")
	addr := freeAddr(t)
	flaky := startHTTPBackendAt(t, "flaky", addr)
	mustCtl(t, cp, "server", "add", "flaky", "--url", "http://"+addr+"/mcp")
	mustCtl(t, cp, "server", "add", "steady", "--", bin("demo-backend"), "--name", "steady")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, 10*time.Second, "both backends listed", func() bool {
		n := toolNames(t, c)
		return has(n, "flaky__echo") && has(n, "steady__echo")
	})

	flaky.kill()
	killed := time.Now()
	// Record every state the data plane reports, with its time.
	type obs struct {
		at    time.Duration
		state string
	}
	var seen []obs
	last := ""
	var steadyCalls, steadyFails int
	deadline := killed.Add(25 * time.Second)
	for time.Now().Before(deadline) {
		st := serverState(t, dp, "flaky")
		if st != last {
			seen = append(seen, obs{time.Since(killed), st})
			last = st
		}
		if st == "unavailable" {
			break
		}
		if _, err := callErr(c, 5*time.Second, "steady__echo", map[string]any{"text": "x"}); err != nil {
			steadyFails++
		}
		steadyCalls++
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("measure: flaky state timeline after kill: %v", seen)
	if last != "unavailable" {
		t.Fatalf("flaky never became unavailable: %v", seen)
	}
	// The schedule runs from the first failure (when the data plane noticed the
	// loss and went retrying): 1+2+4+8 s of waits, then unavailable at ~15 s (±1 s).
	var retryingAt time.Duration = -1
	for _, o := range seen {
		if o.state == "retrying" && retryingAt < 0 {
			retryingAt = o.at
		}
	}
	if retryingAt < 0 {
		t.Fatalf("never saw retrying before unavailable: %v", seen)
	}
	if retryingAt > 2*time.Second {
		t.Errorf("the loss of the backend was noticed only after %v", retryingAt)
	}
	if d := seen[len(seen)-1].at - retryingAt; d < 14*time.Second || d > 16*time.Second {
		t.Errorf("unavailable %v after the first failure, want 15s ±1s (timeline %v)", d, seen)
	}
	if steadyFails != 0 {
		t.Errorf("%d of %d calls to the healthy backend failed while flaky was down", steadyFails, steadyCalls)
	}
	eventually(t, 2*time.Second, "flaky's tools leave the list", func() bool { return !has(toolNames(t, c), "flaky__echo") })
	// A call to the unavailable backend fails fast with a message naming it.
	start := time.Now()
	_, err := callErr(c, 10*time.Second, "flaky__echo", map[string]any{"text": "x"})
	if err == nil || !strings.Contains(err.Error(), "flaky") {
		t.Errorf("call to unavailable backend: err = %v, want an error naming flaky", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("call to unavailable backend took %v, want a fast failure", d)
	}

	// Bring it back on the same port: healthy and listed again within 1 s.
	startHTTPBackendAt(t, "flaky", addr)
	back := time.Now()
	eventually(t, 20*time.Second, "flaky healthy and listed", func() bool {
		return serverState(t, dp, "flaky") == "healthy" && has(toolNames(t, c), "flaky__echo")
	})
	took := time.Since(back)
	t.Logf("measure: flaky healthy and listed %v after it came back", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("flaky took %v to be healthy and listed again, want under 1s", took)
	}
}

// TestRecoveryTime measures how long a backend that returns takes to be
// served again (median and p99 of 20), with a short retry schedule so that
// the backend is unavailable before it returns.
func TestRecoveryTime(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	mustCtl(t, cp, "config", "set", "resilience.backoff", "50ms,50ms")
	dp := startDataPlane(t, cp, "dp-rt")
	addr := freeAddr(t)
	b := startHTTPBackendAt(t, "rec", addr)
	mustCtl(t, cp, "server", "add", "rec", "--url", "http://"+addr+"/mcp")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, 10*time.Second, "rec listed", func() bool { return has(toolNames(t, c), "rec__echo") })

	var rec []time.Duration
	for i := 0; i < 20; i++ {
		b.kill()
		eventually(t, 10*time.Second, "rec unavailable", func() bool { return serverState(t, dp, "rec") == "unavailable" })
		b = startHTTPBackendAt(t, "rec", addr)
		back := time.Now()
		eventually(t, 5*time.Second, "rec served again", func() bool {
			_, err := callErr(c, 2*time.Second, "rec__echo", map[string]any{"text": "x"})
			return err == nil && has(toolNames(t, c), "rec__echo")
		})
		rec = append(rec, time.Since(back))
	}
	sort.Slice(rec, func(i, j int) bool { return rec[i] < rec[j] })
	t.Logf("measure: recovery after backend returns (n=20, probe interval 500ms): median %v, p99 %v, min %v",
		rec[len(rec)/2].Round(time.Millisecond), rec[len(rec)-1].Round(time.Millisecond), rec[0].Round(time.Millisecond))
}

// TestStdioBackendRestarted kills a stdio backend's process and sees the data
// plane spawn a new one.
func TestStdioBackendRestarted(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-s")
	mustCtl(t, cp, "server", "add", "kid", "--", bin("demo-backend"), "--name", "kid")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, 10*time.Second, "kid listed", func() bool { return has(toolNames(t, c), "kid__whoami") })
	who := callText(t, c, "kid__whoami", nil)
	var pid int
	if _, err := fmt.Sscanf(who[strings.Index(who, "pid=")+4:], "%d", &pid); err != nil || pid <= 0 {
		t.Fatalf("whoami = %q: no pid", who)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill stdio backend %d: %v", pid, err)
	}
	killed := time.Now()
	eventually(t, 10*time.Second, "a new kid process answers", func() bool {
		w, err := callErr(c, 2*time.Second, "kid__whoami", nil)
		return err == nil && !strings.Contains(w, fmt.Sprintf("pid=%d", pid))
	})
	t.Logf("measure: stdio backend respawned and answering %v after kill -9", time.Since(killed).Round(time.Millisecond))
}

// TestHungToolTimesOut: a tool that hangs gets a timeout error naming its
// backend while calls to another backend keep succeeding.
func TestHungToolTimesOut(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-h")
	_, slowURL := startHTTPBackend(t, "slow")
	mustCtl(t, cp, "server", "add", "slow", "--url", slowURL, "--timeout", "1s")
	mustCtl(t, cp, "server", "add", "fast", "--", bin("demo-backend"), "--name", "fast")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, 10*time.Second, "both listed", func() bool {
		n := toolNames(t, c)
		return has(n, "slow__sleep") && has(n, "fast__echo")
	})

	var wg sync.WaitGroup
	hungErr := make(chan error, 4)
	hungTook := make(chan time.Duration, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := callErr(c, 30*time.Second, "slow__sleep", map[string]any{"ms": 20000})
			hungErr <- err
			hungTook <- time.Since(start)
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the hung calls reach the backend
	var fastMax time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		if _, err := callErr(c, 5*time.Second, "fast__echo", map[string]any{"text": "x"}); err != nil {
			t.Errorf("call to fast backend while slow hangs: %v", err)
		}
		if d := time.Since(start); d > fastMax {
			fastMax = d
		}
	}
	wg.Wait()
	close(hungErr)
	close(hungTook)
	for err := range hungErr {
		if err == nil || !strings.Contains(err.Error(), "slow") {
			t.Errorf("hung call: err = %v, want a timeout error naming backend slow", err)
		}
	}
	for d := range hungTook {
		if d > 3*time.Second {
			t.Errorf("hung call returned after %v, want ~1s (server timeout)", d)
		}
	}
	if fastMax > 500*time.Millisecond {
		t.Errorf("slowest call to the fast backend took %v while another backend hung", fastMax)
	}
	t.Logf("measure: slowest call to a healthy backend while another hung: %v", fastMax.Round(time.Microsecond))
}

// TestTwoEndpoints: a server with two endpoints spreads calls evenly when both
// are up and keeps answering when one is killed under load.
func TestTwoEndpoints(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-lb")
	pa, ua := startHTTPBackend(t, "rep-a")
	_, ub := startHTTPBackend(t, "rep-b")
	mustCtl(t, cp, "server", "add", "rep", "--url", ua, "--endpoint", ub)
	c := mcpClient(t, dp.mcpURL())
	eventually(t, 10*time.Second, "rep listed", func() bool { return has(toolNames(t, c), "rep__whoami") })
	eventually(t, 10*time.Second, "both endpoints connected", func() bool {
		seen := map[string]bool{}
		for i := 0; i < 10; i++ {
			w, err := callErr(c, 2*time.Second, "rep__whoami", nil)
			if err == nil {
				seen[strings.Fields(w)[0]] = true
			}
		}
		return len(seen) == 2
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
				w, err := callErr(c, 5*time.Second, "rep__whoami", nil)
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
	for name, n := range counts {
		if n < 140 || n > 260 {
			t.Errorf("endpoint %s got %d of 400 calls, want about 200", name, n)
		}
	}

	// Kill one endpoint under load: idempotent calls are retried on the other.
	var ok, failed atomic.Int64
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
				if _, err := callErr(c, 5*time.Second, "rep__add", map[string]any{"a": 1, "b": 2}); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	pa.kill()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("measure: killing one of two endpoints under load (4 callers, idempotent tool): %d ok, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d idempotent calls failed while one of two endpoints was killed", failed.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no call succeeded")
	}
	// The survivor answers everything now.
	for i := 0; i < 10; i++ {
		if w, err := callErr(c, 5*time.Second, "rep__whoami", nil); err != nil || !strings.HasPrefix(w, "rep-b") {
			t.Errorf("after killing rep-a: whoami = %q, %v", w, err)
		}
	}
	resp, err := http.Get("http://" + dp.listen + "/health")
	if err == nil {
		resp.Body.Close()
	}
}
