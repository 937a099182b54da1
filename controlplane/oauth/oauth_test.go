package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/app"
	"github.com/mcpmesh/mcpmesh/controlplane/oauth"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const adminToken = "admin-test-token"

// fakeClock is the clock of the service and of the authorization server;
// After's channels fire when Advance passes their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waiting chan struct{} // one signal per After call
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newClock() *fakeClock {
	return &fakeClock{now: time.Now().Truncate(time.Second), waiting: make(chan struct{}, 1000)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	}
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeClock) hasWaiter(at time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waiters {
		if w.at.Equal(at) {
			return true
		}
	}
	return false
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// failing makes token endpoint calls fail with a transport error while set.
type failing struct {
	mu    sync.Mutex
	on    bool
	calls int
	next  http.RoundTripper
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	on := f.on
	if strings.HasSuffix(r.URL.Path, "/token") {
		f.calls++
	}
	f.mu.Unlock()
	if on && strings.HasSuffix(r.URL.Path, "/token") {
		return nil, errors.New("connection refused (injected)")
	}
	return f.next.RoundTrip(r)
}

func (f *failing) set(on bool) { f.mu.Lock(); f.on = on; f.mu.Unlock() }
func (f *failing) tokenCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type env struct {
	st      store.Store
	as      *testauth.Server
	be      *testauth.Backend
	svc     *oauth.Service
	clk     *fakeClock
	fault   *failing
	admin   mcpmeshv1.OAuthServiceClient
	dp      mcpmeshv1.OAuthServiceClient
	browser *http.Client
}

func dial(t *testing.T, addr, tok string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(authtoken.Credentials(tok)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func start(t *testing.T, asOpts testauth.Options, beOpts testauth.BackendOptions) *env {
	t.Helper()
	e := &env{clk: newClock()}
	asOpts.Now = e.clk.Now
	var err error
	if e.as, err = testauth.Start(asOpts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.as.Close)
	if e.be, err = testauth.NewBackend(e.as, beOpts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.be.Close)
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	log := slog.New(slog.DiscardHandler)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.fault = &failing{next: tr}
	e.svc = oauth.New(st, log, oauth.WithClock(e.clk), oauth.WithHTTPClient(&http.Client{Transport: e.fault, Timeout: 10 * time.Second}))
	authn := access.NewAuthenticator(adminToken, st, log)
	gs := grpc.NewServer(app.ServerOptions(log, authn, app.NewMetrics())...)
	mcpmeshv1.RegisterOAuthServiceServer(gs, e.svc)
	mcpmeshv1.RegisterTokenServiceServer(gs, access.NewService(st, authn, log))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-served; st.Close() })
	admin := dial(t, lis.Addr().String(), adminToken)
	e.admin = mcpmeshv1.NewOAuthServiceClient(admin)
	tok, err := mcpmeshv1.NewTokenServiceClient(admin).CreateToken(context.Background(), &mcpmeshv1.CreateTokenRequest{Role: mcpmeshv1.Role_ROLE_DATAPLANE})
	if err != nil {
		t.Fatal(err)
	}
	e.dp = mcpmeshv1.NewOAuthServiceClient(dial(t, lis.Addr().String(), tok.GetSecret()))
	e.browser = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(e.browser.CloseIdleConnections)
	return e
}

func (e *env) addServer(t *testing.T, name, u string, cfg *mcpmeshv1.OAuthConfig) {
	t.Helper()
	if cfg == nil {
		cfg = &mcpmeshv1.OAuthConfig{Enabled: true}
	}
	if _, err := e.st.CreateServer(context.Background(), &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http: &mcpmeshv1.HttpConfig{Url: u, Oauth: cfg}}); err != nil {
		t.Fatal(err)
	}
}

const redirect = "http://127.0.0.1:8080/oauth/callback"

