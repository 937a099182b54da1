package access

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// TokenStore is the part of the store the token service uses.
type TokenStore interface {
	TokenReader
	CreateToken(ctx context.Context, tok *mcpmeshv1.StoredToken) error
	ListTokens(ctx context.Context) ([]*mcpmeshv1.StoredToken, error)
	RevokeToken(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredToken, error)
}

// MaxDescription bounds a token's description, in bytes.
const MaxDescription = 256

// Service implements mcpmeshv1.TokenService.
type Service struct {
	mcpmeshv1.UnimplementedTokenServiceServer
	st    TokenStore
	authn *Authenticator
	log   *slog.Logger
	now   func() time.Time
}

var _ mcpmeshv1.TokenServiceServer = (*Service)(nil)

// NewService returns the token service over st; revocations end the open
// streams that authn tracks.
func NewService(st TokenStore, authn *Authenticator, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, authn: authn, log: log, now: time.Now}
}

// CreateToken implements TokenService.
func (s *Service) CreateToken(ctx context.Context, req *mcpmeshv1.CreateTokenRequest) (*mcpmeshv1.CreateTokenResponse, error) {
	if authtoken.RoleName(req.GetRole()) == "unknown" {
		return nil, status.Errorf(codes.InvalidArgument, "role: must be one of admin, viewer, dataplane")
	}
	ttl, err := checkCredential(req.GetTtl(), req.GetDescription())
	if err != nil {
		return nil, err
	}
	secret, id, hash, err := mint()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	now := s.now()
	t := &mcpmeshv1.Token{Id: id, Role: req.GetRole(), CreatedAt: timestamppb.New(now), Description: req.GetDescription()}
	if ttl > 0 {
		t.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	if err := s.st.CreateToken(ctx, &mcpmeshv1.StoredToken{Token: t, SecretSha256: hash}); err != nil {
		return nil, s.storeError(ctx, "create token", err)
	}
	caller, _ := IdentityFrom(ctx)
	s.log.InfoContext(ctx, "token created", "token_id", id, "role", authtoken.RoleName(t.GetRole()), "ttl", ttl, "by", caller.TokenID)
	return &mcpmeshv1.CreateTokenResponse{Token: t, Secret: secret}, nil
}

// ListTokens implements TokenService.
func (s *Service) ListTokens(ctx context.Context, _ *mcpmeshv1.ListTokensRequest) (*mcpmeshv1.ListTokensResponse, error) {
	list, err := s.st.ListTokens(ctx)
	if err != nil {
		return nil, s.storeError(ctx, "list tokens", err)
	}
	out := &mcpmeshv1.ListTokensResponse{}
	for _, t := range list {
		out.Tokens = append(out.Tokens, t.GetToken())
	}
	return out, nil
}

// RevokeToken implements TokenService.
func (s *Service) RevokeToken(ctx context.Context, req *mcpmeshv1.RevokeTokenRequest) (*mcpmeshv1.RevokeTokenResponse, error) {
	id := req.GetId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "id: must not be empty")
	}
	if id == BootstrapID {
		return nil, status.Error(codes.InvalidArgument, "id: the bootstrap admin.token cannot be revoked; delete the file and restart the control plane to replace it")
	}
	rec, err := s.st.RevokeToken(ctx, id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "token %q does not exist (see 'mcpctl token list')", id)
	}
	if err != nil {
		return nil, s.storeError(ctx, "revoke token", err)
	}
	n := s.authn.Revoked(id)
	caller, _ := IdentityFrom(ctx)
	s.log.InfoContext(ctx, "token revoked", "token_id", id, "streams_ended", n, "by", caller.TokenID)
	return &mcpmeshv1.RevokeTokenResponse{Token: rec.GetToken()}, nil
}

func (s *Service) storeError(ctx context.Context, op string, err error) error {
	return storeError(ctx, s.log, op, err)
}

// storeError turns a store failure into the caller's error: its own
// cancellation or deadline as such, anything else logged and Unavailable.
func storeError(ctx context.Context, log *slog.Logger, op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	log.ErrorContext(ctx, op+" failed", "err", err)
	return status.Errorf(codes.Unavailable, "%s: the control plane store is unavailable", op)
}

// checkCredential checks what every issued credential (role token, client
// key) is created with: a ttl that is valid and not negative (zero: it does
// not expire) and a bounded description.
func checkCredential(ttlpb *durationpb.Duration, description string) (time.Duration, error) {
	if err := ttlpb.CheckValid(); ttlpb != nil && err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "ttl: %v", err)
	}
	ttl := ttlpb.AsDuration()
	if ttl < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "ttl: must not be negative, got %s", ttl)
	}
	if len(description) > MaxDescription {
		return 0, status.Errorf(codes.InvalidArgument, "description: at most %d bytes, got %d", MaxDescription, len(description))
	}
	return ttl, nil
}

// WhoAmI describes the calling credential. Any role may ask.
func (s *Service) WhoAmI(ctx context.Context, _ *mcpmeshv1.WhoAmIRequest) (*mcpmeshv1.WhoAmIResponse, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no credential")
	}
	resp := &mcpmeshv1.WhoAmIResponse{Id: id.TokenID, Role: id.Role}
	if !id.ExpiresAt.IsZero() {
		resp.ExpiresAt = timestamppb.New(id.ExpiresAt)
	}
	return resp, nil
}
