package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/internal/oauthpaths"
)

// Clock is the time the service reads and waits on; tests inject one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// maxRedirectURI bounds the redirect URI a caller gives.
const maxRedirectURI = 2048

// Service implements OAuthService and refreshes grants before they
// expire (Run).
type Service struct {
	mcpmeshv1.UnimplementedOAuthServiceServer

	st    store.Store
	log   *slog.Logger
	clock Clock
	hc    *http.Client

	refreshes singleflight.Group

	mu sync.Mutex
	// clients registered (RFC 7591) by this replica, by
	// server, issuer and redirect URI: a new redirect URI registers again.
	clients map[string]client
}

// Option configures a Service.
type Option func(*Service)

// WithClock sets the clock (tests).
func WithClock(c Clock) Option { return func(s *Service) { s.clock = c } }

// WithHTTPClient sets the client of every outbound call (tests); the
// default applies the egress policy (AllowPrivateEgress).
func WithHTTPClient(hc *http.Client) Option { return func(s *Service) { s.hc = hc } }

// AllowPrivateEgress lets discovery and token calls reach link-local and
// metadata addresses, as --allow-private-egress lets backends.
func AllowPrivateEgress(allow bool) Option {
	return func(s *Service) { s.hc = newHTTPClient(allow) }
}

// New returns the service over st.
func New(st store.Store, log *slog.Logger, opts ...Option) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, log: log, clock: realClock{}, clients: map[string]client{}}
	for _, o := range opts {
		o(s)
	}
	if s.hc == nil {
		s.hc = newHTTPClient(false)
	}
	return s
}

// storeStatus maps a store error to a gRPC status naming what failed.
func storeStatus(what string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: %v", what, err)
	case errors.Is(err, store.ErrUnavailable):
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// oauthServer returns the named server if it uses OAuth.
func (s *Service) oauthServer(ctx context.Context, name string) (*mcpmeshv1.Server, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "server: is required")
	}
	if err := names.ValidateServer(name); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "server: %v", err)
	}
	srv, err := s.st.GetServer(ctx, name)
	if err != nil {
		return nil, storeStatus(fmt.Sprintf("server %q", name), err)
	}
	if !srv.GetHttp().GetOauth().GetEnabled() {
		return nil, status.Errorf(codes.FailedPrecondition, "server %q does not use OAuth: enable it with mcpctl server update %s --oauth", name, name)
	}
	return srv, nil
}

// view is the Authorization a caller sees of a grant (nil: none) of srv:
// never a token; the state says what an operator must do.
func (s *Service) view(srv *mcpmeshv1.Server, g *mcpmeshv1.StoredOAuthGrant) *mcpmeshv1.Authorization {
	if !srv.GetHttp().GetOauth().GetEnabled() {
		return &mcpmeshv1.Authorization{Server: srv.GetName(), State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NOT_REQUIRED}
	}
	if g == nil {
		return &mcpmeshv1.Authorization{Server: srv.GetName(), State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION,
			ClientId: srv.GetHttp().GetOauth().GetClientId(), Scopes: srv.GetHttp().GetOauth().GetScopes()}
	}
	a := proto.CloneOf(g.GetAuthorization())
	a.Refreshable = g.GetRefreshToken() != ""
	expired := a.GetExpiresAt() != nil && !s.clock.Now().Before(a.GetExpiresAt().AsTime())
	switch a.GetState() {
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED:
		if g.GetAccessToken() == "" || (expired && !a.Refreshable) {
			a.State = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION
		}
	case mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR:
		// An error without a token stays one: last_error says what to fix.
		if g.GetAccessToken() != "" && expired && !a.Refreshable {
			a.State = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION
		}
	}
	if g.GetAccessToken() == "" {
		a.ExpiresAt = nil
	}
	return a
}

