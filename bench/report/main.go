// Command report turns `go test -bench` output into bench/results/latest.json
// and latest.md, with the machine and commit noted, so that a recorded figure
// says where and on what code it was measured. `make bench` runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/perf/benchfmt"
)

// notes say what a benchmark measures where its name cannot.
var notes = map[string]string{
	"ToolCall/direct":         "serial tools/call echo straight to the demo backend (streamable HTTP)",
	"ToolCall/proxy":          "the same call through a data plane: proxy ÷ direct is the cost of the hop; dp-cpu-us/call is the data plane's own CPU per call",
	"ToolCall/direct-wide60":  "serial tools/call echo_wide (60-parameter schema, same argument) straight to the backend",
	"ToolCall/floor":          "the same call through httputil.ReverseProxy (demo-backend --forward): floor-cpu-us/call is what a plain Go HTTP hop costs on this machine, beside dp-cpu-us/call",
	"ToolCall/proxy-wide60":   "echo_wide through a data plane: its dp-cpu-us/call against proxy's is the cost of a large schema",
	"ToolCall/proxy-apikey":   "the echo call through a data plane with --client-keys, carrying an API key: ÷ proxy is the request-path cost of key auth",
	"ToolCall/proxy-jwt":      "the echo call through the same data plane carrying a JWT (--oauth-issuer, local test authorization server): ÷ proxy is the cost of JWT validation",
	"ToolCall/proxy-observed": "the echo call through a data plane logging each request at info in JSON and tracing to an in-process OTLP receiver: ÷ proxy is the request-path cost of the access log and tracing",
	"AddedLatency":            "2000 serial echo calls each way, direct and proxied in turn; added = p(proxy) − p(direct)",
	"Throughput16":            "echo calls over 16 concurrent sessions (a client, with its own HTTP transport, per session), direct and through a data plane in alternating rounds of 2000 calls (8 each way); kept = proxy-calls/s ÷ direct-calls/s, the share of direct throughput kept",
	"ToolsList/direct":        "tools/list straight to the demo backend",
	"ToolsList/gateway-cache": "tools/list through a data plane, served from the gateway's cache: no backend round trip, not comparable to direct",
	"RSS10Backends":           "data-plane VmRSS with 10 HTTP backends connected (as read, and after a forced GC returning free pages); 1 MB = 10^6 B",
	"MemoryPerTool":           "data-plane RSS and HeapInuse delta (after forced GC) between 0 and 10,006 cached tools, per tool, against the tool's JSON size",
}

// A ratio compares two medians: Num's metric over Den's (DenUnit, when the
// two name it differently).
type ratioSpec struct {
	Num, Den, Unit, DenUnit string
}

func (r ratioSpec) denUnit() string {
	if r.DenUnit != "" {
		return r.DenUnit
	}
	return r.Unit
}

func (r ratioSpec) name() string {
	if r.DenUnit != "" {
		return r.Num + " (" + r.Unit + ") ÷ " + r.Den + " (" + r.DenUnit + ")"
	}
	if r.Unit == "ns/op" {
		return r.Num + " ÷ " + r.Den
	}
	return r.Num + " ÷ " + r.Den + " (" + r.Unit + ")"
}

// ratios are the comparisons the README reads.
var ratios = []ratioSpec{
	{"ToolCall/proxy", "ToolCall/direct", "ns/op", ""},
	{"ToolCall/proxy-wide60", "ToolCall/proxy", "dp-cpu-us/call", ""},
	// The data plane's CPU per call against a plain Go reverse proxy's.
	{"ToolCall/proxy", "ToolCall/floor", "dp-cpu-us/call", "floor-cpu-us/call"},
	// The request-path cost of client authentication (issue 11, point 3).
	{"ToolCall/proxy-apikey", "ToolCall/proxy", "ns/op", ""},
	{"ToolCall/proxy-jwt", "ToolCall/proxy", "ns/op", ""},
	{"ToolCall/proxy-apikey", "ToolCall/proxy", "dp-cpu-us/call", ""},
	{"ToolCall/proxy-jwt", "ToolCall/proxy", "dp-cpu-us/call", ""},
	// The request-path cost of the access log and tracing (issue 12).
	{"ToolCall/proxy-observed", "ToolCall/proxy", "ns/op", ""},
	{"ToolCall/proxy-observed", "ToolCall/proxy", "dp-cpu-us/call", ""},
}

// A target is one figure of issue 10, point 7: a metric's median, or a
// ratio, against a bound.
type targetSpec struct {
	What  string
	Bench string // benchmark of the metric, or "" for a ratio
	Unit  string // the metric, or the ratio's name
	Op    string // "<=", "<" or ">="
	Limit float64
}

