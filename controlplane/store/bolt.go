package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
)

// FileName is the store's file name inside the control plane's data dir.
const FileName = "mcpmesh.db"

// lockTimeout bounds how long Open waits for the file lock, so a second
// control plane on the same data dir fails clearly instead of hanging.
const lockTimeout = time.Second

// BoltStore is the Store kept in one bbolt file.
type BoltStore struct {
	db       *bolt.DB
	path     string
	seal     *sealer
	watchers watchers
	now      func() time.Time
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens (creating if needed) the store file at path, creates the
// buckets and, on first open, the cluster secret. Secrets are sealed with
// the key in KeyFileName next to the file, created on first open; a file
// written before that is migrated (sealed and compacted) on open.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	sl, err := openSealer(db, filepath.Join(filepath.Dir(path), KeyFileName))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &BoltStore{db: db, path: path, seal: sl, now: time.Now}
	var migrated int
	if err := db.Update(func(tx *bolt.Tx) error {
		var err error
		migrated, err = s.unsafeInit(tx)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise store %s: %w", path, err)
	}
	if migrated > 0 {
		// The plaintext values are still in the pages bbolt freed: a
		// compacted copy holds only the sealed ones.
		if err := s.compact(); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("compact store %s after sealing %d values: %w", path, migrated, err)
		}
	}
	return s, nil
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: database is locked by another process (is another control plane running with this data dir?)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// openSealer loads the key at keyPath, creating it only while the store has
// sealed nothing with another one, and checks it is the key the store was
// sealed with.
func openSealer(db *bolt.DB, keyPath string) (*sealer, error) {
	var stored []byte
	_ = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			stored = bytes.Clone(meta.Get(metaSecretsKeyID))
		}
		return nil
	})
	key, err := loadOrCreateKey(keyPath, stored == nil)
	if err != nil {
		return nil, err
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	if stored != nil && !bytes.Equal(stored, sl.id) {
		return nil, fmt.Errorf("secrets key %s is not the key this store was encrypted with: restore the right file from a backup", keyPath)
	}
	return sl, nil
}

// unsafeInit creates what is missing and migrates an older layout; it
// returns how many values it sealed.
func (s *BoltStore) unsafeInit(tx *bolt.Tx) (int, error) {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return 0, fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	var migrated int
	if got := fromU64(meta.Get(metaSchemaVersion)); got > schemaVersion {
		return 0, &SchemaError{Found: got, Supported: schemaVersion}
	} else if got < schemaVersion {
		n, err := s.migrateSealSecrets(tx)
		if err != nil {
			return 0, err
		}
		migrated = n
		if err := meta.Put(metaSchemaVersion, u64(schemaVersion)); err != nil {
			return 0, fmt.Errorf("write schema version: %w", err)
		}
	}
	if meta.Get(metaSecretsKeyID) == nil {
		if err := meta.Put(metaSecretsKeyID, s.seal.id); err != nil {
			return 0, fmt.Errorf("write secrets key id: %w", err)
		}
	}
	if meta.Get(metaClusterSecret) == nil {
		secret, err := newClusterSecret()
		if err != nil {
			return 0, err
		}
		if err := s.unsafePutSealed(tx, bucketMeta, metaClusterSecret, secret); err != nil {
			return 0, fmt.Errorf("write cluster secret: %w", err)
		}
	}
	return migrated, nil
}

