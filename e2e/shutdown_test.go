//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// TestShutdownDrainsInFlightCalls sends SIGTERM to a data plane with 100
// slow tool calls in flight (streamable HTTP and legacy SSE) and checks the promise of a graceful stop: the
// control plane shows the data plane departed at once, new connections are
// refused while the calls finish, every call completes, the process exits
// within --shutdown-timeout, and no stdio child or grandchild outlives it.
func TestShutdownDrainsInFlightCalls(t *testing.T) {
	const (
		calls   = 100
		clients = 10 // 8 streamable HTTP, 2 legacy SSE (answers on the stream)
		sleepMS = 3000
		bound   = 20 * time.Second // --shutdown-timeout
	)
	dir := t.TempDir()
	cp := startControlPlane(t, filepath.Join(dir, "cp"), "", "")
	_, slowURL := startHTTPBackend(t, "slow")
	mustCtl(t, cp, "server", "add", "slow", "--url", slowURL)
	// A stdio backend whose shell leaves a grandchild running beside it.
	pids := filepath.Join(dir, "pids")
	script := fmt.Sprintf("sleep 600 & echo \"$$ $!\" > %s; exec %s --name kids", pids, bin("demo-backend"))
	mustCtl(t, cp, "server", "add", "kids", "--", "/bin/sh", "-c", script)

	// Sessionless (2026-07-28) clients on one address count as one client
	// for the concurrency limit (64 by default).
	dp := startDataPlaneVia(t, cp, "dp-drain", cp.grpcAddr, "--shutdown-timeout", bound.String(), "--max-concurrent-per-client", "1000")
	dp.waitReady(t)
	dp.waitState(t, "slow", "healthy")
	dp.waitState(t, "kids", "healthy")
	var child, grandchild int
	eventually(t, waitTimeout, "the stdio child's pids", func() error {
		b, err := os.ReadFile(pids)
		if err != nil {
			return err
		}
		if _, err := fmt.Sscanf(string(b), "%d %d", &child, &grandchild); err != nil {
			return fmt.Errorf("pids file %q: %w", b, err)
		}
		return nil
	})
	for _, pid := range []int{child, grandchild} {
		if !alive(pid) {
			t.Fatalf("process %d is not running before the stop", pid)
		}
	}
	eventually(t, waitTimeout, "the control plane to list dp-drain connected", func() error {
		return dpConnected(cp, "dp-drain", true)
	})

	cs := make([]*client.Client, clients)
	for i := range cs {
		if i < 2 {
			cs[i] = sseClient(t, "http://"+dp.listen+"/sse")
		} else {
			cs[i] = mcpClient(t, dp.mcpURL())
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := callErr(cs[i%clients], sleepMS*time.Millisecond+bound, "slow__sleep", map[string]any{"ms": sleepMS})
			if err == nil && out != "slept "+strconv.Itoa(sleepMS) {
				err = fmt.Errorf("answer %q", out)
			}
			if err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
			}
		}()
	}
	waitInFlight(t, dp, calls, errs)

	sigterm := time.Now()
	if err := dp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Departed at once: while the calls are still running, not when the
	// process is gone.
	departed := eventually(t, waitTimeout, "the control plane to show dp-drain departed", func() error {
		return dpConnected(cp, "dp-drain", false)
	})
	cp.waitLog(sigterm, "msg", "data plane departed", "dataplane", "dp-drain")
	// New connections are refused while the calls drain.
	refused := eventually(t, waitTimeout, "new connections refused", func() error {
		c, err := net.DialTimeout("tcp", dp.listen, time.Second)
		if err == nil {
			c.Close()
			return errors.New("a new connection was accepted")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return err
		}
		return nil
	})
	if dp.exited() {
		t.Fatalf("the data plane exited %v after SIGTERM, before its calls could finish", time.Since(sigterm))
	}
	if late := time.Since(sigterm); late >= sleepMS*time.Millisecond {
		t.Logf("warning: checks after SIGTERM took %v, as long as the calls", late)
	}

	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		failed++
		if failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d calls in flight at SIGTERM failed", failed, calls)
	}
	select {
	case <-dp.done:
	case <-time.After(bound + stopTimeout):
		t.Fatalf("the data plane did not exit within %v of SIGTERM", bound+stopTimeout)
	}
	exit := time.Since(sigterm)
	if dp.err != nil {
		t.Errorf("data plane exit: %v", dp.err)
	}
	if exit > bound+5*time.Second {
		t.Errorf("exit took %v after SIGTERM, bound %v (+5 s for backends)", exit, bound)
	}
	for _, pid := range []int{child, grandchild} {
		if alive(pid) {
			t.Errorf("process %d (stdio child or grandchild) outlived its data plane", pid)
		}
	}
	t.Logf("measure: SIGTERM with %d calls of %d ms in flight: departed on the control plane after %v, new connections refused after %v, exit after %v",
		calls, sleepMS, ms(departed), ms(refused), ms(exit))
}