var targets = []targetSpec{
	{"added latency p50 (serial)", "AddedLatency", "p50-added-us", "<=", 250},
	{"added latency p99 (serial)", "AddedLatency", "p99-added-us", "<=", 1000},
	{"data-plane CPU per tools/call (us)", "ToolCall/proxy", "dp-cpu-us/call", "<=", 150},
	{"CPU per call, 60-parameter tool ÷ echo", "", ratios[1].name(), "<=", 1.30},
	{"throughput at 16 sessions ÷ direct", "Throughput16", "kept", ">=", 0.75},
	{"data-plane RSS with 10 backends (MB)", "RSS10Backends", "rss-MB", "<", 25},
	{"memory per cached tool ÷ its JSON size (RSS)", "MemoryPerTool", "x-json", "<=", 3},
}

// Machine is where the benchmarks ran.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	Date      string `json:"date"`
	Commit    string `json:"commit"`
	// LoadAvg is /proc/loadavg when the report was written: on a shared
	// machine it says how much else was running.
	LoadAvg string `json:"load_avg,omitempty"`
}

// Metric is one unit of one benchmark over all its -count runs.
type Metric struct {
	Unit string `json:"unit"`
	// Median over the runs; Min and Max bound it.
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

// Result is one benchmark over all its -count runs.
type Result struct {
	Name string `json:"name"`
	// Procs is GOMAXPROCS, the -N suffix of the benchmark name.
	Procs int `json:"procs"`
	Runs  int `json:"runs"`
	// Metrics are in the order of the output: ns/op first when there is
	// one, then the benchmark's own (e.g. dp-cpu-us/call), then B/op and
	// allocs/op, which are the benchmark client's, not the gateway's.
	Metrics []Metric `json:"metrics"`
	Note    string   `json:"note,omitempty"`
}

// Metric returns the metric of unit, if reported.
func (r *Result) Metric(unit string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m, true
		}
	}
	return Metric{}, false
}

// Ratio is Num ÷ Den of the medians.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Target is a figure of issue 10, point 7, against its bound.
type Target struct {
	What  string  `json:"what"`
	Value float64 `json:"value"`
	Op    string  `json:"op"`
	Limit float64 `json:"limit"`
	Met   bool    `json:"met"`
	From  string  `json:"from"`
}

// Report is latest.json.
type Report struct {
	Machine Machine  `json:"machine"`
	Command string   `json:"command"`
	Results []Result `json:"results"`
	Ratios  []Ratio  `json:"ratios"`
	Targets []Target `json:"targets"`
}

func main() {
	in := flag.String("in", "", "go test -bench output (default stdin)")
	jsonOut := flag.String("json", "bench/results/latest.json", "JSON file to write")
	mdOut := flag.String("md", "bench/results/latest.md", "Markdown file to write")
	commit := flag.String("commit", "", "commit measured (default: git describe --always --dirty)")
	command := flag.String("command", "", "command that produced the input, recorded as is")
	flag.Parse()
	if err := run(*in, *jsonOut, *mdOut, *commit, *command); err != nil {
		fmt.Fprintln(os.Stderr, "bench report:", err)
		os.Exit(1)
	}
}

