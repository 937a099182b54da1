//go:build bench

// Package bench measures the cost of the mcpmesh proxy hop against a direct
// connection to the same backend, in the same run.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

type env struct {
	direct, proxied string
	procs           []*exec.Cmd
}

var (
	setupOnce sync.Once
	shared    *env
	setupErr  error
)

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func start(e *env, log *syncBuf, path string, args ...string) error {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	e.procs = append(e.procs, cmd)
	return nil
}

func waitFor(what string, cond func() bool) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("timed out waiting for %s", what)
}

// setup starts a demo backend over HTTP, a control plane and one data plane
// that serves the backend as "b".
func setup() (*env, error) {
	dir := os.Getenv("MCPMESH_BIN_DIR")
	if dir == "" {
		return nil, fmt.Errorf("MCPMESH_BIN_DIR is not set: run `make bench`")
	}
	bin := func(n string) string { return filepath.Join(dir, n) }
	e := &env{}
	tmp, err := os.MkdirTemp("", "mcpmesh-bench")
	if err != nil {
		return nil, err
	}
	blog := &syncBuf{}
	if err := start(e, blog, bin("demo-backend"), "--name", "b", "--http", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	re := regexp.MustCompile(`listening on (http://\S+/mcp)`)
	if err := waitFor("backend", func() bool { return re.MatchString(blog.String()) }); err != nil {
		return nil, err
	}
	e.direct = re.FindStringSubmatch(blog.String())[1]

	grpcAddr, httpAddr, listen := freeAddr(), freeAddr(), freeAddr()
	log := &syncBuf{}
	if err := start(e, log, bin("controlplane"), "--data-dir", tmp, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"); err != nil {
		return nil, err
	}
	if err := waitFor("control plane", func() bool { _, err := os.Stat(filepath.Join(tmp, "admin.token")); return err == nil }); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	ctl := exec.Command(bin("mcpctl"), "--addr", grpcAddr, "--token-file", filepath.Join(tmp, "admin.token"), "server", "add", "b", "--url", e.direct)
	if out, err := ctl.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mcpctl: %v: %s", err, out)
	}
	dp := exec.Command(bin("dataplane"), "--control-plane", grpcAddr, "--listen", listen, "--id", "bench", "--log-level", "warn")
	dp.Env = append(os.Environ(), "MCPMESH_TOKEN_FILE="+filepath.Join(tmp, "admin.token"))
	dp.Stdout, dp.Stderr = log, log
	if err := dp.Start(); err != nil {
		return nil, err
	}
	e.procs = append(e.procs, dp)
	e.proxied = "http://" + listen + "/mcp"
	err = waitFor("data plane serving b__echo", func() bool {
		resp, err := http.Get("http://" + listen + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return strings.Contains(b.String(), `"healthy"`)
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, log.String())
	}
	return e, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		for _, p := range shared.procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_, _ = p.Process.Wait()
		}
	}
	os.Exit(code)
}

func connect(b *testing.B, url string) *client.Client {
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func benchCall(b *testing.B, proxied bool) {
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	url, tool := shared.direct, "echo"
	if proxied {
		url, tool = shared.proxied, "b__echo"
	}
	c := connect(b, url)
	req := mcp.CallToolRequest{}
	req.Params.Name = tool
	req.Params.Arguments = map[string]any{"text": "hello"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := c.CallTool(context.Background(), req)
		if err != nil || res.IsError {
			b.Fatalf("call %s: %v %+v", tool, err, res)
		}
	}
}

func benchList(b *testing.B, proxied bool) {
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	url := shared.direct
	if proxied {
		url = shared.proxied
	}
	c := connect(b, url)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

// Read as ratios: ToolCall/proxy ÷ ToolCall/direct is the cost of the hop.
func BenchmarkToolCall(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchCall(b, false) })
	b.Run("proxy", func(b *testing.B) { benchCall(b, true) })
}

func BenchmarkToolsList(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchList(b, false) })
	b.Run("proxy", func(b *testing.B) { benchList(b, true) })
}
