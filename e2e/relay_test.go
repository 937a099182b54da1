//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The relay matrix (issue 10, points 2 and 6): the official TypeScript SDK
// client (e2e/testdata/relay-matrix.mjs, with sampling, elicitation, roots
// and tasks handlers) exercises every relayed protocol feature against the
// official server-everything, first directly, then through data planes, in
// the same test.
//
// The rule: every feature passes directly, on every transport. Through the
// gateway every feature passes, except the (row, feature) pairs that
// relayGaps lists with a reason. A listed pair that passes fails the test
// until the entry is narrowed or removed, so the list only shrinks.
// Results that must come through unchanged (structured content, resource
// links, annotations, the tools' descriptions) must also equal the direct
// HTTP row's, item for item.

// relayGap is a known gap: the rows it covers (path.Match patterns over
// row names), a feature, and why.
type relayGap struct {
	rows            []string
	feature, reason string
	// mayPass: today it passes in some runs and fails in others, so a pass
	// does not fail the test. Keep for what the lead has seen do both.
	mayPass bool
}

// throughAll matches every row through the gateway.
var throughAll = []string{"through/*/*", "through/*/*/*"}

// relayGaps lists what today's data plane does not relay. The router work
// empties it.
var relayGaps = []relayGap{}

// relayRow is one column of the matrix: how the client reaches
// server-everything.
type relayRow struct {
	name      string // direct|through/<backend transport>/<client transport>[/3-replicas]
	transport string // the driver's client transport: http, sse, stdio
	url       string
	command   []string // stdio: the server's command line
}

