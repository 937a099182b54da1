package store

import (
	"context"
	"fmt"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
)

// PendingTTL is how long a started OAuth authorization flow may wait for its
// callback; TakeOAuthPending refuses older ones and SweepOAuthPending drops
// them.
const PendingTTL = 10 * time.Minute

// OAuthStore keeps the OAuth grants the control plane holds for
// OAuth-protected backends (one per server, sealed at rest bound to the
// server's name) and the authorization flows started and not yet completed
// (keyed by their state parameter, sealed too).
type OAuthStore interface {
	// PutOAuthGrant stores the grant of the server g.authorization.server,
	// replacing any. ErrNotFound if that server does not exist. When what
	// data planes receive of it changes (the access token, its type or
	// expiry) the config revision is bumped and returned; otherwise it
	// returns 0.
	PutOAuthGrant(ctx context.Context, g *mcpmeshv1.StoredOAuthGrant) (uint64, error)
	// GetOAuthGrant returns one server's grant or ErrNotFound.
	GetOAuthGrant(ctx context.Context, server string) (*mcpmeshv1.StoredOAuthGrant, error)
	// ListOAuthGrants returns every grant, sorted by server name.
	ListOAuthGrants(ctx context.Context) ([]*mcpmeshv1.StoredOAuthGrant, error)
	// DeleteOAuthGrant removes a server's grant; if the grant had an access
	// token the config revision is bumped and returned, else 0. No grant is
	// not an error. DeleteServer deletes the server's grant too.
	DeleteOAuthGrant(ctx context.Context, server string) (uint64, error)
	// PutOAuthPending stores a started flow under p.state (not config: the
	// revision stays). ErrExists if that state is taken.
	PutOAuthPending(ctx context.Context, p *mcpmeshv1.StoredOAuthPending) error
	// TakeOAuthPending returns the flow stored under state and deletes it,
	// atomically: of concurrent takes (on any replica) one gets it. A flow
	// expired at now is deleted and reported as ErrNotFound.
	TakeOAuthPending(ctx context.Context, state string, now time.Time) (*mcpmeshv1.StoredOAuthPending, error)
	// SweepOAuthPending deletes the flows expired at now and returns how many.
	SweepOAuthPending(ctx context.Context, now time.Time) (int, error)
}

func validateGrantArg(g *mcpmeshv1.StoredOAuthGrant) error {
	if g == nil {
		return fmt.Errorf("grant is nil")
	}
	if g.GetAuthorization().GetServer() == "" {
		return fmt.Errorf("grant has no server name")
	}
	return nil
}

func validatePendingArg(p *mcpmeshv1.StoredOAuthPending) error {
	if p == nil {
		return fmt.Errorf("pending flow is nil")
	}
	if p.GetState() == "" {
		return fmt.Errorf("pending flow has no state")
	}
	if p.GetExpiresAt() == nil {
		return fmt.Errorf("pending flow has no expiry")
	}
	return nil
}

// grantAccessChanged reports whether data planes would see a difference
// between a grant stored as old (nil: none) and new (nil: deleted).
// A grant without an access token sends nothing.
func grantAccessChanged(old, new *mcpmeshv1.StoredOAuthGrant) bool {
	if old.GetAccessToken() == "" && new.GetAccessToken() == "" {
		return false
	}
	if old.GetAccessToken() != new.GetAccessToken() || old.GetTokenType() != new.GetTokenType() {
		return true
	}
	return !proto.Equal(old.GetAuthorization().GetExpiresAt(), new.GetAuthorization().GetExpiresAt())
}

func pendingExpired(p *mcpmeshv1.StoredOAuthPending, now time.Time) bool {
	return !now.Before(p.GetExpiresAt().AsTime())
}

func cloneGrant(g *mcpmeshv1.StoredOAuthGrant) *mcpmeshv1.StoredOAuthGrant {
	return proto.CloneOf(g)
}
