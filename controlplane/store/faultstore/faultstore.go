package faultstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
)

// Fault is a store.Store that forwards every call to a real store until told
// to fail. A failed write never reaches the real store, which is what a
// rolled-back transaction leaves behind; a corrupt value fails every read
// that decodes it, with the error a real decode of damaged bytes returns.
type Fault struct {
	inner store.Store

	mu              sync.Mutex
	writeErr        error
	corruptServers  map[string]bool
	corruptSettings bool
	newerSchema     bool
}

var _ store.Store = (*Fault)(nil)

// New wraps inner; with no fault set it behaves exactly like inner.
func New(inner store.Store) *Fault {
	return &Fault{inner: inner, corruptServers: make(map[string]bool)}
}

// FailWrites makes every write (servers, settings, health) fail with err,
// wrapped with the operation as the real stores wrap theirs; nil stops it.
func (f *Fault) FailWrites(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr = err
}

// CorruptServer makes the stored value of server name undecodable: GetServer,
// ListServers, State and the writes that read it first (update, delete) fail.
// Like bbolt, ListServers still returns the servers it decoded before it.
func (f *Fault) CorruptServer(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corruptServers[name] = true
}

// CorruptSettings makes the stored settings undecodable: GetSettings and
// State fail.
func (f *Fault) CorruptSettings() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.corruptSettings = true
}

// NewerSchema makes every call fail with a *store.SchemaError, as a store
// whose data a newer control plane has migrated does.
func (f *Fault) NewerSchema() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.newerSchema = true
}

// Heal clears every fault.
func (f *Fault) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr, f.corruptSettings, f.newerSchema = nil, false, false
	clear(f.corruptServers)
}

// garbage is what a torn page or a foreign writer leaves in a value: a
// length-delimited field whose length varint overflows.
var garbage = []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Garbage returns the bytes a corrupt value holds, so a test can write them
// into a real bbolt file and compare what both stores report.
func Garbage() []byte { return slices.Clone(garbage) }

// decodeError is the error proto.Unmarshal really returns for garbage, so
// callers see exactly what a damaged file produces.
func decodeError(what string, msg proto.Message) error {
	err := proto.Unmarshal(garbage, msg)
	if err == nil {
		panic("faultstore: garbage decoded") // the bytes above are invalid wire format
	}
	return fmt.Errorf("decode %s: %w", what, err)
}

func decodeServerError(name string) error {
	return decodeError(fmt.Sprintf("server %q", name), &mcpmeshv1.Server{})
}

// before returns the error of op if a schema or write fault applies.
func (f *Fault) before(op string, write bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newerSchema {
		return fmt.Errorf("%s: %w", op, &store.SchemaError{Found: store.SchemaVersion + 1, Supported: store.SchemaVersion})
	}
	if write && f.writeErr != nil {
		return fmt.Errorf("%s: %w", op, f.writeErr)
	}
	return nil
}

func (f *Fault) serverCorrupt(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.corruptServers[name]
}

func (f *Fault) settingsCorrupt() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.corruptSettings
}

// firstCorrupt returns the index of the first corrupt server in servers
// (sorted by name, as stored), or -1.
func (f *Fault) firstCorrupt(servers []*mcpmeshv1.Server) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.IndexFunc(servers, func(s *mcpmeshv1.Server) bool { return f.corruptServers[s.GetName()] })
}

// readsCorrupt reports whether a write must fail because it reads the
// stored server first and that value is corrupt.
func (f *Fault) readsCorrupt(ctx context.Context, op, name string) error {
	if !f.serverCorrupt(name) {
		return nil
	}
	if _, err := f.inner.GetServer(ctx, name); err != nil {
		return err // not stored (or failing on its own): the real error wins
	}
	return fmt.Errorf("%s: %w", op, decodeServerError(name))
}

// CreateServer implements store.Store.
func (f *Fault) CreateServer(ctx context.Context, srv *mcpmeshv1.Server) (*mcpmeshv1.Server, error) {
	if err := f.before(fmt.Sprintf("create server %q", srv.GetName()), true); err != nil {
		return nil, err
	}
	return f.inner.CreateServer(ctx, srv)
}

