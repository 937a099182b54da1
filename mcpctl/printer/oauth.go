package printer

import (
	"fmt"
	"io"
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Authorization is one server's OAuth grant as mcpctl prints it (never a
// token: the control plane sends none).
type Authorization struct {
	Server string `json:"server"`
	// State is not-required, authorized, needs-authorization,
	// refresh-failed or error.
	State        string   `json:"state"`
	Issuer       string   `json:"issuer,omitempty"`
	ClientID     string   `json:"client_id,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	AuthorizedAt string   `json:"authorized_at,omitempty"`
	ExpiresAt    string   `json:"expires_at,omitempty"`
	RefreshedAt  string   `json:"refreshed_at,omitempty"`
	Refreshable  bool     `json:"refreshable"`
	LastError    string   `json:"last_error,omitempty"`
}

// AuthorizationState spells a state as mcpctl prints it.
func AuthorizationState(s mcpmeshv1.AuthorizationState) string {
	name := strings.TrimPrefix(s.String(), "AUTHORIZATION_STATE_")
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// AuthorizationFromProto converts an authorization.
func AuthorizationFromProto(a *mcpmeshv1.Authorization) Authorization {
	return Authorization{
		Server: a.GetServer(), State: AuthorizationState(a.GetState()), Issuer: a.GetIssuer(), ClientID: a.GetClientId(),
		Scopes: a.GetScopes(), AuthorizedAt: formatTime(a.GetAuthorizedAt()), ExpiresAt: formatTime(a.GetExpiresAt()),
		RefreshedAt: formatTime(a.GetRefreshedAt()), Refreshable: a.GetRefreshable(), LastError: a.GetLastError(),
	}
}

// AuthorizationList is the output of `oauth list`: a JSON array.
type AuthorizationList []Authorization

// WriteTable prints one server per row.
func (l AuthorizationList) WriteTable(w io.Writer) error {
	if len(l) == 0 {
		_, err := fmt.Fprintln(w, "no server uses OAuth (register one with mcpctl server add NAME --url URL --oauth)")
		return err
	}
	t := newTable(w, "SERVER", "STATE", "ISSUER", "EXPIRES", "LAST-ERROR")
	for _, a := range l {
		t.row(a.Server, a.State, orDash(a.Issuer), orDash(a.ExpiresAt), orDash(a.LastError))
	}
	return t.flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RevokedAuthorization is the output of `oauth revoke`.
type RevokedAuthorization struct {
	Action   string `json:"action"`
	Server   string `json:"server"`
	Revision uint64 `json:"revision"`
	// Warning says why the authorization server could not be told, if so.
	Warning string `json:"warning,omitempty"`
}

// WriteTable prints one sentence.
func (r RevokedAuthorization) WriteTable(w io.Writer) error {
	_, err := fmt.Fprintf(w, "oauth grant of %s revoked (revision %d); authorize it again at a data plane's /oauth page\n", r.Server, r.Revision)
	if err == nil && r.Warning != "" {
		_, err = fmt.Fprintf(w, "warning: %s\n", r.Warning)
	}
	return err
}
