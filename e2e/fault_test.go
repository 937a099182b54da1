//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"

	"github.com/mcpmesh/mcpmesh/internal/faultproxy"
)

// newFaultProxy starts a fault-injecting proxy in front of target (host:port).
func newFaultProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// echoes is nil when tool echoes text back through c.
func echoes(c *client.Client, tool, text string) error {
	got, err := callErr(c, 10*time.Second, tool, map[string]any{"text": text})
	if err != nil {
		return fmt.Errorf("call %s: %w", tool, err)
	}
	if got != text {
		return fmt.Errorf("call %s: got %q, want %q", tool, got, text)
	}
	return nil
}

// TestControlPlaneBlackholed puts a network that silently drops every byte
// between a data plane and its control plane. The data plane must notice
// through gRPC keepalive (10 s + 5 s), keep serving its last good config,
// and, once the network passes traffic again, reconnect and pick up a server
// registered meanwhile.
func TestControlPlaneBlackholed(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	px := newFaultProxy(t, cp.grpcAddr)
	dp := startDataPlaneVia(t, cp, "dp-bh", px.Addr())
	mustCtl(t, cp, "server", "add", "steady", "--", bin("demo-backend"), "--name", "steady")
	c := mcpClient(t, dp.mcpURL())
	var before dpHealth
	eventually(t, 30*time.Second, "steady listed through a connected data plane", func() error {
		h, err := dp.health()
		if err != nil {
			return err
		}
		if h.ControlPlane != "connected" {
			return fmt.Errorf("control_plane = %q", h.ControlPlane)
		}
		before = h
		return toolsListed(c, []string{"steady__echo"})
	})

	px.Blackhole()
	blackholed := time.Now()
	var servedDuring int
	noticed := eventually(t, 60*time.Second, "the data plane to notice the dead control plane connection", func() error {
		// Calls keep working all along: they never touch the control plane.
		if err := echoes(c, "steady__echo", "during"); err != nil {
			t.Errorf("with the control plane blackholed: %v", err)
		} else {
			servedDuring++
		}
		h, err := dp.health()
		if err != nil {
			return err
		}
		if h.ControlPlane == "connected" {
			return errors.New("control_plane still connected")
		}
		return nil
	})
	t.Logf("measure: data plane noticed a blackholed control plane after %v (keepalive 10s + 5s); %d calls served meanwhile",
		noticed.Round(time.Millisecond), servedDuring)

	// A server registered now cannot reach the data plane: the proxy drops
	// its snapshot (this also proves the blackhole is real).
	mustCtl(t, cp, "server", "add", "late", "--", bin("demo-backend"), "--name", "late")
	h, err := dp.health()
	if err != nil {
		t.Fatal(err)
	}
	if h.ConfigRevision != before.ConfigRevision {
		t.Fatalf("config_revision moved from %d to %d through a blackhole", before.ConfigRevision, h.ConfigRevision)
	}
	if err := toolsListed(c, []string{"late__echo"}); err == nil {
		t.Fatal("late__echo listed while the control plane is blackholed")
	}
	if err := echoes(c, "steady__echo", "still"); err != nil {
		t.Fatalf("last good config not served: %v", err)
	}

	px.Pass()
	healed := time.Now()
	eventually(t, 60*time.Second, "reconnect and the server registered meanwhile", func() error {
		h, err := dp.health()
		if err != nil {
			return err
		}
		if h.ControlPlane != "connected" || h.ConfigRevision <= before.ConfigRevision {
			return fmt.Errorf("control_plane %q at revision %d (was %d)", h.ControlPlane, h.ConfigRevision, before.ConfigRevision)
		}
		return toolsListed(c, []string{"late__echo", "steady__echo"})
	})
	t.Logf("measure: reconnected and applied the new config %v after the network came back (blackhole lasted %v)",
		time.Since(healed).Round(time.Millisecond), healed.Sub(blackholed).Round(time.Millisecond))
	if err := echoes(c, "late__echo", "hello"); err != nil {
		t.Fatal(err)
	}
}

// TestBackendStallsMidResponse blackholes an HTTP backend while calls to it
// are in flight: they fail at the server's timeout (2 s) with an error naming
// the backend, a second backend is unaffected, and once the network passes
// traffic again the stalled backend answers again.
func TestBackendStallsMidResponse(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-stall")
	_, stallURL := startHTTPBackend(t, "stall")
	u, err := url.Parse(stallURL)
	if err != nil {
		t.Fatal(err)
	}
	px := newFaultProxy(t, u.Host)
	u.Host = px.Addr()
	const timeout = 2 * time.Second
	mustCtl(t, cp, "server", "add", "stall", "--url", u.String(), "--timeout", timeout.String())
	mustCtl(t, cp, "server", "add", "fast", "--", bin("demo-backend"), "--name", "fast")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, 30*time.Second, "both backends answer through the proxy", func() error {
		if err := toolsListed(c, []string{"stall__sleep", "fast__echo"}); err != nil {
			return err
		}
		return echoes(c, "stall__echo", "warm")
	})

	// The backend answers each call after 500 ms, by when the proxy drops
	// its response: the calls hang mid-response, as over a dead network.
	const calls = 3
	type result struct {
		err  error
		took time.Duration
	}
	results := make(chan result, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := callErr(c, 30*time.Second, "stall__sleep", map[string]any{"ms": 500})
			results <- result{err, time.Since(start)}
		}()
	}
	// Whether a request reaches the backend before the blackhole or not, its
	// reply cannot come back: either way the call stalls in flight.
	time.Sleep(100 * time.Millisecond)
	px.Blackhole()

	// A healthy backend is not held up meanwhile.
	var fastMax time.Duration
	for range 10 {
		start := time.Now()
		if err := echoes(c, "fast__echo", "x"); err != nil {
			t.Errorf("call to fast while stall hangs: %v", err)
		}
		fastMax = max(fastMax, time.Since(start))
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err == nil {
			t.Errorf("a call through a blackholed network succeeded after %v", r.took)
			continue
		}
		if !strings.Contains(r.err.Error(), "stall") {
			t.Errorf("stalled call: err = %v, want it to name backend stall", r.err)
		}
		// It must end by the server's timeout (plus slack for a loaded
		// machine), not by the client's 30 s.
		if r.took < timeout-200*time.Millisecond || r.took > timeout+8*time.Second {
			t.Errorf("stalled call ended after %v, want about the server timeout %v: %v", r.took, timeout, r.err)
		}
		t.Logf("measure: stalled call failed after %v: %v", r.took.Round(time.Millisecond), r.err)
	}
	t.Logf("measure: slowest call to the healthy backend while the other stalled: %v", fastMax.Round(time.Millisecond))
	if px.Dropped() == 0 {
		t.Fatal("the proxy dropped nothing: the calls never crossed the blackhole")
	}

	px.Pass()
	healed := time.Now()
	eventually(t, 60*time.Second, "stall answers again once the network passes", func() error {
		return echoes(c, "stall__echo", "back")
	})
	t.Logf("measure: stalled backend answered again %v after the network came back", time.Since(healed).Round(time.Millisecond))
	if err := echoes(c, "fast__echo", "y"); err != nil {
		t.Fatal(err)
	}
}
