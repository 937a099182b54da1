package testauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const redirect = "http://127.0.0.1:9/oauth/callback"

type fixture struct {
	as  *testauth.Server
	be  *testauth.Backend
	clk *clock
	hc  *http.Client
}

func newFixture(t *testing.T, opts testauth.Options) *fixture {
	t.Helper()
	clk := &clock{now: time.Now()}
	opts.Now = clk.Now
	as, err := testauth.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	be, err := testauth.NewBackend(as, testauth.BackendOptions{Scopes: []string{"mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(be.Close)
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	return &fixture{as: as, be: be, clk: clk, hc: hc}
}

func (f *fixture) getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := f.hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) register(t *testing.T, public bool) (id, secret string) {
	t.Helper()
	body := `{"client_name":"mcpmesh test","redirect_uris":["` + redirect + `"]`
	if public {
		body += `,"token_endpoint_auth_method":"none"`
	}
	resp, err := f.hc.Post(f.as.Issuer()+"/register", "application/json", strings.NewReader(body+"}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ClientID, ClientSecret string }
	var raw map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &raw)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %s %s", resp.Status, b)
	}
	out.ClientID, _ = raw["client_id"].(string)
	out.ClientSecret, _ = raw["client_secret"].(string)
	if public != (out.ClientSecret == "") {
		t.Fatalf("public=%v but client_secret=%q", public, out.ClientSecret)
	}
	return out.ClientID, out.ClientSecret
}

var requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// authorize runs the consent page as a browser would and returns the
// callback URL the server redirected to.
func (f *fixture) authorize(t *testing.T, q url.Values, action string) *url.URL {
	t.Helper()
	resp, err := f.hc.Get(f.as.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc
	}
	for _, want := range []string{`id="approve"`, `>Approve<`, `>Deny<`, "mcpmesh test", "mcp"} {
		if !strings.Contains(string(page), want) {
			t.Fatalf("consent page lacks %q:\n%s", want, page)
		}
	}
	m := requestField.FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no request field in consent page")
	}
	resp, err = f.hc.PostForm(f.as.Issuer()+"/authorize", url.Values{"request": {m[1]}, "action": {action}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("consent answer: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func pkce() (verifier, challenge string) {
	verifier = "verifier-0123456789-0123456789-0123456789-0123456789"
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func (f *fixture) authQuery(clientID, challenge string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"mcp"}, "state": {"st-1"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"resource": {f.be.URL()}}
}

type tokenResp struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func (f *fixture) token(t *testing.T, form url.Values) (int, tokenResp) {
	t.Helper()
	resp, err := f.hc.PostForm(f.as.Issuer()+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResp
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, tr
}

// flow registers a client and runs the code flow to its first tokens.
func (f *fixture) flow(t *testing.T) (clientID, secret string, tr tokenResp) {
	t.Helper()
	clientID, secret = f.register(t, false)
	verifier, challenge := pkce()
	loc := f.authorize(t, f.authQuery(clientID, challenge), "approve")
	if loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("callback %s: want code and state st-1", loc)
	}
	status, tr := f.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "resource": {f.be.URL()},
		"client_id": {clientID}, "client_secret": {secret}})
	if status != 200 || tr.AccessToken == "" || tr.RefreshToken == "" || tr.TokenType != "Bearer" {
		t.Fatalf("exchange: %d %+v", status, tr)
	}
	return clientID, secret, tr
}

func whoami(t *testing.T, be *testauth.Backend, token string) (string, error) {
	t.Helper()
	var opts []transport.StreamableHTTPCOption
	if token != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	}
	c, err := client.NewStreamableHttpClient(be.URL(), opts...)
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

func TestMetadata(t *testing.T) {
	f := newFixture(t, testauth.Options{Scopes: []string{"mcp"}})
	var md map[string]any
	f.getJSON(t, f.as.Issuer()+"/.well-known/oauth-authorization-server", &md)
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"} {
		if s, _ := md[k].(string); !strings.HasPrefix(s, f.as.Issuer()) {
			t.Errorf("metadata %s = %v", k, md[k])
		}
	}
	if m, _ := md["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
		t.Errorf("code_challenge_methods_supported = %v", md["code_challenge_methods_supported"])
	}
	var prm map[string]any
	f.getJSON(t, f.be.MetadataURL(), &prm)
	if prm["resource"] != f.be.URL() {
		t.Errorf("PRM resource = %v, want %s", prm["resource"], f.be.URL())
	}
	if as, _ := prm["authorization_servers"].([]any); len(as) != 1 || as[0] != f.as.Issuer() {
		t.Errorf("PRM authorization_servers = %v", prm["authorization_servers"])
	}
}

func TestUnauthorizedChallenge(t *testing.T) {
	f := newFixture(t, testauth.Options{})
	resp, err := f.hc.Post(f.be.URL(), "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `resource_metadata="` + f.be.MetadataURL() + `"`
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), want) {
		t.Fatalf("got %s, WWW-Authenticate %q; want 401 with %s", resp.Status, resp.Header.Get("WWW-Authenticate"), want)
	}
	if _, err := whoami(t, f.be, "garbage"); err == nil {
		t.Fatal("a garbage token was accepted")
	}
	tok, _ := f.as.Token(testauth.Claims{Audience: f.be.URL()}) // signed, but never issued by the flow
	if _, err := whoami(t, f.be, tok); err == nil {
		t.Fatal("a token outside any grant was accepted")
	}
}

