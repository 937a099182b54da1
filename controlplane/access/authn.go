package access

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// BootstrapID is the token id of the bootstrap <data-dir>/admin.token.
const BootstrapID = "bootstrap"

// Identity is the authenticated caller of an RPC.
type Identity struct {
	// TokenID is the token's id (BootstrapID for admin.token).
	TokenID string
	Role    mcpmeshv1.Role
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

type identityKey struct{}

// WithIdentity returns ctx carrying id, as the auth interceptor stores it
// (for servers and tests that run a service without the interceptor).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// ReceivesSecrets reports whether the caller in ctx may be sent the
// secrets of a config snapshot: only a dataplane credential. A context
// without an identity (no auth interceptor ran) gets none.
func ReceivesSecrets(ctx context.Context) bool {
	id, ok := IdentityFrom(ctx)
	return ok && id.Role == mcpmeshv1.Role_ROLE_DATAPLANE
}

// IdentityFrom returns the caller that the auth interceptor stored in ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// TokenReader is the part of the store the authenticator reads.
type TokenReader interface {
	GetToken(ctx context.Context, id string) (*mcpmeshv1.StoredToken, error)
}

// Why a tracked stream was ended.
var (
	errRevoked = errors.New("revoked")
	errExpired = errors.New("expired")
)

// Authenticator checks bearer tokens and roles on every RPC and keeps track
// of each token's open streams, so that revoking or the expiry of a token
// ends them at once, not at the client's next reconnect.
type Authenticator struct {
	bootstrap []byte
	tokens    TokenReader
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	streams map[string]map[*openStream]struct{} // by token id
	revoked map[string]bool                     // revoked by this process, see Revoked
}

type openStream struct{ cancel context.CancelCauseFunc }

// NewAuthenticator accepts bootstrapToken (the admin.token file's content;
// empty disables it) as admin, and the tokens stored in tokens.
func NewAuthenticator(bootstrapToken string, tokens TokenReader, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{
		bootstrap: []byte(bootstrapToken),
		tokens:    tokens,
		log:       log,
		now:       time.Now,
		streams:   make(map[string]map[*openStream]struct{}),
		revoked:   make(map[string]bool),
	}
}

// AuthFunc is the go-grpc-middleware auth function: it authenticates the
// bearer token (Unauthenticated if missing, unknown, revoked or expired),
// then checks the caller's role against the method's rule
// (PermissionDenied), and stores the Identity in the context.
func (a *Authenticator) AuthFunc(ctx context.Context) (context.Context, error) {
	tok, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, err
	}
	id, err := a.authenticate(ctx, tok)
	if err != nil {
		return nil, err
	}
	method, _ := grpc.Method(ctx)
	if !Allowed(id.Role, method) {
		return nil, status.Errorf(codes.PermissionDenied, "a %s token may not call %s", authtoken.RoleName(id.Role), method)
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

var errInvalid = status.Error(codes.Unauthenticated, "invalid token")

func (a *Authenticator) authenticate(ctx context.Context, tok string) (Identity, error) {
	if len(a.bootstrap) > 0 && subtle.ConstantTimeCompare([]byte(tok), a.bootstrap) == 1 {
		return Identity{TokenID: BootstrapID, Role: mcpmeshv1.Role_ROLE_ADMIN}, nil
	}
	id, secret, ok := parse(tok)
	if !ok {
		return Identity{}, errInvalid
	}
	rec, err := a.tokens.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, errInvalid
	}
	if err != nil {
		a.log.ErrorContext(ctx, "cannot read token", "token_id", id, "err", err)
		return Identity{}, status.Error(codes.Unavailable, "cannot check the token: the control plane store is unavailable")
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), rec.GetSecretSha256()) != 1 {
		return Identity{}, errInvalid
	}
	t := rec.GetToken()
	if t.GetRevokedAt() != nil {
		return Identity{}, status.Errorf(codes.Unauthenticated, "token %s is revoked", id)
	}
	out := Identity{TokenID: id, Role: t.GetRole()}
	if t.GetExpiresAt() != nil {
		out.ExpiresAt = t.GetExpiresAt().AsTime()
		if !a.now().Before(out.ExpiresAt) {
			return Identity{}, status.Errorf(codes.Unauthenticated, "token %s expired at %s", id, out.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	if authtoken.RoleName(out.Role) == "unknown" {
		return Identity{}, errInvalid
	}
	return out, nil
}

// StreamInterceptor must run after the auth interceptor: it registers each
// stream under its token id and gives the handler a context that is
// cancelled when the token is revoked (Revoked) or expires; the stream then
// ends with Unauthenticated. Handlers end when their stream's context does.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, ok := IdentityFrom(ss.Context())
		if !ok {
			return status.Error(codes.Internal, "stream not authenticated (interceptor order)")
		}
		ctx, cancel := context.WithCancelCause(ss.Context())
		defer cancel(nil)
		s := &openStream{cancel: cancel}
		a.track(id.TokenID, s)
		defer a.untrack(id.TokenID, s)
		if !id.ExpiresAt.IsZero() {
			t := time.AfterFunc(id.ExpiresAt.Sub(a.now()), func() { cancel(errExpired) })
			defer t.Stop()
		}
		err := handler(srv, &stream{ServerStream: ss, ctx: ctx})
		if cause := context.Cause(ctx); errors.Is(cause, errRevoked) || errors.Is(cause, errExpired) {
			a.log.Info("stream ended: its token was "+cause.Error(), "token_id", id.TokenID, "role", authtoken.RoleName(id.Role))
			return status.Errorf(codes.Unauthenticated, "token %s %s: the stream was ended", id.TokenID, cause)
		}
		return err
	}
}

// stream is a ServerStream with the tracked context.
type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

func (a *Authenticator) track(id string, s *openStream) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revoked[id] {
		// Revoked between the token check and now: end it at once.
		s.cancel(errRevoked)
	}
	set := a.streams[id]
	if set == nil {
		set = make(map[*openStream]struct{})
		a.streams[id] = set
	}
	set[s] = struct{}{}
}

func (a *Authenticator) untrack(id string, s *openStream) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.streams[id], s)
	if len(a.streams[id]) == 0 {
		delete(a.streams, id)
	}
}

// Revoked ends every open stream of token id; call it after the revocation
// is committed. It returns how many streams it ended.
func (a *Authenticator) Revoked(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked[id] = true
	n := len(a.streams[id])
	for s := range a.streams[id] {
		s.cancel(errRevoked)
	}
	return n
}

// OpenStreams returns how many streams token id has open.
func (a *Authenticator) OpenStreams(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.streams[id])
}

// Interceptors returns the unary and stream interceptors to chain, in this
// order, innermost (after logging and recovery).
func (a *Authenticator) Interceptors() (grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	return auth.UnaryServerInterceptor(a.AuthFunc),
		[]grpc.StreamServerInterceptor{auth.StreamServerInterceptor(a.AuthFunc), a.StreamInterceptor()}
}
