package store

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// dumpOps read what a Dump holds: State's keys and the tokens (rTokens).
func (s *EtcdStore) dumpOps() []clientv3.Op {
	return append(s.stateOps(), clientv3.OpGet(s.bucketPrefix(bucketTokens), clientv3.WithPrefix()))
}

func (s *EtcdStore) decodeDump(r []*etcdserverpb.RangeResponse) (*Dump, error) {
	st, err := s.decodeState(r)
	if err != nil {
		return nil, err
	}
	d := &Dump{State: *st}
	for _, kv := range r[rTokens].Kvs {
		tok, err := decodeToken(kv)
		if err != nil {
			return nil, err
		}
		d.Tokens = append(d.Tokens, tok)
	}
	return d, nil
}

// Dump implements Store: one read-only etcd transaction, one consistent
// view at one etcd revision.
func (s *EtcdStore) Dump(ctx context.Context) (*Dump, error) {
	r, err := s.read(ctx, "dump store", s.dumpOps()...)
	if err != nil {
		return nil, err
	}
	d, err := s.decodeDump(r)
	if err != nil {
		return nil, fmt.Errorf("dump store: %w", err)
	}
	return d, nil
}

// Restore implements Store: one etcd transaction that deletes the servers,
// settings, tokens and client keys under the prefix and writes d's. It
// compares every key it read (each range's newest mod revision, and the
// revision key), so a write through another replica meanwhile makes it
// read and check again. Its config revision is etcd's, unless d's (from a
// store further ahead, e.g. bbolt) is not behind it: then the revision
// offset grows so that the restore's revision is past d's (bumpPast).
func (s *EtcdStore) Restore(ctx context.Context, d *Dump, force bool) (uint64, error) {
	return s.update(ctx, "restore store", func(t *etx) error {
		resp, err := s.cli.Txn(t.ctx).Then(s.dumpOps()...).Commit()
		if err != nil {
			return err
		}
		r := ranges(resp)
		cur, err := s.decodeDump(r)
		if err != nil {
			return err
		}
		if err := restorable(cur, d, force); err != nil {
			return err
		}
		// Nothing under these keys may change between the read and the
		// write: compare each range against the etcd revision it was read at.
		for _, p := range []string{s.bucketPrefix(bucketServers), s.bucketPrefix(bucketSettings), s.bucketPrefix(bucketTokens),
			s.bucketPrefix(bucketClientKeys), s.bucketPrefix(bucketOAuthGrants), s.bucketPrefix(bucketMeta)} {
			t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(p).WithPrefix(), "<", resp.Header.Revision+1))
		}
		// etcd refuses a put inside a range the same transaction deletes:
		// delete only the keys the dump does not write again.
		keep := map[string]bool{}
		for _, srv := range d.Servers {
			keep[s.serverKey(srv.GetName())] = true
		}
		for _, tok := range d.Tokens {
			keep[s.key(bucketTokens, []byte(tok.GetToken().GetId()))] = true
		}
		for _, k := range d.ClientKeys {
			keep[s.key(bucketClientKeys, []byte(k.GetKey().GetId()))] = true
		}
		for _, g := range d.OAuthGrants {
			keep[s.grantKey(g.GetAuthorization().GetServer())] = true
		}
		if d.Settings != nil {
			keep[s.key(bucketSettings, settingsKey)] = true
		}
		for _, rr := range []*etcdserverpb.RangeResponse{r[rServers], r[rSettings], r[rClientKeys], r[rOAuthGrants], r[rTokens]} {
			for _, kv := range rr.Kvs {
				if !keep[string(kv.Key)] {
					t.del(string(kv.Key))
				}
			}
		}
		// Stamped by the keys' revisions; those the dump carried belong to
		// another store.
		for _, srv := range restoredServers(d, 0) {
			if err := t.putServer(srv); err != nil {
				return err
			}
		}
		t.put(s.restoredKey(), nil)
		if d.Settings != nil {
			b, err := proto.Marshal(d.Settings)
			if err != nil {
				return fmt.Errorf("encode settings: %w", err)
			}
			t.put(s.key(bucketSettings, settingsKey), b)
		}
		for _, tok := range d.Tokens {
			if err := putProto(t, s.key(bucketTokens, []byte(tok.GetToken().GetId())), tok); err != nil {
				return err
			}
		}
		for _, k := range d.ClientKeys {
			if err := putProto(t, s.key(bucketClientKeys, []byte(k.GetKey().GetId())), k); err != nil {
				return err
			}
		}
		for _, g := range d.OAuthGrants {
			if err := t.putGrant(g); err != nil {
				return err
			}
		}
		if err := t.putSealed(bucketMeta, metaClusterSecret, d.ClusterSecret); err != nil {
			return fmt.Errorf("write cluster secret: %w", err)
		}
		if err := t.putPrevious(previousUnexpired(d, s.now())); err != nil {
			return err
		}
		// Past both the store's revision and the backup's: no data plane,
		// whichever of the two it last streamed, holds it already.
		return t.bumpPast(one(r[rRevision]), max(cur.Revision, d.Revision), resp.Header.Revision)
	})
}

func putProto(t *etx, key string, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	t.put(key, b)
	return nil
}
