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
BenchmarkToolCall/proxy-2          	    3000	    500000 ns/op	   9000 B/op	     100 allocs/op
BenchmarkToolsList/gateway-cache-2 	    3000	     90000 ns/op	   1000 B/op	      10 allocs/op
PASS
ok  	github.com/mcpmesh/mcpmesh/bench	12.3s
`

func TestParse(t *testing.T) {
	rep, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Machine.CPU != "AMD EPYC 7B13" || len(rep.Results) != 3 {
		t.Fatalf("report = %+v", rep)
	}
	d := rep.Results[0]
	if d.Name != "ToolCall/direct" || d.Procs != 2 || d.Runs != 3 || d.NsPerOp != 200000 || d.MinNsPerOp != 100000 || d.MaxNsPerOp != 300000 || d.AllocsPerOp != 102 {
		t.Fatalf("direct = %+v", d)
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].Value != 2.5 {
		t.Fatalf("ratios = %+v", rep.Ratios)
	}
	if c := rep.Results[2]; c.Name != "ToolsList/gateway-cache" || !strings.Contains(c.Note, "cache") {
		t.Fatalf("cached list = %+v", c)
	}
	md := Markdown(rep)
	for _, want := range []string{"AMD EPYC 7B13", "| ToolCall/proxy ÷ ToolCall/direct | 2.50 |", "not comparable to direct"} {
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
