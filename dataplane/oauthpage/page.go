// Package oauthpage serves the data plane's /oauth dashboard: every backend
// with its OAuth state, and Authorize / Revoke buttons that drive the control
// plane's OAuthService with the signed-in operator's own credential.
package oauthpage

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	g "maragu.dev/gomponents"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/oauthpaths"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
)

// Cookie names; both live under Path=/oauth only.
const (
	SessionCookie = "mcpmesh_oauth_session"
	flashCookie   = "mcpmesh_oauth_flash"
)

// callTimeout bounds every call to the control plane a page makes.
const callTimeout = 15 * time.Second

// maxForm bounds a POSTed form.
const maxForm = 16 << 10

// Options configure a Page.
type Options struct {
	// Conn reaches the control plane; it must carry no credential of its
	// own: every call is made with the operator's token.
	Conn grpc.ClientConnInterface
	// Keys hold the cluster secret the session cookies are sealed under.
	Keys *keys.Keys
	// PublicURL is the data plane's public base URL (no trailing slash):
	// the callback is PublicURL/oauth/callback, and a browser's Origin must
	// be its origin or that of the Host it asked.
	PublicURL string
	// Ready reports whether a config snapshot (and so the cluster secret)
	// has arrived; before that, sign-in is refused (a cookie sealed under a
	// random key would work on this replica only).
	Ready func() bool
	// Backends returns this data plane's state of every backend by name
	// (states.Backend spelling), shown next to the OAuth state; may be nil.
	Backends func() map[string]string
	Logger   *slog.Logger
	// Now is the clock of sessions; nil means time.Now.
	Now func() time.Time
}

// Page is the /oauth dashboard.
type Page struct {
	o      Options
	oauth  mcpmeshv1.OAuthServiceClient
	tokens mcpmeshv1.TokenServiceClient
	secure bool   // cookies get Secure: the public URL is https
	origin string // the public URL's origin
}

// New returns a Page.
func New(o Options) (*Page, error) {
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("oauthpage: PublicURL must be an absolute http(s) URL")
	}
	if o.Conn == nil || o.Keys == nil {
		return nil, errors.New("oauthpage: Conn and Keys are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ready == nil {
		o.Ready = func() bool { return true }
	}
	return &Page{
		o:      o,
		oauth:  mcpmeshv1.NewOAuthServiceClient(o.Conn),
		tokens: mcpmeshv1.NewTokenServiceClient(o.Conn),
		secure: u.Scheme == "https",
		origin: u.Scheme + "://" + u.Host,
	}, nil
}

// Register adds the page's routes to mux.
func (p *Page) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /oauth", p.handlePage)
	mux.HandleFunc("GET "+CallbackPath, p.handleCallback)
	mux.HandleFunc("POST /oauth/login", p.handleLogin)
	mux.HandleFunc("POST /oauth/logout", p.handleLogout)
	mux.HandleFunc("POST /oauth/authorize", p.handleAuthorize)
	mux.HandleFunc("POST /oauth/revoke", p.handleRevoke)
	mux.HandleFunc("GET "+ClientMetadataPath, p.handleClientMetadata)
}

// ClientMetadataPath is where the client ID metadata document is served and
// CallbackPath where an authorization server sends the browser back, under
// the public URL; the control plane derives the document's URL, the
// client_id, from the redirect URI (internal/oauthpaths holds both).
const (
	ClientMetadataPath = oauthpaths.ClientMetadata
	CallbackPath       = oauthpaths.Callback
)

// handleClientMetadata serves the client ID metadata document: a public
// client (PKCE, no secret) whose only redirect URI is this data plane's
// callback. It is public by design; authorization servers fetch it.
func (p *Page) handleClientMetadata(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"client_id":                  p.o.PublicURL + ClientMetadataPath,
		"client_name":                "mcpmesh",
		"client_uri":                 p.o.PublicURL + "/oauth",
		"redirect_uris":              []string{p.o.PublicURL + CallbackPath},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	if err := json.NewEncoder(w).Encode(doc); err != nil {
		p.o.Logger.Debug("write client metadata", "err", err)
	}
}

// caller is who a request is made by.
type caller struct {
	token  string
	role   mcpmeshv1.Role
	id     string
	cookie string // the session cookie's value; "" for a bearer header
}

func (c *caller) admin() bool { return c.role == mcpmeshv1.Role_ROLE_ADMIN }

// creds makes a control-plane call with the caller's own token.
func (c *caller) creds() grpc.CallOption {
	return grpc.PerRPCCredentials(authtoken.Credentials(c.token))
}

