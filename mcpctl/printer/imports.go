package printer

import (
	"fmt"
	"io"
)

// ImportItem is one entry of an imported file and what import does with it.
type ImportItem struct {
	// Action is create, rename (create under another name) or skip.
	Action string `json:"action"`
	// Name is the server's name in mcpmesh (for skip: the name that was taken).
	Name string `json:"name"`
	// Source is the entry's key in the file.
	Source    string `json:"source"`
	Transport string `json:"transport"`
	Target    string `json:"target"`
	// Reason says why an entry is renamed or skipped.
	Reason string `json:"reason,omitempty"`
}

// ImportPlan is the output of `server import`: the plan, and what came of it.
type ImportPlan struct {
	DryRun bool   `json:"dry_run"`
	File   string `json:"file"`
	// Format is the top-level key the servers were under: mcpServers, servers, mcp.servers.
	Format string `json:"format"`
	// Created counts the servers created (for a dry run: that would be).
	Created int `json:"created"`
	// Revision is the one that created them all (dry run, or nothing to
	// create: the current one).
	Revision uint64       `json:"revision"`
	Servers  []ImportItem `json:"servers"`
	Warnings []string     `json:"warnings"`
}

// WriteTable prints the plan, the warnings and one closing sentence.
func (p ImportPlan) WriteTable(w io.Writer) error {
	t := newTable(w, "ACTION", "NAME", "FROM", "TRANSPORT", "TARGET", "NOTE")
	for _, s := range p.Servers {
		t.row(s.Action, s.Name, s.Source, s.Transport, s.Target, s.Reason)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, wa := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wa)
	}
	var err error
	switch {
	case p.Created == 0:
		_, err = fmt.Fprintf(w, "nothing to create from %s (revision %d)\n", p.File, p.Revision)
	case p.DryRun:
		_, err = fmt.Fprintf(w, "dry run: %d server(s) from %s are valid and would be created in one revision (checked at revision %d); nothing was changed\n", p.Created, p.File, p.Revision)
	default:
		_, err = fmt.Fprintf(w, "%d server(s) from %s created (revision %d)\n", p.Created, p.File, p.Revision)
	}
	return err
}

// Exported is the output of `server export -f FILE`.
type Exported struct {
	File     string   `json:"file"`
	Servers  int      `json:"servers"`
	Warnings []string `json:"warnings"`
}

// WriteTable prints the warnings and one sentence.
func (e Exported) WriteTable(w io.Writer) error {
	for _, wa := range e.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wa)
	}
	_, err := fmt.Fprintf(w, "%d server(s) exported to %s (secret values are written as %s)\n", e.Servers, e.File, Redacted)
	return err
}
