package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

func (s *EtcdStore) grantKey(server string) string { return s.key(bucketOAuthGrants, []byte(server)) }
func (s *EtcdStore) pendingKey(state string) string {
	return s.key(bucketOAuthPending, []byte(state))
}

func (s *EtcdStore) decodeGrant(kv *mvccpb.KeyValue) (*mcpmeshv1.StoredOAuthGrant, error) {
	name := []byte(strings.TrimPrefix(string(kv.Key), s.bucketPrefix(bucketOAuthGrants)))
	plain, err := s.seal.open(bucketOAuthGrants, name, kv.Value)
	if err != nil {
		return nil, fmt.Errorf("decode oauth grant %q: %w", name, err)
	}
	g := &mcpmeshv1.StoredOAuthGrant{}
	if err := proto.Unmarshal(plain, g); err != nil {
		return nil, fmt.Errorf("decode oauth grant %q: %w", name, err)
	}
	return g, nil
}

func (s *EtcdStore) decodeGrants(kvs []*mvccpb.KeyValue) ([]*mcpmeshv1.StoredOAuthGrant, error) {
	var out []*mcpmeshv1.StoredOAuthGrant
	for _, kv := range kvs {
		g, err := s.decodeGrant(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil // etcd ranges are sorted by key, so by server name
}

func (t *etx) putGrant(g *mcpmeshv1.StoredOAuthGrant) error {
	b, err := proto.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode oauth grant: %w", err)
	}
	return t.putSealed(bucketOAuthGrants, []byte(g.GetAuthorization().GetServer()), b)
}

func (s *EtcdStore) decodePending(kv *mvccpb.KeyValue) (*mcpmeshv1.StoredOAuthPending, error) {
	state := []byte(strings.TrimPrefix(string(kv.Key), s.bucketPrefix(bucketOAuthPending)))
	plain, err := s.seal.open(bucketOAuthPending, state, kv.Value)
	if err != nil {
		return nil, fmt.Errorf("decode pending flow: %w", err)
	}
	p := &mcpmeshv1.StoredOAuthPending{}
	if err := proto.Unmarshal(plain, p); err != nil {
		return nil, fmt.Errorf("decode pending flow: %w", err)
	}
	return p, nil
}

// PutOAuthGrant implements Store.
func (s *EtcdStore) PutOAuthGrant(ctx context.Context, g *mcpmeshv1.StoredOAuthGrant) (uint64, error) {
	if err := validateGrantArg(g); err != nil {
		return 0, fmt.Errorf("put oauth grant: %w", err)
	}
	name := g.GetAuthorization().GetServer()
	return s.update(ctx, fmt.Sprintf("put oauth grant of %q", name), func(t *etx) error {
		kvs, err := t.get(s.revKey(), s.serverKey(name), s.grantKey(name))
		if err != nil {
			return err
		}
		if kvs[1] == nil {
			return fmt.Errorf("server %q: %w", name, ErrNotFound)
		}
		var cur *mcpmeshv1.StoredOAuthGrant
		if kvs[2] != nil {
			if cur, err = s.decodeGrant(kvs[2]); err != nil {
				return err
			}
		}
		if err := t.putGrant(g); err != nil {
			return err
		}
		if !grantAccessChanged(cur, g) {
			return nil
		}
		return t.bump(kvs[0])
	})
}

// GetOAuthGrant implements Store.
func (s *EtcdStore) GetOAuthGrant(ctx context.Context, server string) (*mcpmeshv1.StoredOAuthGrant, error) {
	op := fmt.Sprintf("get oauth grant of %q", server)
	r, err := s.read(ctx, op, clientv3.OpGet(s.grantKey(server)))
	if err != nil {
		return nil, err
	}
	kv := one(r[0])
	if kv == nil {
		return nil, fmt.Errorf("%s: oauth grant of %q: %w", op, server, ErrNotFound)
	}
	g, err := s.decodeGrant(kv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return g, nil
}

// ListOAuthGrants implements Store.
func (s *EtcdStore) ListOAuthGrants(ctx context.Context) ([]*mcpmeshv1.StoredOAuthGrant, error) {
	r, err := s.read(ctx, "list oauth grants", clientv3.OpGet(s.bucketPrefix(bucketOAuthGrants), clientv3.WithPrefix()))
	if err != nil {
		return nil, err
	}
	out, err := s.decodeGrants(r[0].Kvs)
	if err != nil {
		return nil, fmt.Errorf("list oauth grants: %w", err)
	}
	return out, nil
}

// DeleteOAuthGrant implements Store.
func (s *EtcdStore) DeleteOAuthGrant(ctx context.Context, server string) (uint64, error) {
	return s.update(ctx, fmt.Sprintf("delete oauth grant of %q", server), func(t *etx) error {
		kvs, err := t.get(s.revKey(), s.grantKey(server))
		if err != nil {
			return err
		}
		if kvs[1] == nil {
			return nil
		}
		cur, err := s.decodeGrant(kvs[1])
		if err != nil {
			return err
		}
		t.del(s.grantKey(server))
		if !grantAccessChanged(cur, nil) {
			return nil
		}
		return t.bump(kvs[0])
	})
}

// PutOAuthPending implements Store.
func (s *EtcdStore) PutOAuthPending(ctx context.Context, p *mcpmeshv1.StoredOAuthPending) error {
	if err := validatePendingArg(p); err != nil {
		return fmt.Errorf("put oauth pending flow: %w", err)
	}
	b, err := proto.Marshal(p)
	if err != nil {
		return fmt.Errorf("put oauth pending flow: encode: %w", err)
	}
	_, err = s.update(ctx, "put oauth pending flow", func(t *etx) error {
		kvs, err := t.get(s.pendingKey(p.GetState()))
		if err != nil {
			return err
		}
		if kvs[0] != nil {
			return fmt.Errorf("pending flow of server %q: %w", p.GetServer(), ErrExists)
		}
		return t.putSealed(bucketOAuthPending, []byte(p.GetState()), b)
	})
	return err
}

// TakeOAuthPending implements Store: the get compares the key's mod
// revision, so of two replicas taking one state, one transaction fails,
// reads again and finds nothing.
func (s *EtcdStore) TakeOAuthPending(ctx context.Context, state string, now time.Time) (*mcpmeshv1.StoredOAuthPending, error) {
	var out *mcpmeshv1.StoredOAuthPending
	expired := false
	_, err := s.update(ctx, "take oauth pending flow", func(t *etx) error {
		out, expired = nil, false
		kvs, err := t.get(s.pendingKey(state))
		if err != nil {
			return err
		}
		if kvs[0] == nil {
			return fmt.Errorf("no pending flow for this state (completed already, or never started): %w", ErrNotFound)
		}
		p, err := s.decodePending(kvs[0])
		if err != nil {
			return err
		}
		t.del(s.pendingKey(state))
		if pendingExpired(p, now) {
			expired = true
			return nil
		}
		out = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	if expired {
		return nil, fmt.Errorf("take oauth pending flow: the flow expired (after %s): %w", PendingTTL, ErrNotFound)
	}
	return out, nil
}

// SweepOAuthPending implements Store.
func (s *EtcdStore) SweepOAuthPending(ctx context.Context, now time.Time) (int, error) {
	n := 0
	_, err := s.update(ctx, "sweep oauth pending flows", func(t *etx) error {
		n = 0
		resp, err := s.cli.Get(t.ctx, s.bucketPrefix(bucketOAuthPending), clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range resp.Kvs {
			p, err := s.decodePending(kv)
			if err != nil || pendingExpired(p, now) {
				// An undecodable flow can never complete either.
				t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
				t.del(string(kv.Key))
				n++
			}
		}
		return nil
	})
	return n, err
}
