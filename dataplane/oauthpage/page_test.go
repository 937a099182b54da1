package oauthpage

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	adminTok  = "admin-secret-token"
	viewerTok = "viewer-secret-token"
	dpTok     = "dataplane-secret-token"
)

var roles = map[string]mcpmeshv1.Role{adminTok: mcpmeshv1.Role_ROLE_ADMIN, viewerTok: mcpmeshv1.Role_ROLE_VIEWER, dpTok: mcpmeshv1.Role_ROLE_DATAPLANE}

// cp is a gRPC control plane over TCP serving TokenService.WhoAmI and an
// OAuthService test double; it authorizes calls by role as the real one
// does (writes need admin) and records which token made each call.
type cp struct {
	mcpmeshv1.UnimplementedOAuthServiceServer
	mcpmeshv1.UnimplementedTokenServiceServer
	mu      sync.Mutex
	calls   []string // "Method token"
	begin   *mcpmeshv1.BeginAuthorizationRequest
	done    *mcpmeshv1.CompleteAuthorizationRequest
	revoked string
	expires time.Time // of every token; zero: none
}

func (c *cp) role(ctx context.Context, method string) (mcpmeshv1.Role, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tok := strings.TrimPrefix(strings.Join(md.Get("authorization"), ""), "Bearer ")
	c.mu.Lock()
	c.calls = append(c.calls, method+" "+tok)
	c.mu.Unlock()
	r, ok := roles[tok]
	if !ok {
		return 0, status.Error(codes.Unauthenticated, "unknown token")
	}
	return r, nil
}

func (c *cp) admin(ctx context.Context, method string) error {
	r, err := c.role(ctx, method)
	if err == nil && r != mcpmeshv1.Role_ROLE_ADMIN {
		err = status.Error(codes.PermissionDenied, "admin only")
	}
	return err
}

func (c *cp) WhoAmI(ctx context.Context, _ *mcpmeshv1.WhoAmIRequest) (*mcpmeshv1.WhoAmIResponse, error) {
	r, err := c.role(ctx, "WhoAmI")
	if err != nil {
		return nil, err
	}
	resp := &mcpmeshv1.WhoAmIResponse{Id: "tok-" + strings.ToLower(r.String()), Role: r}
	if !c.expires.IsZero() {
		resp.ExpiresAt = timestamppb.New(c.expires)
	}
	return resp, nil
}

var (
	expiry = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	auths  = []*mcpmeshv1.Authorization{
		{Server: "alpha", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED, Issuer: "https://as.example", ExpiresAt: timestamppb.New(expiry), AuthorizedAt: timestamppb.New(expiry.Add(-time.Hour))},
		{Server: "beta", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION, Issuer: "https://as.example"},
		{Server: "delta", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_REFRESH_FAILED, AuthorizedAt: timestamppb.New(expiry)},
		{Server: "gamma", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR, LastError: "discovery: <b>no metadata</b>"},
		{Server: "plain", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NOT_REQUIRED},
	}
)

func (c *cp) ListAuthorizations(ctx context.Context, req *mcpmeshv1.ListAuthorizationsRequest) (*mcpmeshv1.ListAuthorizationsResponse, error) {
	if _, err := c.role(ctx, "ListAuthorizations"); err != nil {
		return nil, err
	}
	if !req.GetIncludeAll() {
		return nil, status.Error(codes.InvalidArgument, "the page must ask for every server")
	}
	return &mcpmeshv1.ListAuthorizationsResponse{Authorizations: auths}, nil
}

func (c *cp) BeginAuthorization(ctx context.Context, req *mcpmeshv1.BeginAuthorizationRequest) (*mcpmeshv1.BeginAuthorizationResponse, error) {
	if err := c.admin(ctx, "BeginAuthorization"); err != nil {
		return nil, err
	}
	if req.GetServer() == "missing" {
		return nil, status.Error(codes.NotFound, `server "missing" not found`)
	}
	c.mu.Lock()
	c.begin = req
	c.mu.Unlock()
	return &mcpmeshv1.BeginAuthorizationResponse{AuthorizationUrl: "https://as.example/authorize?state=" + req.GetServer() + ".xyz", State: req.GetServer() + ".xyz"}, nil
}