// CreateServers implements store.Store.
func (f *Fault) CreateServers(ctx context.Context, srvs []*mcpmeshv1.Server) ([]*mcpmeshv1.Server, uint64, error) {
	if err := f.before(fmt.Sprintf("create %d servers", len(srvs)), true); err != nil {
		return nil, 0, err
	}
	return f.inner.CreateServers(ctx, srvs)
}

// UpdateServer implements store.Store.
func (f *Fault) UpdateServer(ctx context.Context, srv *mcpmeshv1.Server, expectedRevision uint64) (*mcpmeshv1.Server, error) {
	op := fmt.Sprintf("update server %q", srv.GetName())
	if err := f.before(op, true); err != nil {
		return nil, err
	}
	if err := f.readsCorrupt(ctx, op, srv.GetName()); err != nil {
		return nil, err
	}
	return f.inner.UpdateServer(ctx, srv, expectedRevision)
}

// DeleteServer implements store.Store.
func (f *Fault) DeleteServer(ctx context.Context, name string, expectedRevision uint64) (uint64, error) {
	op := fmt.Sprintf("delete server %q", name)
	if err := f.before(op, true); err != nil {
		return 0, err
	}
	if err := f.readsCorrupt(ctx, op, name); err != nil {
		return 0, err
	}
	return f.inner.DeleteServer(ctx, name, expectedRevision)
}

// GetServer implements store.Store.
func (f *Fault) GetServer(ctx context.Context, name string) (*mcpmeshv1.Server, error) {
	op := fmt.Sprintf("get server %q", name)
	if err := f.before(op, false); err != nil {
		return nil, err
	}
	srv, err := f.inner.GetServer(ctx, name)
	if err == nil && f.serverCorrupt(name) {
		return nil, fmt.Errorf("%s: %w", op, decodeServerError(name))
	}
	return srv, err
}

// ListServers implements store.Store.
func (f *Fault) ListServers(ctx context.Context) ([]*mcpmeshv1.Server, uint64, error) {
	const op = "list servers"
	if err := f.before(op, false); err != nil {
		return nil, 0, err
	}
	servers, rev, err := f.inner.ListServers(ctx)
	if err != nil {
		return servers, rev, err
	}
	if i := f.firstCorrupt(servers); i >= 0 {
		// bbolt's ForEach stops at the bad value with what it decoded so far.
		return servers[:i], rev, fmt.Errorf("%s: %w", op, decodeServerError(servers[i].GetName()))
	}
	return servers, rev, nil
}

// GetSettings implements store.Store.
func (f *Fault) GetSettings(ctx context.Context) (*mcpmeshv1.Settings, uint64, error) {
	const op = "get settings"
	if err := f.before(op, false); err != nil {
		return nil, 0, err
	}
	st, rev, err := f.inner.GetSettings(ctx)
	if err == nil && f.settingsCorrupt() {
		return nil, rev, fmt.Errorf("%s: %w", op, decodeError("settings", &mcpmeshv1.Settings{}))
	}
	return st, rev, err
}

// PutSettings implements store.Store.
func (f *Fault) PutSettings(ctx context.Context, settings *mcpmeshv1.Settings) (uint64, error) {
	if err := f.before("put settings", true); err != nil {
		return 0, err
	}
	return f.inner.PutSettings(ctx, settings)
}

// Revision implements store.Store.
func (f *Fault) Revision(ctx context.Context) (uint64, error) {
	if err := f.before("read revision", false); err != nil {
		return 0, err
	}
	return f.inner.Revision(ctx)
}

