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
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mcpmesh/mcpmesh/internal/pprofserve"
	"github.com/mcpmesh/mcpmesh/internal/testauth"
	"github.com/mcpmesh/mcpmesh/internal/testbackend"
)

// readyWait bounds every readiness wait of the setup: generous, because a
// loaded 2-core machine builds and starts three processes here.
const readyWait = 60 * time.Second

// env is the shared cluster of the serial and concurrent benchmarks: a demo
// backend over streamable HTTP (with echo_wide), a control plane, and one
// data plane that serves the backend as "b", with pprof on.
type env struct {
	procs   []*proc
	tmp     string
	backend *proc
	direct  string // the backend's MCP URL
	// floor is a plain Go reverse proxy (demo-backend --forward,
	// httputil.ReverseProxy) in front of the backend, at floorURL: what
	// any Go HTTP hop costs on this machine, measured beside the data plane.
	floor    *proc
	floorURL string
	cp       *controlPlane
	dp       *dataPlane
	// dpAuth is a second data plane with client authentication on (API keys
	// and OAuth against auth, a local test authorization server); apiKey and
	// jwt are a credential of each kind it accepts.
	dpAuth      *dataPlane
	auth        *testauth.Server
	apiKey, jwt string
	// dpObs is a third data plane observed as in production: the access
	// log at info in JSON, and tracing to otlp, an in-process OTLP/HTTP
	// receiver that decodes every export.
	dpObs *dataPlane
	otlp  *otlpReceiver
}

// proc is a started process; exited is closed once it has been waited for.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid after exited
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process group (SIGTERM, then SIGKILL after 5 s).
func (p *proc) stop() {
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
	}
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

func bin(name string) string { return filepath.Join(os.Getenv("MCPMESH_BIN_DIR"), name) }

// start runs a process in its own process group, so stop can end it and
// anything it spawned.
func (e *env) start(log *syncBuf, extraEnv []string, path string, args ...string) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(path), err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	e.procs = append(e.procs, p)
	return p, nil
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

// forget drops a process stopped on purpose from the ones exited watches.
func (e *env) forget(p *proc) {
	e.procs = slices.DeleteFunc(e.procs, func(q *proc) bool { return q == p })
}

