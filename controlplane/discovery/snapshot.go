package discovery

import (
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/internal/settings"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BuildSnapshot returns the config snapshot data planes receive for state:
// its enabled servers, effective settings, the cluster secret and the
// previous ones still accepted, and the client keys live when it is built
// (unrevoked, unexpired; data planes check expiry again on every request,
// since a snapshot outlives the moment). The
// registry builds it too, to refuse a write whose snapshot would not fit in
// a gRPC message. The snapshot shares state's messages.
func BuildSnapshot(state *store.State) *mcpmeshv1.ConfigSnapshot {
	snap := &mcpmeshv1.ConfigSnapshot{
		Revision:      state.Revision,
		Settings:      settings.Effective(state.Settings),
		ClusterSecret: state.ClusterSecret,
	}
	for _, p := range state.PreviousSecrets {
		snap.PreviousSecrets = append(snap.PreviousSecrets, &mcpmeshv1.PreviousSecret{Secret: p.Secret, ExpiresAt: timestamppb.New(p.ExpiresAt)})
	}
	for _, srv := range state.Servers {
		if srv.Enabled == nil || srv.GetEnabled() {
			snap.Servers = append(snap.Servers, srv) // already sorted by name
		}
	}
	now := time.Now()
	for _, k := range state.ClientKeys {
		if k.GetKey().GetRevokedAt() != nil {
			continue
		}
		if exp := k.GetKey().GetExpiresAt(); exp != nil && !now.Before(exp.AsTime()) {
			continue
		}
		snap.ClientKeys = append(snap.ClientKeys, k) // sorted by id
	}
	snap.OauthTokens = oauthTokens(state, snap.Servers, now)
	return snap
}

// oauthTokens are the access tokens of the enabled OAuth servers that have
// a usable grant: a token, unexpired when the snapshot is built. Masked
// leaves them out, so only dataplane credentials receive them.
func oauthTokens(state *store.State, enabled []*mcpmeshv1.Server, now time.Time) []*mcpmeshv1.OAuthAccess {
	oauth := make(map[string]bool, len(enabled))
	for _, srv := range enabled {
		if srv.GetHttp().GetOauth().GetEnabled() {
			oauth[srv.GetName()] = true
		}
	}
	var out []*mcpmeshv1.OAuthAccess
	for _, g := range state.OAuthGrants { // sorted by server name
		name := g.GetAuthorization().GetServer()
		if !oauth[name] || g.GetAccessToken() == "" {
			continue
		}
		exp := g.GetAuthorization().GetExpiresAt()
		if exp != nil && !now.Before(exp.AsTime()) {
			continue
		}
		typ := g.GetTokenType()
		if typ == "" {
			typ = "Bearer"
		}
		out = append(out, &mcpmeshv1.OAuthAccess{Server: name, AccessToken: g.GetAccessToken(), TokenType: typ, ExpiresAt: exp})
	}
	return out
}

// Masked returns a copy of snap without a secret in it, for a credential
// allowed on the config stream that is not a data plane's (an admin token):
// env and header values, secret args and URL credentials are masked as the
// registry masks them, and the cluster secrets are left out, so a data plane
// given such a snapshot refuses it rather than serve with a key of its own.
func Masked(snap *mcpmeshv1.ConfigSnapshot) *mcpmeshv1.ConfigSnapshot {
	out := &mcpmeshv1.ConfigSnapshot{Revision: snap.GetRevision(), Settings: snap.GetSettings()}
	for _, srv := range snap.GetServers() {
		out.Servers = append(out.Servers, maskServer(srv))
	}
	return out
}

func maskServer(s *mcpmeshv1.Server) *mcpmeshv1.Server {
	out := proto.Clone(s).(*mcpmeshv1.Server)
	out.Redacted = true
	if sc := out.GetStdio(); sc != nil {
		sc.Env = redact.Values(sc.GetEnv())
		sc.Args = redact.Args(sc.GetArgs(), sc.GetSecretArgs())
	}
	if h := out.GetHttp(); h != nil {
		h.Headers = redact.Values(h.GetHeaders())
		h.Url = redact.URL(h.GetUrl())
		if o := h.GetOauth(); o.GetClientSecret() != "" {
			o.ClientSecret = redact.Mask
		}
	}
	out.Endpoints = redact.URLs(out.GetEndpoints())
	return out
}
