// Package clientauth authenticates the MCP clients of a data plane. OAuth
// makes the data plane an OAuth 2.1 resource server as the MCP authorization
// spec describes: it publishes its Protected Resource Metadata (RFC 9728),
// answers a request without a valid bearer token with 401 and a
// WWW-Authenticate challenge naming that metadata, and accepts JWT access
// tokens signed by a key of its authorization server's JWKS, issued by that
// server, for this resource (audience), unexpired, with the scopes it needs.
// The token is the client's: it is never passed on to backends.
package clientauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Identity is who a request authenticated as.
type Identity struct {
	Subject  string   // the token's sub
	ClientID string   // client_id or azp, when the token has one
	Scopes   []string // the token's scopes
	// Tags, when not empty, limit the client to the servers carrying at
	// least one of them (the token's TagsClaim).
	Tags []string
}

// TagsClaim is the access-token claim that limits a client to the servers
// with those tags: a list of strings, or one space-separated string.
const TagsClaim = "mcpmesh_tags"

// Error is a refused credential: Status is 401 (no or invalid token) or 403
// (a valid token without the needed scope), Code the RFC 6750 error code.
type Error struct {
	Status int
	Code   string // "" (no token), invalid_token, insufficient_scope
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// OAuthConfig configures OAuth.
type OAuthConfig struct {
	// Issuer is the authorization server's issuer URL; tokens must carry it
	// as iss. Required.
	Issuer string
	// Resource is this data plane's resource URL as clients reach it (e.g.
	// https://mcp.example.com/mcp); tokens must carry it in aud. Required.
	Resource string
	// JWKSURL is the authorization server's key set; "" discovers it from
	// the issuer's metadata (RFC 8414, then OpenID Connect discovery).
	JWKSURL string
	// Scopes are the scopes every token must carry (none by default).
	Scopes []string
	// HTTPClient fetches the metadata and keys (default: 10 s timeout).
	HTTPClient *http.Client
}

// OAuth validates bearer tokens. It is safe for concurrent use; Close stops
// its key refreshes.
type OAuth struct {
	cfg      OAuthConfig
	jwksURL  string
	keys     keyfunc.Keyfunc
	parser   *jwt.Parser
	stop     context.CancelFunc
	metadata []byte
	metaURL  string
	verified verifiedCache
	now      func() time.Time
}

// maxMetadata bounds what the authorization server's metadata may be.
const maxMetadata = 1 << 20

// NewOAuth checks cfg, discovers the key set if needed and fetches it once,
// so that a wrong issuer fails at start with an error naming it.
func NewOAuth(ctx context.Context, cfg OAuthConfig) (*OAuth, error) {
	for _, f := range []struct{ name, val string }{{"issuer", cfg.Issuer}, {"resource", cfg.Resource}} {
		u, err := url.Parse(f.val)
		if f.val == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("oauth: the %s must be an http(s) URL, not %q", f.name, f.val)
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	o := &OAuth{cfg: cfg, jwksURL: cfg.JWKSURL, now: time.Now}
	if o.jwksURL == "" {
		u, err := discoverJWKS(ctx, cfg.HTTPClient, cfg.Issuer)
		if err != nil {
			return nil, err
		}
		o.jwksURL = u
	}
	// The key set is fetched now (an error fails the start), then again
	// every hour, and at once (at most once a minute) when a token names a
	// key it does not hold, as when the server rotates its keys.
	cctx, stop := context.WithCancel(context.Background())
	fail := false
	kf, err := keyfunc.NewDefaultOverrideCtx(cctx, []string{o.jwksURL}, keyfunc.Override{
		Client:                    cfg.HTTPClient,
		HTTPTimeout:               30 * time.Second,
		NoErrorReturnFirstHTTPReq: &fail,
		RefreshInterval:           time.Hour,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(time.Minute), 1),
		RateLimitWaitMax:          time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				slog.Default().WarnContext(ctx, "oauth: refreshing the key set failed; the keys held are kept", "jwks_url", u, "issuer", cfg.Issuer, "err", err)
			}
		},
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("oauth: fetch the key set %s of issuer %s: %w", o.jwksURL, cfg.Issuer, err)
	}
	o.keys, o.stop = kf, stop
	o.parser = jwt.NewParser(
		// Asymmetric signatures only: a key set holds public keys, and
		// "none" or an HMAC over a public key must never pass.
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Resource),
		jwt.WithLeeway(30*time.Second),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return o.now() }),
	)
	md := map[string]any{
		"resource":                 cfg.Resource,
		"authorization_servers":    []string{cfg.Issuer},
		"bearer_methods_supported": []string{"header"},
	}
	if len(cfg.Scopes) > 0 {
		md["scopes_supported"] = cfg.Scopes
	}
	o.metadata, _ = json.Marshal(md)
	o.metaURL = MetadataURL(cfg.Resource)
	return o, nil
}

// Close stops the key refreshes.
func (o *OAuth) Close() { o.stop() }

