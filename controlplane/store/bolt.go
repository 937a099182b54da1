package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
	watchers watchers
	now      func() time.Time
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens (creating if needed) the store file at path, creates the
// buckets and, on first open, the cluster secret.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: database is locked by another process (is another control plane running with this data dir?)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &BoltStore{db: db, path: path, now: time.Now}
	if err := db.Update(unsafeInit); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise store %s: %w", path, err)
	}
	return s, nil
}

func unsafeInit(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(metaSchemaVersion); v == nil {
		if err := meta.Put(metaSchemaVersion, u64(schemaVersion)); err != nil {
			return fmt.Errorf("write schema version: %w", err)
		}
	} else if got := fromU64(v); got > schemaVersion {
		return &SchemaError{Found: got, Supported: schemaVersion}
	}
	if meta.Get(metaClusterSecret) == nil {
		secret := make([]byte, clusterSecretLen)
		if _, err := rand.Read(secret); err != nil {
			return fmt.Errorf("generate cluster secret: %w", err)
		}
		if err := meta.Put(metaClusterSecret, secret); err != nil {
			return fmt.Errorf("write cluster secret: %w", err)
		}
	}
	return nil
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

func unsafeGetServer(tx *bolt.Tx, name string) (*mcpmeshv1.Server, error) {
	v := tx.Bucket(bucketServers).Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("server %q: %w", name, ErrNotFound)
	}
	srv := &mcpmeshv1.Server{}
	if err := proto.Unmarshal(v, srv); err != nil {
		return nil, fmt.Errorf("decode server %q: %w", name, err)
	}
	return srv, nil
}

func unsafePutServer(tx *bolt.Tx, srv *mcpmeshv1.Server) error {
	b, err := proto.Marshal(srv)
	if err != nil {
		return fmt.Errorf("encode server %q: %w", srv.GetName(), err)
	}
	if err := tx.Bucket(bucketServers).Put([]byte(srv.GetName()), b); err != nil {
		return fmt.Errorf("write server %q: %w", srv.GetName(), err)
	}
	return nil
}

func unsafeListServers(tx *bolt.Tx) ([]*mcpmeshv1.Server, error) {
	var out []*mcpmeshv1.Server
	err := tx.Bucket(bucketServers).ForEach(func(k, v []byte) error {
		srv := &mcpmeshv1.Server{}
		if err := proto.Unmarshal(v, srv); err != nil {
			return fmt.Errorf("decode server %q: %w", k, err)
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
		return rev, unsafePutServer(tx, out)
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// UpdateServer implements Store.
func (s *BoltStore) UpdateServer(ctx context.Context, srv *mcpmeshv1.Server, expectedRevision uint64) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("update server: %w", err)
	}
	var out *mcpmeshv1.Server
	_, err := s.update(ctx, fmt.Sprintf("update server %q", srv.GetName()), func(tx *bolt.Tx) (uint64, error) {
		cur, err := unsafeGetServer(tx, srv.GetName())
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
		return rev, unsafePutServer(tx, out)
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// DeleteServer implements Store.
func (s *BoltStore) DeleteServer(ctx context.Context, name string, expectedRevision uint64) (uint64, error) {
	return s.update(ctx, fmt.Sprintf("delete server %q", name), func(tx *bolt.Tx) (uint64, error) {
		cur, err := unsafeGetServer(tx, name)
		if err != nil {
			return 0, err
		}
		if err := checkExpected(name, cur, expectedRevision); err != nil {
			return 0, err
		}
		if err := tx.Bucket(bucketServers).Delete([]byte(name)); err != nil {
			return 0, fmt.Errorf("delete server %q: %w", name, err)
		}
		return unsafeBumpRevision(tx)
	})
}

// GetServer implements Store.
func (s *BoltStore) GetServer(ctx context.Context, name string) (*mcpmeshv1.Server, error) {
	var out *mcpmeshv1.Server
	err := s.view(ctx, fmt.Sprintf("get server %q", name), func(tx *bolt.Tx) error {
		var err error
		out, err = unsafeGetServer(tx, name)
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
		out, err = unsafeListServers(tx)
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
	err := s.view(ctx, "read state", func(tx *bolt.Tx) error {
		var err error
		if st.Servers, err = unsafeListServers(tx); err != nil {
			return err
		}
		if st.Settings, err = unsafeGetSettings(tx); err != nil {
			return err
		}
		st.Revision = unsafeRevision(tx)
		st.ClusterSecret = bytes.Clone(tx.Bucket(bucketMeta).Get(metaClusterSecret))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
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
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			tok := &mcpmeshv1.StoredToken{}
			if err := proto.Unmarshal(v, tok); err != nil {
				return fmt.Errorf("decode token %q: %w", k, err)
			}
			out = append(out, tok)
			return nil
		})
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

// Watch implements Store.
func (s *BoltStore) Watch(ctx context.Context) <-chan uint64 { return s.watchers.watch(ctx) }
