//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mcpmesh/mcpmesh/deploy/observability"
	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

// otlpReceiver is a real OTLP/HTTP traces endpoint: it decodes what the
// data plane's exporter posts to /v1/traces.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				o.spans = append(o.spans, ss.GetSpans()...)
			}
		}
		o.mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(o.Close)
	return o
}

// trace returns the spans of one trace id.
func (o *otlpReceiver) trace(id string) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestObservability runs a data plane with client keys and OAuth, logging at
// debug in JSON and tracing to an in-process OTLP receiver, in front of
// servers registered with secret headers, env values, URL credentials and
// args. It makes calls that succeed, fail as tools, fail on a backend that
// is down and fail authentication, then checks: the access log has a line
// per request with the fields the operator needs; no log line of either
// binary holds any secret used; a client's trace context reaches the
// backend (header and _meta) under the data plane's spans, which the
// receiver got; and every metric the Grafana dashboard and the alert rules
// use is on a real /metrics of the data plane or the control plane.
func TestObservability(t *testing.T) {
	const (
		headerSecret = "hdr-secret-8f3a1c"
		envSecret    = "env-secret-2b7d9e"
		argSecret    = "arg-secret-5c1e4f"
		urlSecret    = "url-secret-9d4b2a"
		clientTrace  = "0af7651916cd43dd8448eb211c80319c"
	)
	as, err := testauth.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	otlp := startOTLPReceiver(t)

	// A real MCP server that records the trace context it is sent.
	var mu sync.Mutex
	var seenParent, seenBody []string
	s := server.NewMCPServer("rec", "1.0.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("echo", mcp.WithString("text")), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("echo:" + req.GetString("text", "")), nil
	})
	h := server.NewStreamableHTTPServer(s)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if bytes.Contains(b, []byte(`"tools/call"`)) {
			mu.Lock()
			seenParent, seenBody = append(seenParent, r.Header.Get("Traceparent")), append(seenBody, string(b))
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		rec.CloseClientConnections()
		rec.Close()
	})

	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "", "--log-level", "debug")
	mustCtl(t, cp, "server", "add", "rec", "--url", rec.URL+"/mcp", "--header", "X-Api-Key="+headerSecret)
	_, web := startHTTPBackend(t, "web")
	mustCtl(t, cp, "server", "add", "web", "--url", strings.Replace(web, "http://", "http://user:"+urlSecret+"@", 1))
	down, downURL := startHTTPBackend(t, "down")
	mustCtl(t, cp, "server", "add", "down", "--url", downURL)
	mustCtl(t, cp, "server", "add", "local", "--env", "TOKEN="+envSecret, "--secret-arg", "2", "--", bin("demo-backend"), "--name", argSecret)

	var key struct{ ID, Secret string }
	if err := json.Unmarshal([]byte(mustCtl(t, cp, "client-key", "create", "-o", "json")), &key); err != nil {
		t.Fatal(err)
	}
	dp := startDataPlaneVia(t, cp, "dp-obs", cp.grpcAddr, "--client-keys", "--oauth-issuer", as.Issuer(),
		"--log-level", "debug", "--otlp-endpoint", otlp.URL)
	for _, n := range []string{"rec", "web", "down", "local"} {
		dp.waitState(t, n, "healthy")
	}
	jwt, err := as.Token(testauth.Claims{Audience: dp.mcpURL(), Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}

	connect := func(token string, headers map[string]string) *client.Client {
		t.Helper()
		hs := map[string]string{"Authorization": "Bearer " + token}
		for k, v := range headers {
			hs[k] = v
		}
		c, err := client.NewStreamableHttpClient(dp.mcpURL(), transport.WithHTTPHeaders(hs))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		defer cancel()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		init := mcp.InitializeRequest{}
		init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
		init.Params.ClientInfo = mcp.Implementation{Name: "obs-e2e", Version: "1"}
		if _, err := c.Initialize(ctx, init); err != nil {
			t.Fatalf("initialize: %v", err)
		}
		return c
	}
	// The key's client sends a W3C trace context on every request.
	eventually(t, waitTimeout, "the client key is accepted", func() error {
		_, status, err := authPost(dp.mcpURL(), key.Secret)
		if err != nil || status == 401 {
			return fmt.Errorf("%d %v", status, err)
		}
		return nil
	})
	kc := connect(key.Secret, map[string]string{"traceparent": "00-" + clientTrace + "-b7ad6b7169203331-01"})
	if got := callText(t, kc, "rec__echo", map[string]any{"text": "hi"}); got != "echo:hi" {
		t.Errorf("rec__echo = %q", got)
	}
	if got := callText(t, kc, "local__echo", map[string]any{"text": "stdio"}); !strings.Contains(got, "stdio") {
		t.Errorf("local__echo = %q", got)
	}
	if _, err := callErr(kc, callTimeout, "web__fail", nil); err == nil {
		t.Error("web__fail succeeded")
	}
	jc := connect(jwt, nil)
	if got := callText(t, jc, "web__echo", map[string]any{"text": "jwt"}); !strings.Contains(got, "jwt") {
		t.Errorf("web__echo with a JWT = %q", got)
	}
	// A call while the backend is down and being retried: held for the
	// reconnect, then answered as a failed tool call naming the backend.
	down.kill()
	dp.waitState(t, "down", "retrying")
	if _, err := callErr(kc, callTimeout, "down__echo", map[string]any{"text": "x"}); err == nil {
		t.Error("down__echo succeeded with its backend down")
	}
	for _, bad := range []string{"mcpk_" + key.ID + "_" + strings.Repeat("0", 64), jwt[:len(jwt)-4] + "AAAA", "garbage"} {
		if _, status, err := authPost(dp.mcpURL(), bad); err != nil || status != 401 {
			t.Errorf("bad credential: %d %v, want 401", status, err)
		}
	}

	t.Run("access log", func(t *testing.T) {
		ok := dp.waitLog(time.Time{}, "msg", "mcp request", "tool", "rec__echo", "outcome", "ok")
		for _, k := range []string{"server", "duration", "id", "session", "credential"} {
			if ok.Attrs[k] == nil || ok.Attrs[k] == "" {
				t.Errorf("access line lacks %s: %v", k, ok)
			}
		}
		if ok.Attrs["credential"] != "client-key:"+key.ID || ok.Attrs["server"] != "rec" || ok.Attrs["method"] != "tools/call" {
			t.Errorf("access line %v", ok)
		}
		dp.waitLog(time.Time{}, "msg", "mcp request", "tool", "web__fail", "outcome", "tool_error")
		dp.waitLog(time.Time{}, "msg", "mcp request", "tool", "web__echo", "credential", "alice")
		downLine := dp.waitLog(time.Time{}, "msg", "mcp request", "tool", "down__echo")
		if st := downLine.Attrs["backend_state"]; (st != "retrying" && st != "unavailable") || downLine.Attrs["outcome"] != "tool_error" || downLine.Attrs["server"] != "down" {
			t.Errorf("down line %v: want server down, backend_state retrying or unavailable, outcome tool_error", downLine)
		}
	})

	t.Run("no secret in any log", func(t *testing.T) {
		secrets := map[string]string{
			"header value": headerSecret, "env value": envSecret, "secret arg": argSecret, "URL password": urlSecret,
			"client key": key.Secret, "JWT": jwt, "JWT signature": jwt[strings.LastIndexByte(jwt, '.')+1:],
		}
		for name, file := range map[string]string{"admin token": cp.tokenFile(), "dataplane token": cp.dataplaneTokenFile(t)} {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			secrets[name] = strings.TrimSpace(string(b))
		}
		var backup struct {
			ClusterSecret string `json:"cluster_secret"`
		}
		if err := json.Unmarshal([]byte(mustCtl(t, cp, "backup", "-")), &backup); err != nil || backup.ClusterSecret == "" {
			t.Fatalf("backup: %v", err)
		}
		raw, err := base64.StdEncoding.DecodeString(backup.ClusterSecret)
		if err != nil {
			t.Fatal(err)
		}
		secrets["cluster secret (base64)"] = backup.ClusterSecret
		secrets["cluster secret (base64url)"] = base64.RawURLEncoding.EncodeToString(raw)
		secrets["cluster secret (hex)"] = hex.EncodeToString(raw)
		logs := map[string]string{"control plane": cp.log.String(), "data plane": dp.log.String()}
		if n := strings.Count(logs["data plane"], "\n"); n < 30 {
			t.Fatalf("the data plane logged %d lines at debug: too few to mean anything", n)
		}
		for proc, log := range logs {
			for _, line := range strings.Split(log, "\n") {
				for name, secret := range secrets {
					if strings.Contains(line, secret) {
						t.Errorf("%s logged the %s: %s", proc, name, line)
					}
				}
			}
		}
	})

	t.Run("traces", func(t *testing.T) {
		var spans []*tracepb.Span
		eventually(t, waitTimeout, "the receiver gets the client's trace", func() error {
			spans = otlp.trace(clientTrace)
			for _, s := range spans {
				if s.GetName() == "tools/call echo" && spanAttr(s, "mcpmesh.server") == "rec" {
					return nil
				}
			}
			return fmt.Errorf("%d spans of the trace so far", len(spans))
		})
		var srv, up *tracepb.Span
		for _, s := range spans {
			switch {
			case s.GetName() == "tools/call rec__echo":
				srv = s
			case s.GetName() == "tools/call echo" && spanAttr(s, "mcpmesh.server") == "rec":
				up = s
			}
		}
		if srv == nil || up == nil {
			t.Fatalf("%d spans: want tools/call rec__echo and tools/call echo to rec", len(spans))
		}
		if hex.EncodeToString(srv.GetParentSpanId()) != "b7ad6b7169203331" || !bytes.Equal(up.GetParentSpanId(), srv.GetSpanId()) {
			t.Errorf("span parents: request's %x, upstream's %x", srv.GetParentSpanId(), up.GetParentSpanId())
		}
		if srv.GetKind() != tracepb.Span_SPAN_KIND_SERVER || up.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span kinds %v, %v", srv.GetKind(), up.GetKind())
		}
		for k, v := range map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "rec__echo", "network.transport": "tcp", "mcpmesh.server": "rec"} {
			if got := spanAttr(srv, k); got != v {
				t.Errorf("request span %s = %q, want %q", k, got, v)
			}
		}
		if spanAttr(srv, "mcp.session.id") == "" || spanAttr(srv, "jsonrpc.request.id") == "" {
			t.Error("request span lacks mcp.session.id or jsonrpc.request.id")
		}
		want := "00-" + clientTrace + "-" + hex.EncodeToString(up.GetSpanId()) + "-01"
		mu.Lock()
		defer mu.Unlock()
		if len(seenParent) == 0 || seenParent[0] != want || !strings.Contains(seenBody[0], `"traceparent":"`+want+`"`) {
			t.Errorf("the backend got traceparent %q and body %q, want %s in both", seenParent, seenBody, want)
		}
	})

	t.Run("dashboards use exported metrics", func(t *testing.T) {
		exported := scrapeNames(t, "http://"+dp.listen+"/metrics")
		for n := range scrapeNames(t, "http://"+cp.httpAddr+"/metrics") {
			exported[n] = true
		}
		rules, err := observability.LoadRules(filepath.Join(observability.Dir(), "prometheus-rules.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		dash, err := observability.LoadDashboard(filepath.Join(observability.Dir(), "grafana-dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		for what, exprs := range map[string][]string{"rules": rules.Expressions(), "dashboard": dash.Expressions()} {
			names := observability.MetricNames(exprs)
			if len(names) < 4 {
				t.Errorf("%s use %d metrics: %v", what, len(names), names)
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("%s use %s, which neither /metrics exports", what, n)
				}
			}
		}
	})
}

// authPost sends a ping with a bearer credential and returns the answer's status.
func authPost(url, token string) (string, int, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: rpcTimeout}).Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, nil
}

// scrapeNames returns the sample names of a /metrics page.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := (&http.Client{Timeout: rpcTimeout}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}