// stop ends every process and removes the data directory. It runs after the
// benchmarks and after a failed setup.
func (e *env) stop() {
	if e.auth != nil {
		defer e.auth.Close()
	}
	if e.otlp != nil {
		defer e.otlp.Close()
	}
	for _, p := range slices.Backward(e.procs) {
		p.stop()
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

// startBackend starts a demo backend over streamable HTTP and returns its
// MCP URL once it listens.
func (e *env) startBackend(log *syncBuf, args ...string) (*proc, string, error) {
	p, err := e.start(log, nil, bin("demo-backend"), append([]string{"--http", "127.0.0.1:0"}, args...)...)
	if err != nil {
		return nil, "", err
	}
	re := regexp.MustCompile(`listening on (http://\S+/mcp)`)
	var url string
	err = e.waitFor("a demo backend to listen", func() error {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			url = m[1]
			return nil
		}
		return errors.New("no 'listening on' line yet")
	})
	return p, url, err
}

type controlPlane struct {
	grpcAddr, token string
	dpToken         string // a dataplane token file: data planes never get the admin one
}

// startControlPlane starts a control plane on a data dir of its own under
// e.tmp and waits for its /health and admin token.
func (e *env) startControlPlane(log *syncBuf, name string) (*controlPlane, error) {
	dir := filepath.Join(e.tmp, name)
	var grpcAddr, httpAddr string
	var err error
	for _, a := range []*string{&grpcAddr, &httpAddr} {
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	cp := &controlPlane{grpcAddr: grpcAddr, token: filepath.Join(dir, "admin.token")}
	if _, err := e.start(log, nil, bin("controlplane"), "--data-dir", dir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--log-level", "warn"); err != nil {
		return nil, err
	}
	return cp, e.waitFor("the control plane's /health and admin token", func() error {
		code, body, err := get("http://" + httpAddr + "/health")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/health: %d %s", code, body)
		}
		_, err = os.Stat(cp.token)
		return err
	})
}

// ctl runs mcpctl against the control plane.
func (cp *controlPlane) ctl(args ...string) error {
	_, err := cp.ctlOut(args...)
	return err
}

// ctlOut is ctl returning mcpctl's standard output.
func (cp *controlPlane) ctlOut(args ...string) ([]byte, error) {
	cmd := exec.Command(bin("mcpctl"), append([]string{"--addr", cp.grpcAddr, "--token-file", cp.token}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mcpctl %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out, nil
}

type dataPlane struct {
	*proc
	listen string
	pprof  string // base URL of its pprof listener
}

func (dp *dataPlane) url() string { return "http://" + dp.listen + "/mcp" }

// startDataPlane starts a data plane of cp with --pprof-addr (pprofAddr, or
// a free port when empty) and waits for /readyz.
func (e *env) startDataPlane(log *syncBuf, cp *controlPlane, id, pprofAddr string, extra ...string) (*dataPlane, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return e.startDataPlaneAt(log, cp, id, listen, pprofAddr, extra...)
}

// startDataPlaneAt is startDataPlane on the address listen.
func (e *env) startDataPlaneAt(log *syncBuf, cp *controlPlane, id, listen, pprofAddr string, extra ...string) (*dataPlane, error) {
	var err error
	if pprofAddr == "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	if cp.dpToken == "" {
		cp.dpToken = filepath.Join(filepath.Dir(cp.token), "dataplane.token")
		if err := cp.ctl("token", "create", "--role", "dataplane", "--secret-file", cp.dpToken); err != nil {
			return nil, err
		}
	}
	p, err := e.start(log, append([]string{"MCPMESH_TOKEN_FILE=" + cp.dpToken}, strings.Fields(os.Getenv("MCPMESH_BENCH_DP_ENV"))...), bin("dataplane"),
		append([]string{"--control-plane", cp.grpcAddr, "--listen", listen, "--id", id, "--log-level", "warn", "--pprof-addr", pprofAddr}, extra...)...)
	if err != nil {
		return nil, err
	}
	dp := &dataPlane{proc: p, listen: listen, pprof: "http://" + pprofAddr}
	return dp, e.waitFor("the data plane's /readyz", func() error {
		if code, body, err := get("http://" + listen + "/readyz"); err != nil || code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s %v", code, body, err)
		}
		return nil
	})
}

type serverHealth struct {
	Name, State string
	Tools       int
}

// health reads the data plane's /health servers.
func (dp *dataPlane) health() ([]serverHealth, error) {
	_, body, err := get("http://" + dp.listen + "/health")
	if err != nil {
		return nil, err
	}
	var h struct{ Servers []serverHealth }
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, fmt.Errorf("/health: %w: %s", err, body)
	}
	return h.Servers, nil
}

// serves checks that /health shows exactly the servers named, each healthy
// with at least minTools tools, and that the gateway lists tool.
func (dp *dataPlane) serves(names []string, minTools int, tool string) error {
	hs, err := dp.health()
	if err != nil {
		return err
	}
	if len(hs) != len(names) {
		return fmt.Errorf("/health has %d servers, want %d", len(hs), len(names))
	}
	for _, h := range hs {
		if !slices.Contains(names, h.Name) || h.State != "healthy" || h.Tools < minTools {
			return fmt.Errorf("/health: server %+v, want one of %v healthy with >= %d tools", h, names, minTools)
		}
	}
	return listsTool(dp.url(), tool)
}

// setup starts the shared cluster and returns once the data plane lists b's
// tools. On failure it stops what it started.
func setup() (e *env, err error) {
	if os.Getenv("MCPMESH_BIN_DIR") == "" {
		return nil, errors.New("MCPMESH_BIN_DIR is not set: run `make bench`")
	}
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

	// The backend serves what mcp-go serves by default (2026-07-28 and the
	// 2025 revisions), so the client and the data plane reach it with
	// 2026-07-28; MCPMESH_BENCH_BACKEND_ERA=2025 makes it a 2025-only server
	// (the client then speaks 2025-11-25 to it directly, the data plane too).
	args := []string{"--name", "b", "--wide-echo", "--modern"}
	switch era := os.Getenv("MCPMESH_BENCH_BACKEND_ERA"); era {
	case "", "2026":
	case "2025":
		args = args[:len(args)-1]
	default:
		return e, fmt.Errorf("MCPMESH_BENCH_BACKEND_ERA=%q: want 2025 or 2026", era)
	}
	if e.backend, e.direct, err = e.startBackend(blog, args...); err != nil {
		return e, withLogs(err)
	}
	if e.floor, e.floorURL, err = e.startBackend(&syncBuf{}, "--forward", e.direct); err != nil {
		return e, withLogs(err)
	}
	if e.cp, err = e.startControlPlane(log, "cp"); err != nil {
		return e, withLogs(err)
	}
	if err := e.cp.ctl("server", "add", "b", "--url", e.direct); err != nil {
		return e, withLogs(err)
	}
	if e.dp, err = e.startDataPlane(log, e.cp, "bench", os.Getenv("MCPMESH_BENCH_PPROF_ADDR")); err != nil {
		return e, withLogs(err)
	}
	// Ready means: b healthy with its tools counted (/health), and
	// b__echo_wide in the gateway's tools/list.
	if err := e.waitFor("the data plane to serve b's tools", func() error {
		return e.dp.serves([]string{"b"}, 1, "b__"+testbackend.WideEchoTool)
	}); err != nil {
		return e, withLogs(err)
	}
	if err := e.setupAuth(log); err != nil {
		return e, withLogs(err)
	}
	if err := e.setupObserved(log); err != nil {
		return e, withLogs(err)
	}
	return e, nil
}

