package printer

import (
	"fmt"
	"io"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// Token is one control-plane credential as mcpctl prints it (never its
// secret, except once in CreatedToken).
type Token struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// State is active, expired or revoked.
	State       string `json:"state"`
	CreatedAt   string `json:"created_at,omitempty"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	RevokedAt   string `json:"revoked_at,omitempty"`
	Description string `json:"description,omitempty"`
}

// TokenFromProto converts a token; now decides whether it has expired.
func TokenFromProto(t *mcpmeshv1.Token, now time.Time) Token {
	state := "active"
	switch {
	case t.GetRevokedAt() != nil:
		state = "revoked"
	case t.GetExpiresAt() != nil && !now.Before(t.GetExpiresAt().AsTime()):
		state = "expired"
	}
	return Token{
		ID:          t.GetId(),
		Role:        authtoken.RoleName(t.GetRole()),
		State:       state,
		CreatedAt:   formatTime(t.GetCreatedAt()),
		ExpiresAt:   formatTime(t.GetExpiresAt()),
		RevokedAt:   formatTime(t.GetRevokedAt()),
		Description: t.GetDescription(),
	}
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}

// TokenList is the output of `token list`: a JSON array.
type TokenList []Token

// WriteTable prints one token per row.
func (l TokenList) WriteTable(w io.Writer) error {
	t := newTable(w, "ID", "ROLE", "STATE", "CREATED", "EXPIRES", "DESCRIPTION")
	for _, k := range l {
		t.row(k.ID, k.Role, k.State, k.CreatedAt, orNever(k.ExpiresAt), k.Description)
	}
	return t.flush()
}

// CreatedToken is the output of `token create`: the token and, unless it
// was written to a file, its secret, shown this once.
type CreatedToken struct {
	Token
	Secret string `json:"secret,omitempty"`
	// SecretFile is where the secret was written instead of printed.
	SecretFile string `json:"secret_file,omitempty"`
}

// WriteTable prints a sentence and the secret on a line of its own.
func (c CreatedToken) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "token %s created (role %s, expires %s)\n", c.ID, c.Role, orNever(c.ExpiresAt))
	if c.SecretFile != "" {
		_, err := fmt.Fprintf(w, "secret written to %s\n", c.SecretFile)
		return err
	}
	_, err := fmt.Fprintf(w, "secret (shown only now; store it in a file of mode 0600):\n%s\n", c.Secret)
	return err
}

// RevokedToken is the output of `token revoke`.
type RevokedToken struct {
	Action string `json:"action"`
	Token
}

// WriteTable prints one sentence.
func (r RevokedToken) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "token %s revoked (role %s, at %s)\n", r.ID, r.Role, r.RevokedAt)
	return err
}
