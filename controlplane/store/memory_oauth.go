package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
)

// The in-memory store keeps grants and pending flows in two maps created on
// first use, so NewMemory stays as it is.

func (m *MemoryStore) unsafeGrants() map[string]*mcpmeshv1.StoredOAuthGrant {
	if m.grants == nil {
		m.grants = map[string]*mcpmeshv1.StoredOAuthGrant{}
	}
	return m.grants
}

func (m *MemoryStore) unsafePending() map[string]*mcpmeshv1.StoredOAuthPending {
	if m.pending == nil {
		m.pending = map[string]*mcpmeshv1.StoredOAuthPending{}
	}
	return m.pending
}

func (m *MemoryStore) unsafeListGrants() []*mcpmeshv1.StoredOAuthGrant {
	var out []*mcpmeshv1.StoredOAuthGrant
	for _, name := range slices.Sorted(maps.Keys(m.grants)) {
		out = append(out, cloneGrant(m.grants[name]))
	}
	return out
}

// unsafeDeleteGrant mirrors BoltStore's: bump only if a token was held.
func (m *MemoryStore) unsafeDeleteGrant(server string) uint64 {
	cur, ok := m.unsafeGrants()[server]
	if !ok {
		return 0
	}
	delete(m.grants, server)
	if !grantAccessChanged(cur, nil) {
		return 0
	}
	m.rev++
	return m.rev
}

// PutOAuthGrant implements Store.
func (m *MemoryStore) PutOAuthGrant(ctx context.Context, g *mcpmeshv1.StoredOAuthGrant) (uint64, error) {
	if err := validateGrantArg(g); err != nil {
		return 0, fmt.Errorf("put oauth grant: %w", err)
	}
	name := g.GetAuthorization().GetServer()
	return m.write(ctx, fmt.Sprintf("put oauth grant of %q", name), func() (uint64, error) {
		if _, ok := m.servers[name]; !ok {
			return 0, fmt.Errorf("server %q: %w", name, ErrNotFound)
		}
		cur := m.unsafeGrants()[name]
		m.grants[name] = cloneGrant(g)
		if !grantAccessChanged(cur, g) {
			return 0, nil
		}
		m.rev++
		return m.rev, nil
	})
}

// GetOAuthGrant implements Store.
func (m *MemoryStore) GetOAuthGrant(ctx context.Context, server string) (*mcpmeshv1.StoredOAuthGrant, error) {
	var out *mcpmeshv1.StoredOAuthGrant
	err := m.read(ctx, fmt.Sprintf("get oauth grant of %q", server), func() error {
		g, ok := m.grants[server]
		if !ok {
			return fmt.Errorf("oauth grant of %q: %w", server, ErrNotFound)
		}
		out = cloneGrant(g)
		return nil
	})
	return out, err
}

// ListOAuthGrants implements Store.
func (m *MemoryStore) ListOAuthGrants(ctx context.Context) ([]*mcpmeshv1.StoredOAuthGrant, error) {
	var out []*mcpmeshv1.StoredOAuthGrant
	err := m.read(ctx, "list oauth grants", func() error {
		out = m.unsafeListGrants()
		return nil
	})
	return out, err
}

// DeleteOAuthGrant implements Store.
func (m *MemoryStore) DeleteOAuthGrant(ctx context.Context, server string) (uint64, error) {
	return m.write(ctx, fmt.Sprintf("delete oauth grant of %q", server), func() (uint64, error) {
		return m.unsafeDeleteGrant(server), nil
	})
}

// PutOAuthPending implements Store.
func (m *MemoryStore) PutOAuthPending(ctx context.Context, p *mcpmeshv1.StoredOAuthPending) error {
	if err := validatePendingArg(p); err != nil {
		return fmt.Errorf("put oauth pending flow: %w", err)
	}
	_, err := m.write(ctx, "put oauth pending flow", func() (uint64, error) {
		if _, ok := m.unsafePending()[p.GetState()]; ok {
			return 0, fmt.Errorf("pending flow of server %q: %w", p.GetServer(), ErrExists)
		}
		m.pending[p.GetState()] = proto.CloneOf(p)
		return 0, nil
	})
	return err
}

// TakeOAuthPending implements Store.
func (m *MemoryStore) TakeOAuthPending(ctx context.Context, state string, now time.Time) (*mcpmeshv1.StoredOAuthPending, error) {
	var out *mcpmeshv1.StoredOAuthPending
	_, err := m.write(ctx, "take oauth pending flow", func() (uint64, error) {
		p, ok := m.unsafePending()[state]
		if !ok {
			return 0, fmt.Errorf("no pending flow for this state (completed already, or never started): %w", ErrNotFound)
		}
		delete(m.pending, state)
		if pendingExpired(p, now) {
			return 0, fmt.Errorf("the flow expired (after %s): %w", PendingTTL, ErrNotFound)
		}
		out = p
		return 0, nil
	})
	return out, err
}

// SweepOAuthPending implements Store.
func (m *MemoryStore) SweepOAuthPending(ctx context.Context, now time.Time) (int, error) {
	n := 0
	_, err := m.write(ctx, "sweep oauth pending flows", func() (uint64, error) {
		for k, p := range m.unsafePending() {
			if pendingExpired(p, now) {
				delete(m.pending, k)
				n++
			}
		}
		return 0, nil
	})
	return n, err
}