var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// approve plays the operator's browser on the consent page and returns the
// callback's query.
func (e *env) approve(t *testing.T, authURL string) url.Values {
	t.Helper()
	resp, err := e.browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := requestField.FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no consent page at %s: %s %s", authURL, resp.Status, page)
	}
	resp, err = e.browser.PostForm(e.as.Issuer()+"/authorize", url.Values{"request": {m[1]}, "action": {"approve"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect) {
		t.Fatalf("consent redirected to %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

// authorize runs Begin, the consent page and Complete for server.
func (e *env) authorize(t *testing.T, server string) *mcpmeshv1.CompleteAuthorizationResponse {
	t.Helper()
	ctx := context.Background()
	b, err := e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: server, RedirectUri: redirect})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if !strings.HasPrefix(b.GetState(), server+".") {
		t.Fatalf("state %q does not start with the server name", b.GetState())
	}
	q := e.approve(t, b.GetAuthorizationUrl())
	if q.Get("state") != b.GetState() {
		t.Fatalf("callback state %q, want %q", q.Get("state"), b.GetState())
	}
	c, err := e.admin.CompleteAuthorization(ctx, &mcpmeshv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code")})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	return c
}

func (e *env) grant(t *testing.T, server string) *mcpmeshv1.StoredOAuthGrant {
	t.Helper()
	g, err := e.st.GetOAuthGrant(context.Background(), server)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func whoami(t *testing.T, be *testauth.Backend, token string) (string, error) {
	t.Helper()
	c, err := client.NewStreamableHttpClient(be.URL(), transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return "", err
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "t", Version: "0"}
	init.Params.ProtocolVersion = "2025-06-18"
	if _, err := c.Initialize(ctx, init); err != nil {
		return "", err
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = testauth.WhoamiTool
	res, err := c.CallTool(ctx, req)
	if err != nil {
		return "", err
	}
	return res.Content[0].(mcp.TextContent).Text, nil
}

func sha(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

func wantCode(t *testing.T, err error, code codes.Code, part string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), part) {
		t.Fatalf("err = %v, want %s containing %q", err, code, part)
	}
}

// TestAuthorizationFlow: discovery, registration, the code flow and the
// grant it stores, whose token the protected backend accepts.
func TestAuthorizationFlow(t *testing.T) {
	e := start(t, testauth.Options{}, testauth.BackendOptions{Scopes: []string{"mcp"}})
	ctx := context.Background()
	e.addServer(t, "web", e.be.URL(), nil)
	r0, _ := e.st.Revision(ctx)
	c := e.authorize(t, "web")
	a := c.GetAuthorization()
	if a.GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED || a.GetIssuer() != e.as.Issuer() ||
		!a.GetRefreshable() || a.GetExpiresAt() == nil || len(a.GetScopes()) != 1 || a.GetScopes()[0] != "mcp" {
		t.Fatalf("authorization = %v", a)
	}
	if c.GetRevision() <= r0 {
		t.Fatalf("revision %d, want past %d (data planes must get the token)", c.GetRevision(), r0)
	}
	g := e.grant(t, "web")
	if g.GetResource() != e.be.URL() {
		t.Fatalf("grant resource %q, want %q", g.GetResource(), e.be.URL())
	}
	if sub, err := whoami(t, e.be, g.GetAccessToken()); err != nil || sub != "test-user" {
		t.Fatalf("whoami with the grant's token = %q, %v", sub, err)
	}
	l, err := e.admin.ListAuthorizations(ctx, &mcpmeshv1.ListAuthorizationsRequest{})
	if err != nil || len(l.GetAuthorizations()) != 1 || l.GetAuthorizations()[0].GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED {
		t.Fatalf("list = %v, %v", l, err)
	}
	// The same redirect URI reuses the registered client; another registers again.
	if _, err := e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: redirect}); err != nil {
		t.Fatal(err)
	}
	if n := e.as.Stats().Registrations; n != 1 {
		t.Fatalf("%d registrations, want 1", n)
	}
	if _, err := e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: "http://127.0.0.1:9090/oauth/callback"}); err != nil {
		t.Fatal(err)
	}
	if n := e.as.Stats().Registrations; n != 2 {
		t.Fatalf("%d registrations after a new redirect URI, want 2", n)
	}
}

func TestCompleteOnce(t *testing.T) {
	e := start(t, testauth.Options{}, testauth.BackendOptions{})
	ctx := context.Background()
	e.addServer(t, "web", e.be.URL(), nil)
	b, err := e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: redirect})
	if err != nil {
		t.Fatal(err)
	}
	q := e.approve(t, b.GetAuthorizationUrl())
	if _, err := e.admin.CompleteAuthorization(ctx, &mcpmeshv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code")}); err != nil {
		t.Fatal(err)
	}
	_, err = e.admin.CompleteAuthorization(ctx, &mcpmeshv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code")})
	wantCode(t, err, codes.FailedPrecondition, "completed already or expired")
	// A flow older than 10 minutes is refused.
	b, err = e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: redirect})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(store.PendingTTL + time.Second)
	_, err = e.admin.CompleteAuthorization(ctx, &mcpmeshv1.CompleteAuthorizationRequest{State: b.GetState(), Code: "x"})
	wantCode(t, err, codes.FailedPrecondition, "expired")
	// The user denied: the error is recorded and reported.
	b, _ = e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: redirect})
	_, err = e.admin.CompleteAuthorization(ctx, &mcpmeshv1.CompleteAuthorizationRequest{State: b.GetState(), Error: "access_denied", ErrorDescription: "the user denied the request"})
	wantCode(t, err, codes.FailedPrecondition, "said access_denied")
}