// ListAuthorizations implements OAuthService.
func (s *Service) ListAuthorizations(ctx context.Context, req *mcpmeshv1.ListAuthorizationsRequest) (*mcpmeshv1.ListAuthorizationsResponse, error) {
	st, err := s.st.State(ctx)
	if err != nil {
		return nil, storeStatus("list authorizations", err)
	}
	grants := make(map[string]*mcpmeshv1.StoredOAuthGrant, len(st.OAuthGrants))
	for _, g := range st.OAuthGrants {
		grants[g.GetAuthorization().GetServer()] = g
	}
	out := &mcpmeshv1.ListAuthorizationsResponse{}
	for _, srv := range st.Servers { // sorted by name
		if !req.GetIncludeAll() && !srv.GetHttp().GetOauth().GetEnabled() {
			continue
		}
		out.Authorizations = append(out.Authorizations, s.view(srv, grants[srv.GetName()]))
	}
	return out, nil
}

func random32() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkRedirectURI accepts an absolute http(s) URL without fragment or
// credentials.
func checkRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("is required: the data plane's <public-url>/oauth/callback")
	}
	if len(raw) > maxRedirectURI {
		return fmt.Errorf("is %d bytes long: at most %d are allowed", len(raw), maxRedirectURI)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" || u.User != nil {
		return errors.New("must be an absolute http(s) URL without fragment or credentials")
	}
	return nil
}

// publicHTTPS reports whether a redirect URI is https on a public host,
// the only case where a client ID metadata document can work: the
// authorization server fetches the document from the client_id URL, which
// it can reach only on a public name, and a document served over plain
// http or from a private or loopback address is refused by the spec.
func publicHTTPS(redirectURI string) bool {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme != "https" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") || !strings.Contains(h, ".") {
		return false
	}
	if a, err := netip.ParseAddr(h); err == nil && (a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified()) {
		return false
	}
	return true
}

// ClientMetadataPath and CallbackPath are the data plane's paths of the
// client ID metadata document and the OAuth callback (internal/oauthpaths).
const (
	ClientMetadataPath = oauthpaths.ClientMetadata
	CallbackPath       = oauthpaths.Callback
)

// metadataClientID is the client_id of the client ID metadata document
// that goes with redirectURI: <public URL>/oauth/callback gives
// <public URL>/oauth/client-metadata.json, path prefix included (a data
// plane behind https://gw.example.com/mcpmesh serves its document there,
// not at the origin's root). ok is false when no document can work: the
// redirect URI is not public https, or not a data plane's callback.
func metadataClientID(redirectURI string) (string, bool) {
	if !publicHTTPS(redirectURI) {
		return "", false
	}
	base, ok := strings.CutSuffix(redirectURI, CallbackPath)
	if !ok || strings.ContainsAny(base, "?#") {
		return "", false
	}
	return base + ClientMetadataPath, true
}

// clientFor picks the client Begin uses: the configured one, else a client
// ID metadata document, else a registration of redirectURI.
func (s *Service) clientFor(ctx context.Context, srv *mcpmeshv1.Server, d *discovery, redirectURI string) (client, error) {
	o := srv.GetHttp().GetOauth()
	if o.GetClientId() != "" {
		if o.GetClientSecret() != "" {
			method := "client_secret_basic"
			if len(d.as.TokenEndpointAuthMethodsSupported) > 0 && !containsStr(d.as.TokenEndpointAuthMethodsSupported, method) &&
				containsStr(d.as.TokenEndpointAuthMethodsSupported, "client_secret_post") {
				method = "client_secret_post"
			}
			return client{id: o.GetClientId(), secret: o.GetClientSecret(), authMethod: method}, nil
		}
		return client{id: o.GetClientId(), authMethod: "none"}, nil
	}
	if id, ok := metadataClientID(redirectURI); ok && d.as.ClientIDMetadataDocumentSupported {
		return client{id: id, authMethod: "none"}, nil
	}
	if d.as.RegistrationEndpoint == "" {
		return client{}, fmt.Errorf("authorization server %s offers no dynamic client registration: register a client there and give it with mcpctl server update %s --oauth-client-id ID [--oauth-client-secret-file F]",
			remoteText(d.as.Issuer), srv.GetName())
	}
	key := srv.GetName() + "\x00" + d.as.Issuer + "\x00" + redirectURI
	s.mu.Lock()
	c, ok := s.clients[key]
	s.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := register(ctx, s.hc, &d.as, redirectURI)
	if err != nil {
		return client{}, err
	}
	s.mu.Lock()
	s.clients[key] = c
	s.mu.Unlock()
	s.log.Info("oauth client registered", "server", srv.GetName(), "issuer", d.as.Issuer, "client_id", c.id)
	return c, nil
}