// errSignIn means: show the sign-in form (with why, if anything).
type errSignIn struct{ why string }

func (e *errSignIn) Error() string { return "sign in: " + e.why }

// authenticate finds the caller: an "Authorization: Bearer" header (scripts)
// or the session cookie (browsers), checked with TokenService.WhoAmI.
func (p *Page) authenticate(ctx context.Context, r *http.Request) (*caller, error) {
	c := &caller{}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			return nil, &errSignIn{why: "the Authorization header is not a bearer token"}
		}
		c.token = strings.TrimSpace(tok)
	} else {
		ck, err := r.Cookie(SessionCookie)
		if err != nil {
			return nil, &errSignIn{}
		}
		s, err := open(p.o.Keys, ck.Value, p.o.Now())
		if err != nil {
			return nil, &errSignIn{why: err.Error()}
		}
		c.token, c.cookie = s.token, ck.Value
	}
	who, err := p.whoAmI(ctx, c.token)
	if err != nil {
		return nil, err
	}
	c.role, c.id = who.GetRole(), who.GetId()
	return c, nil
}

// whoAmI checks a token and refuses data plane credentials: the page is
// for operators.
func (p *Page) whoAmI(ctx context.Context, token string) (*mcpmeshv1.WhoAmIResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	who, err := p.tokens.WhoAmI(ctx, &mcpmeshv1.WhoAmIRequest{}, grpc.PerRPCCredentials(authtoken.Credentials(token)))
	switch {
	case status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.PermissionDenied:
		return nil, &errSignIn{why: "the control plane does not accept that token"}
	case err != nil:
		return nil, cpError("check the token", err)
	}
	switch who.GetRole() {
	case mcpmeshv1.Role_ROLE_ADMIN, mcpmeshv1.Role_ROLE_VIEWER:
		return who, nil
	case mcpmeshv1.Role_ROLE_DATAPLANE:
		return nil, &errSignIn{why: "a dataplane token cannot sign in here: use an admin or viewer token"}
	}
	return nil, &errSignIn{why: "the token has no role this page knows"}
}

// cpError is a control-plane failure as the page shows it: what was being
// done and the status message, never the raw error chain.
func cpError(what string, err error) error {
	st := status.Convert(err)
	return &pageError{code: st.Code(), msg: what + ": " + textlimit.Truncate(redact.Text(st.Message()), textlimit.ErrorText)}
}

type pageError struct {
	code codes.Code
	msg  string
}

func (e *pageError) Error() string { return e.msg }