func TestBeginErrors(t *testing.T) {
	e := start(t, testauth.Options{PlainOnly: true}, testauth.BackendOptions{})
	ctx := context.Background()
	e.addServer(t, "web", e.be.URL(), nil)
	if _, err := e.st.CreateServer(ctx, &mcpmeshv1.Server{Name: "plain", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http: &mcpmeshv1.HttpConfig{Url: e.be.URL()}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: redirect})
	wantCode(t, err, codes.FailedPrecondition, "does not support PKCE with S256")
	_, err = e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "nosuch", RedirectUri: redirect})
	wantCode(t, err, codes.NotFound, "nosuch")
	_, err = e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "plain", RedirectUri: redirect})
	wantCode(t, err, codes.FailedPrecondition, "does not use OAuth")
	_, err = e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "web", RedirectUri: "javascript:alert(1)"})
	wantCode(t, err, codes.InvalidArgument, "redirect_uri")
	l, _ := e.admin.ListAuthorizations(ctx, &mcpmeshv1.ListAuthorizationsRequest{IncludeAll: true})
	if len(l.GetAuthorizations()) != 2 || l.GetAuthorizations()[0].GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NOT_REQUIRED ||
		l.GetAuthorizations()[1].GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR ||
		!strings.Contains(l.GetAuthorizations()[1].GetLastError(), "S256") {
		t.Fatalf("list = %v", l.GetAuthorizations())
	}
}

// TestDiscoveryFallback: without resource_metadata in the 401, the
// well-known protected resource metadata is found.
func TestDiscoveryFallback(t *testing.T) {
	e := start(t, testauth.Options{}, testauth.BackendOptions{NoResourceMetadataHeader: true})
	e.addServer(t, "web", e.be.URL(), nil)
	e.authorize(t, "web")
}

func TestRefreshAuthorization(t *testing.T) {
	e := start(t, testauth.Options{AccessTokenTTL: time.Hour}, testauth.BackendOptions{})
	ctx := context.Background()
	e.addServer(t, "web", e.be.URL(), nil)
	e.authorize(t, "web")
	old := e.grant(t, "web").GetAccessToken()
	// A data plane whose token is refused: one refresh for many callers.
	var wg sync.WaitGroup
	toks := make([]string, 8)
	for i := range toks {
		wg.Go(func() {
			r, err := e.dp.RefreshAuthorization(ctx, &mcpmeshv1.RefreshAuthorizationRequest{Server: "web", RejectedTokenSha256: sha(old)})
			if err != nil {
				t.Errorf("refresh: %v", err)
				return
			}
			toks[i] = r.GetAccessToken()
		})
	}
	wg.Wait()
	if n := e.as.Stats().RefreshCalls; n != 1 {
		t.Fatalf("%d refreshes for 8 concurrent callers, want 1", n)
	}
	cur := e.grant(t, "web").GetAccessToken()
	for _, tok := range toks {
		if tok != cur || tok == old {
			t.Fatalf("a caller got %q..., want the new token", tok[:min(8, len(tok))])
		}
	}
	if sub, err := whoami(t, e.be, cur); err != nil || sub != "test-user" {
		t.Fatalf("refreshed token: %q, %v", sub, err)
	}
	// An admin caller gets the state, never the token.
	r, err := e.admin.RefreshAuthorization(ctx, &mcpmeshv1.RefreshAuthorizationRequest{Server: "web", RejectedTokenSha256: sha(old)})
	if err != nil || r.GetAccessToken() != "" || r.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED {
		t.Fatalf("admin refresh = %v, %v", r, err)
	}

	// Revoked at the authorization server: invalid_grant, the token goes.
	e.as.RevokeAll()
	r0, _ := e.st.Revision(ctx)
	r, err = e.dp.RefreshAuthorization(ctx, &mcpmeshv1.RefreshAuthorizationRequest{Server: "web", RejectedTokenSha256: sha(cur)})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_REFRESH_FAILED || r.GetAccessToken() != "" ||
		!strings.Contains(r.GetAuthorization().GetLastError(), "invalid_grant") {
		t.Fatalf("after revocation: %v", r)
	}
	if g := e.grant(t, "web"); g.GetAccessToken() != "" || g.GetRefreshToken() != "" {
		t.Fatal("the refused grant still holds tokens")
	}
	if r1, _ := e.st.Revision(ctx); r1 <= r0 {
		t.Fatal("removing the token did not bump the revision")
	}
	for _, secret := range []string{cur, old} {
		if strings.Contains(r.GetAuthorization().GetLastError(), secret) {
			t.Fatal("last_error contains a token")
		}
	}
}

