package discovery_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func oauthServer(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{Name: name, Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http: &mcpmeshv1.HttpConfig{Url: "https://" + name + ".example/mcp",
			Oauth: &mcpmeshv1.OAuthConfig{Enabled: true, ClientId: "c", ClientSecret: "client-secret-" + name}}}
}

// TestSnapshotOAuthTokens: data planes receive the access token of every
// enabled OAuth server with a usable grant; an admin on the stream receives
// none, and no client secret.
func TestSnapshotOAuthTokens(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	off := oauthServer("off")
	off.Enabled = proto.Bool(false)
	plain := storetest.Server("plain")
	for _, s := range []*mcpmeshv1.Server{oauthServer("a"), oauthServer("b"), oauthServer("expired"), off, plain} {
		if _, err := e.st.CreateServer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	expired := storetest.Grant("expired", "tok-expired")
	expired.Authorization.ExpiresAt = timestamppb.New(time.Now().Add(-time.Minute))
	noTok := storetest.Grant("b", "")
	for _, g := range []*mcpmeshv1.StoredOAuthGrant{storetest.Grant("a", "tok-a"), noTok, expired, storetest.Grant("off", "tok-off"), storetest.Grant("plain", "tok-plain")} {
		if _, err := e.st.PutOAuthGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	dp := e.connect(t, "dp1", 0).next().GetSnapshot()
	toks := dp.GetOauthTokens()
	if len(toks) != 1 || toks[0].GetServer() != "a" || toks[0].GetAccessToken() != "tok-a" || toks[0].GetTokenType() != "Bearer" ||
		toks[0].GetExpiresAt() == nil {
		t.Fatalf("data plane oauth_tokens = %v, want only a's", toks)
	}
	admin := e.connectAs(t, "ROLE_ADMIN", "dp2").next().GetSnapshot()
	if len(admin.GetOauthTokens()) != 0 {
		t.Fatalf("admin snapshot carries oauth tokens: %v", admin.GetOauthTokens())
	}
	for _, s := range admin.GetServers() {
		if sec := s.GetHttp().GetOauth().GetClientSecret(); sec != "" && sec != "***" {
			t.Fatalf("admin snapshot shows the client secret of %s: %q", s.GetName(), sec)
		}
	}
}

// TestPublicURL: a data plane's public URL is kept when it is an absolute
// http(s) URL, dropped otherwise (the status page links to it).
func TestPublicURL(t *testing.T) {
	e := start(t)
	for id, tc := range map[string]struct{ in, want string }{
		"good":  {"https://mcp.example.com/", "https://mcp.example.com"},
		"js":    {"javascript:alert(1)", ""},
		"query": {"http://x.example/?a=b", ""},
		"none":  {"", ""},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := e.client.StreamConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: &mcpmeshv1.Hello{
			DataplaneId: id, Version: "test", PublicUrl: tc.in}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		e.waitFor(t, id+" connected", func() bool { return e.dataplane(id).GetConnected() })
		if got := e.dataplane(id).GetPublicUrl(); got != tc.want {
			t.Errorf("%s: public_url %q stored as %q, want %q", id, tc.in, got, tc.want)
		}
		cancel()
	}
}
