package store

import (
	"bytes"
	"context"
	"maps"
	"slices"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
)

// unsafeDump copies everything a dump holds; m.mu must be held.
func (m *MemoryStore) unsafeDump() *Dump {
	d := &Dump{State: *m.unsafeState()}
	for _, id := range slices.Sorted(maps.Keys(m.tokens)) {
		d.Tokens = append(d.Tokens, cloneToken(m.tokens[id]))
	}
	return d
}

// Dump implements Store.
func (m *MemoryStore) Dump(ctx context.Context) (*Dump, error) {
	var d *Dump
	err := m.read(ctx, "dump store", func() error {
		d = m.unsafeDump()
		return nil
	})
	return d, err
}

// Restore implements Store.
func (m *MemoryStore) Restore(ctx context.Context, d *Dump, force bool) (uint64, error) {
	return m.write(ctx, "restore store", func() (uint64, error) {
		if err := restorable(m.unsafeDump(), d, force); err != nil {
			return 0, err
		}
		rev := restoreRevision(m.rev, d.Revision)
		m.servers = make(map[string]*mcpmeshv1.Server, len(d.Servers))
		for _, s := range restoredServers(d, rev) {
			m.servers[s.GetName()] = s
		}
		m.settings = &mcpmeshv1.Settings{}
		if d.Settings != nil {
			m.settings = proto.CloneOf(d.Settings)
		}
		m.tokens = make(map[string]*mcpmeshv1.StoredToken, len(d.Tokens))
		for _, t := range d.Tokens {
			m.tokens[t.GetToken().GetId()] = cloneToken(t)
		}
		m.ckeys = make(map[string]*mcpmeshv1.StoredClientKey, len(d.ClientKeys))
		for _, k := range d.ClientKeys {
			m.ckeys[k.GetKey().GetId()] = cloneClientKey(k)
		}
		m.grants = make(map[string]*mcpmeshv1.StoredOAuthGrant, len(d.OAuthGrants))
		for _, g := range d.OAuthGrants {
			m.grants[g.GetAuthorization().GetServer()] = cloneGrant(g)
		}
		m.secret = bytes.Clone(d.ClusterSecret)
		m.previous = previousUnexpired(d, m.now())
		m.rev = rev
		return rev, nil
	})
}
