//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The official conformance suite (@modelcontextprotocol/conformance, server
// scenarios) against mcp-go's own examples/conformance fixture, directly and
// through a data plane that fronts it with --prefix '' (issue 10, point 5).
//
// The rule, per suite run and per scenario:
//
//   - A scenario that passes directly must pass through the gateway, unless
//     conformance-expected-failures.yaml lists it under that run with a
//     reason. A listed scenario must still fail through the gateway: once it
//     passes, the test fails until the entry is removed, so the list only
//     ever shrinks to what is really missing.
//   - A listed scenario must pass directly (otherwise it is not a gateway gap
//     and has no business in the list), and must exist in the run.
//   - A scenario that fails directly is the fixture's or the suite's business:
//     reported, not required through the gateway.
//   - A scenario listed under flaky: fails now and then against the fixture
//     itself, always with the same message (a race in the fixture's server).
//     A run whose only failed checks say exactly that message counts as a
//     pass, on both sides, and is logged as tolerated: the gateway must do as
//     well as the fixture, not better.
//   - A scenario that passed directly, is not listed and fails through the
//     gateway is run once more on its own before it counts as failed; so is a
//     listed one that fails directly. A pass on a retry is logged.

// conformanceRun is one run of the suite: a package version and its flags.
type conformanceRun struct {
	name string   // key in the expected-failures file and in the log
	pkg  string   // npm alias in the interop install
	args []string // flags of the whole run
	one  []string // flags that run one scenario as the whole run does
}

var conformanceRuns = []conformanceRun{
	{name: "0.1.16", pkg: "conf016"},
	{name: "0.2.0-alpha.12", pkg: "conf020"},
	// The 2026-07-28 requirement set; --requirements cannot be combined with
	// --scenario, and runs each scenario at that spec version, forced.
	{name: "0.2.0-alpha.12 requirements 2026-07-28", pkg: "conf020",
		args: []string{"--requirements", "2026-07-28"}, one: []string{"--spec-version", "2026-07-28", "--force"}},
}

const (
	conformanceExpectedFile = "testdata/conformance-expected-failures.yaml"
	conformanceRunTimeout   = 5 * time.Minute
	conformanceRetries      = 6 // failed scenarios run again on their own at once
)

// conformanceExpected is conformance-expected-failures.yaml.
type conformanceExpected struct {
	// Flaky: scenario → the fixture's own intermittent failure.
	Flaky map[string]conformanceFlaky `json:"flaky"`
	// Expected: run name → scenario → why it fails through the gateway.
	Expected map[string]map[string]string `json:"expected"`
}

type conformanceFlaky struct {
	Tolerate string `json:"tolerate"` // the errorMessage of the one check that fails
	Reason   string `json:"reason"`
}

func loadConformanceExpected(t *testing.T) conformanceExpected {
	t.Helper()
	b, err := os.ReadFile(conformanceExpectedFile)
	if err != nil {
		t.Fatal(err)
	}
	var e conformanceExpected
	if err := yaml.UnmarshalStrict(b, &e); err != nil {
		t.Fatalf("%s: %v", conformanceExpectedFile, err)
	}
	known := map[string]bool{}
	for _, run := range conformanceRuns {
		known[run.name] = true
	}
	for name := range e.Expected {
		if !known[name] {
			t.Fatalf("%s: unknown run %q (runs are named as in conformanceRuns)", conformanceExpectedFile, name)
		}
	}
	for s, f := range e.Flaky {
		if f.Tolerate == "" || f.Reason == "" {
			t.Fatalf("%s: flaky %s needs both tolerate and reason", conformanceExpectedFile, s)
		}
	}
	return e
}

// scenarioResult is what one scenario's checks said.
type scenarioResult struct {
	passed, failed int
	errs           []string // "check-id: message" of each failed check
	msgs           []string // the errorMessage of each failed check
	attempts       int      // runs of this scenario
	passes         int      // runs that passed
	tolerated      int      // runs whose only failure was the flaky one tolerated
}

