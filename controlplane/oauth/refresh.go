package oauth

import (
	"context"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Refresh timing.
const (
	// refreshMargin: a grant is refreshed when less than a third of its
	// lifetime or refreshMargin remains, whichever comes later.
	refreshMargin = 60 * time.Second
	// retryMin and retryMax bound the backoff after a failed refresh.
	retryMin = time.Second
	retryMax = 5 * time.Minute
	// storeRetry is the pause after the store failed.
	storeRetry = 5 * time.Second
	// sweepEvery is how often expired pending flows are dropped.
	sweepEvery = time.Minute
)

// refreshAt is when g is due for a refresh (zero: never, it has no
// refresh token or no expiry).
func refreshAt(g *mcpmeshv1.StoredOAuthGrant) time.Time {
	a := g.GetAuthorization()
	if g.GetRefreshToken() == "" || g.GetAccessToken() == "" || a.GetExpiresAt() == nil {
		return time.Time{}
	}
	exp := a.GetExpiresAt().AsTime()
	issued := a.GetAuthorizedAt().AsTime()
	if r := a.GetRefreshedAt(); r != nil && r.AsTime().After(issued) {
		issued = r.AsTime()
	}
	third := exp.Add(-exp.Sub(issued) / 3)
	margin := exp.Add(-refreshMargin)
	if third.After(margin) {
		return third
	}
	return margin
}

// Run refreshes every grant before it expires (and retries failed
// refreshes with a growing pause) until ctx ends; it also drops expired
// pending flows. With an etcd store, one elected replica runs it.
func (s *Service) Run(ctx context.Context) {
	changes := s.st.Watch(ctx)
	// failures counts consecutive failed refreshes per server; retry is
	// when the next attempt is due.
	failures := map[string]int{}
	retry := map[string]time.Time{}
	var nextSweep time.Time
	for {
		now := s.clock.Now()
		if !now.Before(nextSweep) {
			if n, err := s.st.SweepOAuthPending(ctx, now); err != nil {
				s.log.Warn("cannot drop expired pending oauth flows", "err", err)
			} else if n > 0 {
				s.log.Info("expired pending oauth flows dropped", "count", n)
			}
			nextSweep = now.Add(sweepEvery)
		}
		next := nextSweep
		grants, err := s.st.ListOAuthGrants(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Error("cannot read the oauth grants; retrying", "err", err, "retry_in", storeRetry)
			next = now.Add(storeRetry)
		}
		for _, g := range grants {
			name := g.GetAuthorization().GetServer()
			due := refreshAt(g)
			if due.IsZero() {
				delete(failures, name)
				delete(retry, name)
				continue
			}
			if r, ok := retry[name]; ok && r.After(due) {
				due = r
			}
			if now.Before(due) {
				if due.Before(next) {
					next = due
				}
				continue
			}
			if _, err := s.refresh(ctx, name, ""); err != nil {
				if ctx.Err() != nil {
					return
				}
				failures[name]++
				pause := min(retryMin<<min(failures[name]-1, 20), retryMax)
				retry[name] = now.Add(pause)
				if r := retry[name]; r.Before(next) {
					next = r
				}
				continue
			}
			delete(failures, name)
			delete(retry, name)
			// The refreshed grant is read again on the next round, which
			// the revision it bumped starts.
		}
		wait := next.Sub(s.clock.Now())
		if wait < 0 {
			wait = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(wait):
		case _, ok := <-changes:
			if !ok {
				return
			}
		}
	}
}