// otlpReceiver is a real OTLP/HTTP traces endpoint counting the spans it
// decodes.
type otlpReceiver struct {
	*httptest.Server
	spans atomic.Int64
}

func newOTLPReceiver() *otlpReceiver {
	o := &otlpReceiver{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				o.spans.Add(int64(len(ss.GetSpans())))
			}
		}
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	return o
}

// setupObserved starts dpObs: info-level JSON access log, traces to an
// in-process OTLP receiver.
func (e *env) setupObserved(log *syncBuf) error {
	e.otlp = newOTLPReceiver()
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	if e.dpObs, err = e.startDataPlaneAt(log, e.cp, "bench-observed", listen, os.Getenv("MCPMESH_BENCH_OBSERVED_PPROF_ADDR"),
		"--log-level", "info", "--log-format", "json", "--access-log=true", "--otlp-endpoint", e.otlp.URL); err != nil {
		return err
	}
	return e.waitFor("the observed data plane to serve b's tools", func() error {
		return listsTool(e.dpObs.url(), "b__"+testbackend.WideEchoTool)
	})
}

// setupAuth starts dpAuth (--client-keys and --oauth-issuer) and issues an
// API key and a JWT for it.
func (e *env) setupAuth(log *syncBuf) error {
	var err error
	if e.auth, err = testauth.New(); err != nil {
		return fmt.Errorf("test authorization server: %w", err)
	}
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	resource := "http://" + listen + "/mcp"
	if e.dpAuth, err = e.startDataPlaneAt(log, e.cp, "bench-auth", listen, "",
		"--client-keys", "--oauth-issuer", e.auth.Issuer(), "--oauth-resource", resource); err != nil {
		return err
	}
	out, err := e.cp.ctlOut("client-key", "create", "--description", "bench", "-o", "json")
	if err != nil {
		return err
	}
	var key struct{ Secret string }
	if err := json.Unmarshal(out, &key); err != nil || key.Secret == "" {
		return fmt.Errorf("client-key create -o json = %s (%v)", out, err)
	}
	e.apiKey = key.Secret
	if e.jwt, err = e.auth.Token(testauth.Claims{Audience: resource, Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
		return err
	}
	return e.waitFor("the authenticating data plane to serve b's tools with a key", func() error {
		return listsToolWith(e.dpAuth.url(), "b__"+testbackend.WideEchoTool, e.apiKey)
	})
}

func listsTool(url, tool string) error { return listsToolWith(url, tool, "") }

// listsToolWith is listsTool with a bearer token ("" for none).
func listsToolWith(url, tool, bearer string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialWith(ctx, url, bearer)
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

func dial(ctx context.Context, url string) (*client.Client, error) { return dialWith(ctx, url, "") }

// dialOwn is dial with an HTTP transport of the client's own (a clone of
// http.DefaultTransport), as a client process of its own has.
func dialOwn(ctx context.Context, url string) (*client.Client, error) {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	return dialOpts(ctx, url, transport.WithHTTPBasicClient(hc))
}

// dialWith is dial sending Authorization: Bearer bearer (unless "").
func dialWith(ctx context.Context, url, bearer string) (*client.Client, error) {
	var opts []transport.StreamableHTTPCOption
	if bearer != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + bearer}))
	}
	return dialOpts(ctx, url, opts...)
}