func containsStr(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// recordError keeps why a flow failed in the server's grant (creating an
// empty one when there is none) for ListAuthorizations; a usable grant
// keeps its state.
func (s *Service) recordError(ctx context.Context, server string, msg string) {
	g, err := s.st.GetOAuthGrant(ctx, server)
	switch {
	case errors.Is(err, store.ErrNotFound):
		g = &mcpmeshv1.StoredOAuthGrant{Authorization: &mcpmeshv1.Authorization{Server: server, State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR}}
	case err != nil:
		return
	}
	if g.GetAccessToken() == "" {
		g.Authorization.State = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR
	}
	g.Authorization.LastError = msg
	if _, err := s.st.PutOAuthGrant(ctx, g); err != nil {
		s.log.Warn("cannot record an oauth error", "server", server, "err", err)
	}
}

// BeginAuthorization implements OAuthService.
func (s *Service) BeginAuthorization(ctx context.Context, req *mcpmeshv1.BeginAuthorizationRequest) (*mcpmeshv1.BeginAuthorizationResponse, error) {
	srv, err := s.oauthServer(ctx, req.GetServer())
	if err != nil {
		return nil, err
	}
	if err := checkRedirectURI(req.GetRedirectUri()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "redirect_uri: %v", err)
	}
	sse := srv.GetTransport() == mcpmeshv1.Transport_TRANSPORT_SSE
	d, err := discover(ctx, s.hc, srv.GetHttp().GetUrl(), sse)
	if err != nil {
		s.recordError(ctx, srv.GetName(), err.Error())
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	c, err := s.clientFor(ctx, srv, d, req.GetRedirectUri())
	if err != nil {
		s.recordError(ctx, srv.GetName(), err.Error())
		return nil, status.Errorf(codes.FailedPrecondition, "%v", err)
	}
	scopes := srv.GetHttp().GetOauth().GetScopes()
	if len(scopes) == 0 {
		scopes = d.scopes
	}
	verifier := random32()
	sum := sha256.Sum256([]byte(verifier))
	state := srv.GetName() + "." + random32()
	expires := s.clock.Now().Add(store.PendingTTL)
	p := &mcpmeshv1.StoredOAuthPending{
		State: state, Server: srv.GetName(), CodeVerifier: verifier, RedirectUri: req.GetRedirectUri(),
		ClientId: c.id, ClientSecret: c.secret, TokenEndpoint: d.as.TokenEndpoint, RevocationEndpoint: d.as.RevocationEndpoint,
		Issuer: d.as.Issuer, Resource: d.resource, Scopes: scopes, ExpiresAt: timestamppb.New(expires),
	}
	if err := s.st.PutOAuthPending(ctx, p); err != nil {
		return nil, storeStatus("keep the pending authorization", err)
	}
	u, _ := url.Parse(d.as.AuthorizationEndpoint)
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", c.id)
	q.Set("redirect_uri", req.GetRedirectUri())
	if len(scopes) > 0 {
		q.Set("scope", strings.Join(scopes, " "))
	}
	q.Set("state", state)
	q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
	q.Set("code_challenge_method", "S256")
	q.Set("resource", d.resource)
	u.RawQuery = q.Encode()
	s.log.Info("oauth authorization started", "server", srv.GetName(), "issuer", d.as.Issuer, "client_id", c.id)
	return &mcpmeshv1.BeginAuthorizationResponse{AuthorizationUrl: u.String(), State: state, ExpiresAt: timestamppb.New(expires)}, nil
}

// clientOf returns the client a stored flow or grant uses.
func clientOf(id, secret string, authBasic bool) client {
	switch {
	case secret == "":
		return client{id: id, authMethod: "none"}
	case authBasic:
		return client{id: id, secret: secret, authMethod: "client_secret_basic"}
	}
	return client{id: id, secret: secret, authMethod: "client_secret_post"}
}

// CompleteAuthorization implements OAuthService.
func (s *Service) CompleteAuthorization(ctx context.Context, req *mcpmeshv1.CompleteAuthorizationRequest) (*mcpmeshv1.CompleteAuthorizationResponse, error) {
	if req.GetState() == "" {
		return nil, status.Error(codes.InvalidArgument, "state: is required (the callback's state parameter)")
	}
	if req.GetCode() == "" && req.GetError() == "" {
		return nil, status.Error(codes.InvalidArgument, "code: is required (or error, when the authorization server refused)")
	}
	p, err := s.st.TakeOAuthPending(ctx, req.GetState(), s.clock.Now())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.FailedPrecondition, "this authorization is unknown, completed already or expired (%s): start again from the /oauth page", store.PendingTTL)
		}
		return nil, storeStatus("take the pending authorization", err)
	}
	if req.GetError() != "" {
		msg := fmt.Sprintf("authorization server %s said %s", remoteText(p.GetIssuer()), remoteText(req.GetError()))
		if req.GetErrorDescription() != "" {
			msg += ": " + remoteText(req.GetErrorDescription())
		}
		s.recordError(ctx, p.GetServer(), msg)
		return nil, status.Errorf(codes.FailedPrecondition, "authorize server %q: %s", p.GetServer(), msg)
	}
	srv, err := s.oauthServer(ctx, p.GetServer())
	if err != nil {
		return nil, err
	}
	if id := srv.GetHttp().GetOauth().GetClientId(); id != "" && id != p.GetClientId() {
		return nil, status.Errorf(codes.FailedPrecondition, "server %q changed its OAuth client while the authorization ran: start again", p.GetServer())
	}
	c := clientOf(p.GetClientId(), p.GetClientSecret(), true)
	if cfg := srv.GetHttp().GetOauth(); cfg.GetClientId() == c.id && cfg.GetClientSecret() != "" {
		c = client{id: c.id, secret: cfg.GetClientSecret(), authMethod: "client_secret_basic"}
	}
	now := s.clock.Now()
	tr, err := token(ctx, s.hc, p.GetTokenEndpoint(), c, url.Values{
		"grant_type": {"authorization_code"}, "code": {req.GetCode()}, "redirect_uri": {p.GetRedirectUri()},
		"code_verifier": {p.GetCodeVerifier()}, "resource": {p.GetResource()},
	})
	if err != nil {
		msg := fmt.Sprintf("code exchange: %v", err)
		s.recordError(ctx, p.GetServer(), msg)
		return nil, status.Errorf(codes.FailedPrecondition, "authorize server %q: %s", p.GetServer(), msg)
	}
	scopes := p.GetScopes()
	if tr.Scope != "" {
		scopes = strings.Fields(tr.Scope)
	}
	g := &mcpmeshv1.StoredOAuthGrant{
		Authorization: &mcpmeshv1.Authorization{
			Server: p.GetServer(), State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED,
			Issuer: p.GetIssuer(), ClientId: c.id, Scopes: scopes, AuthorizedAt: timestamppb.New(now),
			Refreshable: tr.RefreshToken != "",
		},
		AccessToken: tr.AccessToken, RefreshToken: tr.RefreshToken, TokenType: tr.TokenType,
		TokenEndpoint: p.GetTokenEndpoint(), RevocationEndpoint: p.GetRevocationEndpoint(),
		ClientSecret: c.secret, Resource: p.GetResource(),
	}
	if tr.ExpiresIn > 0 {
		g.Authorization.ExpiresAt = timestamppb.New(now.Add(time.Duration(tr.ExpiresIn) * time.Second))
	}
	rev, err := s.st.PutOAuthGrant(ctx, g)
	if err != nil {
		return nil, storeStatus(fmt.Sprintf("store the grant of %q", p.GetServer()), err)
	}
	if rev == 0 {
		rev, _ = s.st.Revision(ctx)
	}
	s.log.Info("oauth authorization completed", "server", p.GetServer(), "issuer", p.GetIssuer(), "revision", rev)
	return &mcpmeshv1.CompleteAuthorizationResponse{Authorization: s.view(srv, g), Revision: rev}, nil
}