func TestRelayMatrix(t *testing.T) {
	// Runs alongside the other interop test; both spend their time waiting
	// on Node processes.
	t.Parallel()
	in := interopInstall(t)
	driver, err := filepath.Abs(filepath.Join("testdata", "relay-matrix.mjs"))
	if err != nil {
		t.Fatal(err)
	}

	// server-everything over streamable HTTP and legacy SSE, for the direct
	// rows; the HTTP one also backs the gateways registered over HTTP.
	evHTTP := startEverything(t, in, "streamableHttp")
	evSSE := startEverything(t, in, "sse")
	stdioCmd := []string{in.node, in.everything, "stdio"}

	// One control plane per registration, so that a data plane serves
	// server-everything once, under its own names; one data plane per row,
	// so that rows never share a data plane's upstream session.
	cpHTTP := startControlPlane(t, filepath.Join(t.TempDir(), "data-http"), "", "")
	mustCtl(t, cpHTTP, "server", "add", "everything", "--url", evHTTP+"/mcp", "--prefix", "")
	cpStdio := startControlPlane(t, filepath.Join(t.TempDir(), "data-stdio"), "", "")
	mustCtl(t, cpStdio, "server", "add", "everything", "--prefix", "", "--", stdioCmd[0], stdioCmd[1], stdioCmd[2])
	gateway := func(cp *controlPlane, id string) *dataPlane {
		dp := startDataPlane(t, cp, id)
		c := mcpClient(t, dp.mcpURL())
		eventually(t, 60*time.Second, id+" lists server-everything", func() error {
			return toolsListed(c, []string{"echo", "get-sum"})
		})
		return dp
	}
	viaHTTP, viaHTTPForSSE, viaStdio := gateway(cpHTTP, "dp-http"), gateway(cpHTTP, "dp-http-sse"), gateway(cpStdio, "dp-stdio")
	var httpReplicas, stdioReplicas []string
	for i := 1; i <= 3; i++ {
		httpReplicas = append(httpReplicas, gateway(cpHTTP, fmt.Sprintf("dp-http-%d", i)).listen)
		stdioReplicas = append(stdioReplicas, gateway(cpStdio, fmt.Sprintf("dp-stdio-%d", i)).listen)
	}
	lbHTTP, lbStdio := startBalancer(t, httpReplicas), startBalancer(t, stdioReplicas)

	rows := []relayRow{
		{name: "direct/http", transport: "http", url: evHTTP + "/mcp"},
		{name: "direct/sse", transport: "sse", url: evSSE + "/sse"},
		{name: "direct/stdio", transport: "stdio", command: stdioCmd},
		{name: "through/http/http", transport: "http", url: viaHTTP.mcpURL()},
		{name: "through/http/sse", transport: "sse", url: "http://" + viaHTTPForSSE.listen + "/sse"},
		{name: "through/stdio/http", transport: "http", url: viaStdio.mcpURL()},
		{name: "through/http/http/3-replicas", transport: "http", url: lbHTTP.url + "/mcp"},
		{name: "through/stdio/http/3-replicas", transport: "http", url: lbStdio.url + "/mcp"},
	}
	results := make([]map[string]relayFeature, len(rows))
	var wg sync.WaitGroup
	start := time.Now()
	for i, row := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			results[i], err = runRelayDriver(in, driver, row)
			if err != nil {
				t.Errorf("%s: %v", row.name, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("measure: %d rows of the relay matrix in %v (in parallel); balancer requests per replica: http %v, stdio %v",
		len(rows), ms(time.Since(start)), lbHTTP.counts(), lbStdio.counts())
	if t.Failed() {
		return
	}

	var features []string
	for f := range results[0] {
		features = append(features, f)
	}
	sort.Strings(features)
	ref := results[0] // direct/http: what "unchanged" compares with
	verdict := make([]map[string]string, len(rows))
	for i, row := range rows {
		verdict[i] = map[string]string{}
		for _, f := range features {
			got, ok := results[i][f]
			if !ok {
				got = relayFeature{Detail: "not reported"}
			}
			pass := got.OK
			if pass && ref[f].Value != nil && !jsonEqual(got.Value, ref[f].Value) {
				pass = false
				got.Detail = fmt.Sprintf("differs from direct/http: %s vs %s", oneLine(string(got.Value), 200), oneLine(string(ref[f].Value), 200))
			}
			gap := findGap(row.name, f)
			switch {
			case pass && gap != nil && gap.mayPass:
				verdict[i][f] = "yes"
				t.Logf("known flaky gap passed this time: %s: %s (%s)", row.name, f, gap.reason)
			case pass && gap != nil:
				verdict[i][f] = "yes"
				t.Errorf("%s: %s passes now but relayGaps lists it (%q): narrow or remove the entry", row.name, f, gap.reason)
			case pass:
				verdict[i][f] = "yes"
			case gap != nil:
				verdict[i][f] = "gap"
				t.Logf("known gap: %s: %s: %s", row.name, f, got.Detail)
			default:
				verdict[i][f] = "NO"
				t.Errorf("%s: %s fails: %s", row.name, f, got.Detail)
			}
		}
	}
	for _, g := range relayGaps {
		if !gapUsed(g, rows, features) {
			t.Errorf("relayGaps entry %v matches no row and feature: remove it", g)
		}
	}

	// The matrix, to paste into a note: features down, rows across.
	var b strings.Builder
	b.WriteString("| feature |")
	for _, r := range rows {
		b.WriteString(" " + r.name + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(rows)) + "\n")
	for _, f := range features {
		b.WriteString("| " + f + " |")
		for i := range rows {
			cell := verdict[i][f]
			if f == "tools" {
				cell += " (" + strings.Fields(results[i][f].Detail + " ?")[0] + ")"
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	pass := make([]string, len(rows))
	for i, r := range rows {
		n := 0
		for _, f := range features {
			if verdict[i][f] == "yes" {
				n++
			}
		}
		pass[i] = fmt.Sprintf("%s %d/%d", r.name, n, len(features))
	}
	t.Logf("measure: relay matrix (yes: passes; gap: a listed known gap; NO: fails):\n%s\nfeatures passing per row: %s", b.String(), strings.Join(pass, ", "))
}

// relayFeature is what the driver reports of one feature.
type relayFeature struct {
	OK     bool            `json:"ok"`
	Detail string          `json:"detail"`
	Value  json.RawMessage `json:"value"`
	MS     int             `json:"ms"`
}

// runRelayDriver runs the driver for one row and returns its features.
func runRelayDriver(in interop, driver string, row relayRow) (map[string]relayFeature, error) {
	args := []string{driver, "--sdk", in.modules, "--transport", row.transport, "--wait", "20000"}
	if row.url != "" {
		args = append(args, "--url", row.url)
	}
	if len(row.command) > 0 {
		args = append(args, "--command", row.command[0])
		for _, a := range row.command[1:] {
			args = append(args, "--arg", a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, in.node, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopTimeout
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var res struct {
				Features map[string]relayFeature `json:"features"`
			}
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				return nil, fmt.Errorf("driver result: %w", err)
			}
			return res.Features, nil
		}
	}
	return nil, fmt.Errorf("driver printed no RESULT (%v); stdout:\n%s\nstderr:\n%s", err, tail(stdout.String(), 20), tail(stderr.String(), 20))
}

func (g relayGap) covers(row string) bool {
	for _, p := range g.rows {
		if ok, _ := path.Match(p, row); ok {
			return true
		}
	}
	return false
}

func findGap(row, feature string) *relayGap {
	for i, g := range relayGaps {
		if g.feature == feature && g.covers(row) {
			return &relayGaps[i]
		}
	}
	return nil
}

func gapUsed(g relayGap, rows []relayRow, features []string) bool {
	for _, r := range rows {
		if g.covers(r.name) && has(features, g.feature) {
			return true
		}
	}
	return false
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// everythingPortRE is what server-everything prints once it listens, in
// both HTTP modes ("listening on port N", "running on port N").
var everythingPortRE = regexp.MustCompile(`(?:listening|running) on port (\d+)`)

// startEverything starts server-everything in an HTTP mode (streamableHttp
// or sse) on a free port and returns its base URL.
func startEverything(t *testing.T, in interop, mode string) string {
	t.Helper()
	// It listens on all interfaces and has no way to say otherwise; only
	// loopback is ever dialled.
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	p := startProc(t, "server-everything "+mode, []string{"PORT=" + port}, in.node, in.everything, mode)
	if got := p.waitLine(everythingPortRE, startTimeout); got != port {
		t.Fatalf("server-everything %s listens on port %s, want %s", mode, got, port)
	}
	eventually(t, startTimeout, "server-everything "+mode+" answering", func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return "http://127.0.0.1:" + port
}

// balancer is a round-robin HTTP reverse proxy in front of data planes:
// every request (POST, GET stream, DELETE) goes to the next replica, as a
// plain L7 balancer without sticky sessions sends it.
type balancer struct {
	url  string
	mu   sync.Mutex
	next int
	hits map[string]int
}

func startBalancer(t *testing.T, hosts []string) *balancer {
	t.Helper()
	lb := &balancer{hits: map[string]int{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			lb.mu.Lock()
			host := hosts[lb.next%len(hosts)]
			lb.next++
			lb.hits[host]++
			lb.mu.Unlock()
			pr.SetURL(&url.URL{Scheme: "http", Host: host})
		},
		FlushInterval: -1, // SSE streams flow as they come
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Full duplex: by default an HTTP/1 server, once the handler writes the
	// response, discards and closes the rest of the request body; the
	// proxy's transport may not yet have read the body's EOF (it checks for
	// extra bytes after Content-Length), fails on the closed body and closes
	// the connection to the replica, which cancels the client's call in the
	// middle of its stream. A replica that relays a sampling or elicitation
	// request starts its answer early, so under load about one driver run
	// in fifteen lost a sampling or elicitation call so (the balancer logs
	// "ReverseProxy read error during body copy: use of closed network
	// connection"; the replica sees the call cancelled). In full duplex the
	// transport finishes reading the body while the answer streams, as a
	// real L7 balancer does.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		proxy.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: rpcTimeout}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	lb.url = "http://" + l.Addr().String()
	return lb
}

func (lb *balancer) counts() []int {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var hosts []string
	for h := range lb.hits {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	out := make([]int, len(hosts))
	for i, h := range hosts {
		out[i] = lb.hits[h]
	}
	return out
}