// dialOpts starts and initializes a streamable HTTP client of url with opts.
func dialOpts(ctx context.Context, url string, opts ...transport.StreamableHTTPCOption) (*client.Client, error) {
	c, err := client.NewStreamableHttpClient(url, opts...)
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

func connect(b *testing.B, url string) *client.Client { return connectWith(b, url, "") }

// connectWith is connect with a bearer token.
func connectWith(b *testing.B, url, bearer string) *client.Client {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := dialWith(ctx, url, bearer)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// Figures read from /proc, Linux only: a process's CPU time (utime+stime of
// all its threads, dead ones included, in clock ticks of 10 ms: USER_HZ is
// 100 in the /proc ABI) and its resident set.
const clockTick = 10 * time.Millisecond

func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// rss is VmRSS in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// cpuMeter reports a process's CPU time per call over a stretch of calls.
type cpuMeter struct {
	pid   int
	start time.Duration
}

func startCPU(b *testing.B, pid int) cpuMeter {
	t, err := cpuTime(pid)
	if err != nil {
		b.Fatal(err)
	}
	return cpuMeter{pid, t}
}

// since is the CPU time the process spent since startCPU.
func (m cpuMeter) since(b *testing.B) time.Duration {
	t, err := cpuTime(m.pid)
	if err != nil {
		b.Fatal(err)
	}
	return t - m.start
}

// report adds the CPU time since startCPU, divided by calls, as unit.
func (m cpuMeter) report(b *testing.B, calls int, unit string) {
	b.ReportMetric(float64(m.since(b))/float64(time.Microsecond)/float64(calls), unit)
}

// freeOSMemory makes the data plane collect garbage and return free pages
// to the OS (pprofserve), so that RSS counts what it retains.
func (dp *dataPlane) freeOSMemory() error {
	resp, err := http.Post(dp.pprof+pprofserve.FreeOSMemoryPath, "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST %s: %s", pprofserve.FreeOSMemoryPath, resp.Status)
	}
	return nil
}

// heapInuse is the data plane's runtime HeapInuse, from the heap profile's
// MemStats trailer.
func (dp *dataPlane) heapInuse() (int64, error) {
	_, body, err := get(dp.pprof + "/debug/pprof/heap?debug=1")
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^# HeapInuse = (\d+)$`).FindSubmatch(body)
	if m == nil {
		return 0, errors.New("heap profile has no HeapInuse")
	}
	return strconv.ParseInt(string(m[1]), 10, 64)
}

// A call is one tools/call: the echo tool or echo_wide (60 parameters), with
// the same argument, so the two differ only by the tool's schema.
type call struct{ tool string }

var (
	echo = call{"echo"}
	wide = call{testbackend.WideEchoTool}
)

func (k call) request(proxied bool) mcp.CallToolRequest {
	req := mcp.CallToolRequest{}
	req.Params.Name = k.tool
	if proxied {
		req.Params.Name = "b__" + k.tool
	}
	req.Params.Arguments = map[string]any{"text": "hello"}
	return req
}

func do(c *client.Client, req mcp.CallToolRequest) error {
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		return fmt.Errorf("call %s: %w", req.Params.Name, err)
	}
	if res.IsError {
		return fmt.Errorf("call %s: error result %+v", req.Params.Name, res.Content)
	}
	return nil
}

// A route is how a benchmark client reaches the backend.
type route int

const (
	viaDirect        route = iota // straight to the backend
	viaProxy                      // through the data plane
	viaFloor                      // through the plain reverse proxy
	viaProxyAPIKey                // through the authenticating data plane, with an API key
	viaProxyJWT                   // through the authenticating data plane, with a JWT
	viaProxyObserved              // through the data plane with access log and tracing on
)

