//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// hostilePeakMB is the bound the data plane's peak RSS (VmHWM) must stay
// under while it serves hostile backends and clients: a few messages of the
// 16 MB limit in flight, plus 20,000 cached tools.
const hostilePeakMB = 200

// TestHostileBackends: backends that answer tools/list with 200 MB, fail
// with a 5 MB error body, list 100,000 tools, answer a call with an event
// that never ends, or answer malformed JSON. The data plane stays under
// hostilePeakMB, reports each with a clear last_error of at most 1 KB, keeps
// serving the good backend, and the control plane's stored state does not
// change.
func TestHostileBackends(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	_, good := startHTTPBackend(t, "good")
	mustCtl(t, cp, "server", "add", "good", "--url", good)
	hostile := map[string][]string{
		"huge":      {"--hostile", "huge-list"},
		"errbody":   {"--hostile", "error-body"},
		"endless":   {"--hostile", "endless"},
		"malformed": {"--hostile", "malformed"},
		"many":      {"--tools", "100000", "--page-size", "5000"},
	}
	for name, args := range hostile {
		_, u := startHTTPBackend(t, name, args...)
		mustCtl(t, cp, "server", "add", name, "--url", u)
	}
	// A stdio child that prints one endless line.
	mustCtl(t, cp, "server", "add", "flood", "--", bin("demo-backend"), "--hostile", "huge-line")
	dp := startDataPlane(t, cp, "dp")
	dp.waitState(t, "good", "healthy")
	before := storedConfig(t, cp)
	for _, name := range []string{"huge", "errbody", "malformed", "flood"} {
		var s serverHealth
		eventually(t, waitTimeout, name+" reported with its error", func() error {
			var err error
			if s, err = dp.server(name); err != nil {
				return err
			}
			if s.State == "healthy" || s.State == "connecting" || s.LastError == "" {
				return fmt.Errorf("state %s, last error %q", s.State, s.LastError)
			}
			return nil
		})
		if len(s.LastError) > 1024 {
			t.Errorf("%s: last_error is %d bytes, want at most 1 KB", name, len(s.LastError))
		}
		t.Logf("%s: %s: %.200s", name, s.State, s.LastError)
	}
	if s, _ := dp.server("huge"); !strings.Contains(s.LastError, "larger than") {
		t.Errorf("huge: last_error %q does not name the size limit", s.LastError)
	}
	if s, _ := dp.server("flood"); !strings.Contains(s.LastError, "a message exceeded 16777216 bytes") {
		t.Errorf("flood: last_error %q does not name the size limit", s.LastError)
	}
	// 100,000 tools take the backend a while to page through on a loaded
	// machine: a longer wait than the others.
	var many serverHealth
	eventually(t, 5*time.Minute, "many healthy", func() error {
		var err error
		if many, err = dp.server("many"); err != nil {
			return err
		}
		if many.State != "healthy" {
			return fmt.Errorf("state %s (last error %q)", many.State, many.LastError)
		}
		return nil
	})
	if many.Tools != 20000 {
		t.Errorf("many: %d tools cached, want the first 20,000 (--max-list-items)", many.Tools)
	}
	dp.waitState(t, "endless", "healthy")

	c := mcpClient(t, dp.mcpURL())
	start := time.Now()
	if _, err := callErr(c, 2*time.Minute, "endless__echo", map[string]any{"text": "hi"}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a call answered by an endless event = %v, want an error naming the size limit", err)
	}
	t.Logf("measure: an endless event failed the call after %v", ms(time.Since(start)))
	if got := callText(t, c, "good__echo", map[string]any{"text": "still here"}); !strings.Contains(got, "still here") {
		t.Errorf("good__echo = %q", got)
	}
	checkUnharmed(t, dp, cp, before, "hostile backends")
}