// MetadataURL is where the Protected Resource Metadata of resource is
// published (RFC 9728 section 3.1: the well-known path inserted before the
// resource's path).
func MetadataURL(resource string) string {
	u, err := url.Parse(resource)
	if err != nil {
		return ""
	}
	path := strings.TrimSuffix(u.Path, "/")
	u.Path = "/.well-known/oauth-protected-resource" + path
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// MetadataPaths are the paths the metadata is served on: the RFC 9728 one,
// and the bare well-known path clients also try.
func (o *OAuth) MetadataPaths() []string {
	u, _ := url.Parse(o.metaURL)
	paths := []string{u.Path}
	if u.Path != "/.well-known/oauth-protected-resource" {
		paths = append(paths, "/.well-known/oauth-protected-resource")
	}
	return paths
}

// ServeMetadata serves the Protected Resource Metadata.
func (o *OAuth) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(o.metadata)
}

// Challenge is the WWW-Authenticate value answering err.
func (o *OAuth) Challenge(err *Error) string {
	var b strings.Builder
	fmt.Fprintf(&b, `Bearer resource_metadata=%q`, o.metaURL)
	if len(o.cfg.Scopes) > 0 {
		fmt.Fprintf(&b, `, scope=%q`, strings.Join(o.cfg.Scopes, " "))
	}
	if err.Code != "" {
		fmt.Fprintf(&b, `, error=%q, error_description=%q`, err.Code, strings.ReplaceAll(err.Msg, `"`, `'`))
	}
	return b.String()
}

// Authenticate validates r's bearer token. A token that passed once is
// remembered for up to a minute (verified.go); the returned Identity is
// shared between such calls and must not be modified.
func (o *OAuth) Authenticate(r *http.Request) (*Identity, *Error) {
	tok, berr := bearer(r, "this data plane needs an OAuth access token (Authorization: Bearer …); see "+o.metaURL)
	if berr != nil {
		return nil, berr
	}
	now := o.now()
	key := sha256.Sum256([]byte(tok))
	if id := o.verified.get(key, now); id != nil {
		return id, nil
	}
	claims := jwt.MapClaims{}
	if _, err := o.parser.ParseWithClaims(tok, claims, o.keys.Keyfunc); err != nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Msg: "access token refused: " + tokenReason(err)}
	}
	id := &Identity{}
	id.Subject, _ = claims.GetSubject()
	if s, ok := claims["client_id"].(string); ok {
		id.ClientID = s
	} else if s, ok := claims["azp"].(string); ok {
		id.ClientID = s
	}
	id.Scopes = scopesOf(claims)
	id.Tags = listClaim(claims, TagsClaim)
	for _, need := range o.cfg.Scopes {
		if !slices.Contains(id.Scopes, need) {
			return nil, &Error{Status: http.StatusForbidden, Code: "insufficient_scope", Msg: fmt.Sprintf("the access token lacks the scope %q", need)}
		}
	}
	var exp time.Time
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	o.verified.put(key, id, exp, now)
	return id, nil
}

// scopesOf reads scope (a space-separated string, RFC 9068) or scp (a list).
func scopesOf(c jwt.MapClaims) []string {
	if s := listClaim(c, "scope"); s != nil {
		return s
	}
	return listClaim(c, "scp")
}

// listClaim reads a claim that is a space-separated string or a list of
// strings.
func listClaim(c jwt.MapClaims, name string) []string {
	switch v := c[name].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, e := range v {
			if str, ok := e.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

// Allows says whether a client limited to tags may use a server with
// serverTags: any tag in common (no tags: every server).
func Allows(tags, serverTags []string) bool {
	if len(tags) == 0 {
		return true
	}
	for _, t := range tags {
		if slices.Contains(serverTags, t) {
			return true
		}
	}
	return false
}

// tokenReason says why a token was refused, in words a client can act on.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "it has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "it is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "it was not issued by this data plane's authorization server"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "it is not for this resource (audience)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, keyfunc.ErrKeyfunc):
		return "its signature is not by a key of this data plane's authorization server"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "it is not a well-formed JWT"
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// discoverJWKS reads the issuer's jwks_uri from its authorization server
// metadata (RFC 8414), or else its OpenID Connect discovery document.
func discoverJWKS(ctx context.Context, hc *http.Client, issuer string) (string, error) {
	u, _ := url.Parse(issuer)
	path := strings.TrimSuffix(u.Path, "/")
	var tried []string
	for _, wk := range []string{"/.well-known/oauth-authorization-server" + path, path + "/.well-known/openid-configuration"} {
		mu := *u
		mu.Path = wk
		tried = append(tried, mu.String())
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(ctx, hc, mu.String(), &md); err != nil {
			continue
		}
		if md.Issuer != issuer {
			return "", fmt.Errorf("oauth: the metadata at %s names issuer %q, not %q", mu.String(), md.Issuer, issuer)
		}
		if md.JWKSURI == "" {
			return "", fmt.Errorf("oauth: the metadata at %s has no jwks_uri (set the key set URL)", mu.String())
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("oauth: no authorization server metadata for issuer %s (tried %s); set the key set URL", issuer, strings.Join(tried, ", "))
}

func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, maxMetadata)).Decode(v)
}
