package observability_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/deploy/observability"
)

func TestFilesParse(t *testing.T) {
	rules, err := observability.LoadRules(filepath.Join(observability.Dir(), "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
		}
	}
	for _, a := range []string{"MCPMeshBackendUnavailable", "MCPMeshBackendBreakerOpen", "MCPMeshDataPlaneDisconnected", "MCPMeshHighErrorRate"} {
		if !alerts[a] {
			t.Errorf("no alert %s", a)
		}
	}
	d, err := observability.LoadDashboard(filepath.Join(observability.Dir(), "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(observability.MetricNames(d.Expressions())); n < 10 {
		t.Errorf("the dashboard uses %d metrics", n)
	}
}

func TestLoadRulesRefusesMistakes(t *testing.T) {
	for name, body := range map[string]string{
		"unknown field":  "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations: {summary: s}\n    fro: 5m\n",
		"both kinds":     "groups:\n- name: g\n  rules:\n  - alert: A\n    record: r\n    expr: up\n",
		"bad for":        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: soon\n    annotations: {summary: s}\n",
		"unbalanced":     "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: sum(rate(x[5m])\n    annotations: {summary: s}\n",
		"no groups":      "groups: []\n",
		"repeated group": "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n- name: g\n  rules:\n  - record: r\n    expr: up\n",
	} {
		path := filepath.Join(t.TempDir(), "r.yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := observability.LoadRules(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMetricNames(t *testing.T) {
	got := observability.MetricNames([]string{
		`sum by (le) (rate(mcpmesh_dataplane_mcp_request_duration_seconds_bucket{server="mcpmesh_not_a_metric"}[5m]))`,
		`mcpmesh_dataplanes_connected == 0 and up`,
	})
	if strings.Join(got, ",") != "mcpmesh_dataplane_mcp_request_duration_seconds_bucket,mcpmesh_dataplanes_connected" {
		t.Errorf("names %v", got)
	}
}