func (r scenarioResult) ok() bool { return r.passes > 0 }

// tolerate counts a run that failed only with the tolerated message as a
// pass.
func (r *scenarioResult) tolerate(msg string) {
	if r.failed == 0 || msg == "" {
		return
	}
	for _, m := range r.msgs {
		if m != msg {
			return
		}
	}
	r.tolerated++
	r.passes++
}

func (r scenarioResult) why() string {
	if r.ok() {
		return "passes"
	}
	if len(r.errs) == 0 {
		return "no checks reported"
	}
	return strings.Join(r.errs, "; ")
}

// conformanceCLI runs the suite of one package against one URL.
type conformanceCLI struct {
	t    *testing.T
	node string
	cli  string // dist/index.js of the package
	run  conformanceRun
}

var resultDirRE = regexp.MustCompile(`^server-(.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$`)
var totalRE = regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`)

// exec runs the CLI with args against url in a fresh directory (it writes
// results/ in its working directory) and returns the results by scenario
// and the "Total:" line.
func (c conformanceCLI) exec(url string, args ...string) (map[string]scenarioResult, string, error) {
	dir, err := os.MkdirTemp(c.t.TempDir(), "run")
	if err != nil {
		return nil, "", err
	}
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), conformanceRunTimeout)
	defer cancel()
	argv := append([]string{c.cli, "server", "--url", url, "-o", out}, args...)
	cmd := exec.CommandContext(ctx, c.node, argv...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopTimeout
	stdout, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ctx.Err() == nil) {
		return nil, "", fmt.Errorf("conformance %s %v: %w\n%s", c.run.name, args, err, tail(string(stdout), 30))
	}
	total := "no total"
	if m := totalRE.FindStringSubmatch(string(stdout)); m != nil {
		total = m[1] + " passed, " + m[2] + " failed"
	}
	entries, err := os.ReadDir(out)
	if err != nil || len(entries) == 0 {
		return nil, total, fmt.Errorf("conformance %s %v wrote no results (%v); output:\n%s", c.run.name, args, err, tail(string(stdout), 30))
	}
	res := map[string]scenarioResult{}
	for _, e := range entries {
		m := resultDirRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(out, e.Name(), "checks.json"))
		if errors.Is(err, os.ErrNotExist) {
			// The scenario started and never wrote its checks (it threw):
			// a failure of that scenario, not of the run.
			r := res[m[1]]
			r.failed++
			r.errs = append(r.errs, "the scenario wrote no checks.json (it did not finish)")
			r.msgs = append(r.msgs, "no checks.json")
			res[m[1]] = r
			continue
		}
		if err != nil {
			return nil, total, err
		}
		var checks []struct {
			ID, Status, ErrorMessage string
		}
		if err := json.Unmarshal(b, &checks); err != nil {
			return nil, total, fmt.Errorf("%s/checks.json: %w", e.Name(), err)
		}
		r := res[m[1]]
		for _, ch := range checks {
			switch ch.Status {
			case "SUCCESS":
				r.passed++
			case "FAILURE", "ERROR":
				r.failed++
				r.errs = append(r.errs, fmt.Sprintf("%s: %s", ch.ID, oneLine(ch.ErrorMessage, 160)))
				r.msgs = append(r.msgs, ch.ErrorMessage)
			}
		}
		res[m[1]] = r
	}
	for s, r := range res {
		r.attempts = 1
		if r.failed == 0 {
			r.passes = 1
		}
		res[s] = r
	}
	return res, total, nil
}

// suite runs the whole suite against url, then runs once more on its own
// each failed scenario that retry allows (conformanceRetries at a time), and
// keeps the better of the two. tolerated names the message a flaky
// scenario's run may fail with and still count as passed.
func (c conformanceCLI) suite(side, url string, retry func(string) bool, tolerated func(string) string) (map[string]scenarioResult, string) {
	c.t.Helper()
	start := time.Now()
	res, total, err := c.exec(url, c.run.args...)
	full := time.Since(start)
	if err != nil {
		c.t.Fatal(err)
	}
	for s, r := range res {
		r.tolerate(tolerated(s))
		res[s] = r
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, conformanceRetries)
	)
	for s, r := range res {
		if r.ok() || !retry(s) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			one, _, err := c.exec(url, append([]string{"--scenario", s}, c.run.one...)...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			again := one[s]
			again.tolerate(tolerated(s))
			again.attempts += r.attempts
			again.passes += r.passes
			again.tolerated += r.tolerated
			if !again.ok() {
				again.passed, again.failed, again.errs, again.msgs = r.passed, r.failed, r.errs, r.msgs
			}
			res[s] = again
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		c.t.Fatal(errors.Join(errs...))
	}
	c.t.Logf("%s: full run %v, retries %v", side, ms(full), ms(time.Since(start)-full))
	return res, total
}

// conformanceFixture is mcp-go's examples/conformance server.
type conformanceFixture struct {
	*proc
	url string
}

// startConformanceFixture starts the fixture on a free port. It takes its
// address from CONFORMANCE_ADDR and logs it before listening, so the port is
// picked here and a start that finds it taken is tried again.
func startConformanceFixture(t *testing.T) conformanceFixture {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		addr := freeAddr(t)
		p := startProc(t, "conformance fixture", []string{"CONFORMANCE_ADDR=" + addr}, bin("conformance-fixture"))
		err := func() error {
			for time.Now().Before(deadline) {
				if p.exited() {
					return fmt.Errorf("exited: %v", p.err)
				}
				if resp, err := httpc.Get("http://" + addr + "/health"); err == nil {
					resp.Body.Close()
					return nil
				}
				time.Sleep(pollInterval)
			}
			return errors.New("no /health")
		}()
		if err == nil {
			return conformanceFixture{proc: p, url: "http://" + addr + "/mcp"}
		}
		if !strings.Contains(p.log.String(), addrInUse) || time.Now().After(deadline) {
			t.Fatalf("start conformance fixture: %v; log:\n%s", err, tail(p.log.String(), 20))
		}
	}
}

func TestConformance(t *testing.T) {
	// Runs alongside the other interop test; both spend their time waiting
	// on Node processes.
	t.Parallel()
	in := interopInstall(t)
	expected := loadConformanceExpected(t)
	fixture := startConformanceFixture(t)

	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	dp := startDataPlane(t, cp, "dp-conformance")
	// The fixture serves 2026-07-28 too, but its tools ask for sampling and
	// elicitation with server-to-client requests, which that revision does
	// not carry: pinned to 2025-11-25 (README "Protocol eras"), the gateway
	// reaches it as the suite's session clients do directly.
	mustCtl(t, cp, "server", "add", "conformance", "--url", fixture.url, "--prefix", "",
		"--header", "MCP-Protocol-Version=2025-11-25")
	c := mcpClient(t, dp.mcpURL())
	eventually(t, waitTimeout, "the fixture's tools listed under their own names", func() error {
		return toolsListed(c, []string{"test_simple_text", "test_tool_with_progress"})
	})

	var summary []string
	for _, run := range conformanceRuns {
		t.Run(strings.ReplaceAll(run.name, " ", "_"), func(t *testing.T) {
			cli := conformanceCLI{t: t, node: in.node, cli: filepath.Join(in.modules, run.pkg, "dist", "index.js"), run: run}
			listed := expected.Expected[run.name]
			tolerated := func(s string) string { return expected.Flaky[s].Tolerate }
			start := time.Now()
			// A scenario that fails directly is retried only when it is listed
			// (the list must not claim a gateway gap for what the fixture fails):
			// an unlisted one failing directly is merely not required through the
			// gateway. Through the gateway, only what passed directly and is not
			// listed is retried.
			direct, directTotal := cli.suite("direct", fixture.url, func(s string) bool {
				_, isListed := listed[s]
				return isListed
			}, tolerated)
			through, throughTotal := cli.suite("through", dp.mcpURL(), func(s string) bool {
				_, isListed := listed[s]
				return direct[s].ok() && !isListed
			}, tolerated)
			took := time.Since(start)

			var scenarios []string
			for s := range direct {
				scenarios = append(scenarios, s)
			}
			sort.Strings(scenarios)
			var required, passThrough, expectedFail, failsDirect int
			var unlisted []string // entries that would make the list match
			var flakyNotes []string
			for _, s := range scenarios {
				d, th := direct[s], through[s]
				reason, isListed := listed[s]
				if d.attempts > 1 && d.ok() || th.attempts > 1 && th.ok() {
					t.Logf("passed on retry: %s passed directly %d of %d runs, through %d of %d", s, d.passes, d.attempts, th.passes, th.attempts)
				}
				if d.tolerated+th.tolerated > 0 {
					flakyNotes = append(flakyNotes, fmt.Sprintf("%s (tolerated directly %d of %d runs, through %d of %d)", s, d.tolerated, d.attempts, th.tolerated, th.attempts))
				}
				switch {
				case !d.ok():
					failsDirect++
					t.Logf("fails directly (not required through the gateway): %s: %s; through: %s", s, d.why(), th.why())
					if isListed {
						t.Errorf("%s: %s is listed as a gateway gap (%q) but fails directly too: remove it from %s", run.name, s, reason, conformanceExpectedFile)
					}
				case th.ok():
					required++
					passThrough++
					if isListed {
						t.Errorf("%s: %s now passes through the gateway: remove it from %s (it said %q)", run.name, s, conformanceExpectedFile, reason)
					}
				case isListed:
					required++
					expectedFail++
					t.Logf("expected failure through the gateway: %s (%s): %s", s, reason, th.why())
				default:
					required++
					t.Errorf("%s: %s passes directly but fails through the gateway: %s", run.name, s, th.why())
					unlisted = append(unlisted, fmt.Sprintf("    %s: %q", s, "issue 10: the router is not in yet ("+oneLine(strings.Join(th.msgs, "; "), 80)+")"))
				}
			}
			// Browsers (issue 11 point 4): the DNS rebinding scenario runs in
			// every run and passes through the gateway.
			if th, ok := through["dns-rebinding-protection"]; !ok || !th.ok() {
				t.Errorf("%s: dns-rebinding-protection did not pass through the gateway (ran: %v): %s", run.name, ok, th.why())
			}
			if len(unlisted) > 0 {
				t.Errorf("if these are known gaps, list them in %s (a fix is better):\n  %q:\n%s", conformanceExpectedFile, run.name, strings.Join(unlisted, "\n"))
			}
			for s, reason := range listed {
				if _, ok := direct[s]; !ok {
					t.Errorf("%s: %s is listed (%q) but is not a scenario of this run: remove it from %s", run.name, s, reason, conformanceExpectedFile)
				}
			}
			line := fmt.Sprintf("conformance %s: scenarios passing directly %d/%d, through %d/%d (checks of the first full runs: direct %s, through %s); required (pass directly) %d: %d pass through, %d expected failures; %d fail directly; tolerated fixture flakes: %s; %v",
				run.name, passing(direct), len(direct), passing(through), len(through), directTotal, throughTotal,
				required, passThrough, expectedFail, failsDirect, orNone(flakyNotes), took.Round(100*time.Millisecond))
			t.Log(line)
			summary = append(summary, line)
		})
	}
	t.Logf("measure:\n%s", strings.Join(summary, "\n"))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func passing(res map[string]scenarioResult) int {
	n := 0
	for _, r := range res {
		if r.ok() {
			n++
		}
	}
	return n
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