// RevokeAuthorization implements OAuthService.
func (s *Service) RevokeAuthorization(ctx context.Context, req *mcpmeshv1.RevokeAuthorizationRequest) (*mcpmeshv1.RevokeAuthorizationResponse, error) {
	if req.GetServer() == "" {
		return nil, status.Error(codes.InvalidArgument, "server: is required")
	}
	srv, err := s.st.GetServer(ctx, req.GetServer())
	if err != nil {
		return nil, storeStatus(fmt.Sprintf("server %q", req.GetServer()), err)
	}
	g, err := s.st.GetOAuthGrant(ctx, req.GetServer())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, storeStatus(fmt.Sprintf("grant of %q", req.GetServer()), err)
	}
	var lastErr string
	if g != nil && g.GetRevocationEndpoint() != "" {
		c := refreshClient(g)
		// Revoking the refresh token ends the grant at most servers; the
		// access token too, for those that keep them apart.
		for _, t := range []struct{ tok, hint string }{{g.GetRefreshToken(), "refresh_token"}, {g.GetAccessToken(), "access_token"}} {
			if t.tok == "" {
				continue
			}
			if err := revoke(ctx, s.hc, g.GetRevocationEndpoint(), c, t.tok, t.hint); err != nil {
				lastErr = err.Error()
				s.log.Warn("oauth revocation failed; forgetting the grant anyway", "server", req.GetServer(), "err", err)
			}
		}
	}
	rev, err := s.st.DeleteOAuthGrant(ctx, req.GetServer())
	if err != nil {
		return nil, storeStatus(fmt.Sprintf("delete the grant of %q", req.GetServer()), err)
	}
	if rev == 0 {
		rev, _ = s.st.Revision(ctx)
	}
	a := s.view(srv, nil)
	a.LastError = lastErr
	s.log.Info("oauth authorization revoked", "server", req.GetServer(), "revision", rev)
	return &mcpmeshv1.RevokeAuthorizationResponse{Authorization: a, Revision: rev}, nil
}

