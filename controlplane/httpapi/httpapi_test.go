package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/httpapi"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type dps []*mcpmeshv1.DataPlane

func (d dps) ListDataPlanes() []*mcpmeshv1.DataPlane { return d }

func setup(t *testing.T) (*httptest.Server, *store.BoltStore) {
	srv, st, _ := setupWithHealth(t)
	return srv, st
}

func setupWithHealth(t *testing.T) (*httptest.Server, *store.BoltStore, *health.Aggregator) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	planes := dps{
		{Id: "dp-a", Connected: true, Revision: 2, Version: "v1", PublicUrl: "https://dp-a.example"},
		{Id: "dp-b", Connected: false, NackedRevision: 1, LastError: "<bad & config>"},
	}
	agg := health.New(st, func() map[string]bool { return map[string]bool{"dp-a": true} }, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: st, DataPlanes: planes, Health: agg, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	ctx := context.Background()
	x := storetest.Server("x")
	x.Stdio.Args = []string{"--password=hunter2"}
	for _, s := range []*mcpmeshv1.Server{x, storetest.Server("y")} {
		if _, err := st.CreateServer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := agg.Report(ctx, "dp-a", &mcpmeshv1.HealthReport{Backends: []*mcpmeshv1.BackendHealth{
		{Server: "x", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY},
	}}); err != nil {
		t.Fatal(err)
	}
	return srv, st, agg
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHealth(t *testing.T) {
	srv, _ := setup(t)
	resp, body := get(t, srv.URL+"/health")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var h map[string]any
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"status": "ok", "revision": float64(2), "dataplanes_connected": float64(1), "servers": float64(2)}
	if len(h) != len(want) {
		t.Fatalf("/health = %v", h)
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %v, want %v", k, h[k], v)
		}
	}
}

func TestHealthWhenStoreFails(t *testing.T) {
	srv, st := setup(t)
	st.Close()
	resp, body := get(t, srv.URL+"/health")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"error"`) {
		t.Fatalf("/health with closed store = %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/"); resp.StatusCode != 200 {
		t.Fatalf("status page must still render, got %d", resp.StatusCode)
	}
}

func TestStatusPage(t *testing.T) {
	srv, _ := setup(t)
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"Config revision <b>2</b>", ">x<", ">y<", `class="healthy">healthy`, `class="unknown">unknown`, "1/1", "dp-a", "dp-b", "&lt;bad &amp; config&gt;", "Recent backend transitions", `<a href="https://dp-a.example/oauth">`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, secret := range []string{"secret-x", "hunter2"} {
		if strings.Contains(body, secret) {
			t.Errorf("page leaks %q", secret)
		}
	}
	if resp, _ := get(t, srv.URL+"/nope"); resp.StatusCode != 404 {
		t.Errorf("/nope = %d, want 404", resp.StatusCode)
	}
	resp, err := http.Post(srv.URL+"/health", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /health = %d", resp.StatusCode)
	}
	if resp, body := get(t, srv.URL+"/metrics"); resp.StatusCode != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d", resp.StatusCode)
	}
}

// addTransitions makes dp-a report x alternately retrying and healthy, n
// times, with errors e01, e02, …, so each report is one transition.
func addTransitions(t *testing.T, agg *health.Aggregator, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		s := mcpmeshv1.BackendState_BACKEND_STATE_RETRYING
		if i%2 == 0 {
			s = mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
		}
		if err := agg.Report(context.Background(), "dp-a", &mcpmeshv1.HealthReport{Backends: []*mcpmeshv1.BackendHealth{
			{Server: "x", State: s, LastError: fmt.Sprintf("e%02d", i)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEventsAPI(t *testing.T) {
	srv, st, agg := setupWithHealth(t)
	addTransitions(t, agg, 59) // 60 transitions with the one setup reported

	resp, body := get(t, srv.URL+"/api/events")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/api/events = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var all []map[string]any
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if len(all) != 60 {
		t.Fatalf("%d events, want all 60 (default limit %d)", len(all), httpapi.DefaultEventsLimit)
	}
	newest, oldest := all[0], all[59]
	for k, want := range map[string]any{"dataplane": "dp-a", "server": "x", "from": "healthy", "to": "retrying", "error": "e59"} {
		if newest[k] != want {
			t.Errorf("newest[%s] = %v, want %v", k, newest[k], want)
		}
	}
	if oldest["from"] != "none" || oldest["to"] != "healthy" || oldest["error"] != "" {
		t.Errorf("oldest = %v, want the first report (none → healthy)", oldest)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(newest["time"])); err != nil || len(newest) != 6 {
		t.Errorf("newest = %v: want exactly time, dataplane, server, from, to, error (%v)", newest, err)
	}

	for q, want := range map[string]int{"limit=1": 1, "limit=3": 3, "limit=1000": 60, "limit=": 60} {
		var got []map[string]any
		resp, body := get(t, srv.URL+"/api/events?"+q)
		if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != 200 || err != nil || len(got) != want {
			t.Errorf("?%s = %d, %d items (%v), want %d", q, resp.StatusCode, len(got), err, want)
		} else if got[0]["error"] != "e59" {
			t.Errorf("?%s starts with %v, want the newest", q, got[0])
		}
	}
	for _, bad := range []string{"0", "-1", "1001", "ten", "1.5", "%20"} {
		resp, body := get(t, srv.URL+"/api/events?limit="+bad)
		var e map[string]string
		_ = json.Unmarshal([]byte(body), &e)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e["error"], "limit must be an integer from 1 to 1000") {
			t.Errorf("limit=%s: %d %s, want 400 with a message", bad, resp.StatusCode, body)
		}
	}

	st.Close()
	if resp, body := get(t, srv.URL+"/api/events"); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"error"`) {
		t.Errorf("/api/events with the store closed = %d %s, want 503", resp.StatusCode, body)
	}
}