func (c *cp) CompleteAuthorization(ctx context.Context, req *mcpmeshv1.CompleteAuthorizationRequest) (*mcpmeshv1.CompleteAuthorizationResponse, error) {
	if err := c.admin(ctx, "CompleteAuthorization"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.done = req
	c.mu.Unlock()
	if req.GetError() != "" {
		return nil, status.Error(codes.FailedPrecondition, "the authorization server said "+req.GetError())
	}
	return &mcpmeshv1.CompleteAuthorizationResponse{Authorization: &mcpmeshv1.Authorization{Server: "beta", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED}}, nil
}

func (c *cp) RevokeAuthorization(ctx context.Context, req *mcpmeshv1.RevokeAuthorizationRequest) (*mcpmeshv1.RevokeAuthorizationResponse, error) {
	if err := c.admin(ctx, "RevokeAuthorization"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.revoked = req.GetServer()
	c.mu.Unlock()
	return &mcpmeshv1.RevokeAuthorizationResponse{}, nil
}

func (c *cp) calledWith(method string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.calls {
		if m, tok, _ := strings.Cut(s, " "); m == method {
			out = append(out, tok)
		}
	}
	return out
}

type env struct {
	t    *testing.T
	cp   *cp
	ks   *keys.Keys
	srv  *httptest.Server
	now  time.Time
	nmu  sync.Mutex
	page *Page
}

func newEnv(t *testing.T, public string) *env {
	t.Helper()
	e := &env{t: t, cp: &cp{}, ks: keys.New(), now: time.Unix(1_800_000_000, 0)}
	e.ks.SetSecret([]byte("cluster secret of the test, 32 bytes!"))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	mcpmeshv1.RegisterOAuthServiceServer(gs, e.cp)
	mcpmeshv1.RegisterTokenServiceServer(gs, e.cp)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.Start()
	if public == "" {
		public = e.srv.URL
	}
	e.page, err = New(Options{Conn: conn, Keys: e.ks, PublicURL: public, Now: e.clock, Logger: slog.New(slog.DiscardHandler),
		Backends: func() map[string]string { return map[string]string{"alpha": "healthy", "beta": "needs-authorization"} }})
	if err != nil {
		t.Fatal(err)
	}
	e.page.Register(mux)
	t.Cleanup(func() {
		e.srv.Close()
		conn.Close()
		gs.Stop()
	})
	return e
}

func (e *env) clock() time.Time {
	e.nmu.Lock()
	defer e.nmu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.nmu.Lock()
	e.now = e.now.Add(d)
	e.nmu.Unlock()
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type answer struct {
	code int
	body string
	resp *http.Response
}

func (e *env) do(c *http.Client, method, path string, form url.Values, hdr map[string]string) answer {
	e.t.Helper()
	var req *http.Request
	var err error
	if form != nil {
		req, err = http.NewRequest(method, e.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, err = http.NewRequest(method, e.srv.URL+path, nil)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return answer{code: resp.StatusCode, body: sb.String(), resp: resp}
}

func (e *env) signIn(c *http.Client, tok string) answer {
	e.t.Helper()
	return e.do(c, "POST", "/oauth/login", url.Values{"token": {tok}}, nil)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

func TestSignInAndRender(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	a := e.do(b, "GET", "/oauth", nil, nil)
	if a.code != 200 || !strings.Contains(a.body, `id="token"`) || strings.Contains(a.body, `id="servers"`) {
		t.Fatalf("GET /oauth without a session: %d\n%s", a.code, a.body)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Frame-Options": "DENY",
	} {
		if got := a.resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := a.resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(a.body, "<script") {
		t.Error("the page has a script")
	}

	if a := e.signIn(b, "not-a-token"); a.code != http.StatusUnauthorized || !strings.Contains(a.body, "does not accept that token") || strings.Contains(a.body, "not-a-token") {
		t.Errorf("bad token: %d\n%s", a.code, a.body)
	}
	if a := e.signIn(b, dpTok); a.code != http.StatusUnauthorized || !strings.Contains(a.body, "dataplane token cannot sign in") {
		t.Errorf("dataplane token: %d\n%s", a.code, a.body)
	}
	a = e.signIn(b, adminTok)
	if a.code != http.StatusSeeOther || a.resp.Header.Get("Location") != "/oauth" {
		t.Fatalf("sign in: %d %q", a.code, a.resp.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range a.resp.Cookies() {
		if c.Name == SessionCookie {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/oauth" || ck.Secure {
		t.Fatalf("session cookie %+v", ck)
	}
	if strings.Contains(ck.Value, adminTok) {
		t.Error("the cookie carries the token in clear")
	}
	if ck.MaxAge <= 0 || ck.MaxAge > int(sessionTTL.Seconds()) {
		t.Errorf("cookie Max-Age %d", ck.MaxAge)
	}

	a = e.do(b, "GET", "/oauth", nil, nil)
	if a.code != 200 {
		t.Fatalf("GET /oauth signed in: %d\n%s", a.code, a.body)
	}
	want := map[string]string{
		"alpha": "authorized until 2030-01-02T03:04:05Z",
		"beta":  "needs authorization",
		"delta": "refresh failed",
		"gamma": "error: discovery: &lt;b&gt;no metadata&lt;/b&gt;",
		"plain": "not required",
	}
	for server, state := range want {
		re := regexp.MustCompile(`<tr id="server-` + server + `">.*?<td class="state">([^<]*(?:&lt;[^<]*)*)</td>`)
		m := re.FindStringSubmatch(a.body)
		if m == nil || m[1] != state {
			t.Errorf("row %s: state %q, want %q", server, m, state)
		}
	}
	for _, id := range []string{`id="authorize-alpha"`, `id="revoke-alpha"`, `id="authorize-beta"`, `id="revoke-delta"`, `id="sign-out"`} {
		if !strings.Contains(a.body, id) {
			t.Errorf("no %s on the page", id)
		}
	}
	for _, id := range []string{`id="revoke-beta"`, `id="authorize-plain"`, `id="revoke-plain"`, " disabled"} {
		if strings.Contains(a.body, id) {
			t.Errorf("%s on the admin's page", id)
		}
	}
	if !strings.Contains(a.body, "https://as.example") || !strings.Contains(a.body, `<td class="backend">needs-authorization</td>`) {
		t.Error("issuer or backend state missing")
	}
	if got := e.cp.calledWith("ListAuthorizations"); len(got) != 1 || got[0] != adminTok {
		t.Errorf("ListAuthorizations made with %q, want the admin's own token", got)
	}

	// Authorize: a 303 to the authorization server, begun with the
	// admin's token and the public callback.
	a = e.do(b, "POST", "/oauth/authorize", url.Values{"server": {"beta"}, "csrf": {csrfOf(t, a.body)}}, map[string]string{"Origin": e.srv.URL})
	if a.code != http.StatusSeeOther || a.resp.Header.Get("Location") != "https://as.example/authorize?state=beta.xyz" {
		t.Fatalf("authorize: %d %q\n%s", a.code, a.resp.Header.Get("Location"), a.body)
	}
	if got := e.cp.calledWith("BeginAuthorization"); len(got) != 1 || got[0] != adminTok {
		t.Errorf("BeginAuthorization made with %q", got)
	}
	if e.cp.begin.GetRedirectUri() != e.srv.URL+"/oauth/callback" {
		t.Errorf("redirect_uri %q", e.cp.begin.GetRedirectUri())
	}

	// The callback completes it and comes back with a message.
	a = e.do(b, "GET", "/oauth/callback?code=the-code&state=beta.xyz", nil, nil)
	if a.code != http.StatusSeeOther || a.resp.Header.Get("Location") != "/oauth" {
		t.Fatalf("callback: %d %q", a.code, a.resp.Header.Get("Location"))
	}
	if e.cp.done.GetCode() != "the-code" || e.cp.done.GetState() != "beta.xyz" {
		t.Errorf("CompleteAuthorization got %v", e.cp.done)
	}
	a = e.do(b, "GET", "/oauth", nil, nil)
	if !strings.Contains(a.body, `<p class="flash" id="flash">Authorized beta.</p>`) {
		t.Errorf("no flash after the callback:\n%s", a.body)
	}
	if a = e.do(b, "GET", "/oauth", nil, nil); strings.Contains(a.body, "flash") && strings.Contains(a.body, "Authorized beta") {
		t.Error("the flash shows twice")
	}

	// An error from the authorization server is shown, escaped.
	e.do(b, "GET", "/oauth/callback?error=%3Cx%3Eaccess_denied&state=beta.xyz", nil, nil)
	a = e.do(b, "GET", "/oauth", nil, nil)
	if !strings.Contains(a.body, "the authorization server said &lt;x&gt;access_denied") {
		t.Errorf("callback error not shown escaped:\n%s", a.body)
	}

	// A control-plane error is shown as its message.
	a = e.do(b, "POST", "/oauth/authorize", url.Values{"server": {"missing"}, "csrf": {csrfOf(t, a.body)}}, nil)
	if a.code != http.StatusBadRequest || !strings.Contains(a.body, "authorize missing: server &#34;missing&#34; not found") {
		t.Errorf("authorize unknown server: %d\n%s", a.code, a.body)
	}

	// Revoke, then sign out.
	a = e.do(b, "GET", "/oauth", nil, nil)
	csrf := csrfOf(t, a.body)
	if a := e.do(b, "POST", "/oauth/revoke", url.Values{"server": {"alpha"}, "csrf": {csrf}}, nil); a.code != http.StatusSeeOther || e.cp.revoked != "alpha" {
		t.Errorf("revoke: %d, revoked %q", a.code, e.cp.revoked)
	}
	if a := e.do(b, "POST", "/oauth/logout", url.Values{"csrf": {csrf}}, nil); a.code != http.StatusSeeOther {
		t.Errorf("logout: %d", a.code)
	}
	if a := e.do(b, "GET", "/oauth", nil, nil); !strings.Contains(a.body, `id="token"`) {
		t.Error("still signed in after sign-out")
	}
	for _, c := range e.cp.calls {
		if strings.HasSuffix(c, " "+dpTok) && !strings.HasPrefix(c, "WhoAmI") {
			t.Errorf("a call made with the data plane's token: %s", c)
		}
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.signIn(b, adminTok)
	page := e.do(b, "GET", "/oauth", nil, nil)
	csrf := csrfOf(t, page.body)
	cases := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"missing csrf", url.Values{"server": {"beta"}}, nil},
		{"wrong csrf", url.Values{"server": {"beta"}, "csrf": {"x" + csrf[1:]}}, nil},
		{"cross-origin", url.Values{"server": {"beta"}, "csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
		{"null origin", url.Values{"server": {"beta"}, "csrf": {csrf}}, map[string]string{"Origin": "null"}},
	}
	for _, c := range cases {
		if a := e.do(b, "POST", "/oauth/authorize", c.form, c.hdr); a.code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, a.code)
		}
	}
	if a := e.do(b, "POST", "/oauth/login", url.Values{"token": {adminTok}}, map[string]string{"Origin": "https://evil.example"}); a.code != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: %d", a.code)
	}
	if got := e.cp.calledWith("BeginAuthorization"); len(got) != 0 {
		t.Errorf("refused POSTs reached the control plane: %v", got)
	}
	// Another session's token does not work in this one.
	other := e.browser()
	e.signIn(other, adminTok)
	if a := e.do(other, "POST", "/oauth/authorize", url.Values{"server": {"beta"}, "csrf": {csrf}}, nil); a.code != http.StatusForbidden {
		t.Errorf("CSRF token of another session: %d", a.code)
	}
	// The public URL's origin is accepted even when the Host differs.
	e2 := newEnv(t, "https://mcp.example.com")
	b2 := e2.browser()
	if a := e2.signIn(b2, adminTok); a.code != http.StatusSeeOther {
		t.Fatalf("sign in: %d", a.code)
	}
	// (The jar keeps Secure cookies off plain http; carry it by hand.)
	var ck *http.Cookie
	for _, c := range e2.signIn(b2, adminTok).resp.Cookies() {
		if c.Name == SessionCookie {
			ck = c
		}
	}
	if ck == nil || !ck.Secure {
		t.Fatalf("cookie of an https public URL is not Secure: %+v", ck)
	}
	hdr := map[string]string{"Cookie": SessionCookie + "=" + ck.Value, "Origin": "https://mcp.example.com"}
	a := e2.do(b2, "POST", "/oauth/authorize", url.Values{"server": {"beta"}, "csrf": {csrfToken(e2.ks, ck.Value)}}, hdr)
	if a.code != http.StatusSeeOther || e2.cp.begin.GetRedirectUri() != "https://mcp.example.com/oauth/callback" {
		t.Errorf("authorize from the public origin: %d, redirect_uri %q", a.code, e2.cp.begin.GetRedirectUri())
	}
}

func TestViewerReadOnly(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.signIn(b, viewerTok)
	a := e.do(b, "GET", "/oauth", nil, nil)
	if a.code != 200 || !strings.Contains(a.body, `id="server-alpha"`) {
		t.Fatalf("viewer page: %d\n%s", a.code, a.body)
	}
	if !strings.Contains(a.body, `id="authorize-beta" name="authorize" disabled`) || !strings.Contains(a.body, `id="revoke-alpha" name="revoke" disabled`) {
		t.Error("the viewer's buttons are not disabled")
	}
	csrf := csrfOf(t, a.body)
	for _, path := range []string{"/oauth/authorize", "/oauth/revoke"} {
		if a := e.do(b, "POST", path, url.Values{"server": {"beta"}, "csrf": {csrf}}, nil); a.code != http.StatusForbidden || !strings.Contains(a.body, "needs an admin credential") {
			t.Errorf("viewer POST %s: %d\n%s", path, a.code, a.body)
		}
	}
	if a := e.do(b, "GET", "/oauth/callback?code=c&state=beta.x", nil, nil); a.code != http.StatusForbidden {
		t.Errorf("viewer callback: %d", a.code)
	}
	if n := len(e.cp.calledWith("BeginAuthorization")) + len(e.cp.calledWith("RevokeAuthorization")) + len(e.cp.calledWith("CompleteAuthorization")); n != 0 {
		t.Errorf("viewer POSTs reached the control plane %d times", n)
	}
}

func TestBearerHeader(t *testing.T) {
	e := newEnv(t, "")
	c := e.browser()
	if a := e.do(c, "GET", "/oauth", nil, map[string]string{"Authorization": "Bearer " + viewerTok}); a.code != 200 || !strings.Contains(a.body, `id="server-beta"`) || strings.Contains(a.body, `name="csrf"  value`) {
		t.Errorf("viewer script GET: %d", a.code)
	}
	if a := e.do(c, "GET", "/oauth", nil, map[string]string{"Authorization": "Bearer nope"}); a.code != http.StatusUnauthorized {
		t.Errorf("bad bearer: %d", a.code)
	}
	a := e.do(c, "POST", "/oauth/revoke", url.Values{"server": {"alpha"}}, map[string]string{"Authorization": "Bearer " + adminTok})
	if a.code != http.StatusSeeOther || e.cp.revoked != "alpha" {
		t.Errorf("admin script revoke: %d", a.code)
	}
	if a := e.do(c, "POST", "/oauth/revoke", url.Values{"server": {"alpha"}}, map[string]string{"Authorization": "Bearer " + viewerTok}); a.code != http.StatusForbidden {
		t.Errorf("viewer script revoke: %d", a.code)
	}
}

func TestSessionTamperingAndExpiry(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	var ck *http.Cookie
	for _, c := range e.signIn(b, adminTok).resp.Cookies() {
		if c.Name == SessionCookie {
			ck = c
		}
	}
	get := func(v string) answer {
		return e.do(e.browser(), "GET", "/oauth", nil, map[string]string{"Cookie": SessionCookie + "=" + v})
	}
	if a := get(ck.Value); !strings.Contains(a.body, `id="servers"`) {
		t.Fatal("the cookie does not sign in")
	}
	raw := []byte(ck.Value)
	for _, i := range []int{0, 7, len(raw) / 2, len(raw) - 1} {
		bad := append([]byte(nil), raw...)
		if bad[i] == 'A' {
			bad[i] = 'B'
		} else {
			bad[i] = 'A'
		}
		a := get(string(bad))
		if strings.Contains(a.body, `id="servers"`) || !strings.Contains(a.body, `id="token"`) {
			t.Errorf("a cookie changed at %d still signs in", i)
		}
	}
	if a := get("garbage!"); !strings.Contains(a.body, `id="token"`) {
		t.Error("garbage cookie")
	}
	// Another cluster: the cookie is foreign.
	other := keys.New()
	other.SetSecret([]byte("another cluster's secret, 32 bytes"))
	foreign, err := seal(other, session{token: adminTok, expires: e.clock().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if a := get(foreign); !strings.Contains(a.body, `id="token"`) {
		t.Error("a cookie of another cluster signs in")
	}
	// A replica with the same secret accepts it.
	same := keys.New()
	same.SetSecret([]byte("cluster secret of the test, 32 bytes!"))
	if s, err := open(same, ck.Value, e.clock()); err != nil || s.token != adminTok {
		t.Errorf("another replica cannot open the cookie: %v", err)
	}
	// Expiry: 12 hours.
	e.advance(sessionTTL - time.Minute)
	if a := get(ck.Value); !strings.Contains(a.body, `id="servers"`) {
		t.Error("the session ended early")
	}
	e.advance(2 * time.Minute)
	if a := get(ck.Value); !strings.Contains(a.body, "the session expired") {
		t.Errorf("an expired session still works:\n%s", a.body)
	}
	// Capped at the token's own expiry.
	e.cp.expires = e.clock().Add(time.Hour)
	var capped *http.Cookie
	for _, c := range e.signIn(e.browser(), adminTok).resp.Cookies() {
		if c.Name == SessionCookie {
			capped = c
		}
	}
	s, err := open(e.ks, capped.Value, e.clock())
	if err != nil || !s.expires.Equal(e.cp.expires.Truncate(time.Second)) {
		t.Errorf("session of a token expiring in 1h ends %v (%v)", s.expires, err)
	}
}

func TestClientMetadataDocument(t *testing.T) {
	e := newEnv(t, "https://mcp.example.com/gw")
	a := e.do(e.browser(), "GET", ClientMetadataPath, nil, nil)
	if a.code != 200 || a.resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", a.code, a.resp.Header.Get("Content-Type"))
	}
	var doc struct {
		ClientID     string   `json:"client_id"`
		RedirectURIs []string `json:"redirect_uris"`
		AuthMethod   string   `json:"token_endpoint_auth_method"`
	}
	if err := json.Unmarshal([]byte(a.body), &doc); err != nil {
		t.Fatal(err)
	}
	// Behind a path prefix the document is served under it, so its URL, the
	// client_id, carries the prefix too.
	if doc.ClientID != "https://mcp.example.com/gw/oauth/client-metadata.json" || len(doc.RedirectURIs) != 1 ||
		doc.RedirectURIs[0] != "https://mcp.example.com/gw/oauth/callback" || doc.AuthMethod != "none" {
		t.Errorf("document %+v", doc)
	}
}
