package printer

import (
	"fmt"
	"io"
)

// Counts is how many of each thing a backup holds or a restore replaced.
type Counts struct {
	Servers         uint32 `json:"servers"`
	Tokens          uint32 `json:"tokens"`
	ClientKeys      uint32 `json:"client_keys"`
	PreviousSecrets uint32 `json:"previous_secrets"`
}

func (c Counts) String() string {
	return fmt.Sprintf("%d servers, %d tokens, %d client keys, %d previous cluster secrets", c.Servers, c.Tokens, c.ClientKeys, c.PreviousSecrets)
}

// BackupWritten is what mcpctl backup prints; never a secret.
type BackupWritten struct {
	File        string `json:"file"`
	Bytes       int    `json:"bytes"`
	Revision    uint64 `json:"revision"`
	SourceStore string `json:"source_store"`
	CreatedAt   string `json:"created_at"`
	Contents    Counts `json:"contents"`
}

// WriteTable prints one sentence.
func (b BackupWritten) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "backup of revision %d (%s store) written to %s (%d bytes): %s\nit holds every secret in clear: keep it like the control plane's secrets.key\n",
		b.Revision, b.SourceStore, b.File, b.Bytes, b.Contents)
	return err
}

// Restored is what mcpctl restore prints.
type Restored struct {
	File           string `json:"file"`
	DryRun         bool   `json:"dry_run,omitempty"`
	Revision       uint64 `json:"revision"`
	BackupRevision uint64 `json:"backup_revision"`
	BackupStore    string `json:"backup_store"`
	BackupTaken    string `json:"backup_created_at"`
	Replaced       Counts `json:"replaced"`
	Restored       Counts `json:"restored"`
}

// WriteTable prints what was (or, with --dry-run, would be) replaced.
func (r Restored) WriteTable(w io.Writer) error {
	verb, at := "restored", fmt.Sprintf("at revision %d", r.Revision)
	if r.DryRun {
		verb, at = "would restore (dry run, nothing changed)", fmt.Sprintf("over revision %d", r.Revision)
	}
	_, err := fmt.Fprintf(w, "%s %s (revision %d of the %s store, taken %s) %s\n  restored: %s\n  replaced: %s\n",
		verb, r.File, r.BackupRevision, r.BackupStore, r.BackupTaken, at, r.Restored, r.Replaced)
	return err
}