func TestRevokeAuthorization(t *testing.T) {
	e := start(t, testauth.Options{}, testauth.BackendOptions{})
	ctx := context.Background()
	e.addServer(t, "web", e.be.URL(), nil)
	e.authorize(t, "web")
	tok := e.grant(t, "web").GetAccessToken()
	r0, _ := e.st.Revision(ctx)
	r, err := e.admin.RevokeAuthorization(ctx, &mcpmeshv1.RevokeAuthorizationRequest{Server: "web"})
	if err != nil || r.GetRevision() <= r0 || r.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION {
		t.Fatalf("revoke = %v, %v", r, err)
	}
	if n := e.as.Stats().Revocations; n != 2 {
		t.Fatalf("%d revocation calls, want 2 (refresh and access token)", n)
	}
	if _, err := e.st.GetOAuthGrant(ctx, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant after revoke: %v", err)
	}
	if _, err := whoami(t, e.be, tok); err == nil {
		t.Fatal("the revoked grant's token still works")
	}
}

// TestRefreshLoop: the loop refreshes when a third of the lifetime (or 60 s,
// whichever is later) remains, keeps the token and backs off on a transport
// error, all on the injected clock.
func TestRefreshLoop(t *testing.T) {
	e := start(t, testauth.Options{AccessTokenTTL: 30 * time.Second}, testauth.BackendOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	e.addServer(t, "web", e.be.URL(), nil)
	e.authorize(t, "web")
	first := e.grant(t, "web")
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	changes := e.st.Watch(ctx)

	// armed waits until the loop waits on the clock for the moment at.
	armed := func(at time.Time) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !e.clk.hasWaiter(at) {
			select {
			case <-e.clk.waiting:
			case <-deadline:
				t.Fatalf("the loop does not wait for %s", at.Sub(e.clk.Now()))
			}
		}
	}
	newRevision := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no new revision: %s", what)
		}
	}
	// 30 s lifetime: due at 20 s (a third left), not at 29 s (60 s margin is earlier).
	armed(first.GetAuthorization().GetAuthorizedAt().AsTime().Add(20 * time.Second))
	e.clk.Advance(19 * time.Second)
	if n := e.as.Stats().RefreshCalls; n != 0 {
		t.Fatalf("refreshed after 19 s of 30: %d calls", n)
	}
	e.clk.Advance(time.Second)
	newRevision("refresh at 20 s")
	g := e.grant(t, "web")
	if g.GetAccessToken() == first.GetAccessToken() || g.GetRefreshToken() == first.GetRefreshToken() {
		t.Fatal("the loop's refresh did not store new tokens")
	}
	armed(e.clk.Now().Add(20 * time.Second))

	// The token endpoint unreachable: ERROR, token kept, retried after 1 s, then 2 s.
	e.fault.set(true)
	calls := e.fault.tokenCalls()
	e.clk.Advance(20 * time.Second)
	armed(e.clk.Now().Add(time.Second))
	if g2 := e.grant(t, "web"); g2.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR ||
		g2.GetAccessToken() != g.GetAccessToken() || !strings.Contains(g2.GetAuthorization().GetLastError(), "injected") {
		t.Fatalf("after a transport error: state %s, error %q, token kept %v", g2.GetAuthorization().GetState(), g2.GetAuthorization().GetLastError(), g2.GetAccessToken() == g.GetAccessToken())
	}
	if got := e.fault.tokenCalls() - calls; got != 1 {
		t.Fatalf("%d token calls, want 1", got)
	}
	e.clk.Advance(999 * time.Millisecond)
	if got := e.fault.tokenCalls() - calls; got != 1 {
		t.Fatalf("retried before 1 s: %d calls", got)
	}
	e.clk.Advance(time.Millisecond)
	armed(e.clk.Now().Add(2 * time.Second))
	if got := e.fault.tokenCalls() - calls; got != 2 {
		t.Fatalf("%d token calls after 1 s, want 2", got)
	}
	e.fault.set(false)
	e.clk.Advance(2 * time.Second)
	newRevision("refresh after the endpoint came back")
	if g3 := e.grant(t, "web"); g3.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED || g3.GetAuthorization().GetLastError() != "" {
		t.Fatalf("after recovery: %v", g3.GetAuthorization())
	}
}

