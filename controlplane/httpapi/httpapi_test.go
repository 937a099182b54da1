package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/httpapi"
	"github.com/mcpmesh/mcpmesh/controlplane/internal/metrics"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type dps []*mcpmeshv1.DataPlane

func (d dps) ListDataPlanes() []*mcpmeshv1.DataPlane { return d }

func setup(t *testing.T) (*httptest.Server, *store.BoltStore) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	planes := dps{
		{Id: "dp-a", Connected: true, Revision: 2, Version: "v1"},
		{Id: "dp-b", Connected: false, NackedRevision: 1, LastError: "<bad & config>"},
	}
	agg := health.New(st, func() map[string]bool { return map[string]bool{"dp-a": true} }, nil)
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{Store: st, DataPlanes: planes, Health: agg, Metrics: metrics.NewRegistry().Handler()}))
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
	return srv, st
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
	for _, want := range []string{"Config revision <b>2</b>", ">x<", ">y<", `class="healthy">healthy`, `class="unknown">unknown`, "1/1", "dp-a", "dp-b", "&lt;bad &amp; config&gt;", "Recent backend transitions"} {
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
