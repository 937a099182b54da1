package registry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/grpc/codes"
)

func oauthSrv(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http: &mcpmeshv1.HttpConfig{Url: "https://" + name + ".example/mcp",
			Oauth: &mcpmeshv1.OAuthConfig{Enabled: true, ClientId: "client-1", ClientSecret: "oauth-s3cret", Scopes: []string{"mcp", "read:all"}}}}
}

func TestOAuthValidation(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, field string
		mod         func(*mcpmeshv1.Server)
	}{
		{"stdio", "server.http.oauth", func(s *mcpmeshv1.Server) {
			s.Transport, s.Stdio = mcpmeshv1.Transport_TRANSPORT_STDIO, &mcpmeshv1.StdioConfig{Command: "x"}
			s.Http = &mcpmeshv1.HttpConfig{Oauth: &mcpmeshv1.OAuthConfig{Enabled: true}}
		}},
		{"secret without id", "server.http.oauth.client_secret", func(s *mcpmeshv1.Server) { s.Http.Oauth.ClientId = "" }},
		{"empty scope", "server.http.oauth.scopes[1]", func(s *mcpmeshv1.Server) { s.Http.Oauth.Scopes[1] = "" }},
		{"scope with space", "server.http.oauth.scopes[0]", func(s *mcpmeshv1.Server) { s.Http.Oauth.Scopes[0] = "a b" }},
		{"scope with quote", "server.http.oauth.scopes[0]", func(s *mcpmeshv1.Server) { s.Http.Oauth.Scopes[0] = `a"b` }},
		{"scope twice", "server.http.oauth.scopes[1]", func(s *mcpmeshv1.Server) { s.Http.Oauth.Scopes[1] = "mcp" }},
		{"client id with space", "server.http.oauth.client_id", func(s *mcpmeshv1.Server) { s.Http.Oauth.ClientId = "a b" }},
		{"authorization header", "server.http.headers", func(s *mcpmeshv1.Server) { s.Http.Headers = map[string]string{"authorization": "Bearer x"} }},
	} {
		s := oauthSrv("v")
		tc.mod(s)
		_, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: s})
		wantCode(t, err, codes.InvalidArgument, tc.field)
	}
	// Disabled OAuth with an Authorization header is fine; so is a public client.
	s := oauthSrv("ok")
	s.Http.Oauth.ClientSecret = ""
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: s}); err != nil {
		t.Fatalf("public client: %v", err)
	}
}

// TestOAuthClientSecretMasked: the client secret is a secret like header
// values: masked in every answer, kept across a read-modify-write.
func TestOAuthClientSecretMasked(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	c, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: oauthSrv("a")})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
	l, _ := e.reg.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	for _, s := range []*mcpmeshv1.Server{c.GetServer(), g.GetServer(), l.GetServers()[0]} {
		if got := s.GetHttp().GetOauth().GetClientSecret(); got != registry.Redacted {
			t.Fatalf("answered client_secret %q, want %q", got, registry.Redacted)
		}
		if s.GetHttp().GetOauth().GetClientId() != "client-1" {
			t.Fatalf("client_id not shown: %v", s.GetHttp().GetOauth())
		}
	}
	s := g.GetServer()
	s.Tags = []string{"t"}
	if _, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: s}); err != nil {
		t.Fatal(err)
	}
	stored, _ := e.st.GetServer(ctx, "a")
	if got := stored.GetHttp().GetOauth().GetClientSecret(); got != "oauth-s3cret" {
		t.Fatalf("redacted round trip stored client_secret %q", got)
	}
}

// TestOAuthChangeDropsGrant: another client, other scopes or OAuth off make
// the grant useless, so the update drops it (a new revision); other changes
// keep it.
func TestOAuthChangeDropsGrant(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := e.reg.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: oauthSrv("a")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*mcpmeshv1.Server)
		kept bool
	}{
		{"tags", func(s *mcpmeshv1.Server) { s.Tags = []string{"x"} }, true},
		{"scopes", func(s *mcpmeshv1.Server) { s.Http.Oauth.Scopes = []string{"mcp"} }, false},
		{"client", func(s *mcpmeshv1.Server) { s.Http.Oauth.ClientId, s.Http.Oauth.ClientSecret = "client-2", "" }, false},
		{"url", func(s *mcpmeshv1.Server) { s.Http.Url = "https://other.example/mcp" }, false},
		{"off", func(s *mcpmeshv1.Server) { s.Http.Oauth = nil }, false},
	} {
		if _, err := e.st.PutOAuthGrant(ctx, storetest.Grant("a", "tok-"+tc.name)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		g, _ := e.reg.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: "a"})
		s := g.GetServer()
		tc.mod(s)
		u, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: s})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = e.st.GetOAuthGrant(ctx, "a")
		if kept := err == nil; kept != tc.kept {
			t.Errorf("%s: grant kept = %v, want %v (%v)", tc.name, kept, tc.kept, err)
		}
		if !tc.kept {
			if rev, _ := e.st.Revision(ctx); u.GetRevision() != rev {
				t.Errorf("%s: answered revision %d, store is at %d", tc.name, u.GetRevision(), rev)
			}
		}
		if tc.name == "off" {
			break
		}
		// Back to the original config for the next case.
		restore := oauthSrv("a")
		restore.ModRevision = 0
		if _, err := e.reg.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: restore}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.GetOAuthGrant(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant after OAuth was turned off: %v", err)
	}
}