// refreshClient is the client a grant refreshes with: a secret goes in
// HTTP Basic (RFC 6749's must-support method).
func refreshClient(g *mcpmeshv1.StoredOAuthGrant) client {
	return clientOf(g.GetAuthorization().GetClientId(), g.GetClientSecret(), true)
}

func tokenSHA256(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// RefreshAuthorization implements OAuthService.
func (s *Service) RefreshAuthorization(ctx context.Context, req *mcpmeshv1.RefreshAuthorizationRequest) (*mcpmeshv1.RefreshAuthorizationResponse, error) {
	srv, err := s.oauthServer(ctx, req.GetServer())
	if err != nil {
		return nil, err
	}
	g, err := s.st.GetOAuthGrant(ctx, srv.GetName())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, storeStatus(fmt.Sprintf("grant of %q", srv.GetName()), err)
	}
	// The caller saw an older token than the one held: hand that out.
	fresh := g.GetAccessToken() != "" && tokenSHA256(g.GetAccessToken()) != strings.ToLower(req.GetRejectedTokenSha256()) &&
		(g.GetAuthorization().GetExpiresAt() == nil || s.clock.Now().Before(g.GetAuthorization().GetExpiresAt().AsTime()))
	if g != nil && g.GetRefreshToken() != "" && !fresh {
		g, err = s.refresh(ctx, srv.GetName(), strings.ToLower(req.GetRejectedTokenSha256()))
		if err != nil && g == nil {
			return nil, status.Errorf(codes.Unavailable, "refresh the grant of %q: %v", srv.GetName(), err)
		}
	}
	resp := &mcpmeshv1.RefreshAuthorizationResponse{Authorization: s.view(srv, g)}
	resp.Revision, _ = s.st.Revision(ctx)
	if g != nil && g.GetRefreshToken() == "" && !fresh && resp.Authorization.GetState() == mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED {
		// The token the backend refused is all there is: handing it back
		// would only be refused again.
		resp.Authorization.State = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_NEEDS_AUTHORIZATION
		return resp, nil
	}
	if resp.Authorization.GetState() == mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED ||
		(resp.Authorization.GetState() == mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR && g.GetAccessToken() != "") {
		resp.ExpiresAt = resp.Authorization.GetExpiresAt()
		if access.ReceivesSecrets(ctx) {
			resp.AccessToken = g.GetAccessToken()
		}
	}
	return resp, nil
}

