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

// stop sends SIGTERM and waits up to 10 s before SIGKILL.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Logf("%s did not stop within 10s of SIGTERM; killing", p.name)
		p.kill()
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // leftovers in its group
}

// kill sends SIGKILL to the process (not its children) and waits.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitLine waits until the process printed a line matching re and returns the
// first submatch.
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.log.String()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		if p.exited() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%s did not print %q within %v; log:\n%s", p.name, re, timeout, tail(p.log.String(), 40))
	return ""
}

// controlPlane is a running control plane process.
type controlPlane struct {
	*proc
	dataDir, grpcAddr, httpAddr string
}

func (c *controlPlane) tokenFile() string { return filepath.Join(c.dataDir, "admin.token") }

func startControlPlane(t testing.TB, dataDir, grpcAddr, httpAddr string) *controlPlane {
	t.Helper()
	if grpcAddr == "" {
		grpcAddr = freeAddr(t)
	}
	if httpAddr == "" {
		httpAddr = freeAddr(t)
	}
	p := startProc(t, "controlplane", nil, bin("controlplane"),
		"--data-dir", dataDir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
	cp := &controlPlane{proc: p, dataDir: dataDir, grpcAddr: grpcAddr, httpAddr: httpAddr}
	waitHTTP(t, "http://"+httpAddr+"/health", 10*time.Second, p)
	return cp
}

// dataPlane is a running data plane process.
type dataPlane struct {
	*proc
	id, listen string
}

func (d *dataPlane) mcpURL() string { return "http://" + d.listen + "/mcp" }

func startDataPlane(t testing.TB, cp *controlPlane, id string) *dataPlane {
	t.Helper()
	listen := freeAddr(t)
	p := startProc(t, "dataplane "+id, []string{"MCPMESH_TOKEN_FILE=" + cp.tokenFile()}, bin("dataplane"),
		"--control-plane", cp.grpcAddr, "--listen", listen, "--id", id)
	waitHTTP(t, "http://"+listen+"/livez", 10*time.Second, p)
	return &dataPlane{proc: p, id: id, listen: listen}
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+/mcp)`)

// startHTTPBackend starts a demo backend serving streamable HTTP and returns its URL.
func startHTTPBackend(t testing.TB, name string, extra ...string) (*proc, string) {
	t.Helper()
	addr := "127.0.0.1:0"
	args := append([]string{"--name", name, "--http", addr}, extra...)
	p := startProc(t, "backend "+name, nil, bin("demo-backend"), args...)
	return p, p.waitLine(listeningRE, 10*time.Second)
}

func waitHTTP(t testing.TB, url string, timeout time.Duration, p *proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		if p != nil && p.exited() {
			t.Fatalf("%s exited before serving %s: %v\n%s", p.name, url, p.err, tail(p.log.String(), 40))
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %v", url, timeout)
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: decode %q: %v", url, b, err)
	}
	return resp.StatusCode
}

// ctlResult is what one mcpctl run produced.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// mcpctl runs the CLI against cp and returns its output and exit code.
func mcpctl(t testing.TB, cp *controlPlane, args ...string) ctlResult {
	t.Helper()
	return mcpctlEnv(t, []string{"MCPMESH_ADDR=" + cp.grpcAddr, "MCPMESH_TOKEN_FILE=" + cp.tokenFile()}, args...)
}

func mcpctlEnv(t testing.TB, env []string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("mcpctl"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run mcpctl %v: %v", args, err)
	}
	return ctlResult{stdout: out.String(), stderr: errb.String(), code: code}
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

func ctlStatus(t testing.TB, cp *controlPlane) statusView {
	t.Helper()
	var s statusView
	out := mustCtl(t, cp, "status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("mcpctl status -o json: %v\n%s", err, out)
	}
	return s
}

// mcpClient connects an mcp-go streamable HTTP client to url.
func mcpClient(t testing.TB, url string) *client.Client {
	t.Helper()
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start MCP client for %s: %v", url, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-e2e", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func toolNames(t testing.TB, c *client.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	names := make([]string, 0, len(res.Tools))
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	return names
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
	text, err := callErr(c, 15*time.Second, tool, args)
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

// eventually polls cond every 5 ms until it is true or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rssKB reads a process's resident set size from /proc.
func rssKB(t testing.TB, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int
		if n, _ := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &kb); n == 1 {
			return kb
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