func TestEventsAPIEmpty(t *testing.T) {
	st := store.NewMemory()
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: st, DataPlanes: dps{}, Health: health.New(st, nil, nil)}))
	defer srv.Close()
	if resp, body := get(t, srv.URL+"/api/events"); resp.StatusCode != 200 || body != "[]\n" {
		t.Fatalf("empty log = %d %q, want []", resp.StatusCode, body)
	}
}

func TestStatusPageShowsNewest50Transitions(t *testing.T) {
	srv, _, agg := setupWithHealth(t)
	addTransitions(t, agg, 59)
	_, body := get(t, srv.URL+"/")
	i := strings.Index(body, "Recent backend transitions")
	if i < 0 {
		t.Fatal("page lacks the transitions section")
	}
	section := body[i:]
	if n := strings.Count(section, "<tr><td>"); n != httpapi.PageEvents {
		t.Errorf("%d transitions shown, want %d", n, httpapi.PageEvents)
	}
	for _, want := range []string{
		`<td>dp-a</td><td>x</td><td class="retrying">retrying</td><td class="healthy">healthy</td><td>e58</td>`,
		`<td>dp-a</td><td>x</td><td class="healthy">healthy</td><td class="retrying">retrying</td><td>e59</td>`,
		"e10", `href="/api/events?limit=1000"`,
	} {
		if !strings.Contains(section, want) {
			t.Errorf("transitions lack %q", want)
		}
	}
	if strings.Contains(section, "e09<") {
		t.Error("the 51st newest transition is shown")
	}
	if strings.Index(section, "e59") > strings.Index(section, "e10") {
		t.Error("transitions are not newest first")
	}
}

// TestNoSecretsShown: URL credentials of a registration, of a data plane's
// NACK text and of stored events (written before masking existed, so
// straight into the store) appear on neither the page nor /api/events.
func TestNoSecretsShown(t *testing.T) {
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	planes := dps{{Id: "dp-b", NackedRevision: 1, LastError: `bad config: "https://u:nackpw1@h/x?token=nacktok1"`}}
	agg := health.New(st, func() map[string]bool { return nil }, nil)
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: st, DataPlanes: planes, Health: agg}))
	t.Cleanup(func() { srv.Close(); st.Close() })
	ctx := context.Background()
	web := &mcpmeshv1.Server{Name: "web", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http: &mcpmeshv1.HttpConfig{Url: "https://alice:urlpw1@example.com/mcp?api_key=urlkey1", Headers: map[string]string{"Authorization": "hdrsecret1"}}}
	if _, err := st.CreateServer(ctx, web); err != nil {
		t.Fatal(err)
	}
	ev := &mcpmeshv1.BackendHealth{Server: "web", DataplaneId: "dp-b", State: mcpmeshv1.BackendState_BACKEND_STATE_RETRYING,
		LastError: `connect: Post "https://alice:evpw1@example.com/mcp?sig=evsig1": connection refused`}
	if err := st.PutHealth(ctx, "dp-b", []*mcpmeshv1.BackendHealth{ev}, []*mcpmeshv1.BackendHealth{ev}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/api/events"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, s := range []string{"nackpw1", "nacktok1", "urlpw1", "urlkey1", "hdrsecret1", "evpw1", "evsig1"} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s shows %q:\n%s", path, s, b)
			}
		}
		if !strings.Contains(string(b), "***") {
			t.Errorf("%s shows no mask:\n%s", path, b)
		}
	}
}