// benchCall runs serial calls on one session and reports the CPU each
// process spent per call: the backend's always, the data plane's or the
// reverse proxy's when the call goes through one.
func benchCall(b *testing.B, k call, via route) {
	e := environment(b)
	url, hop, unit, bearer := e.direct, (*proc)(nil), "", ""
	switch via {
	case viaProxy:
		url, hop, unit = e.dp.url(), e.dp.proc, "dp-cpu-us/call"
	case viaProxyAPIKey:
		url, hop, unit, bearer = e.dpAuth.url(), e.dpAuth.proc, "dp-cpu-us/call", e.apiKey
	case viaProxyJWT:
		url, hop, unit, bearer = e.dpAuth.url(), e.dpAuth.proc, "dp-cpu-us/call", e.jwt
	case viaProxyObserved:
		url, hop, unit = e.dpObs.url(), e.dpObs.proc, "dp-cpu-us/call"
	case viaFloor:
		url, hop, unit = e.floorURL, e.floor, "floor-cpu-us/call"
	}
	c := connectWith(b, url, bearer)
	req := k.request(via != viaDirect && via != viaFloor)
	backendCPU := startCPU(b, e.backend.pid())
	var hopCPU cpuMeter
	if hop != nil {
		hopCPU = startCPU(b, hop.pid())
	}
	for b.Loop() {
		if err := do(c, req); err != nil {
			b.Fatal(err)
		}
	}
	backendCPU.report(b, b.N, "backend-cpu-us/call")
	if hop != nil {
		hopCPU.report(b, b.N, unit)
	}
}

func benchList(b *testing.B, proxied bool) {
	e := environment(b)
	url := e.direct
	if proxied {
		url = e.dp.url()
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

// BenchmarkToolCall: serial tools/call on one session, direct and through
// the data plane, for echo and for echo_wide (a 60-parameter schema, same
// argument). ns/op is the mean round trip; proxy ÷ direct is the cost of
// the hop. dp-cpu-us/call is the data plane's own CPU time (utime+stime
// from /proc) over the b.N calls, divided by b.N.
func BenchmarkToolCall(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchCall(b, echo, viaDirect) })
	b.Run("proxy", func(b *testing.B) { benchCall(b, echo, viaProxy) })
	b.Run("proxy-apikey", func(b *testing.B) { benchCall(b, echo, viaProxyAPIKey) })
	b.Run("proxy-jwt", func(b *testing.B) { benchCall(b, echo, viaProxyJWT) })
	// proxy-observed: access log at info in JSON and a span per request
	// and per upstream call exported over OTLP; ÷ proxy is their cost.
	b.Run("proxy-observed", func(b *testing.B) { benchCall(b, echo, viaProxyObserved) })
	b.Run("floor", func(b *testing.B) { benchCall(b, echo, viaFloor) })
	b.Run("direct-wide60", func(b *testing.B) { benchCall(b, wide, viaDirect) })
	b.Run("proxy-wide60", func(b *testing.B) { benchCall(b, wide, viaProxy) })
}

// latencySamples is the number of direct/proxied pairs of one
// BenchmarkAddedLatency run: enough for a p99 that 20 samples decide.
const latencySamples = 2000

// BenchmarkAddedLatency: serial echo calls, one direct then one proxied, in
// turn on two sessions, so that both see the same moment of a shared
// machine. It reports each side's p50 and p99 and the added latency,
// p(proxy) - p(direct) for p50 and p99 (a difference of percentiles: the
// two calls of a pair are independent, so a percentile of differences would
// mean nothing). ns/op is suppressed: one iteration is 2000 pairs.
func BenchmarkAddedLatency(b *testing.B) {
	e := environment(b)
	direct, proxied := connect(b, e.direct), connect(b, e.dp.url())
	dreq, preq := echo.request(false), echo.request(true)
	for range 50 { // warm both paths: connections, caches
		if err := errors.Join(do(direct, dreq), do(proxied, preq)); err != nil {
			b.Fatal(err)
		}
	}
	var d, p []time.Duration
	for b.Loop() {
		d, p = make([]time.Duration, 0, latencySamples), make([]time.Duration, 0, latencySamples)
		for range latencySamples {
			t0 := time.Now()
			if err := do(direct, dreq); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if err := do(proxied, preq); err != nil {
				b.Fatal(err)
			}
			d, p = append(d, t1.Sub(t0)), append(p, time.Since(t1))
		}
	}
	slices.Sort(d)
	slices.Sort(p)
	us := func(v time.Duration) float64 { return float64(v) / float64(time.Microsecond) }
	for _, q := range []struct {
		name string
		f    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		pd, pp := d[int(q.f*float64(len(d)-1))], p[int(q.f*float64(len(p)-1))]
		b.ReportMetric(us(pd), q.name+"-direct-us")
		b.ReportMetric(us(pp), q.name+"-proxy-us")
		b.ReportMetric(us(pp-pd), q.name+"-added-us")
	}
	b.ReportMetric(0, "ns/op")
}