// httpStatus maps a control-plane failure to the page's status.
func (e *pageError) httpStatus() int {
	switch e.code {
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.Unavailable, codes.DeadlineExceeded:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

func (p *Page) handlePage(w http.ResponseWriter, r *http.Request) {
	c, err := p.authenticate(r.Context(), r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	view := pageView{Caller: c.id, Role: authtoken.RoleName(c.role), Admin: c.admin(), Flash: p.takeFlash(w, r)}
	if c.cookie != "" {
		view.CSRF = csrfToken(p.o.Keys, c.cookie)
		view.Session = true
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	resp, err := p.oauth.ListAuthorizations(ctx, &mcpmeshv1.ListAuthorizationsRequest{IncludeAll: true}, c.creds())
	if err != nil {
		view.Error = cpError("list authorizations", err).Error()
	}
	var backends map[string]string
	if p.o.Backends != nil {
		backends = p.o.Backends()
	}
	for _, a := range resp.GetAuthorizations() {
		view.Rows = append(view.Rows, rowOf(a, backends[a.GetServer()]))
	}
	p.render(w, http.StatusOK, pageDoc(view))
}

// rowOf describes one server's grant in words.
func rowOf(a *mcpmeshv1.Authorization, backend string) row {
	r := row{Server: a.GetServer(), Issuer: a.GetIssuer(), Backend: backend, OAuth: true}
	switch a.GetState() {
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NOT_REQUIRED:
		r.State, r.OAuth = "not required", false
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED:
		r.State = "authorized"
		if a.GetExpiresAt() != nil {
			r.State = "authorized until " + a.GetExpiresAt().AsTime().UTC().Format(time.RFC3339)
		}
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION:
		r.State = "needs authorization"
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_REFRESH_FAILED:
		r.State = "refresh failed"
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR:
		r.State = "error: " + textlimit.Truncate(redact.Text(a.GetLastError()), textlimit.ErrorText)
	default:
		r.State = "unknown"
	}
	// A grant is held once one was authorized and not revoked: authorized,
	// or a failed refresh / transient error of a grant we still keep.
	r.Grant = a.GetState() == mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED ||
		(r.OAuth && a.GetAuthorizedAt() != nil && a.GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION)
	return r
}

func (p *Page) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !p.sameOrigin(r) {
		p.forbidden(w, "cross-origin sign-in refused")
		return
	}
	if err := p.parseForm(w, r); err != nil {
		p.render(w, http.StatusBadRequest, signInDoc(err.Error()))
		return
	}
	if !p.o.Ready() {
		p.render(w, http.StatusServiceUnavailable, signInDoc("this data plane has no configuration from the control plane yet; try again in a moment"))
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		p.render(w, http.StatusBadRequest, signInDoc("paste an admin or viewer token"))
		return
	}
	who, err := p.whoAmI(r.Context(), token)
	if err != nil {
		var si *errSignIn
		if errors.As(err, &si) {
			p.render(w, http.StatusUnauthorized, signInDoc(si.why))
			return
		}
		p.fail(w, r, err)
		return
	}
	now := p.o.Now()
	expires := now.Add(sessionTTL)
	if e := who.GetExpiresAt(); e != nil && e.AsTime().Before(expires) {
		expires = e.AsTime()
	}
	v, err := seal(p.o.Keys, session{token: token, expires: expires})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.SetCookie(w, p.cookie(SessionCookie, v, expires))
	p.o.Logger.Info("signed in at /oauth", "credential", who.GetId(), "role", authtoken.RoleName(who.GetRole()))
	http.Redirect(w, r, "/oauth", http.StatusSeeOther)
}

// cookie makes a cookie of the page. SameSite=Lax, not Strict: the OAuth
// callback is a top-level navigation from the authorization server's site,
// and Strict would leave the session cookie off exactly that request. Lax
// still keeps it off cross-site POSTs, iframes and subresource requests.
func (p *Page) cookie(name, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/oauth", HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode}
	if expires.IsZero() {
		c.MaxAge = -1
	} else {
		c.Expires = expires
		c.MaxAge = max(1, int(expires.Sub(p.o.Now()).Seconds()))
	}
	return c
}

func (p *Page) handleLogout(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.checkPost(w, r, false); !ok {
		return
	}
	http.SetCookie(w, p.cookie(SessionCookie, "", time.Time{}))
	http.Redirect(w, r, "/oauth", http.StatusSeeOther)
}

func (p *Page) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	c, ok := p.checkPost(w, r, true)
	if !ok {
		return
	}
	server := r.PostForm.Get("server")
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	resp, err := p.oauth.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: server, RedirectUri: p.o.PublicURL + CallbackPath}, c.creds())
	if err != nil {
		p.fail(w, r, cpError("authorize "+server, err))
		return
	}
	u, err := url.Parse(resp.GetAuthorizationUrl())
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.fail(w, r, &pageError{code: codes.Internal, msg: "authorize " + server + ": the control plane returned no usable authorization URL"})
		return
	}
	p.o.Logger.Info("OAuth authorization started", "server", server, "credential", c.id, "authorization_server", u.Scheme+"://"+u.Host)
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (p *Page) handleRevoke(w http.ResponseWriter, r *http.Request) {
	c, ok := p.checkPost(w, r, true)
	if !ok {
		return
	}
	server := r.PostForm.Get("server")
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	if _, err := p.oauth.RevokeAuthorization(ctx, &mcpmeshv1.RevokeAuthorizationRequest{Server: server}, c.creds()); err != nil {
		p.fail(w, r, cpError("revoke "+server, err))
		return
	}
	p.o.Logger.Info("OAuth grant revoked", "server", server, "credential", c.id)
	p.flash(w, "Revoked the grant of "+server+".")
	http.Redirect(w, r, "/oauth", http.StatusSeeOther)
}