// TestHostileClients: a 50 MB body (announced, and chunked), a body sent a
// byte at a time, forged session ids and cursors, and a cross-origin browser
// request each get a clear refusal; the data plane stays under
// hostilePeakMB and keeps serving a well-behaved client.
func TestHostileClients(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	_, good := startHTTPBackend(t, "good")
	mustCtl(t, cp, "server", "add", "good", "--url", good)
	dp := startDataPlaneVia(t, cp, "dp", cp.grpcAddr, "--body-timeout", "2s")
	dp.waitState(t, "good", "healthy")
	before := storedConfig(t, cp)
	url := dp.mcpURL()
	hc := &http.Client{Timeout: time.Minute}
	post := func(body io.Reader, size int64, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	big := func() io.Reader {
		return io.MultiReader(strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"`),
			io.LimitReader(zeros{}, 50<<20), strings.NewReader(`"}}`))
	}
	if code, body := post(big(), int64(50<<20+len(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":""}}`)), nil); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "limit") {
		t.Errorf("a 50 MB body of known length = %d %s", code, body)
	}
	if code, body := post(big(), -1, nil); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "limit") {
		t.Errorf("a 50 MB chunked body = %d %.200s", code, body)
	}

	// A body that trickles in: refused when --body-timeout passes.
	nc, err := net.Dial("tcp", dp.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	fmt.Fprintf(nc, "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{", dp.listen)
	_ = nc.SetDeadline(time.Now().Add(time.Minute))
	answer := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(nc)
		answer <- string(b)
	}()
	trickle := time.NewTicker(500 * time.Millisecond)
	defer trickle.Stop()
	var got string
wait:
	for {
		select {
		case got = <-answer:
			break wait
		case <-trickle.C:
			_, _ = nc.Write([]byte(" ")) // a byte now and then, never the whole body
		}
	}
	if !strings.HasPrefix(got, "HTTP/1.1 408") {
		t.Errorf("a trickled body got %q, want 408", strings.SplitN(got, "\r\n", 2)[0])
	}
	t.Logf("measure: a trickled body was refused after %v (--body-timeout 2s)", ms(time.Since(start)))

	// Forged session ids and cursors.
	forged := make([]byte, 32)
	_, _ = rand.Read(forged)
	for _, sid := range []string{hex.EncodeToString(forged), "not-a-session", strings.Repeat("A", 4000)} {
		code, body := post(strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`), -1, map[string]string{
			"Mcp-Session-Id": sid, "MCP-Protocol-Version": mcp.ProtocolVersion20251125,
		})
		if code != http.StatusNotFound && code != http.StatusBadRequest {
			t.Errorf("forged session id %.20q… = %d %.200s, want 404 or 400", sid, code, body)
		}
	}
	c := mcpClientVersion(t, url, mcp.ProtocolVersion20251125)
	for _, cur := range []string{"garbage", strings.Repeat("x", 10000), "eyJ2IjoxfQ"} {
		_, err := c.ListTools(t.Context(), mcp.ListToolsRequest{PaginatedRequest: mcp.PaginatedRequest{Params: mcp.PaginatedParams{Cursor: mcp.Cursor(cur)}}})
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "cursor") {
			t.Errorf("a forged cursor %.20q… = %v, want an error naming the cursor", cur, err)
		}
	}

	// A cross-origin browser request.
	code, body := post(strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), -1, map[string]string{"Origin": "http://evil.example"})
	if code != http.StatusForbidden {
		t.Errorf("a cross-origin request = %d %.200s, want 403", code, body)
	}

	if got := callText(t, c, "good__echo", map[string]any{"text": "still here"}); !strings.Contains(got, "still here") {
		t.Errorf("good__echo = %q", got)
	}
	checkUnharmed(t, dp, cp, before, "hostile clients")
}

// checkUnharmed checks what every hostile test ends with: the data plane's
// peak RSS under hostilePeakMB, and the stored config as it was before.
func checkUnharmed(t *testing.T, dp *dataPlane, cp *controlPlane, before, under string) {
	t.Helper()
	peak := peakRSSKB(t, dp.pid())
	t.Logf("measure: data plane peak RSS with %s: %.1f MB (bound %d MB)", under, float64(peak)/1000, hostilePeakMB)
	if peak > hostilePeakMB*1000 {
		t.Errorf("data plane peak RSS %d kB, over the %d MB bound", peak, hostilePeakMB)
	}
	if after := storedConfig(t, cp); after != before {
		t.Errorf("the control plane's stored config changed under %s:\nbefore %s\nafter %s", under, before, after)
	}
}

// storedConfig is what the control plane stores of the config, as mcpctl
// shows it: every registration and the settings. (Its bbolt file also holds
// the health reports and events, which change as they should.)
func storedConfig(t *testing.T, cp *controlPlane) string {
	t.Helper()
	return mustCtl(t, cp, "server", "list", "-o", "json") + mustCtl(t, cp, "config", "get", "-o", "json")
}

// zeros reads as endless '0' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}
