//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// binDir holds controlplane, dataplane, mcpctl and demo-backend. `make e2e-test`
// builds them and sets MCPMESH_BIN_DIR; otherwise TestMain builds them.
var binDir string

func TestMain(m *testing.M) {
	binDir = os.Getenv("MCPMESH_BIN_DIR")
	var tmp string
	if binDir == "" {
		var err error
		tmp, err = os.MkdirTemp("", "mcpmesh-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = tmp
		for name, pkg := range map[string]string{
			"controlplane": "./controlplane",
			"dataplane":    "./dataplane",
			"mcpctl":       "./mcpctl",
			"demo-backend": "./internal/testbackend/cmd/demo-backend",
			// mcp-go's own fixture for the official conformance suite.
			"conformance-fixture": "github.com/mark3labs/mcp-go/examples/conformance",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Dir = ".."
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n", name, err)
				os.Exit(1)
			}
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// Deadlines are far above what a step needs on an idle machine, so that only
// a broken step reaches them on a loaded 2-core one. Figures the product
// promises are measured from the processes' own timestamps and checked
// against separate bounds, never by how fast a wait returned.
const (
	pollInterval = 50 * time.Millisecond
	waitTimeout  = 30 * time.Second // a state to be reached, a list to change
	startTimeout = 30 * time.Second // a process to start serving
	rpcTimeout   = 10 * time.Second // one HTTP or MCP request
	stopTimeout  = 10 * time.Second // a process to exit on SIGTERM
)

// httpc bounds every HTTP request of the tests (http.Get has no deadline).
var httpc = &http.Client{Timeout: rpcTimeout}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a child process whose output is kept in a log file and shown when
// the test fails.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startProc(t testing.TB, name string, env []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	// Own process group so that a kill reaches the stdio backends it spawned.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait also waits for the output copy; a leftover child holding the
	// pipe must not make it (and a kill) block for ever.
	p.cmd.WaitDelay = stopTimeout
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("---- log of %s ----\n%s", name, tail(p.log.String(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to stopTimeout before SIGKILL.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.t.Logf("%s did not stop within %v of SIGTERM; killing", p.name, stopTimeout)
		p.kill()
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // leftovers in its group
}

// kill sends SIGKILL to the process (not its children) and waits for it to
// be reaped (WaitDelay bounds that).
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitLine waits until the process printed a line matching re and returns the
// first submatch.
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	m, err := p.awaitLine(re, timeout)
	if err != nil {
		p.t.Fatalf("%v; log:\n%s", err, tail(p.log.String(), 40))
	}
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

// awaitLine waits until the process printed a line matching re and returns
// the match and its submatches; an error if the process exited or timeout
// passed first.
func (p *proc) awaitLine(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.log.String()); m != nil {
			return m, nil
		}
		if p.exited() {
			return nil, fmt.Errorf("%s exited (%v) before printing %q", p.name, p.err, re)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not print %q within %v", p.name, re, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// addrInUse is how a process says that the port it was given is taken.
const addrInUse = "address already in use"

// startListener starts a process that listens on TCP and waits for the line
// matching ready that it prints once it listens; it returns the process and
// the line's submatches. Processes are given port 0 and pick a free port
// themselves, except a restart on the same address: that port may be taken
// for a moment by a test running alongside, so a process that exits saying
// so is started again, until startTimeout.
func startListener(t testing.TB, name string, env []string, ready *regexp.Regexp, path string, args ...string) (*proc, []string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		p := startProc(t, name, env, path, args...)
		m, err := p.awaitLine(ready, time.Until(deadline))
		if err == nil {
			return p, m
		}
		if !p.exited() || !strings.Contains(p.log.String(), addrInUse) || time.Now().After(deadline) {
			t.Fatalf("start %s: %v; log:\n%s", name, err, tail(p.log.String(), 40))
		}
		t.Logf("start %s: its port is taken (%s); starting it again", name, strings.TrimSpace(tail(p.log.String(), 1)))
		time.Sleep(5 * pollInterval)
	}
}

// logLine is one line of a process's JSON log (--log-format json).
type logLine struct {
	Time  time.Time
	Msg   string
	Attrs map[string]any
}

func (l logLine) String() string {
	return fmt.Sprintf("%s %q %v", l.Time.Format("15:04:05.000"), l.Msg, l.Attrs)
}

// logLines returns, in order, the JSON log lines of p that have every
// attribute of attrs (key, value pairs; values compared as fmt.Sprint prints
// them). The key "msg" matches the message; a value "*" only asks that the
// key be there.
func (p *proc) logLines(attrs ...string) []logLine {
	var out []logLine
	for _, raw := range strings.Split(p.log.String(), "\n") {
		if !strings.HasPrefix(raw, "{") {
			continue
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber() // numbers compare as logged: 1000000, not 1e+06
		if dec.Decode(&m) != nil {
			continue
		}
		ok := true
		for i := 0; i+1 < len(attrs) && ok; i += 2 {
			v, has := m[attrs[i]]
			ok = has && (attrs[i+1] == "*" || fmt.Sprint(v) == attrs[i+1])
		}
		if !ok {
			continue
		}
		ts, _ := m["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		delete(m, "time")
		delete(m, "msg")
		out = append(out, logLine{Time: at, Msg: msg, Attrs: m})
	}
	return out
}

// waitLog waits for the first JSON log line of p with attrs at or after
// since: the process's own timestamp of an event. Output reaches the test
// through a pipe, a moment after the event.
func (p *proc) waitLog(since time.Time, attrs ...string) logLine {
	p.t.Helper()
	var found logLine
	eventually(p.t, waitTimeout, fmt.Sprintf("%s logs %v", p.name, attrs), func() error {
		for _, l := range p.logLines(attrs...) {
			if !l.Time.Before(since) {
				found = l
				return nil
			}
		}
		return fmt.Errorf("no such line since %s", since.Format("15:04:05.000"))
	})
	return found
}

// controlPlane is a running control plane process.
type controlPlane struct {
	*proc
	dataDir, grpcAddr, httpAddr string
	// ctlEnv is added to the environment of the harness's own mcpctl calls
	// (the CA and client certificate of a TLS control plane).
	ctlEnv []string
}

func (c *controlPlane) tokenFile() string { return filepath.Join(c.dataDir, "admin.token") }

// dataplaneTokenFile returns a file holding a dataplane token of c, issued
// with mcpctl on first use and kept next to the data (the token lives in
// the store, so it survives control plane restarts on the same data dir).
// Data planes never get the admin token, as in the shipped deployments.
func (c *controlPlane) dataplaneTokenFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(c.dataDir, "dataplane.token")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	r := mcpctl(t, c, "token", "create", "--role", "dataplane", "--description", "e2e data planes", "--secret-file", path)
	if r.code != 0 {
		t.Fatalf("issue a dataplane token: %s", r.stderr)
	}
	return path
}

var cpStartedRE = regexp.MustCompile(`"msg":"control plane started".*?"grpc_addr":"([^"]+)".*?"http_addr":"([^"]+)"`)

// startControlPlane starts a control plane on the given addresses; "" picks
// a free port; extra are more flags.
func startControlPlane(t testing.TB, dataDir, grpcAddr, httpAddr string, extra ...string) *controlPlane {
	t.Helper()
	if grpcAddr == "" {
		grpcAddr = "127.0.0.1:0"
	}
	if httpAddr == "" {
		httpAddr = "127.0.0.1:0"
	}
	p, m := startListener(t, "controlplane", nil, cpStartedRE, bin("controlplane"),
		append([]string{"--data-dir", dataDir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-format", "json"}, extra...)...)
	cp := &controlPlane{proc: p, dataDir: dataDir, grpcAddr: m[1], httpAddr: m[2]}
	waitHTTP(t, "http://"+cp.httpAddr+"/health", startTimeout, p)
	return cp
}

var revisionRE = regexp.MustCompile(`\(revision (\d+)\)`)

// committed returns when the control plane committed the write that mcpctl
// reported (its "(revision N)" output), by the control plane's own log.
func (c *controlPlane) committed(ctlOut string) (revision string, at time.Time) {
	c.t.Helper()
	m := revisionRE.FindStringSubmatch(ctlOut)
	if m == nil {
		c.t.Fatalf("no revision in mcpctl output %q", ctlOut)
	}
	return m[1], c.waitLog(time.Time{}, "revision", m[1], "server", "*").Time
}

// dataPlane is a running data plane process.
type dataPlane struct {
	*proc
	id, listen string
}

func (d *dataPlane) mcpURL() string { return "http://" + d.listen + "/mcp" }

var dpServingRE = regexp.MustCompile(`"msg":"data plane serving".*?"mcp_url":"http://([^"/]+)/mcp"`)

func startDataPlane(t testing.TB, cp *controlPlane, id string) *dataPlane {
	t.Helper()
	return startDataPlaneVia(t, cp, id, cp.grpcAddr)
}

// startDataPlaneVia starts a data plane of cp that dials the control plane
// at cpAddr (a proxy in front of it, say).
func startDataPlaneVia(t testing.TB, cp *controlPlane, id, cpAddr string, extra ...string) *dataPlane {
	t.Helper()
	args := append([]string{"--control-plane", cpAddr, "--listen", "127.0.0.1:0", "--id", id, "--log-format", "json"}, extra...)
	p, m := startListener(t, "dataplane "+id, []string{"MCPMESH_TOKEN_FILE=" + cp.dataplaneTokenFile(t)}, dpServingRE, bin("dataplane"), args...)
	d := &dataPlane{proc: p, id: id, listen: m[1]}
	waitHTTP(t, "http://"+d.listen+"/livez", startTimeout, p)
	return d
}

// waitReady waits until /readyz says the data plane applied a config and
// rebuilt its lists after every backend's first connect attempt, and
// returns what it said.
func (d *dataPlane) waitReady(t testing.TB) string {
	t.Helper()
	var body string
	eventually(t, waitTimeout, d.id+" ready", func() error {
		if d.exited() {
			t.Fatalf("%s exited: %v", d.name, d.err)
		}
		resp, err := httpc.Get("http://" + d.listen + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body = strings.TrimSpace(string(b))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz = %d %q", resp.StatusCode, body)
		}
		return nil
	})
	return body
}

// health is the data plane's /health document.
func (d *dataPlane) health() (dpHealth, error) {
	var h dpHealth
	_, err := getJSONErr("http://"+d.listen+"/health", &h)
	return h, err
}

// server returns what /health says of one server; an error when it is not
// listed.
func (d *dataPlane) server(name string) (serverHealth, error) {
	h, err := d.health()
	if err != nil {
		return serverHealth{}, err
	}
	for _, s := range h.Servers {
		if s.Name == name {
			return s, nil
		}
	}
	return serverHealth{}, fmt.Errorf("/health does not list %s: %+v", name, h.Servers)
}

// waitState waits until /health shows server name in state and returns its
// entry.
func (d *dataPlane) waitState(t testing.TB, name, state string) serverHealth {
	t.Helper()
	var got serverHealth
	eventually(t, waitTimeout, fmt.Sprintf("%s: %s %s", d.id, name, state), func() error {
		s, err := d.server(name)
		if err != nil {
			return err
		}
		if s.State != state {
			return fmt.Errorf("state %s (last error %q)", s.State, s.LastError)
		}
		got = s
		return nil
	})
	return got
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+/mcp)`)

// startHTTPBackend starts a demo backend serving streamable HTTP on a free
// port and returns its URL.
func startHTTPBackend(t testing.TB, name string, extra ...string) (*proc, string) {
	t.Helper()
	return startHTTPBackendAt(t, name, "127.0.0.1:0", extra...)
}

// startHTTPBackendAt starts a demo backend on addr (a fixed one brings a
// killed backend back on the same port) and returns its URL.
func startHTTPBackendAt(t testing.TB, name, addr string, extra ...string) (*proc, string) {
	t.Helper()
	args := append([]string{"--name", name, "--http", addr}, extra...)
	p, m := startListener(t, "backend "+name, nil, listeningRE, bin("demo-backend"), args...)
	return p, m[1]
}

var listenedRE = regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg=listening `)

// listenedAt is when a demo backend's port started answering, by its own log.
func (p *proc) listenedAt() time.Time {
	p.t.Helper()
	ts := p.waitLine(listenedRE, startTimeout)
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		p.t.Fatalf("%s: listening time %q: %v", p.name, ts, err)
	}
	return at
}

func waitHTTP(t testing.TB, url string, timeout time.Duration, p *proc) {
	t.Helper()
	eventually(t, timeout, url+" answering", func() error {
		if p != nil && p.exited() {
			t.Fatalf("%s exited before serving %s: %v\n%s", p.name, url, p.err, tail(p.log.String(), 40))
		}
		resp, err := httpc.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// getJSONErr GETs url and decodes its JSON body into v.
func getJSONErr(url string, v any) (int, error) {
	resp, err := httpc.Get(url)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: decode %q: %w", url, b, err)
	}
	return resp.StatusCode, nil
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	code, err := getJSONErr(url, v)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// ctlResult is what one mcpctl run produced.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// mcpctl runs the CLI against cp and returns its output and exit code.
func mcpctl(t testing.TB, cp *controlPlane, args ...string) ctlResult {
	t.Helper()
	return mcpctlEnv(t, append([]string{"MCPMESH_ADDR=" + cp.grpcAddr, "MCPMESH_TOKEN_FILE=" + cp.tokenFile()}, cp.ctlEnv...), args...)
}

func mcpctlEnv(t testing.TB, env []string, args ...string) ctlResult {
	t.Helper()
	r, err := mcpctlErr(env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mcpctlErr runs the CLI; the error is for a CLI that could not run or did
// not end within waitTimeout, not for a non-zero exit.
func mcpctlErr(env []string, args ...string) (ctlResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("mcpctl"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		code = ee.ExitCode()
	} else if err != nil {
		return ctlResult{}, fmt.Errorf("run mcpctl %v: %w (ctx: %v)", args, err, ctx.Err())
	}
	return ctlResult{stdout: out.String(), stderr: errb.String(), code: code}, nil
}

// mustCtl runs mcpctl and fails the test unless it exits 0.
func mustCtl(t testing.TB, cp *controlPlane, args ...string) string {
	t.Helper()
	r := mcpctl(t, cp, args...)
	if r.code != 0 {
		t.Fatalf("mcpctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// statusView is the part of `mcpctl status -o json` other tools rely on.
type statusView struct {
	Revision   uint64 `json:"revision"`
	Dataplanes []struct {
		ID        string `json:"id"`
		Revision  uint64 `json:"revision"`
		Connected bool   `json:"connected"`
	} `json:"dataplanes"`
	Servers []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"servers"`
}

// ctlStatus runs `mcpctl status -o json`.
func ctlStatus(cp *controlPlane) (statusView, error) {
	var s statusView
	r, err := mcpctlErr([]string{"MCPMESH_ADDR=" + cp.grpcAddr, "MCPMESH_TOKEN_FILE=" + cp.tokenFile()}, "status", "-o", "json")
	if err != nil {
		return s, err
	}
	if r.code != 0 {
		return s, fmt.Errorf("mcpctl status: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		return s, fmt.Errorf("mcpctl status -o json: %w\n%s", err, r.stdout)
	}
	return s, nil
}

// mcpClient connects an mcp-go streamable HTTP client to url.
func mcpClient(t testing.TB, url string) *client.Client {
	t.Helper()
	return mcpClientVersion(t, url, "")
}

// mcpClientVersion is mcpClient asking for a protocol revision: "" lets
// mcp-go choose (it probes server/discover and stays on 2026-07-28, with no
// session); mcp.ProtocolVersion20251125 gets an initialize and a session.
func mcpClientVersion(t testing.TB, url, version string) *client.Client {
	t.Helper()
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start MCP client for %s: %v", url, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-e2e", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// toolNamesErr lists the tools (every page), sorted.
func toolNamesErr(c *client.Client) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, fmt.Errorf("tools/list: %w", err)
	}
	names := make([]string, 0, len(res.Tools))
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	return names, nil
}

func toolNames(t testing.TB, c *client.Client) []string {
	t.Helper()
	names, err := toolNamesErr(c)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// toolsListed checks that tools/list has every name of want and none of
// unwanted.
func toolsListed(c *client.Client, want []string, unwanted ...string) error {
	names, err := toolNamesErr(c)
	if err != nil {
		return err
	}
	var missing, extra []string
	for _, w := range want {
		if !has(names, w) {
			missing = append(missing, w)
		}
	}
	for _, u := range unwanted {
		if has(names, u) {
			extra = append(extra, u)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Errorf("tools/list (%d tools) lacks %v, has %v", len(names), missing, extra)
	}
	return nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func callText(t testing.TB, c *client.Client, tool string, args map[string]any) string {
	t.Helper()
	text, err := callErr(c, callTimeout, tool, args)
	if err != nil {
		t.Fatalf("tools/call %s: %v", tool, err)
	}
	return text
}

// callErr calls a tool and returns its text; an isError result is an error.
func callErr(c *client.Client, timeout time.Duration, tool string, args map[string]any) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for _, ct := range res.Content {
		if tc, ok := ct.(mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return sb.String(), fmt.Errorf("tool error: %s", sb.String())
	}
	return sb.String(), nil
}

// callTimeout bounds one tools/call that is expected to succeed.
const callTimeout = 15 * time.Second

// eventually runs check every pollInterval until it returns nil. A check
// that still fails when timeout has passed fails the test with its last
// error. Checks return errors rather than failing the test, since a
// transient failure is what a wait is for; each of their requests has its
// own deadline, so the wait ends at most one check after timeout.
// It returns how long the wait took.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	tries := 0
	for {
		tries++
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v (%d tries) waiting for %s: %v", time.Since(start).Round(time.Millisecond), tries, what, err)
		}
		time.Sleep(pollInterval)
	}
}

// ms rounds d for measure lines.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// rssKB reads a process's resident set size from /proc.
func rssKB(t testing.TB, pid int) int {
	t.Helper()
	return procStatusKB(t, pid, "VmRSS")
}

// peakRSSKB reads a process's peak resident set size from /proc.
func peakRSSKB(t testing.TB, pid int) int {
	t.Helper()
	return procStatusKB(t, pid, "VmHWM")
}

// procStatusKB reads one kB field of /proc/<pid>/status.
func procStatusKB(t testing.TB, pid int, field string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int
		if n, _ := fmt.Sscanf(sc.Text(), field+": %d kB", &kb); n == 1 {
			return kb
		}
	}
	t.Fatalf("no %s for pid %d", field, pid)
	return 0
}

// getPrompt gets a prompt and returns the text of its messages.
func getPrompt(c *client.Client, name string, args map[string]string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	req := mcp.GetPromptRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.GetPrompt(ctx, req)
	if err != nil {
		return "", fmt.Errorf("prompts/get %s: %w", name, err)
	}
	var sb strings.Builder
	for _, m := range res.Messages {
		if tc, ok := m.Content.(mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String(), nil
}

// listResources lists the resource URIs, sorted.
func listResources(c *client.Client) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	res, err := c.ListResources(ctx, mcp.ListResourcesRequest{})
	if err != nil {
		return nil, fmt.Errorf("resources/list: %w", err)
	}
	out := make([]string, 0, len(res.Resources))
	for _, r := range res.Resources {
		out = append(out, r.URI)
	}
	sort.Strings(out)
	return out, nil
}

// readResource reads a resource and returns its text contents.
func readResource(c *client.Client, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	req := mcp.ReadResourceRequest{}
	req.Params.URI = uri
	res, err := c.ReadResource(ctx, req)
	if err != nil {
		return "", fmt.Errorf("resources/read %s: %w", uri, err)
	}
	var sb strings.Builder
	for _, ct := range res.Contents {
		if tc, ok := ct.(mcp.TextResourceContents); ok {
			sb.WriteString(tc.Text)
		}
	}
	if sb.Len() == 0 && len(res.Contents) > 0 {
		return "", errors.New("no text contents")
	}
	return sb.String(), nil
}