// refresh refreshes one server's grant; concurrent calls for one server
// share one refresh, and a refresh asked for because of the token whose
// SHA-256 is rejected (empty: the loop's) is skipped when the store holds
// another, unexpired one by then. It returns the grant as stored
// afterwards (also when the refresh failed and the failure was recorded)
// and the failure.
func (s *Service) refresh(ctx context.Context, server, rejected string) (*mcpmeshv1.StoredOAuthGrant, error) {
	type result struct {
		g   *mcpmeshv1.StoredOAuthGrant
		err error
	}
	// The shared refresh must not end with the first caller's context.
	v, _, _ := s.refreshes.Do(server, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*callTimeout)
		defer cancel()
		g, err := s.refreshOnce(rctx, server, rejected)
		return result{g, err}, nil
	})
	r := v.(result)
	return r.g, r.err
}

func (s *Service) refreshOnce(ctx context.Context, server, rejected string) (*mcpmeshv1.StoredOAuthGrant, error) {
	g, err := s.st.GetOAuthGrant(ctx, server)
	if err != nil {
		return nil, err
	}
	if rejected != "" && g.GetAccessToken() != "" && tokenSHA256(g.GetAccessToken()) != rejected &&
		(g.GetAuthorization().GetExpiresAt() == nil || s.clock.Now().Before(g.GetAuthorization().GetExpiresAt().AsTime())) {
		return g, nil // refreshed by someone else since the caller read it
	}
	if g.GetRefreshToken() == "" {
		return g, errors.New("no refresh token is held: authorize again")
	}
	now := s.clock.Now()
	used := g.GetRefreshToken()
	tr, err := token(ctx, s.hc, g.GetTokenEndpoint(), refreshClient(g), url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {used}, "resource": {g.GetResource()},
	})
	var oe *oauthError
	switch {
	case errors.As(err, &oe) && oe.code == "invalid_grant":
		// Another replica may have refreshed (and rotated) meanwhile: then
		// its grant is the good one.
		if cur, gerr := s.st.GetOAuthGrant(ctx, server); gerr == nil && cur.GetRefreshToken() != used {
			return cur, nil
		}
		g.Authorization.State = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_REFRESH_FAILED
		g.Authorization.LastError = err.Error()
		g.Authorization.ExpiresAt = nil
		g.AccessToken, g.RefreshToken = "", ""
		g.Authorization.Refreshable = false
		if _, perr := s.st.PutOAuthGrant(ctx, g); perr != nil {
			return nil, fmt.Errorf("%v; and storing that failed: %w", err, perr)
		}
		s.log.Warn("oauth refresh refused: the server must be authorized again", "server", server, "err", err)
		return g, err
	case err != nil:
		g.Authorization.State = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_ERROR
		g.Authorization.LastError = fmt.Sprintf("refresh: %v", err)
		if _, perr := s.st.PutOAuthGrant(ctx, g); perr != nil {
			return nil, fmt.Errorf("%v; and storing that failed: %w", err, perr)
		}
		s.log.Warn("oauth refresh failed; the current token is kept until it expires", "server", server, "err", err)
		return g, err
	}
	g.AccessToken, g.TokenType = tr.AccessToken, tr.TokenType
	if tr.RefreshToken != "" {
		g.RefreshToken = tr.RefreshToken // rotation
	}
	a := g.Authorization
	a.State, a.LastError, a.RefreshedAt = mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED, "", timestamppb.New(now)
	a.ExpiresAt = nil
	if tr.ExpiresIn > 0 {
		a.ExpiresAt = timestamppb.New(now.Add(time.Duration(tr.ExpiresIn) * time.Second))
	}
	if tr.Scope != "" {
		a.Scopes = strings.Fields(tr.Scope)
	}
	a.Refreshable = g.GetRefreshToken() != ""
	rev, err := s.st.PutOAuthGrant(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("store the refreshed grant: %w", err)
	}
	s.log.Info("oauth grant refreshed", "server", server, "revision", rev, "expires_at", a.GetExpiresAt().AsTime())
	return g, nil
}
