package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
)

// MemoryStore is a Store held in memory, for tests and for running without a
// data dir. It follows exactly the same rules as BoltStore.
type MemoryStore struct {
	mu       sync.RWMutex
	closed   bool
	rev      uint64
	servers  map[string]*mcpmeshv1.Server
	settings *mcpmeshv1.Settings
	secret   []byte
	previous []PreviousSecret
	health   map[string]*mcpmeshv1.BackendHealth // key healthKey
	events   []Event
	eventSeq uint64
	tokens   map[string]*mcpmeshv1.StoredToken
	ckeys    map[string]*mcpmeshv1.StoredClientKey
	grants   map[string]*mcpmeshv1.StoredOAuthGrant   // memory_oauth.go
	pending  map[string]*mcpmeshv1.StoredOAuthPending // memory_oauth.go
	watchers watchers
	now      func() time.Time
}

var _ Store = (*MemoryStore)(nil)

var errClosed = errors.New("store is closed")

// NewMemory returns an empty in-memory store with a fresh cluster secret.
func NewMemory() *MemoryStore {
	secret, err := newClusterSecret()
	if err != nil {
		panic(err.Error()) // crypto/rand never fails on supported platforms
	}
	return &MemoryStore{
		servers:  make(map[string]*mcpmeshv1.Server),
		settings: &mcpmeshv1.Settings{},
		secret:   secret,
		health:   make(map[string]*mcpmeshv1.BackendHealth),
		tokens:   make(map[string]*mcpmeshv1.StoredToken),
		ckeys:    make(map[string]*mcpmeshv1.StoredClientKey),
		now:      time.Now,
	}
}

// write runs fn under the write lock; a non-zero returned revision is
// announced to watchers after the lock is released (the "commit").
func (m *MemoryStore) write(ctx context.Context, op string, fn func() (uint64, error)) (uint64, error) {
	if err := checkCtx(ctx, op); err != nil {
		return 0, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, fmt.Errorf("%s: %w", op, errClosed)
	}
	rev, err := fn()
	m.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if rev != 0 {
		m.watchers.notify(rev)
	}
	return rev, nil
}

