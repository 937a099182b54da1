package access

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
)

// ClientKeyPrefix starts every client API key ("mcpk_<id>_<secret>", the
// same shape as a role token), so that a data plane taking both keys and
// OAuth tokens tells them apart, and a leaked key is recognisable.
const ClientKeyPrefix = "mcpk_"

// Bounds of a client key's tags (the same rules as a server's tags).
const MaxClientKeyTags = 64

// DefaultMaxLiveClientKeys bounds the live (unrevoked, unexpired) client
// keys: every one rides in every config snapshot (about 100 bytes each), so
// without a bound key creation could grow the snapshot past its gRPC limit.
const DefaultMaxLiveClientKeys = 10000

// ClientKeyStore is the part of the store the client key service uses.
type ClientKeyStore interface {
	CreateClientKey(ctx context.Context, key *mcpmeshv1.StoredClientKey) (uint64, error)
	ListClientKeys(ctx context.Context) ([]*mcpmeshv1.StoredClientKey, error)
	RevokeClientKey(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredClientKey, error)
}

// ClientKeyService implements mcpmeshv1.ClientKeyService. The keys are
// config: each write bumps the revision, so data planes receive the live
// ones (hashes and tags) in their next snapshot and check clients
// themselves.
type ClientKeyService struct {
	mcpmeshv1.UnimplementedClientKeyServiceServer
	st      ClientKeyStore
	log     *slog.Logger
	now     func() time.Time
	maxLive int
}

var _ mcpmeshv1.ClientKeyServiceServer = (*ClientKeyService)(nil)

// NewClientKeyService returns the client key service over st.
func NewClientKeyService(st ClientKeyStore, log *slog.Logger) *ClientKeyService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ClientKeyService{st: st, log: log, now: time.Now, maxLive: DefaultMaxLiveClientKeys}
}

// SetMaxLive changes the bound on live client keys (tests use a small one).
func (s *ClientKeyService) SetMaxLive(n int) { s.maxLive = n }

// checkRoom refuses a new key once maxLive keys are live.
func (s *ClientKeyService) checkRoom(ctx context.Context, now time.Time) error {
	list, err := s.st.ListClientKeys(ctx)
	if err != nil {
		return s.storeError(ctx, "list client keys", err)
	}
	live := 0
	for _, k := range list {
		if k.GetKey().GetRevokedAt() == nil && (k.GetKey().GetExpiresAt() == nil || k.GetKey().GetExpiresAt().AsTime().After(now)) {
			live++
		}
	}
	if live >= s.maxLive {
		return status.Errorf(codes.ResourceExhausted, "%d client keys are live, the most allowed (every live key rides in every data plane's config): revoke unused ones first (mcpctl client-key list, client-key revoke)", live)
	}
	return nil
}

// CreateClientKey implements ClientKeyService.
func (s *ClientKeyService) CreateClientKey(ctx context.Context, req *mcpmeshv1.CreateClientKeyRequest) (*mcpmeshv1.CreateClientKeyResponse, error) {
	ttl, err := checkCredential(req.GetTtl(), req.GetDescription())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetTags()); n > MaxClientKeyTags {
		return nil, status.Errorf(codes.InvalidArgument, "tags: %d tags is too many: at most %d are allowed", n, MaxClientKeyTags)
	}
	for i, tag := range req.GetTags() {
		if err := names.ValidateTag(tag); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "tags[%d]: %v", i, err)
		}
	}
	now := s.now()
	if err := s.checkRoom(ctx, now); err != nil {
		return nil, err
	}
	secret, id, hash, err := mintWith(ClientKeyPrefix)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	tags := slices.Compact(slices.Sorted(slices.Values(req.GetTags())))
	k := &mcpmeshv1.ClientKey{Id: id, Tags: tags, CreatedAt: timestamppb.New(now), Description: req.GetDescription()}
	if ttl > 0 {
		k.ExpiresAt = timestamppb.New(now.Add(ttl))
	}
	rev, err := s.st.CreateClientKey(ctx, &mcpmeshv1.StoredClientKey{Key: k, SecretSha256: hash})
	if err != nil {
		return nil, s.storeError(ctx, "create client key", err)
	}
	caller, _ := IdentityFrom(ctx)
	s.log.InfoContext(ctx, "client key created", "client_key_id", id, "tags", tags, "ttl", ttl, "revision", rev, "by", caller.TokenID)
	return &mcpmeshv1.CreateClientKeyResponse{Key: k, Secret: secret}, nil
}

// ListClientKeys implements ClientKeyService.
func (s *ClientKeyService) ListClientKeys(ctx context.Context, _ *mcpmeshv1.ListClientKeysRequest) (*mcpmeshv1.ListClientKeysResponse, error) {
	list, err := s.st.ListClientKeys(ctx)
	if err != nil {
		return nil, s.storeError(ctx, "list client keys", err)
	}
	out := &mcpmeshv1.ListClientKeysResponse{}
	for _, k := range list {
		out.Keys = append(out.Keys, k.GetKey())
	}
	return out, nil
}

// RevokeClientKey implements ClientKeyService.
func (s *ClientKeyService) RevokeClientKey(ctx context.Context, req *mcpmeshv1.RevokeClientKeyRequest) (*mcpmeshv1.RevokeClientKeyResponse, error) {
	id := req.GetId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "id: must not be empty")
	}
	rec, err := s.st.RevokeClientKey(ctx, id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "client key %q does not exist (see 'mcpctl client-key list')", id)
	}
	if err != nil {
		return nil, s.storeError(ctx, "revoke client key", err)
	}
	caller, _ := IdentityFrom(ctx)
	s.log.InfoContext(ctx, "client key revoked", "client_key_id", id, "by", caller.TokenID)
	return &mcpmeshv1.RevokeClientKeyResponse{Key: rec.GetKey()}, nil
}

func (s *ClientKeyService) storeError(ctx context.Context, op string, err error) error {
	return storeError(ctx, s.log, op, err)
}