func run(in, jsonOut, mdOut, commit, command string) error {
	var r io.Reader = os.Stdin
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("open benchmark output: %w", err)
		}
		defer f.Close()
		r = f
	}
	rep, err := Parse(r)
	if err != nil {
		return err
	}
	if commit == "" {
		out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
		if err != nil {
			return fmt.Errorf("find the commit (pass -commit): %w", err)
		}
		commit = strings.TrimSpace(string(out))
	}
	rep.Machine.Commit, rep.Command = commit, command
	rep.Machine.Cores, rep.Machine.GOOS, rep.Machine.GOARCH = runtime.NumCPU(), runtime.GOOS, runtime.GOARCH
	rep.Machine.GoVersion = runtime.Version()
	rep.Machine.Date = time.Now().UTC().Format(time.RFC3339)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.Machine.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if rep.Machine.CPU == "" {
		rep.Machine.CPU = cpuModel()
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(jsonOut, append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(mdOut, []byte(Markdown(rep)), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Print(Markdown(rep))
	return nil
}

// Parse reads `go test -bench -benchmem` output with golang.org/x/perf's
// benchfmt: the cpu: configuration line and every result, grouped by name,
// each unit as written (benchfmt's tidied units are not used). A benchmark
// that failed, or output without any result, is an error: a report must not
// silently miss figures.
func Parse(r io.Reader) (*Report, error) {
	in, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	// benchfmt skips lines that are not results, failures among them.
	for line := range strings.SplitSeq(string(in), "\n") {
		if strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic:") {
			return nil, fmt.Errorf("the benchmarks failed: %s", line)
		}
	}
	rep := &Report{}
	byName := map[string]*Result{}
	samples := map[string]map[string][]float64{}
	var order []string
	br := benchfmt.NewReader(bytes.NewReader(in), "")
	for br.Scan() {
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, fmt.Errorf("benchmark output: %w", rec)
		case *benchfmt.Result:
			if cpu := rec.GetConfig("cpu"); cpu != "" {
				rep.Machine.CPU = cpu
			}
			prefix, procsPart := splitProcs(rec.Name.String())
			name, procs := strings.TrimPrefix(prefix, "Benchmark"), 1
			if n, err := strconv.Atoi(strings.TrimPrefix(procsPart, "-")); err == nil {
				procs = n
			}
			res := byName[name]
			if res == nil {
				res = &Result{Name: name, Procs: procs, Note: notes[name]}
				byName[name], samples[name] = res, map[string][]float64{}
				order = append(order, name)
			}
			res.Runs++
			for _, v := range rec.Values {
				unit, val := v.Unit, v.Value
				if v.OrigUnit != "" {
					unit, val = v.OrigUnit, v.OrigValue
				}
				if _, ok := samples[name][unit]; !ok {
					res.Metrics = append(res.Metrics, Metric{Unit: unit})
				}
				samples[name][unit] = append(samples[name][unit], val)
			}
		}
	}
	if err := br.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("no benchmark results in the input")
	}
	for _, name := range order {
		res := byName[name]
		for i := range res.Metrics {
			m := &res.Metrics[i]
			m.Samples = samples[name][m.Unit]
			s := slices.Sorted(slices.Values(m.Samples))
			m.Min, m.Max, m.Median = s[0], s[len(s)-1], s[len(s)/2]
			if len(s)%2 == 0 {
				m.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
			}
		}
		rep.Results = append(rep.Results, *res)
	}
	median := func(bench, unit string) (float64, bool) {
		if r := byName[bench]; r != nil {
			if m, ok := r.Metric(unit); ok {
				return m.Median, true
			}
		}
		return 0, false
	}
	byRatio := map[string]float64{}
	for _, spec := range ratios {
		a, okA := median(spec.Num, spec.Unit)
		b, okB := median(spec.Den, spec.denUnit())
		if okA && okB && b != 0 {
			rep.Ratios = append(rep.Ratios, Ratio{Name: spec.name(), Value: a / b})
			byRatio[spec.name()] = a / b
		}
	}
	for _, spec := range targets {
		v, ok, from := 0.0, false, ""
		if spec.Bench == "" {
			v, ok = byRatio[spec.Unit]
			from = spec.Unit
		} else {
			v, ok = median(spec.Bench, spec.Unit)
			from = spec.Bench + " " + spec.Unit + " (median)"
		}
		if !ok {
			continue
		}
		met := v <= spec.Limit
		switch spec.Op {
		case "<":
			met = v < spec.Limit
		case ">=":
			met = v >= spec.Limit
		}
		rep.Targets = append(rep.Targets, Target{What: spec.What, Value: v, Op: spec.Op, Limit: spec.Limit, Met: met, From: from})
	}
	return rep, nil
}

// splitProcs splits the -GOMAXPROCS suffix off a benchmark name.
func splitProcs(name string) (prefix, procs string) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 || strings.Trim(name[i+1:], "0123456789") != "" {
		return name, ""
	}
	return name[:i], name[i:]
}

// Markdown renders latest.md.
func Markdown(rep *Report) string {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# Benchmark results\n\n")
	fmt.Fprintf(&b, "Recorded by `make bench` (bench/report); read the ratios, not the absolute timings.\n\n")
	fmt.Fprintf(&b, "| machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %s |\n| cores | %d |\n| OS/arch | %s/%s |\n| Go | %s |\n| date (UTC) | %s |\n| commit | `%s` |\n", m.CPU, m.Cores, m.GOOS, m.GOARCH, m.GoVersion, m.Date, m.Commit)
	if m.LoadAvg != "" {
		fmt.Fprintf(&b, "| load average (1, 5, 15 min) | %s |\n", m.LoadAvg)
	}
	if rep.Command != "" {
		fmt.Fprintf(&b, "| command | `%s` |\n", rep.Command)
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(&b, "\n## Targets (issue 10, point 7)\n\n| figure | value | target | met | from |\n|---|---:|---|---|---|\n")
		for _, t := range rep.Targets {
			met := "no"
			if t.Met {
				met = "yes"
			}
			fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %s |\n", t.What, num(t.Value), t.Op, num(t.Limit), met, t.From)
		}
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintf(&b, "\n## Ratios (of medians)\n\n| ratio | value |\n|---|---:|\n")
		for _, r := range rep.Ratios {
			fmt.Fprintf(&b, "| %s | %.2f |\n", r.Name, r.Value)
		}
	}
	fmt.Fprintf(&b, "\n## Benchmarks\n\nB/op and allocs/op are the benchmark client's, not the gateway's.\n\n")
	fmt.Fprintf(&b, "| benchmark | runs | metric | median | min–max | what it measures |\n|---|---:|---|---:|---:|---|\n")
	for _, r := range rep.Results {
		for i, mt := range r.Metrics {
			name, runs, note := "", "", ""
			if i == 0 {
				name, runs, note = r.Name, strconv.Itoa(r.Runs), r.Note
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s–%s | %s |\n", name, runs, mt.Unit, num(mt.Median), num(mt.Min), num(mt.Max), note)
		}
	}
	return b.String()
}

// num prints a figure with as many decimals as its size deserves.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