// migrateSealSecrets seals every plaintext value of a version 1 file.
func (s *BoltStore) migrateSealSecrets(tx *bolt.Tx) (int, error) {
	n := 0
	for _, bk := range []struct {
		bucket []byte
		only   []byte // nil: every key
	}{{bucketServers, nil}, {bucketMeta, metaClusterSecret}} {
		var plain [][2][]byte
		err := tx.Bucket(bk.bucket).ForEach(func(k, v []byte) error {
			if (bk.only == nil || bytes.Equal(k, bk.only)) && v != nil && !isSealed(v) {
				plain = append(plain, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		for _, kv := range plain { // writing while iterating would skip keys
			if err := s.unsafePutSealed(tx, bk.bucket, kv[0], kv[1]); err != nil {
				return 0, fmt.Errorf("seal %s/%s: %w", bk.bucket, kv[0], err)
			}
			n++
		}
	}
	return n, nil
}

// compact rewrites the file into a fresh one (keeping only live pages) and
// reopens it.
func (s *BoltStore) compact() error {
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	db, err := openDB(s.path)
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// unsafePutSealed writes v sealed under bucket/k.
func (s *BoltStore) unsafePutSealed(tx *bolt.Tx, bucket, k, v []byte) error {
	sealed, err := s.seal.seal(bucket, k, v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put(k, sealed)
}

// Path returns the file the store lives in.
func (s *BoltStore) Path() string { return s.path }

// Close closes the file and ends every watch.
func (s *BoltStore) Close() error {
	s.watchers.closeAll()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// update runs fn in one write transaction and, if it bumped the revision,
// notifies watchers after the commit.
func (s *BoltStore) update(ctx context.Context, op string, fn func(tx *bolt.Tx) (newRev uint64, err error)) (uint64, error) {
	if err := checkCtx(ctx, op); err != nil {
		return 0, err
	}
	var rev uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		rev, err = fn(tx)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if rev != 0 {
		s.watchers.notify(rev)
	}
	return rev, nil
}

func (s *BoltStore) view(ctx context.Context, op string, fn func(tx *bolt.Tx) error) error {
	if err := checkCtx(ctx, op); err != nil {
		return err
	}
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// unsafeBumpRevision increments the config revision inside tx.
func unsafeBumpRevision(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	rev := fromU64(meta.Get(metaRevision)) + 1
	if err := meta.Put(metaRevision, u64(rev)); err != nil {
		return 0, fmt.Errorf("write revision: %w", err)
	}
	return rev, nil
}

func unsafeRevision(tx *bolt.Tx) uint64 {
	return fromU64(tx.Bucket(bucketMeta).Get(metaRevision))
}

func (s *BoltStore) unsafeGetServer(tx *bolt.Tx, name string) (*mcpmeshv1.Server, error) {
	v := tx.Bucket(bucketServers).Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("server %q: %w", name, ErrNotFound)
	}
	return s.decodeServer([]byte(name), v)
}

func (s *BoltStore) decodeServer(k, v []byte) (*mcpmeshv1.Server, error) {
	plain, err := s.seal.open(bucketServers, k, v)
	if err != nil {
		return nil, fmt.Errorf("decode server %q: %w", k, err)
	}
	srv := &mcpmeshv1.Server{}
	if err := proto.Unmarshal(plain, srv); err != nil {
		return nil, fmt.Errorf("decode server %q: %w", k, err)
	}
	return srv, nil
}

func (s *BoltStore) unsafePutServer(tx *bolt.Tx, srv *mcpmeshv1.Server) error {
	b, err := proto.Marshal(srv)
	if err != nil {
		return fmt.Errorf("encode server %q: %w", srv.GetName(), err)
	}
	if err := s.unsafePutSealed(tx, bucketServers, []byte(srv.GetName()), b); err != nil {
		return fmt.Errorf("write server %q: %w", srv.GetName(), err)
	}
	return nil
}

func (s *BoltStore) unsafeListServers(tx *bolt.Tx) ([]*mcpmeshv1.Server, error) {
	var out []*mcpmeshv1.Server
	err := tx.Bucket(bucketServers).ForEach(func(k, v []byte) error {
		srv, err := s.decodeServer(k, v)
		if err != nil {
			return err
		}
		out = append(out, srv)
		return nil
	})
	return out, err // bbolt iterates in key order, so the list is sorted by name
}

func unsafeGetSettings(tx *bolt.Tx) (*mcpmeshv1.Settings, error) {
	st := &mcpmeshv1.Settings{}
	if v := tx.Bucket(bucketSettings).Get(settingsKey); v != nil {
		if err := proto.Unmarshal(v, st); err != nil {
			return nil, fmt.Errorf("decode settings: %w", err)
		}
	}
	return st, nil
}

// CreateServer implements Store.
func (s *BoltStore) CreateServer(ctx context.Context, srv *mcpmeshv1.Server) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("create server: %w", err)
	}
	var out *mcpmeshv1.Server
	_, err := s.update(ctx, fmt.Sprintf("create server %q", srv.GetName()), func(tx *bolt.Tx) (uint64, error) {
		if tx.Bucket(bucketServers).Get([]byte(srv.GetName())) != nil {
			return 0, fmt.Errorf("server %q: %w", srv.GetName(), ErrExists)
		}
		rev, err := unsafeBumpRevision(tx)
		if err != nil {
			return 0, err
		}
		out = stampCreate(srv, rev, s.now())
		return rev, s.unsafePutServer(tx, out)
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// CreateServers implements Store.
func (s *BoltStore) CreateServers(ctx context.Context, srvs []*mcpmeshv1.Server) ([]*mcpmeshv1.Server, uint64, error) {
	if err := validateServersArg(srvs); err != nil {
		return nil, 0, fmt.Errorf("create servers: %w", err)
	}
	out := make([]*mcpmeshv1.Server, len(srvs))
	rev, err := s.update(ctx, fmt.Sprintf("create %d servers", len(srvs)), func(tx *bolt.Tx) (uint64, error) {
		b := tx.Bucket(bucketServers)
		for _, srv := range srvs {
			if b.Get([]byte(srv.GetName())) != nil {
				return 0, fmt.Errorf("server %q: %w", srv.GetName(), ErrExists)
			}
		}
		rev, err := unsafeBumpRevision(tx)
		if err != nil {
			return 0, err
		}
		now := s.now()
		for i, srv := range srvs {
			out[i] = stampCreate(srv, rev, now)
			if err := s.unsafePutServer(tx, out[i]); err != nil {
				return 0, err // the transaction rolls back: none is stored
			}
		}
		return rev, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return cloneServers(out), rev, nil
}

// UpdateServer implements Store.
func (s *BoltStore) UpdateServer(ctx context.Context, srv *mcpmeshv1.Server, expectedRevision uint64) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("update server: %w", err)
	}
	var out *mcpmeshv1.Server
	_, err := s.update(ctx, fmt.Sprintf("update server %q", srv.GetName()), func(tx *bolt.Tx) (uint64, error) {
		cur, err := s.unsafeGetServer(tx, srv.GetName())
		if err != nil {
			return 0, err
		}
		if err := checkExpected(srv.GetName(), cur, expectedRevision); err != nil {
			return 0, err
		}
		rev, err := unsafeBumpRevision(tx)
		if err != nil {
			return 0, err
		}
		out = stampUpdate(srv, cur, rev, s.now())
		return rev, s.unsafePutServer(tx, out)
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// DeleteServer implements Store.
func (s *BoltStore) DeleteServer(ctx context.Context, name string, expectedRevision uint64) (uint64, error) {
	return s.update(ctx, fmt.Sprintf("delete server %q", name), func(tx *bolt.Tx) (uint64, error) {
		cur, err := s.unsafeGetServer(tx, name)
		if err != nil {
			return 0, err
		}
		if err := checkExpected(name, cur, expectedRevision); err != nil {
			return 0, err
		}
		if err := tx.Bucket(bucketServers).Delete([]byte(name)); err != nil {
			return 0, fmt.Errorf("delete server %q: %w", name, err)
		}
		if err := tx.Bucket(bucketOAuthGrants).Delete([]byte(name)); err != nil {
			return 0, fmt.Errorf("delete oauth grant of %q: %w", name, err)
		}
		return unsafeBumpRevision(tx)
	})
}

// GetServer implements Store.
func (s *BoltStore) GetServer(ctx context.Context, name string) (*mcpmeshv1.Server, error) {
	var out *mcpmeshv1.Server
	err := s.view(ctx, fmt.Sprintf("get server %q", name), func(tx *bolt.Tx) error {
		var err error
		out, err = s.unsafeGetServer(tx, name)
		return err
	})
	return out, err
}

// ListServers implements Store.
func (s *BoltStore) ListServers(ctx context.Context) ([]*mcpmeshv1.Server, uint64, error) {
	var (
		out []*mcpmeshv1.Server
		rev uint64
	)
	err := s.view(ctx, "list servers", func(tx *bolt.Tx) error {
		var err error
		out, err = s.unsafeListServers(tx)
		rev = unsafeRevision(tx)
		return err
	})
	return out, rev, err
}

// GetSettings implements Store.
func (s *BoltStore) GetSettings(ctx context.Context) (*mcpmeshv1.Settings, uint64, error) {
	var (
		out *mcpmeshv1.Settings
		rev uint64
	)
	err := s.view(ctx, "get settings", func(tx *bolt.Tx) error {
		var err error
		out, err = unsafeGetSettings(tx)
		rev = unsafeRevision(tx)
		return err
	})
	return out, rev, err
}

// PutSettings implements Store.
func (s *BoltStore) PutSettings(ctx context.Context, settings *mcpmeshv1.Settings) (uint64, error) {
	if settings == nil {
		settings = &mcpmeshv1.Settings{}
	}
	b, err := proto.Marshal(settings)
	if err != nil {
		return 0, fmt.Errorf("put settings: encode: %w", err)
	}
	return s.update(ctx, "put settings", func(tx *bolt.Tx) (uint64, error) {
		if err := tx.Bucket(bucketSettings).Put(settingsKey, b); err != nil {
			return 0, fmt.Errorf("write settings: %w", err)
		}
		return unsafeBumpRevision(tx)
	})
}

// Revision implements Store.
func (s *BoltStore) Revision(ctx context.Context) (uint64, error) {
	var rev uint64
	err := s.view(ctx, "read revision", func(tx *bolt.Tx) error {
		rev = unsafeRevision(tx)
		return nil
	})
	return rev, err
}

// State implements Store.
func (s *BoltStore) State(ctx context.Context) (*State, error) {
	st := &State{}
	if err := s.view(ctx, "read state", func(tx *bolt.Tx) error { return s.unsafeState(tx, st) }); err != nil {
		return nil, err
	}
	return st, nil
}

// unsafeState reads everything a State holds inside tx.
func (s *BoltStore) unsafeState(tx *bolt.Tx, st *State) error {
	var err error
	if st.Servers, err = s.unsafeListServers(tx); err != nil {
		return err
	}
	if st.Settings, err = unsafeGetSettings(tx); err != nil {
		return err
	}
	st.Revision = unsafeRevision(tx)
	if st.ClusterSecret, err = s.unsafeClusterSecret(tx); err != nil {
		return err
	}
	if st.PreviousSecrets, err = s.unsafePreviousSecrets(tx); err != nil {
		return err
	}
	if st.ClientKeys, err = unsafeListClientKeys(tx); err != nil {
		return err
	}
	st.OAuthGrants, err = s.unsafeListGrants(tx) // bolt_oauth.go
	return err
}

// PutHealth implements Store. It does not bump the config revision.
func (s *BoltStore) PutHealth(ctx context.Context, dataplaneID string, backends, events []*mcpmeshv1.BackendHealth) error {
	if dataplaneID == "" {
		return fmt.Errorf("put health: data plane id is empty")
	}
	_, err := s.update(ctx, fmt.Sprintf("put health of data plane %q", dataplaneID), func(tx *bolt.Tx) (uint64, error) {
		if err := unsafeReplaceHealth(tx, dataplaneID, backends); err != nil {
			return 0, err
		}
		return 0, unsafeAppendEvents(tx, events)
	})
	return err
}

func unsafeReplaceHealth(tx *bolt.Tx, dataplaneID string, backends []*mcpmeshv1.BackendHealth) error {
	b := tx.Bucket(bucketHealth)
	prefix := healthPrefix(dataplaneID)
	var stale [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		stale = append(stale, bytes.Clone(k))
	}
	for _, k := range stale { // deleting while iterating a cursor skips keys, so collect first
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("delete health %q: %w", k, err)
		}
	}
	for _, h := range backends {
		v, err := proto.Marshal(h)
		if err != nil {
			return fmt.Errorf("encode health of %q: %w", h.GetServer(), err)
		}
		if err := b.Put(healthKey(dataplaneID, h.GetServer()), v); err != nil {
			return fmt.Errorf("write health of %q: %w", h.GetServer(), err)
		}
	}
	return nil
}

func unsafeAppendEvents(tx *bolt.Tx, events []*mcpmeshv1.BackendHealth) error {
	if len(events) == 0 {
		return nil
	}
	b := tx.Bucket(bucketEvents)
	c := b.Cursor()
	var seq uint64
	if k, _ := c.Last(); k != nil {
		seq = fromU64(k)
	}
	for _, ev := range events {
		seq++
		v, err := proto.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if err := b.Put(u64(seq), v); err != nil {
			return fmt.Errorf("write event %d: %w", seq, err)
		}
	}
	if seq <= MaxEvents {
		return nil
	}
	oldestKept := seq - MaxEvents + 1
	var drop [][]byte
	for k, _ := c.First(); k != nil && fromU64(k) < oldestKept; k, _ = c.Next() {
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("trim events: %w", err)
		}
	}
	return nil
}

// ListHealth implements Store.
func (s *BoltStore) ListHealth(ctx context.Context) ([]*mcpmeshv1.BackendHealth, error) {
	var out []*mcpmeshv1.BackendHealth
	err := s.view(ctx, "list health", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHealth).ForEach(func(k, v []byte) error {
			h := &mcpmeshv1.BackendHealth{}
			if err := proto.Unmarshal(v, h); err != nil {
				return fmt.Errorf("decode health %q: %w", k, err)
			}
			out = append(out, h)
			return nil
		})
	})
	return out, err
}

// ListEvents implements Store.
func (s *BoltStore) ListEvents(ctx context.Context, limit int) ([]Event, error) {
	var out []Event
	err := s.view(ctx, "list events", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			h := &mcpmeshv1.BackendHealth{}
			if err := proto.Unmarshal(v, h); err != nil {
				return fmt.Errorf("decode event %d: %w", fromU64(k), err)
			}
			out = append(out, Event{Seq: fromU64(k), Health: h})
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

func unsafeGetToken(tx *bolt.Tx, id string) (*mcpmeshv1.StoredToken, error) {
	v := tx.Bucket(bucketTokens).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	tok := &mcpmeshv1.StoredToken{}
	if err := proto.Unmarshal(v, tok); err != nil {
		return nil, fmt.Errorf("decode token %q: %w", id, err)
	}
	return tok, nil
}

func unsafePutToken(tx *bolt.Tx, tok *mcpmeshv1.StoredToken) error {
	id := tok.GetToken().GetId()
	b, err := proto.Marshal(tok)
	if err != nil {
		return fmt.Errorf("encode token %q: %w", id, err)
	}
	if err := tx.Bucket(bucketTokens).Put([]byte(id), b); err != nil {
		return fmt.Errorf("write token %q: %w", id, err)
	}
	return nil
}

// CreateToken implements Store. It does not bump the config revision.
func (s *BoltStore) CreateToken(ctx context.Context, tok *mcpmeshv1.StoredToken) error {
	if err := validateTokenArg(tok); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	id := tok.GetToken().GetId()
	_, err := s.update(ctx, fmt.Sprintf("create token %q", id), func(tx *bolt.Tx) (uint64, error) {
		if tx.Bucket(bucketTokens).Get([]byte(id)) != nil {
			return 0, fmt.Errorf("token %q: %w", id, ErrExists)
		}
		return 0, unsafePutToken(tx, tok)
	})
	return err
}

// GetToken implements Store.
func (s *BoltStore) GetToken(ctx context.Context, id string) (*mcpmeshv1.StoredToken, error) {
	var out *mcpmeshv1.StoredToken
	err := s.view(ctx, fmt.Sprintf("get token %q", id), func(tx *bolt.Tx) error {
		var err error
		out, err = unsafeGetToken(tx, id)
		return err
	})
	return out, err
}

// ListTokens implements Store.
func (s *BoltStore) ListTokens(ctx context.Context) ([]*mcpmeshv1.StoredToken, error) {
	var out []*mcpmeshv1.StoredToken
	err := s.view(ctx, "list tokens", func(tx *bolt.Tx) error {
		var err error
		out, err = unsafeListTokens(tx)
		return err
	})
	return out, err
}

// unsafeListTokens returns every token in tx, sorted by id (key order).
func unsafeListTokens(tx *bolt.Tx) ([]*mcpmeshv1.StoredToken, error) {
	var out []*mcpmeshv1.StoredToken
	err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		tok := &mcpmeshv1.StoredToken{}
		if err := proto.Unmarshal(v, tok); err != nil {
			return fmt.Errorf("decode token %q: %w", k, err)
		}
		out = append(out, tok)
		return nil
	})
	return out, err
}

// RevokeToken implements Store. It does not bump the config revision.
func (s *BoltStore) RevokeToken(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredToken, error) {
	var out *mcpmeshv1.StoredToken
	_, err := s.update(ctx, fmt.Sprintf("revoke token %q", id), func(tx *bolt.Tx) (uint64, error) {
		tok, err := unsafeGetToken(tx, id)
		if err != nil {
			return 0, err
		}
		out = tok
		if !stampRevoked(tok, at) {
			return 0, nil
		}
		return 0, unsafePutToken(tx, tok)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *BoltStore) unsafeClusterSecret(tx *bolt.Tx) ([]byte, error) {
	secret, err := s.seal.open(bucketMeta, metaClusterSecret, tx.Bucket(bucketMeta).Get(metaClusterSecret))
	if err != nil {
		return nil, fmt.Errorf("read cluster secret: %w", err)
	}
	return bytes.Clone(secret), nil
}

func (s *BoltStore) unsafePreviousSecrets(tx *bolt.Tx) ([]PreviousSecret, error) {
	v := tx.Bucket(bucketMeta).Get(metaPreviousSecrets)
	if v == nil {
		return nil, nil
	}
	plain, err := s.seal.open(bucketMeta, metaPreviousSecrets, v)
	if err != nil {
		return nil, fmt.Errorf("read previous cluster secrets: %w", err)
	}
	m := &mcpmeshv1.StoredSecrets{}
	if err := proto.Unmarshal(plain, m); err != nil {
		return nil, fmt.Errorf("decode previous cluster secrets: %w", err)
	}
	return previousFromProto(m), nil
}

func (s *BoltStore) unsafePutPreviousSecrets(tx *bolt.Tx, prev []PreviousSecret) error {
	if len(prev) == 0 {
		return tx.Bucket(bucketMeta).Delete(metaPreviousSecrets)
	}
	b, err := proto.Marshal(previousToProto(prev))
	if err != nil {
		return fmt.Errorf("encode previous cluster secrets: %w", err)
	}
	if err := s.unsafePutSealed(tx, bucketMeta, metaPreviousSecrets, b); err != nil {
		return fmt.Errorf("write previous cluster secrets: %w", err)
	}
	return nil
}

func unsafeGetClientKey(tx *bolt.Tx, id string) (*mcpmeshv1.StoredClientKey, error) {
	v := tx.Bucket(bucketClientKeys).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("client key %q: %w", id, ErrNotFound)
	}
	k := &mcpmeshv1.StoredClientKey{}
	if err := proto.Unmarshal(v, k); err != nil {
		return nil, fmt.Errorf("decode client key %q: %w", id, err)
	}
	return k, nil
}

func unsafePutClientKey(tx *bolt.Tx, k *mcpmeshv1.StoredClientKey) error {
	id := k.GetKey().GetId()
	b, err := proto.Marshal(k)
	if err != nil {
		return fmt.Errorf("encode client key %q: %w", id, err)
	}
	if err := tx.Bucket(bucketClientKeys).Put([]byte(id), b); err != nil {
		return fmt.Errorf("write client key %q: %w", id, err)
	}
	return nil
}

// RotateClusterSecret implements Store.
func (s *BoltStore) RotateClusterSecret(ctx context.Context, now, until time.Time) (uint64, error) {
	secret, err := newClusterSecret()
	if err != nil {
		return 0, fmt.Errorf("rotate cluster secret: %w", err)
	}
	return s.update(ctx, "rotate cluster secret", func(tx *bolt.Tx) (uint64, error) {
		old, err := s.unsafeClusterSecret(tx)
		if err != nil {
			return 0, err
		}
		prev, err := s.unsafePreviousSecrets(tx)
		if err != nil {
			return 0, err
		}
		if err := s.unsafePutPreviousSecrets(tx, rotated(prev, old, now, until)); err != nil {
			return 0, err
		}
		if err := s.unsafePutSealed(tx, bucketMeta, metaClusterSecret, secret); err != nil {
			return 0, fmt.Errorf("write cluster secret: %w", err)
		}
		return unsafeBumpRevision(tx)
	})
}

func unsafeListClientKeys(tx *bolt.Tx) ([]*mcpmeshv1.StoredClientKey, error) {
	var out []*mcpmeshv1.StoredClientKey
	err := tx.Bucket(bucketClientKeys).ForEach(func(k, v []byte) error {
		ck := &mcpmeshv1.StoredClientKey{}
		if err := proto.Unmarshal(v, ck); err != nil {
			return fmt.Errorf("decode client key %q: %w", k, err)
		}
		out = append(out, ck)
		return nil
	})
	return out, err // sorted by id: bbolt iterates in key order
}

// CreateClientKey implements Store. It bumps the config revision.
func (s *BoltStore) CreateClientKey(ctx context.Context, k *mcpmeshv1.StoredClientKey) (uint64, error) {
	if err := validateClientKeyArg(k); err != nil {
		return 0, fmt.Errorf("create client key: %w", err)
	}
	id := k.GetKey().GetId()
	return s.update(ctx, fmt.Sprintf("create client key %q", id), func(tx *bolt.Tx) (uint64, error) {
		if tx.Bucket(bucketClientKeys).Get([]byte(id)) != nil {
			return 0, fmt.Errorf("client key %q: %w", id, ErrExists)
		}
		if err := unsafePutClientKey(tx, k); err != nil {
			return 0, err
		}
		return unsafeBumpRevision(tx)
	})
}

// DropExpiredSecrets implements Store.
func (s *BoltStore) DropExpiredSecrets(ctx context.Context, now time.Time) (uint64, error) {
	return s.update(ctx, "drop expired cluster secrets", func(tx *bolt.Tx) (uint64, error) {
		prev, err := s.unsafePreviousSecrets(tx)
		if err != nil {
			return 0, err
		}
		keep := unexpired(prev, now)
		if len(keep) == len(prev) {
			return 0, nil
		}
		if err := s.unsafePutPreviousSecrets(tx, keep); err != nil {
			return 0, err
		}
		return unsafeBumpRevision(tx)
	})
}

// ListClientKeys implements Store.
func (s *BoltStore) ListClientKeys(ctx context.Context) ([]*mcpmeshv1.StoredClientKey, error) {
	var out []*mcpmeshv1.StoredClientKey
	err := s.view(ctx, "list client keys", func(tx *bolt.Tx) error {
		var err error
		out, err = unsafeListClientKeys(tx)
		return err
	})
	return out, err
}

// RevokeClientKey implements Store. It bumps the config revision when it
// revokes.
func (s *BoltStore) RevokeClientKey(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredClientKey, error) {
	var out *mcpmeshv1.StoredClientKey
	_, err := s.update(ctx, fmt.Sprintf("revoke client key %q", id), func(tx *bolt.Tx) (uint64, error) {
		k, err := unsafeGetClientKey(tx, id)
		if err != nil {
			return 0, err
		}
		out = k
		if !stampClientKeyRevoked(k, at) {
			return 0, nil
		}
		if err := unsafePutClientKey(tx, k); err != nil {
			return 0, err
		}
		return unsafeBumpRevision(tx)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Watch implements Store.
func (s *BoltStore) Watch(ctx context.Context) <-chan uint64 { return s.watchers.watch(ctx) }
