package printer

import (
	"fmt"
	"io"
	"strings"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// ClientKey is one client API key as mcpctl prints it (never its secret,
// except once in CreatedClientKey).
type ClientKey struct {
	ID   string   `json:"id"`
	Tags []string `json:"tags"`
	// State is active, expired or revoked.
	State       string `json:"state"`
	CreatedAt   string `json:"created_at,omitempty"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	RevokedAt   string `json:"revoked_at,omitempty"`
	Description string `json:"description,omitempty"`
}

// ClientKeyFromProto converts a key; now decides whether it has expired.
func ClientKeyFromProto(k *mcpmeshv1.ClientKey, now time.Time) ClientKey {
	state := "active"
	switch {
	case k.GetRevokedAt() != nil:
		state = "revoked"
	case k.GetExpiresAt() != nil && !now.Before(k.GetExpiresAt().AsTime()):
		state = "expired"
	}
	tags := k.GetTags()
	if tags == nil {
		tags = []string{}
	}
	return ClientKey{
		ID:          k.GetId(),
		Tags:        tags,
		State:       state,
		CreatedAt:   formatTime(k.GetCreatedAt()),
		ExpiresAt:   formatTime(k.GetExpiresAt()),
		RevokedAt:   formatTime(k.GetRevokedAt()),
		Description: k.GetDescription(),
	}
}

func tagsOrAll(tags []string) string {
	if len(tags) == 0 {
		return "(all servers)"
	}
	return strings.Join(tags, ",")
}

// ClientKeyList is the output of `client-key list`: a JSON array.
type ClientKeyList []ClientKey

// WriteTable prints one key per row.
func (l ClientKeyList) WriteTable(w io.Writer) error {
	t := newTable(w, "ID", "TAGS", "STATE", "CREATED", "EXPIRES", "DESCRIPTION")
	for _, k := range l {
		t.row(k.ID, tagsOrAll(k.Tags), k.State, k.CreatedAt, orNever(k.ExpiresAt), k.Description)
	}
	return t.flush()
}

// CreatedClientKey is the output of `client-key create`: the key and,
// unless it was written to a file, its secret, shown this once.
type CreatedClientKey struct {
	ClientKey
	Secret string `json:"secret,omitempty"`
	// SecretFile is where the secret was written instead of printed.
	SecretFile string `json:"secret_file,omitempty"`
}

// WriteTable prints a sentence and the secret on a line of its own.
func (c CreatedClientKey) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "client key %s created (tags %s, expires %s)\n", c.ID, tagsOrAll(c.Tags), orNever(c.ExpiresAt))
	if c.SecretFile != "" {
		_, err := fmt.Fprintf(w, "secret written to %s\n", c.SecretFile)
		return err
	}
	_, err := fmt.Fprintf(w, "secret (shown only now; clients send it as Authorization: Bearer <secret>):\n%s\n", c.Secret)
	return err
}

// RevokedClientKey is the output of `client-key revoke`.
type RevokedClientKey struct {
	Action string `json:"action"`
	ClientKey
}

// WriteTable prints one sentence.
func (r RevokedClientKey) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "client key %s revoked (tags %s, at %s)\n", r.ID, tagsOrAll(r.Tags), r.RevokedAt)
	return err
}