// State implements store.Store.
func (f *Fault) State(ctx context.Context) (*store.State, error) {
	const op = "read state"
	if err := f.before(op, false); err != nil {
		return nil, err
	}
	st, err := f.inner.State(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.stateCorrupt(op, st); err != nil {
		return nil, err
	}
	return st, nil
}

// stateCorrupt is the decode error a read of st meets, if a fault applies.
func (f *Fault) stateCorrupt(op string, st *store.State) error {
	if i := f.firstCorrupt(st.Servers); i >= 0 {
		return fmt.Errorf("%s: %w", op, decodeServerError(st.Servers[i].GetName()))
	}
	if f.settingsCorrupt() {
		return fmt.Errorf("%s: %w", op, decodeError("settings", &mcpmeshv1.Settings{}))
	}
	return nil
}

// PutHealth implements store.Store.
func (f *Fault) PutHealth(ctx context.Context, dataplaneID string, backends, events []*mcpmeshv1.BackendHealth) error {
	if err := f.before(fmt.Sprintf("put health of data plane %q", dataplaneID), true); err != nil {
		return err
	}
	return f.inner.PutHealth(ctx, dataplaneID, backends, events)
}

// ListHealth implements store.Store.
func (f *Fault) ListHealth(ctx context.Context) ([]*mcpmeshv1.BackendHealth, error) {
	if err := f.before("list health", false); err != nil {
		return nil, err
	}
	return f.inner.ListHealth(ctx)
}

// ListEvents implements store.Store.
func (f *Fault) ListEvents(ctx context.Context, limit int) ([]store.Event, error) {
	if err := f.before("list events", false); err != nil {
		return nil, err
	}
	return f.inner.ListEvents(ctx, limit)
}

// CreateToken implements store.Store.
func (f *Fault) CreateToken(ctx context.Context, tok *mcpmeshv1.StoredToken) error {
	if err := f.before(fmt.Sprintf("create token %q", tok.GetToken().GetId()), true); err != nil {
		return err
	}
	return f.inner.CreateToken(ctx, tok)
}

// GetToken implements store.Store.
func (f *Fault) GetToken(ctx context.Context, id string) (*mcpmeshv1.StoredToken, error) {
	if err := f.before(fmt.Sprintf("get token %q", id), false); err != nil {
		return nil, err
	}
	return f.inner.GetToken(ctx, id)
}

// ListTokens implements store.Store.
func (f *Fault) ListTokens(ctx context.Context) ([]*mcpmeshv1.StoredToken, error) {
	if err := f.before("list tokens", false); err != nil {
		return nil, err
	}
	return f.inner.ListTokens(ctx)
}

// RevokeToken implements store.Store.
func (f *Fault) RevokeToken(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredToken, error) {
	if err := f.before(fmt.Sprintf("revoke token %q", id), true); err != nil {
		return nil, err
	}
	return f.inner.RevokeToken(ctx, id, at)
}

// RotateClusterSecret implements store.Store.
func (f *Fault) RotateClusterSecret(ctx context.Context, now, until time.Time) (uint64, error) {
	if err := f.before("rotate cluster secret", true); err != nil {
		return 0, err
	}
	return f.inner.RotateClusterSecret(ctx, now, until)
}

// DropExpiredSecrets implements store.Store.
func (f *Fault) DropExpiredSecrets(ctx context.Context, now time.Time) (uint64, error) {
	if err := f.before("drop expired cluster secrets", true); err != nil {
		return 0, err
	}
	return f.inner.DropExpiredSecrets(ctx, now)
}

// CreateClientKey implements store.Store.
func (f *Fault) CreateClientKey(ctx context.Context, k *mcpmeshv1.StoredClientKey) (uint64, error) {
	if err := f.before(fmt.Sprintf("create client key %q", k.GetKey().GetId()), true); err != nil {
		return 0, err
	}
	return f.inner.CreateClientKey(ctx, k)
}

// ListClientKeys implements store.Store.
func (f *Fault) ListClientKeys(ctx context.Context) ([]*mcpmeshv1.StoredClientKey, error) {
	if err := f.before("list client keys", false); err != nil {
		return nil, err
	}
	return f.inner.ListClientKeys(ctx)
}

// RevokeClientKey implements store.Store.
func (f *Fault) RevokeClientKey(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredClientKey, error) {
	if err := f.before(fmt.Sprintf("revoke client key %q", id), true); err != nil {
		return nil, err
	}
	return f.inner.RevokeClientKey(ctx, id, at)
}

// Watch implements store.Store: a failed write commits nothing, so it is not
// announced; the inner store's notifications pass through unchanged.
func (f *Fault) Watch(ctx context.Context) <-chan uint64 { return f.inner.Watch(ctx) }

// Close implements store.Store by closing the inner store.
func (f *Fault) Close() error { return f.inner.Close() }
