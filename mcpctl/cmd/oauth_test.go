package cmd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestAddOAuthFlags(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("file-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := addFlags{url: "https://h/mcp", oauth: oauthFlags{enabled: true, clientID: "cid", secretFile: secretFile, scopes: []string{"mcp", " read "}},
		changed: changedOf("oauth", "oauth-client-id", "oauth-client-secret-file", "oauth-scopes")}
	req, err := buildCreateRequest("web", nil, f)
	if err != nil {
		t.Fatal(err)
	}
	o := req.GetServer().GetHttp().GetOauth()
	if !o.GetEnabled() || o.GetClientId() != "cid" || o.GetClientSecret() != "file-s3cret" || !slices.Equal(o.GetScopes(), []string{"mcp", "read"}) {
		t.Fatalf("oauth = %v", o)
	}
	// OAuth is for URL servers, and its details need --oauth.
	if _, err := buildCreateRequest("s", []string{"cmd"}, addFlags{oauth: oauthFlags{enabled: true}, changed: changedOf("oauth")}); err == nil || !strings.Contains(err.Error(), "--oauth applies only to --url") {
		t.Fatalf("stdio with --oauth: %v", err)
	}
	if _, err := buildCreateRequest("s", nil, addFlags{url: "https://h/mcp", oauth: oauthFlags{clientID: "x"}, changed: changedOf("oauth-client-id")}); err == nil || !strings.Contains(err.Error(), "need --oauth") {
		t.Fatalf("--oauth-client-id without --oauth: %v", err)
	}
}

func TestUpdateOAuthFlags(t *testing.T) {
	web := func() *mcpmeshv1.Server {
		return &mcpmeshv1.Server{Name: "web", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
			Http: &mcpmeshv1.HttpConfig{Url: "https://h/mcp", Oauth: &mcpmeshv1.OAuthConfig{Enabled: true, ClientId: "a", ClientSecret: "***"}}}
	}
	s := web()
	if _, err := applyUpdate(s, nil, updateFlags{oauth: oauthFlags{scopes: []string{"x"}}}, changedOf("oauth-scopes")); err != nil {
		t.Fatal(err)
	}
	if o := s.GetHttp().GetOauth(); o.GetClientSecret() != "***" || !slices.Equal(o.GetScopes(), []string{"x"}) {
		t.Fatalf("scopes update: %v (the masked secret must stay, meaning keep)", o)
	}
	s = web()
	if _, err := applyUpdate(s, nil, updateFlags{oauth: oauthFlags{clientID: "b"}}, changedOf("oauth-client-id")); err != nil {
		t.Fatal(err)
	}
	if o := s.GetHttp().GetOauth(); o.GetClientId() != "b" || o.GetClientSecret() != "" {
		t.Fatalf("a new client kept the old client's secret: %v", o)
	}
	s = web()
	if _, err := applyUpdate(s, nil, updateFlags{oauth: oauthFlags{disable: true}}, changedOf("no-oauth")); err != nil || s.GetHttp().GetOauth() != nil {
		t.Fatalf("--no-oauth: %v, %v", s.GetHttp().GetOauth(), err)
	}
	if _, err := applyUpdate(web(), nil, updateFlags{oauth: oauthFlags{disable: true, clientID: "c"}}, changedOf("no-oauth", "oauth-client-id")); err == nil {
		t.Fatal("--no-oauth with --oauth-client-id succeeded")
	}
}

func changedOf(names ...string) func(string) bool {
	return func(n string) bool { return slices.Contains(names, n) }
}
