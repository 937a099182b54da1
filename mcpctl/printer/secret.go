package printer

import (
	"fmt"
	"io"
)

// SecretRotated is what mcpctl secret rotate prints; never a secret.
type SecretRotated struct {
	Revision          uint64 `json:"revision"`
	PreviousExpiresAt string `json:"previous_expires_at"`
	PreviousSecrets   uint32 `json:"previous_secrets"`
}

// WriteTable prints one sentence.
func (r SecretRotated) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "cluster secret rotated at revision %d; the old one is accepted until %s\n", r.Revision, r.PreviousExpiresAt)
	return err
}
