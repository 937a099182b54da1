//go:build bench

// Package bench measures the cost of the mcpmesh proxy hop against a direct
// connection to the same backend, in the same run. `make bench` records the
// figures in results/ (see README.md).
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// readyWait bounds every readiness wait of the setup: generous, because a
// loaded 2-core machine builds and starts three processes here.
const readyWait = 60 * time.Second

type env struct {
	direct, proxied string
	tmp             string
	procs           []*proc
}

// proc is a started process; exited is closed once it has been waited for.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid after exited
}

var (
	setupOnce sync.Once
	shared    *env
	setupErr  error
)

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs a process in its own process group, so stop can end it and
// anything it spawned.
func (e *env) start(log *syncBuf, extraEnv []string, path string, args ...string) error {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(path), err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	e.procs = append(e.procs, p)
	return nil
}

// exited reports a process that ended before it was stopped: no readiness
// wait should sit out its deadline for a process that is gone.
func (e *env) exited() error {
	for _, p := range e.procs {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited early: %v", filepath.Base(p.cmd.Path), p.err)
		default:
		}
	}
	return nil
}

// stop ends every process (SIGTERM, then SIGKILL after 5 s) and removes the
// data directory. It runs after the benchmarks and after a failed setup.
func (e *env) stop() {
	for _, p := range slices.Backward(e.procs) {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	e.procs = nil
	if e.tmp != "" {
		_ = os.RemoveAll(e.tmp)
	}
}

// waitFor polls check every 50 ms until it returns nil, and reports the last
// error when readyWait runs out or at once when a process died.
func (e *env) waitFor(what string, check func() error) error {
	deadline := time.Now().Add(readyWait)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if dead := e.exited(); dead != nil {
			return fmt.Errorf("waiting for %s: %w (last check: %v)", what, dead, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s: %w", readyWait, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(url string) (int, []byte, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes(), err
}

// setup starts a demo backend over HTTP, a control plane and one data plane
// that serves the backend as "b", and returns once the data plane lists b's
// tools. On failure it stops what it started.
func setup() (e *env, err error) {
	dir := os.Getenv("MCPMESH_BIN_DIR")
	if dir == "" {
		return nil, errors.New("MCPMESH_BIN_DIR is not set: run `make bench`")
	}
	bin := func(n string) string { return filepath.Join(dir, n) }
	e = &env{}
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "mcpmesh-bench"); err != nil {
		return e, fmt.Errorf("create data dir: %w", err)
	}
	blog, log := &syncBuf{}, &syncBuf{}
	withLogs := func(err error) error { return fmt.Errorf("%w\nbackend log:\n%s\nmesh log:\n%s", err, blog, log) }

	if err := e.start(blog, nil, bin("demo-backend"), "--name", "b", "--http", "127.0.0.1:0"); err != nil {
		return e, err
	}
	re := regexp.MustCompile(`listening on (http://\S+/mcp)`)
	if err := e.waitFor("the demo backend to listen", func() error {
		if m := re.FindStringSubmatch(blog.String()); m != nil {
			e.direct = m[1]
			return nil
		}
		return errors.New("no 'listening on' line yet")
	}); err != nil {
		return e, withLogs(err)
	}

	var grpcAddr, httpAddr, listen string
	for _, a := range []*string{&grpcAddr, &httpAddr, &listen} {
		if *a, err = freeAddr(); err != nil {
			return e, err
		}
	}
	token := filepath.Join(e.tmp, "admin.token")
	if err := e.start(log, nil, bin("controlplane"), "--data-dir", e.tmp, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"); err != nil {
		return e, err
	}
	if err := e.waitFor("the control plane's /health and admin token", func() error {
		code, body, err := get("http://" + httpAddr + "/health")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/health: %d %s", code, body)
		}
		_, err = os.Stat(token)
		return err
	}); err != nil {
		return e, withLogs(err)
	}
	ctl := exec.Command(bin("mcpctl"), "--addr", grpcAddr, "--token-file", token, "server", "add", "b", "--url", e.direct)
	if out, err := ctl.CombinedOutput(); err != nil {
		return e, withLogs(fmt.Errorf("mcpctl server add b: %w: %s", err, out))
	}
	if err := e.start(log, []string{"MCPMESH_TOKEN_FILE=" + token}, bin("dataplane"), "--control-plane", grpcAddr, "--listen", listen, "--id", "bench", "--log-level", "warn"); err != nil {
		return e, err
	}
	e.proxied = "http://" + listen + "/mcp"

	// Ready means: a config applied (/readyz), b healthy with its tools
	// counted (/health), and b__echo in the gateway's tools/list.
	if err := e.waitFor("the data plane to serve b's tools", func() error {
		if code, body, err := get("http://" + listen + "/readyz"); err != nil || code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s %v", code, body, err)
		}
		_, body, err := get("http://" + listen + "/health")
		if err != nil {
			return err
		}
		var h struct {
			Servers []struct {
				Name, State string
				Tools       int
			}
		}
		if err := json.Unmarshal(body, &h); err != nil {
			return fmt.Errorf("/health: %w: %s", err, body)
		}
		if len(h.Servers) != 1 || h.Servers[0].Name != "b" || h.Servers[0].State != "healthy" || h.Servers[0].Tools == 0 {
			return fmt.Errorf("/health: %s", body)
		}
		return listsTool(e.proxied, "b__echo")
	}); err != nil {
		return e, withLogs(err)
	}
	return e, nil
}

func listsTool(url, tool string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	for _, t := range res.Tools {
		if t.Name == tool {
			return nil
		}
	}
	return fmt.Errorf("tools/list has no %s (%d tools)", tool, len(res.Tools))
}

func dial(ctx context.Context, url string) (*client.Client, error) {
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", url, err)
	}
	if err := c.Start(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("start client for %s: %w", url, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		c.Close()
		return nil, fmt.Errorf("initialize %s: %w", url, err)
	}
	return c, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

func environment(b *testing.B) *env {
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	return shared
}

func connect(b *testing.B, url string) *client.Client {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dial(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchCall(b *testing.B, proxied bool) {
	e := environment(b)
	url, tool := e.direct, "echo"
	if proxied {
		url, tool = e.proxied, "b__echo"
	}
	c := connect(b, url)
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = map[string]any{"text": "hello"}
	for b.Loop() {
		res, err := c.CallTool(context.Background(), req)
		if err != nil || res.IsError {
			b.Fatalf("call %s: %v %+v", tool, err, res)
		}
	}
}

func benchList(b *testing.B, proxied bool) {
	e := environment(b)
	url := e.direct
	if proxied {
		url = e.proxied
	}
	c := connect(b, url)
	for b.Loop() {
		res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Tools) == 0 {
			b.Fatal("tools/list returned no tools")
		}
	}
}

// BenchmarkToolCall: both sides reach the backend, so proxy ÷ direct is the
// cost of the hop.
func BenchmarkToolCall(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchCall(b, false) })
	b.Run("proxy", func(b *testing.B) { benchCall(b, true) })
}

// BenchmarkToolsList: the gateway answers tools/list from its aggregated
// cache without asking the backend, so "gateway-cache" is not a backend
// round trip and is not comparable to "direct" (the report says so).
func BenchmarkToolsList(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchList(b, false) })
	b.Run("gateway-cache", func(b *testing.B) { benchList(b, true) })
}