// TestRefreshWithoutRefreshToken: a refused token that cannot be refreshed
// is not handed back; a newer one held is.
func TestRefreshWithoutRefreshToken(t *testing.T) {
	e := start(t, testauth.Options{}, testauth.BackendOptions{})
	ctx := context.Background()
	e.addServer(t, "web", e.be.URL(), nil)
	g := &mcpmeshv1.StoredOAuthGrant{Authorization: &mcpmeshv1.Authorization{Server: "web", State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED},
		AccessToken: "held-token", TokenType: "Bearer"}
	if _, err := e.st.PutOAuthGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	r, err := e.dp.RefreshAuthorization(ctx, &mcpmeshv1.RefreshAuthorizationRequest{Server: "web", RejectedTokenSha256: sha("held-token")})
	if err != nil || r.GetAccessToken() != "" || r.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION {
		t.Fatalf("refused token without refresh token: %v, %v", r, err)
	}
	r, err = e.dp.RefreshAuthorization(ctx, &mcpmeshv1.RefreshAuthorizationRequest{Server: "web", RejectedTokenSha256: sha("older-token")})
	if err != nil || r.GetAccessToken() != "held-token" {
		t.Fatalf("newer token held: %v, %v", r, err)
	}
	if n := e.as.Stats().RefreshCalls; n != 0 {
		t.Fatalf("%d refresh calls, want 0", n)
	}
}

// TestPreRegisteredClient: a server registered with --oauth-client-id and
// --oauth-client-secret uses that confidential client (no registration of
// its own), and the token endpoint accepts its secret; a wrong secret fails
// the exchange with an error that names the token endpoint and shows no
// secret.
func TestPreRegisteredClient(t *testing.T) {
	e := start(t, testauth.Options{}, testauth.BackendOptions{})
	body := `{"redirect_uris":["` + redirect + `"],"client_name":"operator-registered","token_endpoint_auth_method":"client_secret_basic"}`
	resp, err := e.browser.Post(e.as.Issuer()+"/register", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&reg)
	resp.Body.Close()
	if err != nil || reg.ClientID == "" || reg.ClientSecret == "" {
		t.Fatalf("registration: %v %+v", err, reg)
	}
	e.addServer(t, "pre", e.be.URL(), &mcpmeshv1.OAuthConfig{Enabled: true, ClientId: reg.ClientID, ClientSecret: reg.ClientSecret})
	c := e.authorize(t, "pre")
	if got := c.GetAuthorization().GetClientId(); got != reg.ClientID {
		t.Fatalf("client id %q, want the pre-registered %q", got, reg.ClientID)
	}
	if n := e.as.Stats().Registrations; n != 1 {
		t.Fatalf("%d registrations, want only the operator's 1", n)
	}
	if sub, err := whoami(t, e.be, e.grant(t, "pre").GetAccessToken()); err != nil || sub != "test-user" {
		t.Fatalf("whoami with the pre-registered client's token = %q, %v", sub, err)
	}

	e.addServer(t, "wrong", e.be.URL(), &mcpmeshv1.OAuthConfig{Enabled: true, ClientId: reg.ClientID, ClientSecret: "not-the-secret"})
	ctx := context.Background()
	b, err := e.admin.BeginAuthorization(ctx, &mcpmeshv1.BeginAuthorizationRequest{Server: "wrong", RedirectUri: redirect})
	if err != nil {
		t.Fatal(err)
	}
	q := e.approve(t, b.GetAuthorizationUrl())
	_, err = e.admin.CompleteAuthorization(ctx, &mcpmeshv1.CompleteAuthorizationRequest{State: q.Get("state"), Code: q.Get("code")})
	if err == nil {
		t.Fatal("a wrong client secret completed the flow")
	}
	if msg := err.Error(); !strings.Contains(msg, "token endpoint") || strings.Contains(msg, "not-the-secret") || strings.Contains(msg, reg.ClientSecret) {
		t.Fatalf("error %q: want one naming the token endpoint, with no secret", msg)
	}
}
