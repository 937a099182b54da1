// Command report turns `go test -bench` output into bench/results/latest.json
// and latest.md, with the machine and commit noted, so that a recorded figure
// says where and on what code it was measured. `make bench` runs it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// notes say what a benchmark measures where its name cannot.
var notes = map[string]string{
	"ToolCall/direct":         "tools/call straight to the demo backend (streamable HTTP)",
	"ToolCall/proxy":          "the same tools/call through a data plane: proxy ÷ direct is the cost of the hop",
	"ToolsList/direct":        "tools/list straight to the demo backend",
	"ToolsList/gateway-cache": "tools/list through a data plane, served from the gateway's cache: no backend round trip, not comparable to direct",
}

// ratios are the comparisons the README reads.
var ratios = [][2]string{{"ToolCall/proxy", "ToolCall/direct"}}

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

// Result is one benchmark over all its -count runs.
type Result struct {
	Name string `json:"name"`
	// Procs is GOMAXPROCS, the -N suffix of the benchmark name.
	Procs int `json:"procs"`
	Runs  int `json:"runs"`
	// NsPerOp is the median over the runs; Min and Max bound it.
	NsPerOp    float64   `json:"ns_per_op"`
	MinNsPerOp float64   `json:"min_ns_per_op"`
	MaxNsPerOp float64   `json:"max_ns_per_op"`
	Samples    []float64 `json:"ns_per_op_samples"`
	// BytesPerOp and AllocsPerOp are the last run's, of the benchmark
	// client (not the gateway).
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	Note        string  `json:"note,omitempty"`
}

// Ratio is a ÷ b of the median ns/op.
type Ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Report is latest.json.
type Report struct {
	Machine Machine  `json:"machine"`
	Command string   `json:"command"`
	Results []Result `json:"results"`
	Ratios  []Ratio  `json:"ratios"`
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

// Parse reads `go test -bench -benchmem` output: the cpu: header line and
// every Benchmark line, grouped by name. A benchmark that failed, or output
// without any result, is an error: a report must not silently miss figures.
func Parse(r io.Reader) (*Report, error) {
	rep := &Report{}
	byName := map[string]*Result{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			rep.Machine.CPU = strings.TrimSpace(cpu)
			continue
		}
		if strings.HasPrefix(line, "--- FAIL") || strings.HasPrefix(line, "FAIL") {
			return nil, fmt.Errorf("the benchmarks failed: %s", line)
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		name, procs := strings.TrimPrefix(f[0], "Benchmark"), 1
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if n, err := strconv.Atoi(name[i+1:]); err == nil {
				name, procs = name[:i], n
			}
		}
		ns, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("ns/op of %q: %w", line, err)
		}
		res := byName[name]
		if res == nil {
			res = &Result{Name: name, Procs: procs, Note: notes[name]}
			byName[name] = res
			order = append(order, name)
		}
		res.Samples = append(res.Samples, ns)
		for i := 4; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "B/op":
				res.BytesPerOp = v
			case "allocs/op":
				res.AllocsPerOp = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("no benchmark results in the input")
	}
	for _, name := range order {
		res := byName[name]
		s := slices.Sorted(slices.Values(res.Samples))
		res.Runs, res.MinNsPerOp, res.MaxNsPerOp = len(s), s[0], s[len(s)-1]
		res.NsPerOp = s[len(s)/2]
		if len(s)%2 == 0 {
			res.NsPerOp = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
		rep.Results = append(rep.Results, *res)
	}
	for _, pair := range ratios {
		a, b := byName[pair[0]], byName[pair[1]]
		if a != nil && b != nil && b.NsPerOp > 0 {
			rep.Ratios = append(rep.Ratios, Ratio{Name: pair[0] + " ÷ " + pair[1], Value: a.NsPerOp / b.NsPerOp})
		}
	}
	return rep, nil
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
	fmt.Fprintf(&b, "\n| benchmark | runs | ns/op (median) | min–max | client B/op | client allocs/op | what it measures |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.0f–%.0f | %.0f | %.0f | %s |\n", r.Name, r.Runs, r.NsPerOp, r.MinNsPerOp, r.MaxNsPerOp, r.BytesPerOp, r.AllocsPerOp, r.Note)
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintf(&b, "\n| ratio | value |\n|---|---:|\n")
		for _, r := range rep.Ratios {
			fmt.Fprintf(&b, "| %s | %.2f |\n", r.Name, r.Value)
		}
	}
	return b.String()
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
