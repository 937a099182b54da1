package clientauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// KeyPrefix starts every client API key ("mcpk_<id>_<secret>", issued by
// mcpctl client-key create).
const KeyPrefix = "mcpk_"

// keyEntry is one live key as the data plane checks it.
type keyEntry struct {
	hash    []byte
	tags    []string
	expires time.Time // zero: never
}

// Keys checks client API keys against the live keys of the newest config
// snapshot (Set), which it swaps atomically: a request sees one set whole.
// It is safe for concurrent use.
type Keys struct {
	m   atomic.Pointer[map[string]keyEntry] // by key id
	now func() time.Time
}

// NewKeys returns a Keys that accepts nothing until Set.
func NewKeys() *Keys {
	k := &Keys{now: time.Now}
	k.m.Store(&map[string]keyEntry{})
	return k
}

// Set replaces the accepted keys with those of a snapshot.
func (k *Keys) Set(keys []*mcpmeshv1.StoredClientKey) {
	m := make(map[string]keyEntry, len(keys))
	for _, sk := range keys {
		e := keyEntry{hash: sk.GetSecretSha256(), tags: sk.GetKey().GetTags()}
		if exp := sk.GetKey().GetExpiresAt(); exp != nil {
			e.expires = exp.AsTime()
		}
		m[sk.GetKey().GetId()] = e
	}
	k.m.Store(&m)
}

// Len is how many keys are accepted.
func (k *Keys) Len() int { return len(*k.m.Load()) }

// Challenge is the WWW-Authenticate value answering err.
func (k *Keys) Challenge(err *Error) string {
	if err.Code == "" {
		return `Bearer realm="mcpmesh"`
	}
	return `Bearer realm="mcpmesh", error="` + err.Code + `", error_description="` + strings.ReplaceAll(err.Msg, `"`, `'`) + `"`
}

// Authenticate checks r's bearer API key.
func (k *Keys) Authenticate(r *http.Request) (*Identity, *Error) {
	tok, err := bearer(r, "this data plane needs an API key (Authorization: Bearer mcpk_…; see mcpctl client-key create)")
	if err != nil {
		return nil, err
	}
	return k.check(tok)
}

// check validates one key string.
func (k *Keys) check(tok string) (*Identity, *Error) {
	refused := &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Msg: "API key refused: unknown, revoked or malformed"}
	rest, ok := strings.CutPrefix(tok, KeyPrefix)
	if !ok {
		return nil, refused
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || secret == "" {
		return nil, refused
	}
	e, ok := (*k.m.Load())[id]
	if !ok {
		return nil, refused
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], e.hash) != 1 {
		return nil, refused
	}
	if !e.expires.IsZero() && !k.now().Before(e.expires) {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Msg: "API key refused: it has expired"}
	}
	return &Identity{Subject: "client-key:" + id, ClientID: id, Tags: e.tags}, nil
}

// bearer returns r's bearer token, or the error for a missing or malformed
// Authorization header (missing says what to send).
func bearer(r *http.Request, missing string) (string, *Error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", &Error{Status: http.StatusUnauthorized, Msg: missing}
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", &Error{Status: http.StatusUnauthorized, Code: "invalid_request", Msg: "the Authorization header must be \"Bearer <token>\""}
	}
	return strings.TrimSpace(tok), nil
}

// Authenticator is what a data plane checks clients with: API keys, OAuth
// tokens, or both (a token starting with KeyPrefix goes to the keys,
// anything else to OAuth).
type Authenticator struct {
	Keys  *Keys  // nil: no API keys
	OAuth *OAuth // nil: no OAuth
}

// Authenticate checks r's credential.
func (a *Authenticator) Authenticate(r *http.Request) (*Identity, *Error) {
	if a.Keys != nil && (a.OAuth == nil || strings.HasPrefix(bearerValue(r), KeyPrefix)) {
		return a.Keys.Authenticate(r)
	}
	return a.OAuth.Authenticate(r)
}

// Challenge is the WWW-Authenticate value answering err: OAuth's (which
// names the resource metadata) when OAuth is on.
func (a *Authenticator) Challenge(err *Error) string {
	if a.OAuth != nil {
		return a.OAuth.Challenge(err)
	}
	return a.Keys.Challenge(err)
}

func bearerValue(r *http.Request) string {
	_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.TrimSpace(tok)
}
