package store

import (
	"context"
	"fmt"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

func (s *BoltStore) unsafeGetGrant(tx *bolt.Tx, server string) (*mcpmeshv1.StoredOAuthGrant, error) {
	v := tx.Bucket(bucketOAuthGrants).Get([]byte(server))
	if v == nil {
		return nil, nil
	}
	return s.decodeGrant([]byte(server), v)
}

func (s *BoltStore) decodeGrant(k, v []byte) (*mcpmeshv1.StoredOAuthGrant, error) {
	plain, err := s.seal.open(bucketOAuthGrants, k, v)
	if err != nil {
		return nil, fmt.Errorf("decode oauth grant %q: %w", k, err)
	}
	g := &mcpmeshv1.StoredOAuthGrant{}
	if err := proto.Unmarshal(plain, g); err != nil {
		return nil, fmt.Errorf("decode oauth grant %q: %w", k, err)
	}
	return g, nil
}

func (s *BoltStore) unsafePutGrant(tx *bolt.Tx, g *mcpmeshv1.StoredOAuthGrant) error {
	b, err := proto.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode oauth grant: %w", err)
	}
	return s.unsafePutSealed(tx, bucketOAuthGrants, []byte(g.GetAuthorization().GetServer()), b)
}

func (s *BoltStore) unsafeListGrants(tx *bolt.Tx) ([]*mcpmeshv1.StoredOAuthGrant, error) {
	var out []*mcpmeshv1.StoredOAuthGrant
	err := tx.Bucket(bucketOAuthGrants).ForEach(func(k, v []byte) error {
		g, err := s.decodeGrant(k, v)
		if err != nil {
			return err
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

// unsafeDeleteGrant deletes a server's grant and bumps the revision if data
// planes held its token; it returns the new revision or 0.
func (s *BoltStore) unsafeDeleteGrant(tx *bolt.Tx, server string) (uint64, error) {
	cur, err := s.unsafeGetGrant(tx, server)
	if err != nil || cur == nil {
		return 0, err
	}
	if err := tx.Bucket(bucketOAuthGrants).Delete([]byte(server)); err != nil {
		return 0, fmt.Errorf("delete oauth grant %q: %w", server, err)
	}
	if !grantAccessChanged(cur, nil) {
		return 0, nil
	}
	return unsafeBumpRevision(tx)
}

// PutOAuthGrant implements Store.
func (s *BoltStore) PutOAuthGrant(ctx context.Context, g *mcpmeshv1.StoredOAuthGrant) (uint64, error) {
	if err := validateGrantArg(g); err != nil {
		return 0, fmt.Errorf("put oauth grant: %w", err)
	}
	name := g.GetAuthorization().GetServer()
	return s.update(ctx, fmt.Sprintf("put oauth grant of %q", name), func(tx *bolt.Tx) (uint64, error) {
		if tx.Bucket(bucketServers).Get([]byte(name)) == nil {
			return 0, fmt.Errorf("server %q: %w", name, ErrNotFound)
		}
		cur, err := s.unsafeGetGrant(tx, name)
		if err != nil {
			return 0, err
		}
		if err := s.unsafePutGrant(tx, g); err != nil {
			return 0, err
		}
		if !grantAccessChanged(cur, g) {
			return 0, nil
		}
		return unsafeBumpRevision(tx)
	})
}

// GetOAuthGrant implements Store.
func (s *BoltStore) GetOAuthGrant(ctx context.Context, server string) (*mcpmeshv1.StoredOAuthGrant, error) {
	var out *mcpmeshv1.StoredOAuthGrant
	op := fmt.Sprintf("get oauth grant of %q", server)
	err := s.view(ctx, op, func(tx *bolt.Tx) error {
		var err error
		out, err = s.unsafeGetGrant(tx, server)
		if err == nil && out == nil {
			err = fmt.Errorf("oauth grant of %q: %w", server, ErrNotFound)
		}
		return err
	})
	return out, err
}

// ListOAuthGrants implements Store.
func (s *BoltStore) ListOAuthGrants(ctx context.Context) ([]*mcpmeshv1.StoredOAuthGrant, error) {
	var out []*mcpmeshv1.StoredOAuthGrant
	err := s.view(ctx, "list oauth grants", func(tx *bolt.Tx) error {
		var err error
		out, err = s.unsafeListGrants(tx)
		return err
	})
	return out, err
}

// DeleteOAuthGrant implements Store.
func (s *BoltStore) DeleteOAuthGrant(ctx context.Context, server string) (uint64, error) {
	return s.update(ctx, fmt.Sprintf("delete oauth grant of %q", server), func(tx *bolt.Tx) (uint64, error) {
		return s.unsafeDeleteGrant(tx, server)
	})
}

// PutOAuthPending implements Store.
func (s *BoltStore) PutOAuthPending(ctx context.Context, p *mcpmeshv1.StoredOAuthPending) error {
	if err := validatePendingArg(p); err != nil {
		return fmt.Errorf("put oauth pending flow: %w", err)
	}
	_, err := s.update(ctx, "put oauth pending flow", func(tx *bolt.Tx) (uint64, error) {
		if tx.Bucket(bucketOAuthPending).Get([]byte(p.GetState())) != nil {
			return 0, fmt.Errorf("pending flow of server %q: %w", p.GetServer(), ErrExists)
		}
		b, err := proto.Marshal(p)
		if err != nil {
			return 0, fmt.Errorf("encode pending flow: %w", err)
		}
		return 0, s.unsafePutSealed(tx, bucketOAuthPending, []byte(p.GetState()), b)
	})
	return err
}

func (s *BoltStore) decodePending(k, v []byte) (*mcpmeshv1.StoredOAuthPending, error) {
	plain, err := s.seal.open(bucketOAuthPending, k, v)
	if err != nil {
		return nil, fmt.Errorf("decode pending flow: %w", err)
	}
	p := &mcpmeshv1.StoredOAuthPending{}
	if err := proto.Unmarshal(plain, p); err != nil {
		return nil, fmt.Errorf("decode pending flow: %w", err)
	}
	return p, nil
}

// TakeOAuthPending implements Store.
func (s *BoltStore) TakeOAuthPending(ctx context.Context, state string, now time.Time) (*mcpmeshv1.StoredOAuthPending, error) {
	var out *mcpmeshv1.StoredOAuthPending
	_, err := s.update(ctx, "take oauth pending flow", func(tx *bolt.Tx) (uint64, error) {
		b := tx.Bucket(bucketOAuthPending)
		v := b.Get([]byte(state))
		if v == nil {
			return 0, fmt.Errorf("no pending flow for this state (completed already, or never started): %w", ErrNotFound)
		}
		p, err := s.decodePending([]byte(state), v)
		if err != nil {
			return 0, err
		}
		if err := b.Delete([]byte(state)); err != nil {
			return 0, err
		}
		if pendingExpired(p, now) {
			out = nil
			return 0, nil
		}
		out = p
		return 0, nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("take oauth pending flow: the flow expired (after %s): %w", PendingTTL, ErrNotFound)
	}
	return out, nil
}

// SweepOAuthPending implements Store.
func (s *BoltStore) SweepOAuthPending(ctx context.Context, now time.Time) (int, error) {
	n := 0
	_, err := s.update(ctx, "sweep oauth pending flows", func(tx *bolt.Tx) (uint64, error) {
		n = 0
		b := tx.Bucket(bucketOAuthPending)
		var expired [][]byte
		err := b.ForEach(func(k, v []byte) error {
			p, err := s.decodePending(k, v)
			if err != nil || pendingExpired(p, now) {
				// An undecodable flow can never complete either.
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return 0, err
			}
		}
		n = len(expired)
		return 0, nil
	})
	return n, err
}
