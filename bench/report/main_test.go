package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/mcpmesh/mcpmesh/bench
cpu: AMD EPYC 7B13
BenchmarkToolCall/direct-2         	    5000	    200000 ns/op	   9000 B/op	     100 allocs/op
BenchmarkToolCall/direct-2         	    5000	    100000 ns/op	   9100 B/op	     101 allocs/op
BenchmarkToolCall/direct-2         	    5000	    300000 ns/op	   9200 B/op	     102 allocs/op
BenchmarkToolCall/proxy-2          	    3000	    500000 ns/op	       200.0 dp-cpu-us/call	   9000 B/op	     100 allocs/op
BenchmarkToolCall/proxy-wide60-2   	    3000	    600000 ns/op	       250.0 dp-cpu-us/call	   9000 B/op	     100 allocs/op
BenchmarkAddedLatency-2            	       1	       300.0 p50-added-us	       900.0 p99-added-us	 100 B/op	 1 allocs/op
BenchmarkThroughput16-2            	       1	         0 ns/op	      4000 direct-calls/s	      3200 proxy-calls/s	         0.8000 kept
BenchmarkRSS10Backends-2           	       2	        24.50 rss-MB	        20.00 rss-freed-MB
BenchmarkMemoryPerTool-2           	       1	      700.0 rss-B/tool	       200.0 json-B/tool	         3.5 x-json
BenchmarkToolsList/gateway-cache-2 	    3000	     90000 ns/op	   1000 B/op	      10 allocs/op
PASS
ok  	github.com/mcpmesh/mcpmesh/bench	12.3s
`

func TestParse(t *testing.T) {
	rep, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Machine.CPU != "AMD EPYC 7B13" || len(rep.Results) != 8 {
		t.Fatalf("report = %+v", rep)
	}
	d := rep.Results[0]
	ns, _ := d.Metric("ns/op")
	allocs, _ := d.Metric("allocs/op")
	if d.Name != "ToolCall/direct" || d.Procs != 2 || d.Runs != 3 || ns.Median != 200000 || ns.Min != 100000 || ns.Max != 300000 || allocs.Max != 102 {
		t.Fatalf("direct = %+v", d)
	}
	// Units stay as written: benchfmt would tidy rss-MB into B.
	if m, ok := rep.Results[5].Metric("rss-MB"); !ok || m.Median != 24.5 {
		t.Fatalf("RSS10Backends = %+v", rep.Results[5])
	}
	wantRatios := map[string]float64{
		"ToolCall/proxy ÷ ToolCall/direct":                        2.5,
		"ToolCall/proxy-wide60 ÷ ToolCall/proxy (dp-cpu-us/call)": 1.25,
	}
	if len(rep.Ratios) != len(wantRatios) {
		t.Fatalf("ratios = %+v", rep.Ratios)
	}
	for _, r := range rep.Ratios {
		if want, ok := wantRatios[r.Name]; !ok || r.Value != want {
			t.Errorf("ratio %s = %v, want %v", r.Name, r.Value, want)
		}
	}
	met := map[string]bool{}
	for _, tg := range rep.Targets {
		met[tg.What] = tg.Met
	}
	wantMet := map[string]bool{
		"added latency p50 (serial)":                   false,
		"added latency p99 (serial)":                   true,
		"data-plane CPU per tools/call (us)":           false,
		"CPU per call, 60-parameter tool ÷ echo":       true,
		"throughput at 16 sessions ÷ direct":           true,
		"data-plane RSS with 10 backends (MB)":         true,
		"memory per cached tool ÷ its JSON size (RSS)": false,
	}
	if len(met) != len(wantMet) {
		t.Fatalf("targets = %+v", rep.Targets)
	}
	for what, want := range wantMet {
		if met[what] != want {
			t.Errorf("target %q met = %v, want %v", what, met[what], want)
		}
	}
	if c := rep.Results[7]; c.Name != "ToolsList/gateway-cache" || !strings.Contains(c.Note, "cache") {
		t.Fatalf("cached list = %+v", c)
	}
	md := Markdown(rep)
	for _, want := range []string{"AMD EPYC 7B13", "| ToolCall/proxy ÷ ToolCall/direct | 2.50 |", "not comparable to direct",
		"| added latency p50 (serial) | 300.0 | <= 250.0 | no |", "| RSS10Backends | 1 | rss-MB | 24.5 | 24.5–24.5 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestParseRefusesFailuresAndEmptyOutput(t *testing.T) {
	for _, in := range []string{"PASS\n", sample + "--- FAIL: BenchmarkToolCall/proxy\n"} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("Parse(%q) = nil error", in)
		}
	}
}
