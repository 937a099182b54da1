package testauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// maxBody bounds every request body the server reads.
const maxBody = 64 << 10

// codeTTL is how long an authorization code may wait for its exchange.
const codeTTL = time.Minute

type client struct {
	id, secret   string // secret empty: a public client (token_endpoint_auth_method none)
	name         string
	redirectURIs []string
}

// consent is an authorization request waiting on the consent page.
type consent struct {
	client                    *client
	redirectURI, state, scope string
	challenge, resource       string
}

type authCode struct {
	clientID, redirectURI, scope string
	challenge, resource          string
	expires                      time.Time
}

type grant struct {
	id, clientID, subject, scope, resource string
	revoked                                bool
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	iss := s.Issuer()
	methods := []string{"S256"}
	if s.opts.PlainOnly {
		methods = []string{"plain"}
	}
	md := map[string]any{
		"issuer":                                iss,
		"jwks_uri":                              iss + "/jwks",
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"registration_endpoint":                 iss + "/register",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      methods,
	}
	if !s.opts.NoRevocation {
		md["revocation_endpoint"] = iss + "/revoke"
	}
	if len(s.opts.Scopes) > 0 {
		md["scopes_supported"] = s.opts.Scopes
	}
	if s.opts.CIMD {
		md["client_id_metadata_document_supported"] = true
	}
	writeJSON(w, http.StatusOK, md)
}

