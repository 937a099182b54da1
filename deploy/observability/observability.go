package observability

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Dir is this directory in the source tree.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// RuleFile is the Prometheus rule file format (the subset mcpmesh writes).
type RuleFile struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting or a recording rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// LoadRules reads a rule file strictly (an unknown field is an error) and
// checks what Prometheus would refuse outright: groups without a name or
// rules, duplicate group names, a rule that is not exactly one of alert or
// record, an empty expression, a for that is not a duration, unbalanced
// brackets or quotes in the expression.
func LoadRules(path string) (*RuleFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f RuleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Groups) == 0 {
		return nil, fmt.Errorf("%s: no groups", path)
	}
	seen := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || seen[g.Name] {
			return nil, fmt.Errorf("%s: group name %q empty or repeated", path, g.Name)
		}
		seen[g.Name] = true
		if len(g.Rules) == 0 {
			return nil, fmt.Errorf("%s: group %s has no rules", path, g.Name)
		}
		for i, r := range g.Rules {
			name := r.Alert + r.Record
			switch {
			case (r.Alert == "") == (r.Record == ""):
				return nil, fmt.Errorf("%s: group %s rule %d: set exactly one of alert and record", path, g.Name, i)
			case strings.TrimSpace(r.Expr) == "":
				return nil, fmt.Errorf("%s: rule %s: empty expr", path, name)
			case r.Alert != "" && r.Annotations["summary"] == "":
				return nil, fmt.Errorf("%s: alert %s: no summary annotation", path, name)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					return nil, fmt.Errorf("%s: rule %s: for %q: %w", path, name, r.For, err)
				}
			}
			if err := balanced(r.Expr); err != nil {
				return nil, fmt.Errorf("%s: rule %s: expr: %w", path, name, err)
			}
		}
	}
	return &f, nil
}

// Expressions returns every expression of the rules.
func (f *RuleFile) Expressions() []string {
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// Dashboard is the part of a Grafana dashboard the checks read.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// Panel is one dashboard panel.
type Panel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// LoadDashboard reads a dashboard and checks that it has a title and uid,
// that panel ids are unique and every panel has a query.
func LoadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		return nil, fmt.Errorf("%s: title, uid and panels are required", path)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			return nil, fmt.Errorf("%s: panel id %d repeated", path, p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("%s: panel %q has no query", path, p.Title)
		}
		for _, t := range p.Targets {
			if err := balanced(t.Expr); err != nil {
				return nil, fmt.Errorf("%s: panel %q query %s: %w", path, p.Title, t.RefID, err)
			}
		}
	}
	return &d, nil
}

// Expressions returns every PromQL query of the dashboard, its variables' included.
func (d *Dashboard) Expressions() []string {
	var out []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, t.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			out = append(out, q)
		}
	}
	return out
}

// metricRE finds mcpmesh metric names. Every metric of mcpmesh starts with
// mcpmesh_; a name is not followed by "(" (that is a function) and is not a
// label value (those are quoted; quoted text is dropped first).
var (
	metricRE = regexp.MustCompile(`\bmcpmesh_[a-z0-9_]+\b`)
	quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// MetricNames returns the mcpmesh metric names the expressions use, sorted.
// It is a regexp scan, not a PromQL parse (the PromQL parser lives in the
// prometheus/prometheus module, far too heavy a dependency for this).
func MetricNames(exprs []string) []string {
	set := map[string]bool{}
	for _, e := range exprs {
		e = quotedRE.ReplaceAllString(e, `""`)
		for _, m := range metricRE.FindAllString(e, -1) {
			set[m] = true
		}
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// balanced checks brackets and quotes of a PromQL expression.
func balanced(e string) error {
	var stack []byte
	inQuote := false
	for i := 0; i < len(e); i++ {
		c := e[i]
		if inQuote {
			switch c {
			case '\\':
				i++
			case '"':
				inQuote = false
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			open := map[byte]byte{')': '(', ']': '[', '}': '{'}[c]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return fmt.Errorf("unbalanced %q at %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inQuote || len(stack) > 0 {
		return errors.New("unclosed bracket or quote")
	}
	return nil
}
