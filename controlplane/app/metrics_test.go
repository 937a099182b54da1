package app

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families is one parsed scrape.
type families map[string]*dto.MetricFamily

// series selects metrics whose labels include all of these.
type series map[string]string

func (s series) with(kv ...string) series {
	out := maps.Clone(s)
	if out == nil {
		out = series{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// scrape GETs base+"/metrics" through the real handler and parses the text
// exposition, so the tests assert what Prometheus would read.
func scrape(t *testing.T, base string) families {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the counter or gauge value, or a histogram's sample count, of
// the one series of name matching labels; it fails the test if there is not
// exactly one.
func (f families) value(t *testing.T, name string, labels series) float64 {
	t.Helper()
	fam := f[name]
	if fam == nil {
		t.Fatalf("/metrics lacks %s", name)
	}
	var found []*dto.Metric
	for _, m := range fam.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for k, v := range labels {
			ok = ok && have[k] == v
		}
		if ok {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series match, want 1", name, labels, len(found))
	}
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	t.Fatalf("%s: unexpected metric type %v", name, fam.GetType())
	return 0
}
