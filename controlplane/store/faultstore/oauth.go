package faultstore

import (
	"context"
	"fmt"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// PutOAuthGrant implements store.Store.
func (f *Fault) PutOAuthGrant(ctx context.Context, g *mcpmeshv1.StoredOAuthGrant) (uint64, error) {
	if err := f.before(fmt.Sprintf("put oauth grant of %q", g.GetAuthorization().GetServer()), true); err != nil {
		return 0, err
	}
	return f.inner.PutOAuthGrant(ctx, g)
}

// GetOAuthGrant implements store.Store.
func (f *Fault) GetOAuthGrant(ctx context.Context, server string) (*mcpmeshv1.StoredOAuthGrant, error) {
	if err := f.before(fmt.Sprintf("get oauth grant of %q", server), false); err != nil {
		return nil, err
	}
	return f.inner.GetOAuthGrant(ctx, server)
}

// ListOAuthGrants implements store.Store.
func (f *Fault) ListOAuthGrants(ctx context.Context) ([]*mcpmeshv1.StoredOAuthGrant, error) {
	if err := f.before("list oauth grants", false); err != nil {
		return nil, err
	}
	return f.inner.ListOAuthGrants(ctx)
}

// DeleteOAuthGrant implements store.Store.
func (f *Fault) DeleteOAuthGrant(ctx context.Context, server string) (uint64, error) {
	if err := f.before(fmt.Sprintf("delete oauth grant of %q", server), true); err != nil {
		return 0, err
	}
	return f.inner.DeleteOAuthGrant(ctx, server)
}

// PutOAuthPending implements store.Store.
func (f *Fault) PutOAuthPending(ctx context.Context, p *mcpmeshv1.StoredOAuthPending) error {
	if err := f.before("put oauth pending flow", true); err != nil {
		return err
	}
	return f.inner.PutOAuthPending(ctx, p)
}

// TakeOAuthPending implements store.Store (a write: it deletes).
func (f *Fault) TakeOAuthPending(ctx context.Context, state string, now time.Time) (*mcpmeshv1.StoredOAuthPending, error) {
	if err := f.before("take oauth pending flow", true); err != nil {
		return nil, err
	}
	return f.inner.TakeOAuthPending(ctx, state, now)
}

// SweepOAuthPending implements store.Store.
func (f *Fault) SweepOAuthPending(ctx context.Context, now time.Time) (int, error) {
	if err := f.before("sweep oauth pending flows", true); err != nil {
		return 0, err
	}
	return f.inner.SweepOAuthPending(ctx, now)
}