// handleCallback completes a flow: the authorization server sent the
// browser back with code and state (or an error). The OAuth state ties it
// to the flow the control plane started; the session says who completes it.
func (p *Page) handleCallback(w http.ResponseWriter, r *http.Request) {
	c, err := p.authenticate(r.Context(), r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if !c.admin() {
		p.forbidden(w, "completing an authorization needs an admin credential")
		return
	}
	q := r.URL.Query()
	req := &mcpmeshv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
	if req.State == "" {
		p.errorPage(w, http.StatusBadRequest, "the callback has no state parameter")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	resp, err := p.oauth.CompleteAuthorization(ctx, req, c.creds())
	if err != nil {
		p.flash(w, cpError("authorization not completed", err).Error())
		http.Redirect(w, r, "/oauth", http.StatusSeeOther)
		return
	}
	server := resp.GetAuthorization().GetServer()
	p.o.Logger.Info("OAuth authorization completed", "server", server, "credential", c.id)
	p.flash(w, "Authorized "+server+".")
	http.Redirect(w, r, "/oauth", http.StatusSeeOther)
}

// checkPost admits a state-changing POST: same origin, a parsed form, a
// caller, the form's CSRF token when the caller is a browser session, and
// (admin) the admin role.
func (p *Page) checkPost(w http.ResponseWriter, r *http.Request, admin bool) (*caller, bool) {
	if !p.sameOrigin(r) {
		p.forbidden(w, "cross-origin request refused")
		return nil, false
	}
	if err := p.parseForm(w, r); err != nil {
		p.errorPage(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	c, err := p.authenticate(r.Context(), r)
	if err != nil {
		p.fail(w, r, err)
		return nil, false
	}
	// A bearer header is never sent by a browser on its own, so only
	// cookie sessions need the form token.
	if c.cookie != "" && !csrfOK(p.o.Keys, c.cookie, r.PostForm.Get("csrf")) {
		p.forbidden(w, "the form's CSRF token is missing or wrong; reload the page and try again")
		return nil, false
	}
	if admin && !c.admin() {
		p.forbidden(w, "this needs an admin credential; you are signed in as "+authtoken.RoleName(c.role))
		return nil, false
	}
	return c, true
}

// sameOrigin accepts a request without Origin (not a browser, or a
// same-origin navigation of an old one) and one whose Origin is the public
// URL's or that of the Host it was sent to.
func (p *Page) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if o == p.origin {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return r.Host != "" && o == scheme+"://"+r.Host
}

func (p *Page) parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return errors.New("the form could not be read")
	}
	return nil
}

// fail answers err: the sign-in form, or an error page.
func (p *Page) fail(w http.ResponseWriter, r *http.Request, err error) {
	var si *errSignIn
	if errors.As(err, &si) {
		if _, cerr := r.Cookie(SessionCookie); cerr == nil {
			http.SetCookie(w, p.cookie(SessionCookie, "", time.Time{})) // a dead session is dropped
		}
		code := http.StatusOK
		if r.Method != http.MethodGet || r.Header.Get("Authorization") != "" {
			code = http.StatusUnauthorized
		}
		p.render(w, code, signInDoc(si.why))
		return
	}
	var pe *pageError
	if errors.As(err, &pe) {
		p.errorPage(w, pe.httpStatus(), pe.msg)
		return
	}
	p.o.Logger.Error("/oauth", "path", r.URL.Path, "err", err)
	p.errorPage(w, http.StatusInternalServerError, "internal error")
}

func (p *Page) forbidden(w http.ResponseWriter, msg string) {
	p.errorPage(w, http.StatusForbidden, msg)
}

// flash leaves a one-line message for the next GET /oauth.
func (p *Page) flash(w http.ResponseWriter, msg string) {
	http.SetCookie(w, p.cookie(flashCookie, url.QueryEscape(textlimit.Truncate(msg, 512)), p.o.Now().Add(time.Minute)))
}

func (p *Page) takeFlash(w http.ResponseWriter, r *http.Request) string {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, p.cookie(flashCookie, "", time.Time{}))
	msg, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return ""
	}
	return textlimit.Truncate(msg, 512)
}

// errorPage renders errorDoc with status.
func (p *Page) errorPage(w http.ResponseWriter, status int, msg string) {
	p.render(w, status, errorDoc(status, msg))
}

// render writes a page with the headers every /oauth answer carries.
func (p *Page) render(w http.ResponseWriter, code int, doc g.Node) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the page's own form POSTs, which the origin check
	// refuses. The authorization server still gets no Referer.
	h.Set("Referrer-Policy", "same-origin")
	// No script at all; forms post to this page only (no form-action:
	// browsers apply it to the 303 to the authorization server too).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(code)
	if err := doc.Render(w); err != nil {
		p.o.Logger.Warn("render /oauth", "err", err)
	}
}

// BackendStates adapts a health list to Options.Backends.
func BackendStates(list func() []*mcpmeshv1.BackendHealth) func() map[string]string {
	return func() map[string]string {
		out := map[string]string{}
		for _, h := range list() {
			out[h.GetServer()] = states.Backend(h.GetState())
		}
		return out
	}
}