// TestShutdownCutsAtTimeout: a call longer than --shutdown-timeout is cut
// at the bound, and the process still exits promptly.
func TestShutdownCutsAtTimeout(t *testing.T) {
	const bound = 2 * time.Second
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "cp"), "", "")
	_, slowURL := startHTTPBackend(t, "slow")
	mustCtl(t, cp, "server", "add", "slow", "--url", slowURL)
	dp := startDataPlaneVia(t, cp, "dp-cut", cp.grpcAddr, "--shutdown-timeout", bound.String())
	dp.waitReady(t)
	dp.waitState(t, "slow", "healthy")
	c := mcpClient(t, dp.mcpURL())
	errc := make(chan error, 1)
	go func() {
		_, err := callErr(c, time.Minute, "slow__sleep", map[string]any{"ms": 60000})
		errc <- err
	}()
	waitInFlight(t, dp, 1, nil)
	sigterm := time.Now()
	if err := dp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dp.done:
	case <-time.After(bound + stopTimeout):
		t.Fatalf("the data plane did not exit within %v of SIGTERM", bound+stopTimeout)
	}
	exit := time.Since(sigterm)
	if exit < bound {
		t.Errorf("exit after %v: before the %v bound, with a call in flight", exit, bound)
	}
	if exit > bound+5*time.Second {
		t.Errorf("exit after %v: the %v bound was not kept", exit, bound)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("a 60 s call succeeded although the data plane stopped after 2 s")
		}
	case <-time.After(waitTimeout):
		t.Error("the cut call never returned")
	}
	if !strings.Contains(dp.log.String(), "shutdown timeout reached with requests in flight") {
		t.Error("the data plane did not log that it cut requests at the timeout")
	}
	t.Logf("measure: SIGTERM with a 60 s call in flight, --shutdown-timeout %v: exit after %v", bound, ms(exit))
}

var inFlightRE = regexp.MustCompile(`(?m)^mcpmesh_dataplane_http_requests_in_flight\{method="POST"\} (\d+)$`)

// waitInFlight waits until dp answers at least n POSTs at once, by its own gauge.
// A call that failed already (on errs) fails the wait.
func waitInFlight(t *testing.T, dp *dataPlane, n int, errs chan error) {
	t.Helper()
	eventually(t, waitTimeout, fmt.Sprintf("%d calls in flight", n), func() error {
		select {
		case err := <-errs:
			t.Fatalf("before SIGTERM: %v", err)
		default:
		}
		body, err := getText("http://" + dp.listen + "/metrics")
		if err != nil {
			return err
		}
		m := inFlightRE.FindStringSubmatch(body)
		if m == nil {
			return errors.New("no POST in-flight gauge")
		}
		if got, _ := strconv.Atoi(m[1]); got < n {
			return fmt.Errorf("%d in flight", got)
		}
		return nil
	})
}

// sseClient connects an mcp-go legacy SSE client to url.
func sseClient(t *testing.T, url string) *client.Client {
	t.Helper()
	c, err := client.NewSSEMCPClient(url)
	if err != nil {
		t.Fatal(err)
	}
	// The stream lives as long as the client, not one request's deadline.
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start SSE client for %s: %v", url, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-e2e-sse", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dpConnected checks mcpctl status lists id with connected == want.
func dpConnected(cp *controlPlane, id string, want bool) error {
	s, err := ctlStatus(cp)
	if err != nil {
		return err
	}
	for _, d := range s.Dataplanes {
		if d.ID == id {
			if d.Connected != want {
				return fmt.Errorf("%s connected = %v", id, d.Connected)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not listed", id)
}

// alive reports whether pid runs; a zombie (exited, not reaped by init
// in a container) has ended.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func getText(url string) (string, error) {
	resp, err := httpc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, err = io.Copy(&sb, resp.Body)
	return sb.String(), err
}