// sessions is the concurrency of BenchmarkThroughput16.
const sessions = 16

// throughputRounds rounds of throughputCalls calls each way make one
// iteration of BenchmarkThroughput16.
const (
	throughputRounds = 8
	throughputCalls  = 2000
)

// BenchmarkThroughput16: echo calls spread over 16 sessions (16 clients
// calling in a loop), direct and through the data plane, in alternating
// rounds of 2000 calls (direct, proxy, proxy, direct, ...: 8 rounds each
// way), so that both sides see the same moments of a shared machine, as in
// BenchmarkAddedLatency. direct-calls/s and proxy-calls/s are each side's
// calls over its own wall time; kept is proxy ÷ direct of those, the share
// of direct throughput the data plane keeps. On a 2-core machine the
// clients, the backend and the data plane share the cores, as in the issue.
// The CPU per call of every process is reported per side: the data plane's,
// the backend's and the clients' (this process). Each client has an HTTP
// transport of its own, as 16 client processes would: sharing
// http.DefaultTransport (two idle connections per host) would make the 16
// re-dial hundreds of times a second. ns/op is suppressed.
func BenchmarkThroughput16(b *testing.B) {
	e := environment(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type side struct {
		name              string
		clients           []*client.Client
		req               mcp.CallToolRequest
		elapsed           time.Duration
		calls             int
		dp, backend, self time.Duration
	}
	sides := [2]*side{{name: "direct"}, {name: "proxy"}}
	for i, s := range sides {
		url := e.direct
		if i == 1 {
			url = e.dp.url()
		}
		s.req = echo.request(i == 1)
		for range sessions {
			c, err := dialOwn(ctx, url)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			s.clients = append(s.clients, c)
		}
	}
	round := func(s *side, calls int) {
		var next atomic.Int64
		errs := make(chan error, sessions)
		dp, be, self := startCPU(b, e.dp.pid()), startCPU(b, e.backend.pid()), startCPU(b, os.Getpid())
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, c := range s.clients {
			wg.Go(func() {
				for next.Add(1) <= int64(calls) {
					if err := do(c, s.req); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		s.elapsed += time.Since(t0)
		s.calls += calls
		s.dp += dp.since(b)
		s.backend += be.since(b)
		s.self += self.since(b)
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	for _, s := range sides { // warm both paths: connections, caches
		round(s, 10*sessions)
		*s = side{name: s.name, clients: s.clients, req: s.req}
	}
	for b.Loop() {
		for r := range 2 * throughputRounds {
			// ABBA order: d p p d d p p d ..., so a drift of the machine
			// weighs on both sides alike.
			round(sides[(r+r/2)%2], throughputCalls)
		}
	}
	rate := func(s *side) float64 { return float64(s.calls) / s.elapsed.Seconds() }
	us := func(d time.Duration, s *side) float64 {
		return float64(d) / float64(time.Microsecond) / float64(s.calls)
	}
	for _, s := range sides {
		b.ReportMetric(rate(s), s.name+"-calls/s")
		b.ReportMetric(us(s.backend, s), s.name+"-backend-cpu-us/call")
		b.ReportMetric(us(s.self, s), s.name+"-client-cpu-us/call")
	}
	b.ReportMetric(us(sides[1].dp, sides[1]), "dp-cpu-us/call")
	b.ReportMetric(rate(sides[1])/rate(sides[0]), "kept")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkToolsList: the gateway answers tools/list from its aggregated
// cache without asking the backend, so "gateway-cache" is not a backend
// round trip and is not comparable to "direct" (the report says so).
func BenchmarkToolsList(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchList(b, false) })
	b.Run("gateway-cache", func(b *testing.B) { benchList(b, true) })
}

// The memory benchmarks run their own control plane, so that the servers
// they register never reach the shared data plane, and start a fresh data
// plane for every measurement.
type memEnv struct {
	cp          *controlPlane
	small, many string  // backend URLs: the fixed tools; manyTools more
	tools       int     // tools the many backend lists
	toolJSON    float64 // their mean size in bytes, compact JSON
}

const (
	memBackends = 10
	manyTools   = 10_000
)

var (
	memOnce sync.Once
	mem     *memEnv
	memErr  error
)

func memoryEnv(b *testing.B) (*env, *memEnv) {
	e := environment(b)
	memOnce.Do(func() { mem, memErr = setupMemory(e) })
	if memErr != nil {
		b.Fatal(memErr)
	}
	return e, mem
}

func setupMemory(e *env) (*memEnv, error) {
	m := &memEnv{}
	log := &syncBuf{}
	var err error
	if _, m.small, err = e.startBackend(log, "--name", "small"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	manyLog := &syncBuf{}
	if _, m.many, err = e.startBackend(manyLog, "--name", "many", "--tools", strconv.Itoa(manyTools)); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, manyLog)
	}
	if m.cp, err = e.startControlPlane(log, "cp-mem"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	// The tools' JSON size: each listed tool re-encoded compactly by mcp-go,
	// which is what the wire carries up to key order and spacing.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dial(ctx, m.many)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, fmt.Errorf("tools/list of the many backend: %w", err)
	}
	total := 0
	for _, t := range res.Tools {
		j, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("encode tool %s: %w", t.Name, err)
		}
		total += len(j)
	}
	m.tools, m.toolJSON = len(res.Tools), float64(total)/float64(len(res.Tools))
	return m, nil
}

// memRound starts a data plane of the memory control plane, registers
// servers through register (after reading the idle figures), waits until
// ready says they are served, and always stops the data plane and removes
// the servers again.
func memRound(e *env, m *memEnv, servers map[string]string, ready func(*dataPlane) error, measure func(dp *dataPlane) error) (err error) {
	log := &syncBuf{}
	dp, err := e.startDataPlane(log, m.cp, "bench-mem", "")
	if dp != nil {
		defer func() {
			dp.stop()
			e.forget(dp.proc)
			for name := range servers {
				if rmErr := m.cp.ctl("server", "remove", name); rmErr != nil && err == nil {
					err = rmErr
				}
			}
			if err != nil {
				err = fmt.Errorf("%w\ndata plane log:\n%s", err, log)
			}
		}()
	}
	if err != nil {
		return err
	}
	if err := measure(dp); err != nil { // idle: no servers
		return err
	}
	for name, url := range servers {
		if err := m.cp.ctl("server", "add", name, "--url", url); err != nil {
			return err
		}
	}
	if err := e.waitFor("the memory data plane to serve every server", func() error { return ready(dp) }); err != nil {
		return err
	}
	return measure(dp)
}

type memReading struct{ rss, rssFreed, heap int64 }

// read takes the data plane's RSS as it is, then frees OS memory and takes
// RSS and HeapInuse again.
func read(dp *dataPlane) (memReading, error) {
	var r memReading
	var err error
	if r.rss, err = rss(dp.pid()); err != nil {
		return r, err
	}
	if err = dp.freeOSMemory(); err != nil {
		return r, err
	}
	if r.rssFreed, err = rss(dp.pid()); err != nil {
		return r, err
	}
	r.heap, err = dp.heapInuse()
	return r, err
}

// BenchmarkRSS10Backends: the data plane's VmRSS with 10 streamable HTTP
// backends registered and connected (10 registrations of one demo backend
// process: the data plane holds 10 connections and 10 catalogs either way).
// rss-MB is read as it is once all 10 are served; rss-freed-MB and heap-MB
// after a forced GC that returns free pages to the OS; idle-rss-freed-MB is
// the same data plane before any backend. 1 MB = 10^6 bytes.
func BenchmarkRSS10Backends(b *testing.B) {
	e, m := memoryEnv(b)
	servers := map[string]string{}
	var names []string
	for i := range memBackends {
		name := fmt.Sprintf("b%d", i)
		servers[name], names = m.small, append(names, name)
	}
	var idle, full memReading
	for b.Loop() {
		readings := 0
		err := memRound(e, m, servers,
			func(dp *dataPlane) error { return dp.serves(names, 1, names[len(names)-1]+"__echo") },
			func(dp *dataPlane) (err error) {
				if readings++; readings == 1 {
					idle, err = read(dp)
				} else {
					full, err = read(dp)
				}
				return err
			})
		if err != nil {
			b.Fatal(err)
		}
	}
	mb := func(v int64) float64 { return float64(v) / 1e6 }
	b.ReportMetric(mb(full.rss), "rss-MB")
	b.ReportMetric(mb(full.rssFreed), "rss-freed-MB")
	b.ReportMetric(mb(full.heap), "heap-MB")
	b.ReportMetric(mb(idle.rssFreed), "idle-rss-freed-MB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkMemoryPerTool: what the data plane retains per cached tool at
// 10,000 tools. A fresh data plane is read with no server (after a forced
// GC that returns free pages to the OS), then one backend with 10,006 tools
// is registered; once the gateway lists its last tool, the client session
// is closed and the data plane read again the same way. rss-B/tool and
// heap-B/tool are the deltas divided by the tools; json-B/tool is a tool's
// mean JSON size; x-json is rss-B/tool ÷ json-B/tool. The delta also holds
// one backend connection (see BenchmarkRSS10Backends: well under 1 MB), and
// RSS moves in pages, so the figure is good to about ±100 B/tool.
func BenchmarkMemoryPerTool(b *testing.B) {
	e, m := memoryEnv(b)
	servers := map[string]string{"many": m.many}
	last := "many__" + testbackend.GeneratedToolName(manyTools-1)
	var before, after memReading
	for b.Loop() {
		readings := 0
		err := memRound(e, m, servers,
			func(dp *dataPlane) error { return dp.serves([]string{"many"}, m.tools, last) },
			func(dp *dataPlane) (err error) {
				if readings++; readings == 1 {
					before, err = read(dp)
				} else {
					after, err = read(dp)
				}
				return err
			})
		if err != nil {
			b.Fatal(err)
		}
	}
	perTool := func(a, b int64) float64 { return float64(b-a) / float64(m.tools) }
	b.ReportMetric(perTool(before.rssFreed, after.rssFreed), "rss-B/tool")
	b.ReportMetric(perTool(before.heap, after.heap), "heap-B/tool")
	b.ReportMetric(m.toolJSON, "json-B/tool")
	b.ReportMetric(perTool(before.rssFreed, after.rssFreed)/m.toolJSON, "x-json")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkProfile writes a CPU profile (and, beside it as -allocs.pprof,
// the allocation profile) of the data plane under tools/call
// load (echo over 16 sessions) to $MCPMESH_BENCH_CPUPROFILE, for
// $MCPMESH_BENCH_PROFILE_SECONDS (10), with $MCPMESH_BENCH_PROFILE_SESSIONS
// (16) clients calling in a loop (1 profiles the serial path of ToolCall),
// echo or, with $MCPMESH_BENCH_PROFILE_TOOL=echo_wide, the 60-parameter tool. It
// is skipped unless the file is named: `make bench-profile` runs it.
func BenchmarkProfile(b *testing.B) {
	out := os.Getenv("MCPMESH_BENCH_CPUPROFILE")
	if out == "" {
		b.Skip("MCPMESH_BENCH_CPUPROFILE is not set")
	}
	secs := 10
	if s := os.Getenv("MCPMESH_BENCH_PROFILE_SECONDS"); s != "" {
		var err error
		if secs, err = strconv.Atoi(s); err != nil || secs <= 0 {
			b.Fatalf("MCPMESH_BENCH_PROFILE_SECONDS=%q: want a positive number", s)
		}
	}
	clients := sessions
	if s := os.Getenv("MCPMESH_BENCH_PROFILE_SESSIONS"); s != "" {
		var err error
		if clients, err = strconv.Atoi(s); err != nil || clients <= 0 {
			b.Fatalf("MCPMESH_BENCH_PROFILE_SESSIONS=%q: want a positive number", s)
		}
	}
	e := environment(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k := echo
	if os.Getenv("MCPMESH_BENCH_PROFILE_TOOL") == testbackend.WideEchoTool {
		k = wide
	}
	req := k.request(true)
	var wg sync.WaitGroup
	var calls atomic.Int64
	for range clients {
		c, err := dialOwn(ctx, e.dp.url())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := do(c, req); err == nil {
					calls.Add(1)
				}
			}
		})
	}
	defer wg.Wait() // after cancel, before the clients close
	for b.Loop() {
		hc := http.Client{Timeout: time.Duration(secs+30) * time.Second}
		resp, err := hc.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", e.dp.pprof, secs))
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("CPU profile: %s %v", resp.Status, err)
		}
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		// And what was allocated, where, since the data plane started.
		code, allocs, err := get(e.dp.pprof + "/debug/pprof/allocs")
		if err != nil || code != http.StatusOK {
			b.Fatalf("allocation profile: %d %v", code, err)
		}
		if err := os.WriteFile(strings.TrimSuffix(out, ".pprof")+"-allocs.pprof", allocs, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cancel()
	b.ReportMetric(float64(calls.Load())/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(0, "ns/op")
}
