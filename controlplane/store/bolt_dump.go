package store

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Dump implements Store: one bbolt read transaction, so writes go on
// meanwhile and the copy is consistent.
func (s *BoltStore) Dump(ctx context.Context) (*Dump, error) {
	d := &Dump{}
	err := s.view(ctx, "dump store", func(tx *bolt.Tx) error { return s.unsafeDump(tx, d) })
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (s *BoltStore) unsafeDump(tx *bolt.Tx, d *Dump) error {
	if err := s.unsafeState(tx, &d.State); err != nil {
		return err
	}
	var err error
	d.Tokens, err = unsafeListTokens(tx)
	return err
}

// Restore implements Store: one write transaction empties the servers,
// settings, tokens and client keys buckets and the secrets, and writes d's.
func (s *BoltStore) Restore(ctx context.Context, d *Dump, force bool) (uint64, error) {
	return s.update(ctx, "restore store", func(tx *bolt.Tx) (uint64, error) {
		cur := &Dump{}
		if err := s.unsafeDump(tx, cur); err != nil {
			return 0, err
		}
		if err := restorable(cur, d, force); err != nil {
			return 0, err
		}
		rev := restoreRevision(cur.Revision, d.Revision)
		for _, b := range [][]byte{bucketServers, bucketSettings, bucketTokens, bucketClientKeys, bucketOAuthGrants} {
			if err := tx.DeleteBucket(b); err != nil {
				return 0, fmt.Errorf("empty bucket %s: %w", b, err)
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return 0, fmt.Errorf("recreate bucket %s: %w", b, err)
			}
		}
		for _, srv := range restoredServers(d, rev) {
			if err := s.unsafePutServer(tx, srv); err != nil {
				return 0, err
			}
		}
		if d.Settings != nil {
			b, err := proto.Marshal(d.Settings)
			if err != nil {
				return 0, fmt.Errorf("encode settings: %w", err)
			}
			if err := tx.Bucket(bucketSettings).Put(settingsKey, b); err != nil {
				return 0, fmt.Errorf("write settings: %w", err)
			}
		}
		for _, tok := range d.Tokens {
			if err := unsafePutToken(tx, tok); err != nil {
				return 0, err
			}
		}
		for _, k := range d.ClientKeys {
			if err := unsafePutClientKey(tx, k); err != nil {
				return 0, err
			}
		}
		for _, g := range d.OAuthGrants {
			if err := s.unsafePutGrant(tx, g); err != nil {
				return 0, err
			}
		}
		if err := s.unsafePutSealed(tx, bucketMeta, metaClusterSecret, d.ClusterSecret); err != nil {
			return 0, fmt.Errorf("write cluster secret: %w", err)
		}
		if err := s.unsafePutPreviousSecrets(tx, previousUnexpired(d, s.now())); err != nil {
			return 0, err
		}
		if err := tx.Bucket(bucketMeta).Put(metaRevision, u64(rev)); err != nil {
			return 0, fmt.Errorf("write revision: %w", err)
		}
		return rev, nil
	})
}
