package httpapi

import (
	"encoding/json"
	"google.golang.org/protobuf/types/known/durationpb"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/timestamppb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDataPlane stands in for the data plane's state; the API reads it only
// through the Options funcs.
type fakeDataPlane struct {
	mu       sync.Mutex
	health   []*mcpmeshv1.BackendHealth
	revision uint64
	conn     bool
}

func (f *fakeDataPlane) options() Options {
	return Options{
		DataPlaneID: "dp-1",
		Health: func() []*mcpmeshv1.BackendHealth {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.health
		},
		Revision:  func() uint64 { f.mu.Lock(); defer f.mu.Unlock(); return f.revision },
		Connected: func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.conn },
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func start(t *testing.T, f *fakeDataPlane) (*API, string) {
	t.Helper()
	api, err := New(f.options())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	ts := httptest.NewServer(api.Instrument(mux))
	t.Cleanup(ts.Close)
	return api, ts.URL
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func backend(name string, st mcpmeshv1.BackendState) *mcpmeshv1.BackendHealth {
	return &mcpmeshv1.BackendHealth{Server: name, State: st}
}

const (
	healthy     = mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
	retrying    = mcpmeshv1.BackendState_BACKEND_STATE_RETRYING
	unavailable = mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
)

func TestHealthJSONShape(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &fakeDataPlane{revision: 42, conn: true, health: []*mcpmeshv1.BackendHealth{{
		Server: "github", State: retrying, Breaker: mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN,
		LastError: "dial tcp: refused", Since: timestamppb.New(since), ConsecutiveFailures: 3, Latency: durationpb.New(1500 * time.Microsecond),
		Tools: 7, Resources: 2, Prompts: 1,
	}, backend("files", healthy)}}
	_, url := start(t, f)
	code, body := get(t, url+"/health")
	if code != http.StatusOK {
		t.Fatalf("status = %d, want 200 for degraded", code)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("decode /health: %v\n%s", err, body)
	}
	want := map[string]any{
		"status": "degraded", "config_revision": 42.0, "control_plane": "connected", "dataplane_id": "dp-1",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	servers, _ := doc["servers"].([]any)
	if len(servers) != 2 {
		t.Fatalf("servers = %v, want 2 entries", doc["servers"])
	}
	gh, _ := servers[0].(map[string]any)
	wantServer := map[string]any{
		"name": "github", "state": "retrying", "breaker": "half_open", "last_error": "dial tcp: refused",
		"since": "2026-01-02T03:04:05Z", "consecutive_failures": 3.0, "latency_ms": 1.5, "tools": 7.0, "resources": 2.0, "prompts": 1.0,
	}
	for k, v := range wantServer {
		if gh[k] != v {
			t.Errorf("servers[0].%s = %v, want %v", k, gh[k], v)
		}
	}
	if files, _ := servers[1].(map[string]any); files["state"] != "healthy" || files["breaker"] != "closed" {
		t.Errorf("servers[1] = %v, want healthy with a closed breaker", files)
	}
}

func TestHealthStatus(t *testing.T) {
	tests := []struct {
		name     string
		backends []*mcpmeshv1.BackendHealth
		want     string
		code     int
	}{
		{"none configured", nil, "ok", 200},
		{"all healthy", []*mcpmeshv1.BackendHealth{backend("a", healthy), backend("b", healthy)}, "ok", 200},
		{"some healthy", []*mcpmeshv1.BackendHealth{backend("a", healthy), backend("b", unavailable)}, "degraded", 200},
		{"none healthy", []*mcpmeshv1.BackendHealth{backend("a", retrying), backend("b", unavailable)}, "unavailable", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := start(t, &fakeDataPlane{health: tt.backends})
			code, body := get(t, url+"/health")
			var h Health
			if err := json.Unmarshal([]byte(body), &h); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if h.Status != tt.want || code != tt.code {
				t.Errorf("status = %q (%d), want %q (%d)", h.Status, code, tt.want, tt.code)
			}
			if h.ControlPlane != "disconnected" || h.Servers == nil {
				t.Errorf("control_plane = %q, servers = %v; want disconnected and a non-null array", h.ControlPlane, h.Servers)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	f := &fakeDataPlane{revision: 9, health: []*mcpmeshv1.BackendHealth{backend("files", unavailable)}}
	api, url := start(t, f)
	get(t, url+"/livez")
	get(t, url+"/nope")

	api.ObserveMCP("tools/call", "files", "tool_error", 3*time.Millisecond)
	api.ObserveMCP("tools/call", "files", "error", time.Millisecond)
	api.ObserveMCP("made/up", "", "ok", time.Millisecond)
	api.BreakerTransition("files", "closed", "open")
	api.Retried("files")
	api.Connected("files", false)
	api.ObserveApply(time.Millisecond, nil)
	api.ObserveNotification("files", "notifications/progress")
	api.ObserveNotification("files", "made/up")
	api.ObserveServerRequest("files", "sampling/createMessage", nil)

	code, body := get(t, url+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`mcpmesh_dataplane_backend_state{server="files",state="unavailable"} 1`,
		`mcpmesh_dataplane_backend_state{server="files",state="healthy"} 0`,
		`mcpmesh_dataplane_backend_state{server="files",state="needs-authorization"} 0`,
		`mcpmesh_dataplane_config_revision 9`,
		`mcpmesh_dataplane_backend_breaker_open{server="files"} 0`,
		`mcpmesh_dataplane_control_plane_connected 0`,
		`mcpmesh_dataplane_http_requests_total{code="200",method="GET",route="/livez"} 1`,
		`mcpmesh_dataplane_http_requests_total{code="404",method="GET",route="other"} 1`,
		`mcpmesh_dataplane_mcp_requests_total{method="tools/call",status="tool_error"} 1`,
		`mcpmesh_dataplane_mcp_requests_total{method="tools/call",status="error"} 1`,
		`mcpmesh_dataplane_mcp_requests_total{method="other",status="ok"} 1`,
		`mcpmesh_dataplane_mcp_request_duration_seconds_bucket{method="tools/call",server="files",status="tool_error",le="0.005"} 1`,
		`mcpmesh_dataplane_mcp_request_duration_seconds_bucket{method="tools/call",server="files",status="tool_error",le="0.0025"} 0`,
		`mcpmesh_dataplane_mcp_request_duration_seconds_count{method="other",server="",status="ok"} 1`,
		`mcpmesh_dataplane_breaker_transitions_total{from="closed",server="files",to="open"} 1`,
		`mcpmesh_dataplane_backend_retries_total{server="files"} 1`,
		`mcpmesh_dataplane_backend_connects_total{result="error",server="files"} 1`,
		`mcpmesh_dataplane_config_applies_total{result="ok"} 1`,
		`mcpmesh_dataplane_config_apply_duration_seconds_count 1`,
		`mcpmesh_dataplane_relayed_notifications_total{method="notifications/progress",server="files"} 1`,
		`mcpmesh_dataplane_relayed_notifications_total{method="other",server="files"} 1`,
		`mcpmesh_dataplane_server_requests_total{method="sampling/createMessage",server="files",status="ok"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestHealthNamesEachServersProtocol(t *testing.T) {
	a, err := New(Options{
		Health: func() []*mcpmeshv1.BackendHealth {
			return []*mcpmeshv1.BackendHealth{{Server: "m", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY}, {Server: "o"}}
		},
		Protocols: func() map[string]string { return map[string]string{"m": "2026-07-28"} },
	})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Snapshot()
	if len(h.Servers) != 2 || h.Servers[0].Protocol != "2026-07-28" || h.Servers[1].Protocol != "" {
		t.Errorf("servers %+v, want m on 2026-07-28 and o without a protocol", h.Servers)
	}
}

// TestServerSeriesFollowTheConfig: a configured server's counters exist at
// zero; once it leaves the config, its series are gone.
func TestServerSeriesFollowTheConfig(t *testing.T) {
	api, url := start(t, &fakeDataPlane{})
	api.SetServers([]string{"a", "b"})
	api.ObserveMCP("tools/call", "b", "ok", time.Millisecond)
	api.Retried("b")
	_, body := get(t, url+"/metrics")
	for _, want := range []string{`mcpmesh_dataplane_backend_retries_total{server="a"} 0`, `mcpmesh_dataplane_backend_retries_total{server="b"} 1`,
		`mcpmesh_dataplane_backend_connects_total{result="error",server="a"} 0`, `mcpmesh_dataplane_mcp_request_duration_seconds_count{method="tools/call",server="b",status="ok"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	api.SetServers([]string{"a"})
	_, body = get(t, url+"/metrics")
	if strings.Contains(body, `server="b"`) {
		t.Errorf("/metrics keeps series of a removed server:\n%s", body)
	}
	if !strings.Contains(body, `mcpmesh_dataplane_backend_retries_total{server="a"} 0`) {
		t.Error("a's series went with b's")
	}
	// A server that comes back counts from its cached child again.
	api.SetServers([]string{"a", "b"})
	api.Retried("b")
	if _, body = get(t, url+"/metrics"); !strings.Contains(body, `mcpmesh_dataplane_backend_retries_total{server="b"} 1`) {
		t.Errorf("b's counter after it came back:\n%s", body)
	}
}
