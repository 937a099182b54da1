//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// dpHealth is the data plane's GET /health document.
type dpHealth struct {
	Status         string `json:"status"`
	ConfigRevision uint64 `json:"config_revision"`
	ControlPlane   string `json:"control_plane"`
	Servers        []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"servers"`
}

func resourceURIs(t testing.TB, c *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil {
		t.Fatalf("resources/list: %v", err)
	}
	var out []string
	for _, r := range res.Resources {
		out = append(out, r.URI)
	}
	sort.Strings(out)
	return out
}

func promptNames(t testing.TB, c *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.ListPrompts(ctx, mcp.ListPromptsRequest{})
	if err != nil {
		t.Fatalf("prompts/list: %v", err)
	}
	var out []string
	for _, p := range res.Prompts {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func readText(t testing.TB, c *client.Client, uri string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := mcp.ReadResourceRequest{}
	req.Params.URI = uri
	res, err := c.ReadResource(ctx, req)
	if err != nil {
		t.Fatalf("resources/read %s: %v", uri, err)
	}
	var sb strings.Builder
	for _, ct := range res.Contents {
		if tc, ok := ct.(mcp.TextResourceContents); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}

// TestCoreEndToEnd walks the whole path of issue 3: a control plane, two data
// planes, a stdio and an HTTP backend registered with mcpctl, aggregated lists
// and calls through each data plane, removal, control plane restart, and data
// planes that keep serving while the control plane is down.
func TestCoreEndToEnd(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cp := startControlPlane(t, dataDir, "", "")

	// The token is created on first start, private to its owner.
	st, err := os.Stat(cp.tokenFile())
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode = %v, want 0600", st.Mode().Perm())
	}

	dp1 := startDataPlane(t, cp, "dp-1")
	dp2 := startDataPlane(t, cp, "dp-2")

	_, webURL := startHTTPBackend(t, "web")
	mustCtl(t, cp, "server", "add", "web", "--url", webURL, "--tag", "http")
	mustCtl(t, cp, "server", "add", "local", "--tag", "stdio", "--", bin("demo-backend"), "--name", "local")

	var list []map[string]any
	if err := json.Unmarshal([]byte(mustCtl(t, cp, "server", "list", "-o", "json")), &list); err != nil {
		t.Fatalf("server list -o json: %v", err)
	}
	if len(list) != 2 || list[0]["name"] != "local" || list[1]["name"] != "web" {
		t.Fatalf("server list -o json = %v, want local and web", list)
	}

	clients := map[string]*client.Client{"dp-1": mcpClient(t, dp1.mcpURL()), "dp-2": mcpClient(t, dp2.mcpURL())}
	for id, c := range clients {
		eventually(t, 10*time.Second, id+" lists both backends' tools", func() bool {
			n := toolNames(t, c)
			return has(n, "local__echo") && has(n, "web__echo")
		})
		tools := toolNames(t, c)
		for _, want := range []string{"local__add", "local__whoami", "web__add", "web__whoami"} {
			if !has(tools, want) {
				t.Errorf("%s: tools/list lacks %s (got %v)", id, want, tools)
			}
		}
		prompts := promptNames(t, c)
		if !has(prompts, "local__greet") || !has(prompts, "web__greet") {
			t.Errorf("%s: prompts/list = %v, want local__greet and web__greet", id, prompts)
		}
		// Both backends expose demo://readme: the first by name keeps the URI,
		// the other's copy stays reachable under mcpmesh://.
		uris := resourceURIs(t, c)
		webReadme := "mcpmesh://web/" + url.PathEscape("demo://readme")
		if !has(uris, "demo://readme") || !has(uris, webReadme) {
			t.Errorf("%s: resources/list = %v, want demo://readme and %s", id, uris, webReadme)
		}
		if got := readText(t, c, "demo://readme"); !strings.Contains(got, "local") {
			t.Errorf("%s: read demo://readme = %q, want the local backend's copy", id, got)
		}
		if got := readText(t, c, webReadme); !strings.Contains(got, "web") {
			t.Errorf("%s: read %s = %q, want the web backend's copy", id, webReadme, got)
		}

		if got := callText(t, c, "local__echo", map[string]any{"text": "hi from " + id}); got != "hi from "+id {
			t.Errorf("%s: local__echo = %q", id, got)
		}
		if got := callText(t, c, "web__add", map[string]any{"a": 2, "b": 40}); !strings.Contains(got, "42") {
			t.Errorf("%s: web__add = %q, want 42", id, got)
		}
		if got := callText(t, c, "web__whoami", nil); !strings.Contains(got, "web") {
			t.Errorf("%s: web__whoami = %q", id, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		preq := mcp.GetPromptRequest{}
		preq.Params.Name = "local__greet"
		preq.Params.Arguments = map[string]string{"name": "Ada"}
		pres, err := c.GetPrompt(ctx, preq)
		cancel()
		if err != nil || len(pres.Messages) == 0 {
			t.Errorf("%s: prompts/get local__greet: %v %+v", id, err, pres)
		}
	}

	// Health on the data plane and the control plane's view of the data planes.
	var h dpHealth
	eventually(t, 10*time.Second, "dp-1 /health ok with two healthy servers", func() bool {
		getJSON(t, "http://"+dp1.listen+"/health", &h)
		return h.Status == "ok" && len(h.Servers) == 2 && h.ControlPlane == "connected"
	})
	var status statusView
	eventually(t, 10*time.Second, "status shows both data planes on the current revision", func() bool {
		status = ctlStatus(t, cp)
		acked := 0
		for _, d := range status.Dataplanes {
			if d.Connected && d.Revision == status.Revision {
				acked++
			}
		}
		return acked == 2
	})
	eventually(t, 10*time.Second, "status shows both servers healthy", func() bool {
		status = ctlStatus(t, cp)
		healthy := 0
		for _, s := range status.Servers {
			if s.State == "healthy" {
				healthy++
			}
		}
		return healthy == 2
	})

	// Removal reaches both data planes within a second.
	mustCtl(t, cp, "server", "remove", "web")
	removed := time.Now()
	for id, c := range clients {
		eventually(t, time.Second-time.Since(removed), id+" drops web's tools within 1s", func() bool {
			return !has(toolNames(t, c), "web__echo")
		})
	}
	t.Logf("measure: removal visible on both data planes after %v", time.Since(removed).Round(time.Millisecond))

	// Restart the control plane: registrations are kept and data planes reconnect.
	// A graceful stop must not wait for the data planes' config streams.
	stopStart := time.Now()
	cp.stop()
	if d := time.Since(stopStart); d > 3*time.Second {
		t.Errorf("control plane took %v to stop on SIGTERM with data planes connected", d)
	}
	cp = startControlPlane(t, dataDir, cp.grpcAddr, cp.httpAddr)
	var names []map[string]any
	if err := json.Unmarshal([]byte(mustCtl(t, cp, "server", "list", "-o", "json")), &names); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0]["name"] != "local" {
		t.Fatalf("after restart, server list = %v, want [local]", names)
	}
	eventually(t, 15*time.Second, "both data planes reconnected after restart", func() bool {
		s := ctlStatus(t, cp)
		n := 0
		for _, d := range s.Dataplanes {
			if d.Connected && d.Revision == s.Revision {
				n++
			}
		}
		return n == 2
	})

	// Stop the control plane: the data planes keep serving their last good config.
	cp.stop()
	for id, c := range clients {
		eventually(t, 10*time.Second, id+" notices the control plane is gone", func() bool {
			d := dp1
			if id == "dp-2" {
				d = dp2
			}
			var hh dpHealth
			getJSON(t, "http://"+d.listen+"/health", &hh)
			return hh.ControlPlane == "disconnected"
		})
		if got := callText(t, c, "local__echo", map[string]any{"text": "still here"}); got != "still here" {
			t.Errorf("%s with control plane down: local__echo = %q", id, got)
		}
		if n := toolNames(t, c); !has(n, "local__echo") || has(n, "web__echo") {
			t.Errorf("%s with control plane down: tools = %v", id, n)
		}
	}
	// A client that connects now, while the control plane is down, is served too.
	late := mcpClient(t, dp2.mcpURL())
	if !has(toolNames(t, late), "local__echo") {
		t.Errorf("new client with control plane down does not see local__echo")
	}
}

// TestRegistrationsSurviveKill9 kills the control plane with SIGKILL right
// after mcpctl returned and checks that nothing acknowledged was lost.
func TestRegistrationsSurviveKill9(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cp := startControlPlane(t, dataDir, "", "")
	for i := 0; i < 5; i++ {
		mustCtl(t, cp, "server", "add", fmt.Sprintf("srv-%d", i), "--url", fmt.Sprintf("http://127.0.0.1:1/mcp%d", i))
	}
	cp.kill()
	cp = startControlPlane(t, dataDir, cp.grpcAddr, cp.httpAddr)
	var list []map[string]any
	if err := json.Unmarshal([]byte(mustCtl(t, cp, "server", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 5 {
		t.Fatalf("after kill -9: %d servers, want 5: %v", len(list), list)
	}
}

// TestMcpctlErrors checks the one-line errors and exit codes operators see.
func TestMcpctlErrors(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cp := startControlPlane(t, dataDir, "", "")
	mustCtl(t, cp, "server", "add", "dup", "--url", "http://127.0.0.1:1/mcp")

	badToken := filepath.Join(t.TempDir(), "bad.token")
	if err := os.WriteFile(badToken, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := freeAddr(t)
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown server", nil, []string{"server", "get", "nope"}, `server "nope" not found`},
		{"remove unknown", nil, []string{"server", "remove", "nope"}, `server "nope" not found`},
		{"duplicate", nil, []string{"server", "add", "dup", "--url", "http://127.0.0.1:1/mcp"}, `already exists`},
		{"bad name", nil, []string{"server", "add", "Bad_Name", "--url", "http://127.0.0.1:1/mcp"}, `invalid`},
		{"unreachable", []string{"MCPMESH_ADDR=" + closed}, []string{"server", "list"}, `cannot reach control plane`},
		{"bad token", []string{"MCPMESH_TOKEN_FILE=" + badToken}, []string{"server", "list"}, `rejected the admin token`},
		{"missing token file", []string{"MCPMESH_TOKEN_FILE=" + filepath.Join(t.TempDir(), "none")}, []string{"server", "list"}, `admin token`},
		{"bad output", nil, []string{"server", "list", "-o", "xml"}, `xml`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"MCPMESH_ADDR=" + cp.grpcAddr, "MCPMESH_TOKEN_FILE=" + cp.tokenFile()}, tc.env...)
			start := time.Now()
			r := mcpctlEnv(t, env, tc.args...)
			if r.code != 1 {
				t.Fatalf("exit code %d, want 1 (stderr %q)", r.code, r.stderr)
			}
			msg := strings.TrimSpace(r.stderr)
			if strings.Count(msg, "\n") != 0 {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("stderr %q does not contain %q", msg, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v, want a quick failure", d)
			}
		})
	}
}

// TestMeasureCore reports the numbers issue 3 asks for: time from `mcpctl
// server add` returning to the tool being listed on a data plane (median of
// 20), and the data plane's RSS with 10 backends connected.
func TestMeasureCore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cp := startControlPlane(t, dataDir, "", "")
	dp := startDataPlane(t, cp, "dp-m")
	c := mcpClient(t, dp.mcpURL())
	_, webURL := startHTTPBackend(t, "shared")

	var lat []time.Duration
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("m%02d", i)
		mustCtl(t, cp, "server", "add", name, "--url", webURL)
		start := time.Now()
		eventually(t, 5*time.Second, name+" listed", func() bool { return has(toolNames(t, c), name+"__echo") })
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("measure: add→listed over %d adds: median %v, min %v, max %v", len(lat),
		lat[len(lat)/2].Round(time.Microsecond), lat[0].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))

	// RSS with 10 backends: remove the 20 above, connect 5 HTTP and 5 stdio backends.
	for i := 0; i < 20; i++ {
		mustCtl(t, cp, "server", "remove", fmt.Sprintf("m%02d", i))
	}
	for i := 0; i < 5; i++ {
		_, u := startHTTPBackend(t, fmt.Sprintf("h%d", i))
		mustCtl(t, cp, "server", "add", fmt.Sprintf("h%d", i), "--url", u)
		mustCtl(t, cp, "server", "add", fmt.Sprintf("s%d", i), "--", bin("demo-backend"), "--name", fmt.Sprintf("s%d", i))
	}
	eventually(t, 20*time.Second, "10 backends healthy", func() bool {
		var h dpHealth
		getJSON(t, "http://"+dp.listen+"/health", &h)
		n := 0
		for _, s := range h.Servers {
			if s.State == "healthy" {
				n++
			}
		}
		return n == 10
	})
	if n := len(toolNames(t, c)); n < 10*5 {
		t.Fatalf("only %d tools with 10 backends", n)
	}
	t.Logf("measure: data plane RSS with 10 backends connected (5 HTTP, 5 stdio): %d KiB", rssKB(t, dp.pid()))
}