// serveRegister is RFC 7591 dynamic client registration.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RedirectURIs            []string `json:"redirect_uris"`
		ClientName              string   `json:"client_name"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		GrantTypes              []string `json:"grant_types"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "body is not a JSON client metadata object")
		return
	}
	if len(req.RedirectURIs) == 0 {
		oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", "redirect_uris is required")
		return
	}
	for _, u := range req.RedirectURIs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Fragment != "" {
			oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", "redirect_uri "+u+" is not an absolute http(s) URL")
			return
		}
	}
	method := req.TokenEndpointAuthMethod
	if method == "" {
		method = "client_secret_basic"
	}
	if method != "none" && method != "client_secret_basic" && method != "client_secret_post" {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "unsupported token_endpoint_auth_method "+method)
		return
	}
	c := &client{id: "client-" + random(), name: req.ClientName, redirectURIs: req.RedirectURIs}
	if method != "none" {
		c.secret = random()
	}
	s.mu.Lock()
	s.clients[c.id] = c
	s.stats.Registrations++
	s.mu.Unlock()
	resp := map[string]any{
		"client_id":                  c.id,
		"client_id_issued_at":        s.opts.Now().Unix(),
		"redirect_uris":              c.redirectURIs,
		"client_name":                c.name,
		"token_endpoint_auth_method": method,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
	}
	if c.secret != "" {
		resp["client_secret"] = c.secret
		resp["client_secret_expires_at"] = 0
	}
	writeJSON(w, http.StatusCreated, resp)
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize {{.Client}}</title></head>
<body>
<h1>Authorize {{.Client}}</h1>
<p><b>{{.Client}}</b> asks for access to <code>{{.Resource}}</code> as <b>{{.Subject}}</b>.</p>
<p>Scopes: {{range .Scopes}}<code>{{.}}</code> {{else}}(none){{end}}</p>
<form method="post" action="/authorize">
<input type="hidden" name="request" value="{{.Request}}">
<button id="approve" type="submit" name="action" value="approve">Approve</button>
<button id="deny" type="submit" name="action" value="deny">Deny</button>
</form>
</body></html>
`))

func pageError(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, "authorization request refused: "+msg+"\n")
}

// redirectError sends the browser back to the client with an error, once
// the redirect URI is known to be the client's.
func redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code, desc string) {
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", desc)
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// serveAuthorize checks an authorization request and renders the consent page.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	c := s.clients[q.Get("client_id")]
	s.mu.Unlock()
	redirectURI := q.Get("redirect_uri")
	switch {
	case c == nil:
		pageError(w, "unknown client_id")
		return
	case !slices.Contains(c.redirectURIs, redirectURI):
		// Exact match only (OAuth 2.1): never redirect to an unregistered URI.
		pageError(w, "redirect_uri is not one the client registered")
		return
	}
	state := q.Get("state")
	switch {
	case q.Get("response_type") != "code":
		redirectError(w, r, redirectURI, state, "unsupported_response_type", "response_type must be code")
	case q.Get("code_challenge") == "":
		redirectError(w, r, redirectURI, state, "invalid_request", "code_challenge is required (PKCE)")
	case q.Get("code_challenge_method") != "S256":
		redirectError(w, r, redirectURI, state, "invalid_request", "code_challenge_method must be S256")
	case q.Get("resource") == "":
		redirectError(w, r, redirectURI, state, "invalid_target", "resource is required (RFC 8707)")
	default:
		if u, err := url.Parse(q.Get("resource")); err != nil || !u.IsAbs() || u.Fragment != "" {
			redirectError(w, r, redirectURI, state, "invalid_target", "resource must be an absolute URI without a fragment")
			return
		}
		id := random()
		cs := &consent{client: c, redirectURI: redirectURI, state: state, scope: q.Get("scope"),
			challenge: q.Get("code_challenge"), resource: q.Get("resource")}
		s.mu.Lock()
		s.pending[id] = cs
		s.mu.Unlock()
		name := c.name
		if name == "" {
			name = c.id
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = consentPage.Execute(w, map[string]any{
			"Client": name, "Resource": cs.resource, "Subject": s.opts.Subject,
			"Scopes": strings.Fields(cs.scope), "Request": id,
		})
	}
}

// serveConsent completes the consent page: a code on Approve, access_denied on Deny.
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		pageError(w, "unreadable form")
		return
	}
	s.mu.Lock()
	cs := s.pending[r.PostForm.Get("request")]
	delete(s.pending, r.PostForm.Get("request"))
	s.mu.Unlock()
	if cs == nil {
		pageError(w, "unknown or already answered consent request")
		return
	}
	if r.PostForm.Get("action") != "approve" {
		redirectError(w, r, cs.redirectURI, cs.state, "access_denied", "the user denied the request")
		return
	}
	code := random()
	s.mu.Lock()
	s.codes[code] = &authCode{clientID: cs.client.id, redirectURI: cs.redirectURI, scope: cs.scope,
		challenge: cs.challenge, resource: cs.resource, expires: s.opts.Now().Add(codeTTL)}
	s.mu.Unlock()
	u, _ := url.Parse(cs.redirectURI)
	q := u.Query()
	q.Set("code", code)
	if cs.state != "" {
		q.Set("state", cs.state)
	}
	q.Set("iss", s.Issuer()) // RFC 9207
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// authenticate returns the client a token or revocation request comes from.
func (s *Server) authenticate(r *http.Request) (*client, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	c := s.clients[id]
	s.mu.Unlock()
	if c == nil {
		return nil, false
	}
	if c.secret == "" {
		return c, true
	}
	return c, subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) == 1
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form body")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		s.mu.Lock()
		s.stats.TokenCalls++
		s.mu.Unlock()
		s.exchangeCode(w, r)
	case "refresh_token":
		s.mu.Lock()
		s.stats.RefreshCalls++
		s.mu.Unlock()
		s.refreshToken(w, r)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func (s *Server) exchangeCode(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticate(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	f := r.PostForm
	s.mu.Lock()
	code := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code")) // one exchange per code, successful or not
	s.mu.Unlock()
	verifier := f.Get("code_verifier")
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case code == nil || code.clientID != c.id || s.opts.Now().After(code.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
	case f.Get("redirect_uri") != code.redirectURI:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the authorization request's")
	case verifier == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "code_verifier is required (PKCE)")
	case base64.RawURLEncoding.EncodeToString(sum[:]) != code.challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the S256 code_challenge")
	case f.Get("resource") == "":
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource is required (RFC 8707)")
	case f.Get("resource") != code.resource:
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the authorization request's")
	default:
		g := &grant{id: random(), clientID: c.id, subject: s.opts.Subject, scope: code.scope, resource: code.resource}
		s.mu.Lock()
		s.grants[g.id] = g
		s.mu.Unlock()
		s.issue(w, g)
	}
}

func (s *Server) refreshToken(w http.ResponseWriter, r *http.Request) {
	c, ok := s.authenticate(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	f := r.PostForm
	rt := f.Get("refresh_token")
	s.mu.Lock()
	g := s.refresh[rt]
	if g == nil {
		if old := s.rotated[rt]; old != nil {
			// A rotated refresh token used again: someone holds a copy;
			// revoke the whole grant (RFC 9700 §4.14.2).
			old.revoked = true
		}
	}
	s.mu.Unlock()
	switch {
	case g == nil || g.clientID != c.id:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or rotated refresh token")
	case g.revoked:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the grant was revoked")
	case f.Get("resource") == "":
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource is required (RFC 8707)")
	case f.Get("resource") != g.resource:
		oauthError(w, http.StatusBadRequest, "invalid_target", "resource differs from the grant's")
	default:
		s.mu.Lock()
		delete(s.refresh, rt)
		s.rotated[rt] = g
		s.mu.Unlock()
		s.issue(w, g)
	}
}

// issue answers a token request with a new access token and a new refresh token.
func (s *Server) issue(w http.ResponseWriter, g *grant) {
	s.mu.Lock()
	ttl := s.ttl
	s.mu.Unlock()
	jti := random()
	now := s.opts.Now()
	b := jwt.NewBuilder().Issuer(s.Issuer()).Subject(g.subject).Audience([]string{g.resource}).
		IssuedAt(now).Expiration(now.Add(ttl)).JwtID(jti).Claim("client_id", g.clientID)
	if g.scope != "" {
		b = b.Claim("scope", g.scope)
	}
	t, err := b.Build()
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "build token")
		return
	}
	signed, err := jwt.Sign(t, jwt.WithKey(jwa.ES256(), s.key))
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "sign token")
		return
	}
	rt := random()
	s.mu.Lock()
	s.accesses[jti] = g
	s.refresh[rt] = g
	s.mu.Unlock()
	resp := map[string]any{
		"access_token":  string(signed),
		"token_type":    "Bearer",
		"expires_in":    int64((ttl + time.Second - 1) / time.Second),
		"refresh_token": rt,
	}
	if g.scope != "" {
		resp["scope"] = g.scope
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveRevoke is RFC 7009: revoking a refresh token revokes its grant;
// revoking an access token revokes that token. Unknown tokens are not an
// error.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form body")
		return
	}
	c, ok := s.authenticate(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Revocations++
	if g := s.refresh[tok]; g != nil && g.clientID == c.id {
		g.revoked = true
	} else if jti, ok := s.jtiOf(tok); ok {
		if g := s.accesses[jti]; g != nil && g.clientID == c.id {
			s.revokedJ[jti] = true
		}
	}
	w.WriteHeader(http.StatusOK)
}

// jtiOf returns the jti of an access token this server signed.
func (s *Server) jtiOf(tok string) (string, bool) {
	t, err := s.parse(tok, false)
	if err != nil {
		return "", false
	}
	jti, ok := t.JwtID()
	return jti, ok
}

func (s *Server) parse(tok string, validate bool) (jwt.Token, error) {
	pub, err := s.key.PublicKey()
	if err != nil {
		return nil, err
	}
	return jwt.Parse([]byte(tok), jwt.WithKey(jwa.ES256(), pub), jwt.WithValidate(validate),
		jwt.WithClock(jwt.ClockFunc(s.opts.Now)), jwt.WithIssuer(s.Issuer()))
}

func (s *Server) serveTestRevoke(w http.ResponseWriter, r *http.Request) {
	n := s.RevokeClient(r.URL.Query().Get("client_id"))
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

func (s *Server) serveTestStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) serveTestTTL(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("d"))
	if err != nil || d <= 0 {
		http.Error(w, "d must be a positive duration (e.g. 2s)", http.StatusBadRequest)
		return
	}
	s.SetAccessTokenTTL(d)
	w.WriteHeader(http.StatusNoContent)
}
