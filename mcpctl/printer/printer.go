package printer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"
)

// Format is an output format selected with -o.
type Format string

// The output formats.
const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// ParseFormat validates the value of -o/--output.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case Table, JSON, YAML:
		return f, nil
	default:
		return "", fmt.Errorf("--output %q is not supported: use table, json or yaml", s)
	}
}

// View is anything mcpctl prints: it renders itself as a table, and its json
// tags define the JSON and YAML forms.
type View interface {
	WriteTable(w io.Writer) error
}

// Print writes v to w in format f.
func Print(w io.Writer, f Format, v View) error {
	switch f {
	case JSON:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		// URLs with query strings stay readable: no \u0026.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err := w.Write(buf.Bytes())
		return err
	case YAML:
		// sigs.k8s.io/yaml goes through encoding/json, so YAML has the same
		// keys and values as JSON.
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = w.Write(b)
		return err
	case Table, "":
		return v.WriteTable(w)
	default:
		return fmt.Errorf("unknown output format %q", f)
	}
}

// table is a small helper around tabwriter so every view aligns the same way.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		// A tab or newline inside a value would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }
