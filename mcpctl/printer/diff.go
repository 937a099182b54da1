package printer

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The operations of a Change.
const (
	OpAdd    = "add"
	OpRemove = "remove"
	OpChange = "change"
)

// Change is one field that differs between two versions of an object, as
// printed (secret values are "***" on both sides).
type Change struct {
	Field string `json:"field"`
	Op    string `json:"op"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// String is the one-line form: "+ tags: a", "- env.X: ***", "~ timeout: 5s -> 10s".
func (c Change) String() string {
	switch c.Op {
	case OpAdd:
		return "+ " + c.Field + ": " + c.New
	case OpRemove:
		return "- " + c.Field + ": " + c.Old
	default:
		return "~ " + c.Field + ": " + c.Old + " -> " + c.New
	}
}

// NewSecret marks a secret whose value changed though both sides print "***".
const NewSecret = Redacted + " (new value)"

// field is one line of a server's flattened form.
type field struct{ key, value string }

// fields flattens s into the lines a diff compares; nil has none.
func (s *Server) fields() []field {
	if s == nil {
		return nil
	}
	var out []field
	add := func(k, v string) {
		if v != "" {
			out = append(out, field{k, v})
		}
	}
	add("name", s.Name)
	add("transport", s.Transport)
	add("url", s.URL)
	add("endpoints", strings.Join(s.Endpoints, ", "))
	for _, k := range slices.Sorted(maps.Keys(s.Headers)) {
		add("headers."+k, s.Headers[k])
	}
	add("command", s.Command)
	add("args", strings.Join(s.Args, " "))
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		add("env."+k, s.Env[k])
	}
	add("working_dir", s.WorkingDir)
	add("tags", strings.Join(s.Tags, ", "))
	add("enabled", strconv.FormatBool(s.Enabled))
	add("timeout", s.timeoutCell())
	add("backoff", strings.Join(s.Backoff, ","))
	add("description", s.Description)
	if s.Prefix != nil {
		add("prefix", strconv.Quote(*s.Prefix))
	}
	add("session", s.Session)
	return out
}

// ServerChanges lists what changes from old to new (either may be nil: a
// create or a remove), field by field in a fixed order. renewed names the
// secret fields ("env.TOKEN", "headers.Authorization") that get a new value
// although both sides print "***".
func ServerChanges(old, new *Server, renewed ...string) []Change {
	before := map[string]string{}
	for _, f := range old.fields() {
		before[f.key] = f.value
	}
	out := []Change{} // [] rather than null in JSON
	seen := map[string]bool{}
	for _, f := range new.fields() {
		seen[f.key] = true
		prev, had := before[f.key]
		switch {
		case !had:
			out = append(out, Change{Field: f.key, Op: OpAdd, New: f.value})
		case prev != f.value:
			out = append(out, Change{Field: f.key, Op: OpChange, Old: prev, New: f.value})
		case slices.Contains(renewed, f.key):
			out = append(out, Change{Field: f.key, Op: OpChange, Old: prev, New: NewSecret})
		}
	}
	for _, f := range old.fields() {
		if !seen[f.key] {
			out = append(out, Change{Field: f.key, Op: OpRemove, Old: f.value})
		}
	}
	return out
}

// ValueChanges lists the changes between two KEY -> VALUE maps, sorted by key.
func ValueChanges(old, new map[string]string) []Change {
	out := []Change{}
	union := make(map[string]string, len(old)+len(new))
	maps.Copy(union, old)
	maps.Copy(union, new)
	keys := slices.Sorted(maps.Keys(union))
	for _, k := range keys {
		o, hadOld := old[k]
		n, hasNew := new[k]
		switch {
		case !hadOld:
			out = append(out, Change{Field: k, Op: OpAdd, New: n})
		case !hasNew:
			out = append(out, Change{Field: k, Op: OpRemove, Old: o})
		case o != n:
			out = append(out, Change{Field: k, Op: OpChange, Old: orEmpty(o), New: orEmpty(n)})
		}
	}
	return out
}

func orEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// DryRun is the output of every write run with --dry-run: what would
// change, checked against the control plane, with nothing written.
type DryRun struct {
	DryRun bool `json:"dry_run"`
	// Action is the verb: create, update, remove, enable, disable, set, revoke.
	Action string `json:"action"`
	// Kind is what it acts on: server, setting, token, client-key.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Revision is the config revision the change was checked against (0
	// where the object is not config, as tokens).
	Revision uint64   `json:"revision"`
	Changes  []Change `json:"changes"`
	// Server is the server as it would be stored (create and update).
	Server *Server `json:"server,omitempty"`
}

// WriteTable prints a sentence and one line per change.
func (d DryRun) WriteTable(w io.Writer) error {
	at := ""
	if d.Revision > 0 {
		at = fmt.Sprintf(" (checked at revision %d)", d.Revision)
	}
	if _, err := fmt.Fprintf(w, "dry run: would %s %s %q%s; nothing was changed\n", d.Action, d.Kind, d.Name, at); err != nil {
		return err
	}
	return writeChanges(w, d.Changes)
}

func writeChanges(w io.Writer, changes []Change) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "  (no changes)")
		return err
	}
	for _, c := range changes {
		line := strings.NewReplacer("\t", " ", "\n", " ").Replace(c.String())
		if _, err := fmt.Fprintln(w, "  "+line); err != nil {
			return err
		}
	}
	return nil
}