func TestCodeFlowRefreshAndRevocation(t *testing.T) {
	f := newFixture(t, testauth.Options{AccessTokenTTL: 2 * time.Second})
	clientID, secret, tr := f.flow(t)
	if tr.ExpiresIn != 2 {
		t.Errorf("expires_in = %d, want 2", tr.ExpiresIn)
	}
	if sub, err := whoami(t, f.be, tr.AccessToken); err != nil || sub != "test-user" {
		t.Fatalf("whoami = %q, %v; want test-user", sub, err)
	}
	f.clk.Add(3 * time.Second)
	if _, err := whoami(t, f.be, tr.AccessToken); err == nil {
		t.Fatal("an expired token was accepted")
	}

	refresh := func(rt, resource string) (int, tokenResp) {
		return f.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": {resource},
			"client_id": {clientID}, "client_secret": {secret}})
	}
	if status, r := refresh(tr.RefreshToken, ""); status != 400 || r.Error != "invalid_target" {
		t.Fatalf("refresh without resource: %d %+v", status, r)
	}
	status, tr2 := refresh(tr.RefreshToken, f.be.URL())
	if status != 200 || tr2.RefreshToken == tr.RefreshToken || tr2.AccessToken == "" {
		t.Fatalf("refresh: %d %+v (want a rotated refresh token)", status, tr2)
	}
	if sub, err := whoami(t, f.be, tr2.AccessToken); err != nil || sub != "test-user" {
		t.Fatalf("whoami after refresh = %q, %v", sub, err)
	}
	if st := f.as.Stats(); st.TokenCalls != 1 || st.RefreshCalls != 2 || st.Registrations != 1 {
		t.Errorf("stats = %+v", st)
	}

	if n := f.as.RevokeClient(clientID); n != 1 {
		t.Fatalf("RevokeClient revoked %d grants, want 1", n)
	}
	if status, r := refresh(tr2.RefreshToken, f.be.URL()); status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh after revocation: %d %+v, want invalid_grant", status, r)
	}
	if _, err := whoami(t, f.be, tr2.AccessToken); err == nil {
		t.Fatal("a revoked grant's token was accepted")
	}
}