func (m *MemoryStore) read(ctx context.Context, op string, fn func() error) error {
	if err := checkCtx(ctx, op); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	if err := fn(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// CreateServer implements Store.
func (m *MemoryStore) CreateServer(ctx context.Context, srv *mcpmeshv1.Server) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("create server: %w", err)
	}
	var out *mcpmeshv1.Server
	_, err := m.write(ctx, fmt.Sprintf("create server %q", srv.GetName()), func() (uint64, error) {
		if _, ok := m.servers[srv.GetName()]; ok {
			return 0, fmt.Errorf("server %q: %w", srv.GetName(), ErrExists)
		}
		m.rev++
		out = stampCreate(srv, m.rev, m.now())
		m.servers[out.GetName()] = out
		return m.rev, nil
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// CreateServers implements Store.
func (m *MemoryStore) CreateServers(ctx context.Context, srvs []*mcpmeshv1.Server) ([]*mcpmeshv1.Server, uint64, error) {
	if err := validateServersArg(srvs); err != nil {
		return nil, 0, fmt.Errorf("create servers: %w", err)
	}
	out := make([]*mcpmeshv1.Server, len(srvs))
	rev, err := m.write(ctx, fmt.Sprintf("create %d servers", len(srvs)), func() (uint64, error) {
		for _, srv := range srvs { // check every name before changing anything
			if _, ok := m.servers[srv.GetName()]; ok {
				return 0, fmt.Errorf("server %q: %w", srv.GetName(), ErrExists)
			}
		}
		m.rev++
		now := m.now()
		for i, srv := range srvs {
			out[i] = stampCreate(srv, m.rev, now)
			m.servers[out[i].GetName()] = out[i]
		}
		return m.rev, nil
	})
	if err != nil {
		return nil, 0, err
	}
	return cloneServers(out), rev, nil
}

// UpdateServer implements Store.
func (m *MemoryStore) UpdateServer(ctx context.Context, srv *mcpmeshv1.Server, expectedRevision uint64) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("update server: %w", err)
	}
	var out *mcpmeshv1.Server
	_, err := m.write(ctx, fmt.Sprintf("update server %q", srv.GetName()), func() (uint64, error) {
		cur, ok := m.servers[srv.GetName()]
		if !ok {
			return 0, fmt.Errorf("server %q: %w", srv.GetName(), ErrNotFound)
		}
		if err := checkExpected(srv.GetName(), cur, expectedRevision); err != nil {
			return 0, err
		}
		m.rev++
		out = stampUpdate(srv, cur, m.rev, m.now())
		m.servers[out.GetName()] = out
		return m.rev, nil
	})
	if err != nil {
		return nil, err
	}
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// DeleteServer implements Store.
func (m *MemoryStore) DeleteServer(ctx context.Context, name string, expectedRevision uint64) (uint64, error) {
	return m.write(ctx, fmt.Sprintf("delete server %q", name), func() (uint64, error) {
		cur, ok := m.servers[name]
		if !ok {
			return 0, fmt.Errorf("server %q: %w", name, ErrNotFound)
		}
		if err := checkExpected(name, cur, expectedRevision); err != nil {
			return 0, err
		}
		delete(m.servers, name)
		delete(m.grants, name)
		m.rev++
		return m.rev, nil
	})
}

// GetServer implements Store.
func (m *MemoryStore) GetServer(ctx context.Context, name string) (*mcpmeshv1.Server, error) {
	var out *mcpmeshv1.Server
	err := m.read(ctx, fmt.Sprintf("get server %q", name), func() error {
		cur, ok := m.servers[name]
		if !ok {
			return fmt.Errorf("server %q: %w", name, ErrNotFound)
		}
		out = proto.Clone(cur).(*mcpmeshv1.Server)
		return nil
	})
	return out, err
}

func (m *MemoryStore) sortedServers() []*mcpmeshv1.Server {
	out := make([]*mcpmeshv1.Server, 0, len(m.servers))
	for _, s := range m.servers {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return cloneServers(out)
}

// ListServers implements Store.
func (m *MemoryStore) ListServers(ctx context.Context) ([]*mcpmeshv1.Server, uint64, error) {
	var (
		out []*mcpmeshv1.Server
		rev uint64
	)
	err := m.read(ctx, "list servers", func() error {
		out, rev = m.sortedServers(), m.rev
		return nil
	})
	if len(out) == 0 {
		out = nil // same as bbolt: no servers is a nil slice
	}
	return out, rev, err
}

// GetSettings implements Store.
func (m *MemoryStore) GetSettings(ctx context.Context) (*mcpmeshv1.Settings, uint64, error) {
	var (
		out *mcpmeshv1.Settings
		rev uint64
	)
	err := m.read(ctx, "get settings", func() error {
		out, rev = proto.Clone(m.settings).(*mcpmeshv1.Settings), m.rev
		return nil
	})
	return out, rev, err
}

// PutSettings implements Store.
func (m *MemoryStore) PutSettings(ctx context.Context, settings *mcpmeshv1.Settings) (uint64, error) {
	if settings == nil {
		settings = &mcpmeshv1.Settings{}
	}
	cp := proto.Clone(settings).(*mcpmeshv1.Settings)
	return m.write(ctx, "put settings", func() (uint64, error) {
		m.settings = cp
		m.rev++
		return m.rev, nil
	})
}

// Revision implements Store.
func (m *MemoryStore) Revision(ctx context.Context) (uint64, error) {
	var rev uint64
	err := m.read(ctx, "read revision", func() error {
		rev = m.rev
		return nil
	})
	return rev, err
}

// State implements Store.
func (m *MemoryStore) State(ctx context.Context) (*State, error) {
	var st *State
	err := m.read(ctx, "read state", func() error {
		st = m.unsafeState()
		return nil
	})
	return st, err
}

// unsafeState copies everything a State holds; m.mu must be held.
func (m *MemoryStore) unsafeState() *State {
	st := &State{
		Revision:        m.rev,
		Servers:         m.sortedServers(),
		Settings:        proto.CloneOf(m.settings),
		ClusterSecret:   bytes.Clone(m.secret),
		PreviousSecrets: clonePrevious(m.previous),
		ClientKeys:      m.sortedClientKeys(),
		OAuthGrants:     m.unsafeListGrants(), // memory_oauth.go
	}
	if len(st.Servers) == 0 {
		st.Servers = nil
	}
	return st
}

// PutHealth implements Store. It does not bump the config revision.
func (m *MemoryStore) PutHealth(ctx context.Context, dataplaneID string, backends, events []*mcpmeshv1.BackendHealth) error {
	if dataplaneID == "" {
		return fmt.Errorf("put health: data plane id is empty")
	}
	_, err := m.write(ctx, fmt.Sprintf("put health of data plane %q", dataplaneID), func() (uint64, error) {
		prefix := string(healthPrefix(dataplaneID))
		for k := range m.health {
			if strings.HasPrefix(k, prefix) {
				delete(m.health, k)
			}
		}
		for _, h := range backends {
			m.health[string(healthKey(dataplaneID, h.GetServer()))] = cloneHealth(h)
		}
		for _, ev := range events {
			m.eventSeq++
			m.events = append(m.events, Event{Seq: m.eventSeq, Health: cloneHealth(ev)})
		}
		if n := len(m.events); n > MaxEvents {
			m.events = slices.Clone(m.events[n-MaxEvents:])
		}
		return 0, nil
	})
	return err
}

// ListHealth implements Store.
func (m *MemoryStore) ListHealth(ctx context.Context) ([]*mcpmeshv1.BackendHealth, error) {
	var out []*mcpmeshv1.BackendHealth
	err := m.read(ctx, "list health", func() error {
		keys := make([]string, 0, len(m.health))
		for k := range m.health {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, cloneHealth(m.health[k]))
		}
		return nil
	})
	return out, err
}

// ListEvents implements Store.
func (m *MemoryStore) ListEvents(ctx context.Context, limit int) ([]Event, error) {
	var out []Event
	err := m.read(ctx, "list events", func() error {
		evs := m.events
		if limit > 0 && len(evs) > limit {
			evs = evs[len(evs)-limit:]
		}
		for _, e := range evs {
			out = append(out, Event{Seq: e.Seq, Health: cloneHealth(e.Health)})
		}
		return nil
	})
	return out, err
}

// CreateToken implements Store. It does not bump the config revision.
func (m *MemoryStore) CreateToken(ctx context.Context, tok *mcpmeshv1.StoredToken) error {
	if err := validateTokenArg(tok); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	id := tok.GetToken().GetId()
	_, err := m.write(ctx, fmt.Sprintf("create token %q", id), func() (uint64, error) {
		if _, ok := m.tokens[id]; ok {
			return 0, fmt.Errorf("token %q: %w", id, ErrExists)
		}
		m.tokens[id] = cloneToken(tok)
		return 0, nil
	})
	return err
}

// GetToken implements Store.
func (m *MemoryStore) GetToken(ctx context.Context, id string) (*mcpmeshv1.StoredToken, error) {
	var out *mcpmeshv1.StoredToken
	err := m.read(ctx, fmt.Sprintf("get token %q", id), func() error {
		tok, ok := m.tokens[id]
		if !ok {
			return fmt.Errorf("token %q: %w", id, ErrNotFound)
		}
		out = cloneToken(tok)
		return nil
	})
	return out, err
}

// ListTokens implements Store.
func (m *MemoryStore) ListTokens(ctx context.Context) ([]*mcpmeshv1.StoredToken, error) {
	var out []*mcpmeshv1.StoredToken
	err := m.read(ctx, "list tokens", func() error {
		for _, id := range slices.Sorted(maps.Keys(m.tokens)) {
			out = append(out, cloneToken(m.tokens[id]))
		}
		return nil
	})
	return out, err
}

// RevokeToken implements Store. It does not bump the config revision.
func (m *MemoryStore) RevokeToken(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredToken, error) {
	var out *mcpmeshv1.StoredToken
	_, err := m.write(ctx, fmt.Sprintf("revoke token %q", id), func() (uint64, error) {
		tok, ok := m.tokens[id]
		if !ok {
			return 0, fmt.Errorf("token %q: %w", id, ErrNotFound)
		}
		stampRevoked(tok, at)
		out = cloneToken(tok)
		return 0, nil
	})
	return out, err
}

// RotateClusterSecret implements Store.
func (m *MemoryStore) RotateClusterSecret(ctx context.Context, now, until time.Time) (uint64, error) {
	secret, err := newClusterSecret()
	if err != nil {
		return 0, fmt.Errorf("rotate cluster secret: %w", err)
	}
	return m.write(ctx, "rotate cluster secret", func() (uint64, error) {
		m.previous = rotated(m.previous, m.secret, now, until)
		m.secret = secret
		m.rev++
		return m.rev, nil
	})
}

func (m *MemoryStore) sortedClientKeys() []*mcpmeshv1.StoredClientKey {
	var out []*mcpmeshv1.StoredClientKey
	for _, id := range slices.Sorted(maps.Keys(m.ckeys)) {
		out = append(out, cloneClientKey(m.ckeys[id]))
	}
	return out
}

// CreateClientKey implements Store. It bumps the config revision.
func (m *MemoryStore) CreateClientKey(ctx context.Context, k *mcpmeshv1.StoredClientKey) (uint64, error) {
	if err := validateClientKeyArg(k); err != nil {
		return 0, fmt.Errorf("create client key: %w", err)
	}
	id := k.GetKey().GetId()
	return m.write(ctx, fmt.Sprintf("create client key %q", id), func() (uint64, error) {
		if _, ok := m.ckeys[id]; ok {
			return 0, fmt.Errorf("client key %q: %w", id, ErrExists)
		}
		m.ckeys[id] = cloneClientKey(k)
		m.rev++
		return m.rev, nil
	})
}

// DropExpiredSecrets implements Store.
func (m *MemoryStore) DropExpiredSecrets(ctx context.Context, now time.Time) (uint64, error) {
	return m.write(ctx, "drop expired cluster secrets", func() (uint64, error) {
		keep := unexpired(m.previous, now)
		if len(keep) == len(m.previous) {
			return 0, nil
		}
		m.previous = keep
		m.rev++
		return m.rev, nil
	})
}

// ListClientKeys implements Store.
func (m *MemoryStore) ListClientKeys(ctx context.Context) ([]*mcpmeshv1.StoredClientKey, error) {
	var out []*mcpmeshv1.StoredClientKey
	err := m.read(ctx, "list client keys", func() error {
		out = m.sortedClientKeys()
		return nil
	})
	return out, err
}

// RevokeClientKey implements Store. It bumps the config revision when it
// revokes.
func (m *MemoryStore) RevokeClientKey(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredClientKey, error) {
	var out *mcpmeshv1.StoredClientKey
	_, err := m.write(ctx, fmt.Sprintf("revoke client key %q", id), func() (uint64, error) {
		k, ok := m.ckeys[id]
		if !ok {
			return 0, fmt.Errorf("client key %q: %w", id, ErrNotFound)
		}
		changed := stampClientKeyRevoked(k, at)
		out = cloneClientKey(k)
		if !changed {
			return 0, nil
		}
		m.rev++
		return m.rev, nil
	})
	return out, err
}

// Watch implements Store.
func (m *MemoryStore) Watch(ctx context.Context) <-chan uint64 { return m.watchers.watch(ctx) }

// Close implements Store.
func (m *MemoryStore) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.watchers.closeAll()
	return nil
}
