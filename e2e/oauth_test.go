//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

// chromiumPath is where Debian's chromium package puts the browser
// (make chromium, .ci/run install it).
const chromiumPath = "/usr/bin/chromium"

// screenshotPath is where the test writes the /oauth page as it looks once
// a backend is authorized (linked from the README).
var screenshotPath = filepath.Join("..", "docs", "oauth-dashboard.png")

// jwtRE matches a JWT, which every access token of the test authorization
// server is: none may appear in a log.
var jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.`)

// TestOAuthDashboard registers an OAuth-protected backend, authorizes it
// from the data plane's /oauth page in headless Chromium against a real
// local authorization server, then calls it through the data plane across
// token refreshes, a revoke at the authorization server and the page's
// Revoke button.
func TestOAuthDashboard(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("this test drives the /oauth page in headless Chromium and needs %s: run `make chromium` (as root it runs apt-get install chromium) or install Debian's chromium package: %v", chromiumPath, err)
	}
	// Short-lived access tokens, so that the run sees refreshes.
	as, err := testauth.Start(testauth.Options{AccessTokenTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	backend, err := testauth.NewBackend(as, testauth.BackendOptions{Name: "secure"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(backend.Close)

	cp := startControlPlane(t, t.TempDir(), "", "")
	mustCtl(t, cp, "server", "add", "secure", "--url", backend.URL(), "--oauth")
	_, plainURL := startHTTPBackend(t, "plain")
	mustCtl(t, cp, "server", "add", "plain", "--url", plainURL)
	dp := startDataPlane(t, cp, "dp-oauth")
	base := "http://" + dp.listen

	// No grant yet: needs-authorization everywhere health shows, and no
	// request reaches the backend.
	dp.waitState(t, "secure", "needs-authorization")
	waitCtlState(t, cp, "secure", "needs-authorization")
	if _, accepted := backend.Counts(); accepted != 0 {
		t.Errorf("the backend accepted %d requests before any authorization", accepted)
	}
	c := mcpClient(t, dp.mcpURL())
	if _, err := callErr(c, callTimeout, "secure__"+testauth.WhoamiTool, nil); err == nil || !strings.Contains(err.Error(), "needs OAuth authorization: open "+base+"/oauth") {
		t.Errorf("call before authorization: err = %v, want the needs-authorization message naming %s/oauth", err, base)
	}

	adminTok, err := os.ReadFile(cp.tokenFile())
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(adminTok))

	ctx := newBrowser(t)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("browser: %s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	present := func(sel string) bool {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		if err != nil {
			t.Fatalf("browser: count %s: %v", sel, err)
		}
		return n > 0
	}
	click := func(what, sel string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
			t.Fatalf("browser: click %s (%s): %v", what, sel, err)
		}
	}
	waitRow := func(server, prefix string) {
		t.Helper()
		eventually(t, waitTimeout, fmt.Sprintf("/oauth row %s to say %q", server, prefix), func() error {
			run("reload", chromedp.Navigate(base+"/oauth"))
			if got := text("#server-" + server + " .state"); !strings.HasPrefix(got, prefix) {
				return fmt.Errorf("row %s says %q", server, got)
			}
			return nil
		})
	}

	// Sign in.
	run("open /oauth", chromedp.Navigate(base+"/oauth"), chromedp.WaitVisible(chromedp.CSS("#token")))
	run("type the token", chromedp.SendKeys(chromedp.CSS("#token"), admin))
	click("sign in", "#sign-in")
	run("the table", chromedp.WaitVisible(chromedp.CSS("#servers")))
	if got := text("#server-secure .state"); got != "needs authorization" {
		t.Errorf("secure row before authorizing: %q", got)
	}
	if got := text("#server-plain .state"); got != "not required" {
		t.Errorf("plain row: %q", got)
	}
	if present("#authorize-plain") || present("#revoke-secure") || !present("#authorize-secure") {
		t.Error("buttons before authorizing: want only Authorize on secure")
	}

	// Authorize: to the authorization server's consent page, approve, and
	// back on /oauth.
	click("Authorize", "#authorize-secure")
	run("the consent page", chromedp.WaitVisible(chromedp.CSS("#approve")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, as.Issuer()) {
		t.Errorf("Authorize led to %q, not the authorization server %s", loc, as.Issuer())
	}
	click("approve", "#approve")
	run("back on /oauth", chromedp.WaitVisible(chromedp.CSS("#servers")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != base+"/oauth" {
		t.Errorf("after consent the browser is at %q, want %s/oauth", loc, base)
	}
	if got := text("#flash"); got != "Authorized secure." {
		t.Errorf("flash after the callback: %q", got)
	}
	waitRow("secure", "authorized until ")
	until := strings.TrimPrefix(text("#server-secure .state"), "authorized until ")
	if _, err := time.Parse(time.RFC3339, until); err != nil {
		t.Errorf("expiry %q is not RFC 3339: %v", until, err)
	}
	if got := text("#server-secure .issuer"); got != as.Issuer() {
		t.Errorf("issuer cell %q, want %s", got, as.Issuer())
	}
	if !present("#authorize-secure") || !present("#revoke-secure") || present("#authorize-plain") {
		t.Error("buttons once authorized: want Authorize and Revoke on secure only")
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(shot))
	if err != nil || cfg.Width < 400 || cfg.Height < 150 || len(shot) < 5000 {
		t.Fatalf("screenshot: %d bytes, %dx%d, %v: not a PNG of a rendered page", len(shot), cfg.Width, cfg.Height, err)
	}
	if err := os.WriteFile(screenshotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("measure: /oauth screenshot %s (%dx%d, %d bytes)", screenshotPath, cfg.Width, cfg.Height, len(shot))

	// The token reaches the data plane in a snapshot: calls succeed.
	dp.waitState(t, "secure", "healthy")
	waitCtlState(t, cp, "secure", "healthy")
	if got := callText(t, c, "secure__"+testauth.WhoamiTool, nil); got != "test-user" {
		t.Errorf("whoami through the data plane = %q, want test-user", got)
	}

	// Short-lived tokens: refreshes happen and calls keep succeeding.
	eventually(t, waitTimeout, "the grant to refresh twice with calls succeeding", func() error {
		if _, err := callErr(c, callTimeout, "secure__"+testauth.WhoamiTool, nil); err != nil {
			t.Fatalf("a call failed across token refreshes: %v", err)
		}
		if n := as.Stats().RefreshCalls; n < 2 {
			return fmt.Errorf("%d refreshes so far", n)
		}
		return nil
	})

	// A revoke at the authorization server: the next refresh fails and the
	// server needs authorization again.
	secrets := as.Secrets()
	as.RevokeAll()
	waitCtlState(t, cp, "secure", "needs-authorization")
	dp.waitState(t, "secure", "needs-authorization")
	if _, err := callErr(c, callTimeout, "secure__"+testauth.WhoamiTool, nil); err == nil || !strings.Contains(err.Error(), "needs OAuth authorization") {
		t.Errorf("call after the revoke: err = %v", err)
	}

	// Authorize again from the page, then Revoke with its button.
	as.SetAccessTokenTTL(time.Hour)
	run("reload", chromedp.Navigate(base+"/oauth"), chromedp.WaitVisible(chromedp.CSS("#servers")))
	click("Authorize again", "#authorize-secure")
	run("the consent page again", chromedp.WaitVisible(chromedp.CSS("#approve")))
	click("approve again", "#approve")
	waitRow("secure", "authorized until ")
	dp.waitState(t, "secure", "healthy")
	secrets = append(secrets, as.Secrets()...)
	click("Revoke", "#revoke-secure")
	run("back after revoke", chromedp.WaitVisible(chromedp.CSS("#servers")))
	if got := text("#flash"); got != "Revoked the grant of secure." {
		t.Errorf("flash after Revoke: %q", got)
	}
	waitRow("secure", "needs authorization")
	if present("#revoke-secure") {
		t.Error("Revoke still offered once the grant is gone")
	}
	waitCtlState(t, cp, "secure", "needs-authorization")
	// The grant is gone at the control plane too (and mcpctl shows no secret).
	list := mustCtl(t, cp, "oauth", "list", "-o", "json")
	var grants []struct {
		Server, State string
		Refreshable   bool
	}
	if err := json.Unmarshal([]byte(list), &grants); err != nil {
		t.Fatalf("mcpctl oauth list -o json: %v\n%s", err, list)
	}
	found := false
	for _, g := range grants {
		if g.Server == "secure" {
			found = true
			if g.State != "needs-authorization" || g.Refreshable {
				t.Errorf("after Revoke mcpctl oauth list says %+v", g)
			}
		}
	}
	if !found {
		t.Errorf("mcpctl oauth list does not show secure:\n%s", list)
	}

	// Sign out.
	click("sign out", "#sign-out")
	run("the sign-in form", chromedp.WaitVisible(chromedp.CSS("#token")))

	// No secret in any log or mcpctl output of the run.
	if len(secrets) == 0 {
		t.Fatal("the authorization server reports no secrets: the check below would prove nothing")
	}
	secrets = append(secrets, admin)
	logs := map[string]string{"control plane": cp.log.String(), "data plane": dp.log.String(), "mcpctl oauth list": list}
	for name, out := range logs {
		for _, s := range secrets {
			if len(s) >= 8 && strings.Contains(out, s) {
				t.Errorf("the %s log holds a secret (%s…)", name, s[:4])
			}
		}
		if m := jwtRE.FindString(out); m != "" {
			t.Errorf("the %s log holds a JWT (an access token?): %s…", name, m[:12])
		}
	}
}

// waitCtlState waits until mcpctl status shows server in state.
func waitCtlState(t *testing.T, cp *controlPlane, server, state string) {
	t.Helper()
	eventually(t, waitTimeout, fmt.Sprintf("mcpctl status: %s %s", server, state), func() error {
		s, err := ctlStatus(cp)
		if err != nil {
			return err
		}
		for _, srv := range s.Servers {
			if srv.Name == server {
				if srv.State != state {
					return fmt.Errorf("state %s", srv.State)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not in mcpctl status", server)
	})
}

// newBrowser starts headless Chromium with a fresh profile; it is stopped
// at the end of the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("window-size", "1100,520"),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() {
		cancelT()
		cancel()
		cancelAlloc()
	})
	return tctx
}