func TestRotatedRefreshReuseRevokesGrant(t *testing.T) {
	f := newFixture(t, testauth.Options{})
	clientID, secret, tr := f.flow(t)
	form := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": {f.be.URL()},
			"client_id": {clientID}, "client_secret": {secret}}
	}
	_, tr2 := f.token(t, form(tr.RefreshToken))
	if status, r := f.token(t, form(tr.RefreshToken)); status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %+v", status, r)
	}
	if status, r := f.token(t, form(tr2.RefreshToken)); status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("refresh after reuse detection: %d %+v, want the grant revoked", status, r)
	}
}

func TestRevokeEndpoint(t *testing.T) {
	f := newFixture(t, testauth.Options{})
	clientID, secret, tr := f.flow(t)
	resp, err := f.hc.PostForm(f.as.Issuer()+"/revoke", url.Values{"token": {tr.RefreshToken}, "token_type_hint": {"refresh_token"},
		"client_id": {clientID}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %s", resp.Status)
	}
	if _, err := whoami(t, f.be, tr.AccessToken); err == nil {
		t.Fatal("token of a revoked grant accepted")
	}
}

func TestAuthorizationRequestChecks(t *testing.T) {
	f := newFixture(t, testauth.Options{})
	clientID, secret := f.register(t, true)
	if secret != "" {
		t.Fatal("public client got a secret")
	}
	verifier, challenge := pkce()

	// Deny.
	loc := f.authorize(t, f.authQuery(clientID, challenge), "deny")
	if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != "st-1" {
		t.Fatalf("deny redirected to %s", loc)
	}
	// Plain PKCE and no resource are refused with a redirect.
	q := f.authQuery(clientID, challenge)
	q.Set("code_challenge_method", "plain")
	if loc := f.authorize(t, q, ""); loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("plain PKCE: %s", loc)
	}
	q = f.authQuery(clientID, challenge)
	q.Del("resource")
	if loc := f.authorize(t, q, ""); loc.Query().Get("error") != "invalid_target" {
		t.Fatalf("no resource: %s", loc)
	}
	// A redirect_uri that differs is never redirected to.
	q = f.authQuery(clientID, challenge)
	q.Set("redirect_uri", redirect+"/x")
	resp, err := f.hc.Get(f.as.Issuer() + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("mismatched redirect_uri: %s, want 400", resp.Status)
	}

	exchange := func(code, verifier, resource string) (int, tokenResp) {
		return f.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"code_verifier": {verifier}, "resource": {resource}, "client_id": {clientID}})
	}
	code := func() string { return f.authorize(t, f.authQuery(clientID, challenge), "approve").Query().Get("code") }
	for _, tc := range []struct {
		name, verifier, resource, want string
	}{
		{"missing verifier", "", f.be.URL(), "invalid_request"},
		{"wrong verifier", verifier + "x", f.be.URL(), "invalid_grant"},
		{"missing resource", verifier, "", "invalid_target"},
		{"other resource", verifier, "http://elsewhere/mcp", "invalid_target"},
	} {
		if status, r := exchange(code(), tc.verifier, tc.resource); status != 400 || r.Error != tc.want {
			t.Errorf("%s: %d %+v, want %s", tc.name, status, r, tc.want)
		}
	}
	c := code()
	if status, r := exchange(c, verifier, f.be.URL()); status != 200 || r.AccessToken == "" {
		t.Fatalf("public client exchange: %d %+v", status, r)
	}
	if status, r := exchange(c, verifier, f.be.URL()); status != 400 || r.Error != "invalid_grant" {
		t.Fatalf("second exchange of one code: %d %+v", status, r)
	}
}

func TestHTTPTestControls(t *testing.T) {
	f := newFixture(t, testauth.Options{})
	_, _, tr := f.flow(t)
	resp, err := f.hc.Post(f.as.Issuer()+"/_test/token-ttl?d=2s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = f.hc.Post(f.as.Issuer()+"/_test/revoke", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var st testauth.Stats
	f.getJSON(t, f.as.Issuer()+"/_test/stats", &st)
	if st.TokenCalls != 1 || st.Registrations != 1 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := whoami(t, f.be, tr.AccessToken); err == nil {
		t.Fatal("token accepted after /_test/revoke")
	}
}
