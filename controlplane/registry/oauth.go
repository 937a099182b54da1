package registry

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Bounds of a server's OAuth config.
const (
	MaxOAuthClientIDLen     = 512
	MaxOAuthClientSecretLen = 1024
	MaxOAuthScopes          = 32
	MaxOAuthScopeLen        = 128
)

// validateOAuth checks HttpConfig.oauth; transportOK is whether the
// server's transport is HTTP (streamable or SSE), the only ones OAuth
// protects.
func validateOAuth(s *mcpmeshv1.Server, transportOK bool) *fieldError {
	o := s.GetHttp().GetOauth()
	if o == nil {
		return nil
	}
	if !transportOK && (o.GetEnabled() || o.GetClientId() != "" || o.GetClientSecret() != "" || len(o.GetScopes()) > 0) {
		return invalid("server.http.oauth", "is only for the streamable_http and sse transports")
	}
	if len(o.GetClientId()) > MaxOAuthClientIDLen {
		return invalid("server.http.oauth.client_id", "is %d bytes long: at most %d are allowed", len(o.GetClientId()), MaxOAuthClientIDLen)
	}
	if len(o.GetClientSecret()) > MaxOAuthClientSecretLen {
		return invalid("server.http.oauth.client_secret", "is %d bytes long: at most %d are allowed", len(o.GetClientSecret()), MaxOAuthClientSecretLen)
	}
	if strings.ContainsFunc(o.GetClientId(), isCtlOrSpace) {
		return invalid("server.http.oauth.client_id", "contains a space or control character")
	}
	if strings.ContainsFunc(o.GetClientSecret(), isCtl) {
		return invalid("server.http.oauth.client_secret", "contains a control character")
	}
	if o.GetClientSecret() != "" && o.GetClientId() == "" {
		return invalid("server.http.oauth.client_secret", "needs a client_id: a secret belongs to a pre-registered client (--oauth-client-id)")
	}
	if n := len(o.GetScopes()); n > MaxOAuthScopes {
		return invalid("server.http.oauth.scopes", "%d scopes is too many: at most %d are allowed", n, MaxOAuthScopes)
	}
	for i, sc := range o.GetScopes() {
		field := fmt.Sprintf("server.http.oauth.scopes[%d]", i)
		if err := validScope(sc); err != "" {
			return invalid(field, "%q %s", sc, err)
		}
		if slices.Contains(o.GetScopes()[:i], sc) {
			return invalid(field, "%q is listed twice", sc)
		}
	}
	if o.GetEnabled() {
		for k := range s.GetHttp().GetHeaders() {
			if http.CanonicalHeaderKey(k) == "Authorization" {
				return invalid("server.http.headers", "sets Authorization, which OAuth sends (the access token): drop the header or the OAuth config")
			}
		}
	}
	return nil
}

// validScope is RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(sc string) string {
	switch {
	case sc == "":
		return "is empty"
	case len(sc) > MaxOAuthScopeLen:
		return fmt.Sprintf("is %d bytes long: at most %d are allowed", len(sc), MaxOAuthScopeLen)
	}
	for _, c := range []byte(sc) {
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return "is not a valid scope: use printable ASCII without spaces, quotes or backslashes"
		}
	}
	return ""
}

func isCtl(r rune) bool        { return r < 0x20 || r == 0x7f }
func isCtlOrSpace(r rune) bool { return isCtl(r) || r == ' ' }

// oauthChanged reports whether an update makes the stored grant of a
// server useless: OAuth turned off, another client or scopes (the grant was
// given to that client for those), or another URL (the resource its tokens
// are bound to).
func oauthChanged(old, new *mcpmeshv1.Server) bool {
	o, n := old.GetHttp().GetOauth(), new.GetHttp().GetOauth()
	if !o.GetEnabled() {
		return false // there is no grant to keep
	}
	return !n.GetEnabled() || o.GetClientId() != n.GetClientId() || !slices.Equal(o.GetScopes(), n.GetScopes()) ||
		old.GetHttp().GetUrl() != new.GetHttp().GetUrl() || old.GetTransport() != new.GetTransport()
}

// dropStaleGrant deletes the grant of a server an update made useless; it
// returns the revision that bumped, or 0.
func (s *Service) dropStaleGrant(ctx context.Context, old, new *mcpmeshv1.Server) (uint64, error) {
	if !oauthChanged(old, new) {
		return 0, nil
	}
	rev, err := s.st.DeleteOAuthGrant(ctx, new.GetName())
	if err != nil {
		return 0, fmt.Errorf("drop the OAuth grant of %q after its OAuth config changed: %w", new.GetName(), err)
	}
	s.log.Info("oauth grant dropped: the server's oauth config changed", "server", new.GetName())
	return rev, nil
}
