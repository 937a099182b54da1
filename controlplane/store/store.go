package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Errors returned (wrapped with context) by every Store implementation; test
// them with errors.Is.
var (
	// ErrNotFound: the named server (or token) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a server with that name (or a token with that id) already exists.
	ErrExists = errors.New("already exists")
	// ErrConflict: the expected revision is not the server's current mod_revision.
	ErrConflict = errors.New("revision conflict")
	// ErrUnavailable: the store's backend did not answer in time (an etcd
	// without a quorum); the same call may succeed later.
	ErrUnavailable = errors.New("store unavailable")
)

// SchemaError is returned when the stored data was written with a newer
// layout than this binary knows: reading or writing it could lose what the
// newer version stored, so the store refuses to serve it at all.
type SchemaError struct {
	Found, Supported uint64
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("store schema version %d is newer than this binary supports (%d): run a control plane at least as new as the one that wrote it", e.Found, e.Supported)
}

// SchemaVersion is the layout version this binary reads and writes.
const SchemaVersion = schemaVersion

// MaxEvents is how many state-transition events the store keeps; older ones
// are dropped as new ones arrive.
const MaxEvents = 1000

// State is a consistent view of the whole configuration, read in one
// transaction, from which config snapshots are built.
type State struct {
	// Revision is the config revision the view was read at.
	Revision uint64
	// Servers are all registered servers (enabled or not), sorted by name.
	Servers []*mcpmeshv1.Server
	// Settings are the stored settings (never nil; unset fields mean defaults).
	Settings *mcpmeshv1.Settings
	// ClusterSecret is the 32-byte key shared by every data plane.
	ClusterSecret []byte
	// PreviousSecrets are the cluster secrets rotations replaced that are
	// still accepted (or were, until DropExpiredSecrets runs), newest first.
	PreviousSecrets []PreviousSecret
	// ClientKeys are all client API keys, revoked ones too, sorted by id.
	ClientKeys []*mcpmeshv1.StoredClientKey
	// OAuthGrants are every backend OAuth grant (tokens included), sorted
	// by server name; each names a server of Servers.
	OAuthGrants []*mcpmeshv1.StoredOAuthGrant
}

// PreviousSecret is a cluster secret a rotation replaced: data planes accept
// what was made with it until ExpiresAt.
type PreviousSecret struct {
	Secret    []byte
	ExpiresAt time.Time
}

// MaxPreviousSecrets bounds how many replaced secrets are kept at once; a
// rotation past it drops the one that expires first.
const MaxPreviousSecrets = 4

// Event is one recorded backend state transition.
type Event struct {
	// Seq orders events; it only grows.
	Seq uint64
	// Health is the backend's health right after the transition.
	Health *mcpmeshv1.BackendHealth
}

// Store is the control plane's persistent state.
//
// Every config write (servers, settings) is atomic and bumps the config
// revision in the same transaction; health writes are not config and leave the
// revision alone. Revisions only grow: on bbolt and in memory each config
// write is the previous revision + 1; on etcd it is etcd's revision of the
// write, so there are gaps. Returned messages are copies the caller may modify.
// Implementations are safe for concurrent use.
type Store interface {
	// CreateServer stores a new server, setting create_revision, mod_revision,
	// created_at and updated_at. ErrExists if the name is taken.
	CreateServer(ctx context.Context, srv *mcpmeshv1.Server) (*mcpmeshv1.Server, error)
	// CreateServers stores several new servers in one transaction that bumps
	// the config revision once: every returned server (in the order given,
	// stamped as CreateServer stamps one) has create_revision = mod_revision
	// = the returned revision, and one Watch notification follows. All or
	// nothing: if any name is taken, or appears twice in srvs, it returns
	// ErrExists naming that server and stores none of them (the revision is
	// unchanged). A nil server, an empty name or an empty srvs is an error
	// (not one of the sentinel errors) and stores nothing. srvs is not modified.
	CreateServers(ctx context.Context, srvs []*mcpmeshv1.Server) ([]*mcpmeshv1.Server, uint64, error)
	// UpdateServer replaces an existing server, keeping its create_revision and
	// created_at. If expectedRevision is non-zero it must equal the stored
	// mod_revision, else ErrConflict. ErrNotFound if it does not exist.
	UpdateServer(ctx context.Context, srv *mcpmeshv1.Server, expectedRevision uint64) (*mcpmeshv1.Server, error)
	// DeleteServer removes a server and returns the new revision; the
	// expectedRevision rule is the same as for UpdateServer.
	DeleteServer(ctx context.Context, name string, expectedRevision uint64) (uint64, error)
	// GetServer returns one server or ErrNotFound.
	GetServer(ctx context.Context, name string) (*mcpmeshv1.Server, error)
	// ListServers returns all servers sorted by name and the revision read.
	ListServers(ctx context.Context) ([]*mcpmeshv1.Server, uint64, error)

	// GetSettings returns the stored settings (never nil) and the revision.
	GetSettings(ctx context.Context) (*mcpmeshv1.Settings, uint64, error)
	// PutSettings replaces the settings and returns the new revision.
	PutSettings(ctx context.Context, settings *mcpmeshv1.Settings) (uint64, error)

	// Revision returns the current config revision.
	Revision(ctx context.Context) (uint64, error)
	// State returns servers, settings, secret and revision read together.
	State(ctx context.Context) (*State, error)

	// PutHealth replaces everything dataplaneID last reported with backends
	// (keyed by backend server name) and appends events to the bounded event
	// ring, in one transaction.
	PutHealth(ctx context.Context, dataplaneID string, backends []*mcpmeshv1.BackendHealth, events []*mcpmeshv1.BackendHealth) error
	// ListHealth returns the latest report of every data plane × server,
	// ordered by data plane id then server name.
	ListHealth(ctx context.Context) ([]*mcpmeshv1.BackendHealth, error)
	// ListEvents returns up to limit of the newest events, oldest first
	// (limit <= 0 means all that are kept).
	ListEvents(ctx context.Context, limit int) ([]Event, error)

	// CreateToken stores a new credential (not config: the revision stays).
	// ErrExists if its id is taken.
	CreateToken(ctx context.Context, tok *mcpmeshv1.StoredToken) error
	// GetToken returns one credential or ErrNotFound.
	GetToken(ctx context.Context, id string) (*mcpmeshv1.StoredToken, error)
	// ListTokens returns every credential, revoked ones too, sorted by id.
	ListTokens(ctx context.Context) ([]*mcpmeshv1.StoredToken, error)
	// RevokeToken sets revoked_at to at unless it is already set, and returns
	// the credential as stored. ErrNotFound if it does not exist.
	RevokeToken(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredToken, error)

	// RotateClusterSecret replaces the cluster secret with a new random one
	// and keeps the replaced one as a previous secret until until; previous
	// secrets expired at now are dropped, and at most MaxPreviousSecrets are
	// kept. It bumps the config revision and returns it.
	RotateClusterSecret(ctx context.Context, now, until time.Time) (uint64, error)
	// DropExpiredSecrets removes the previous secrets whose ExpiresAt is not
	// after now and bumps the revision if it removed any; it returns the new
	// revision, or 0 when nothing had expired.
	DropExpiredSecrets(ctx context.Context, now time.Time) (uint64, error)

	// CreateClientKey stores a new client API key and bumps the config
	// revision (data planes receive the live keys in snapshots), returning
	// it. ErrExists if its id is taken.
	CreateClientKey(ctx context.Context, key *mcpmeshv1.StoredClientKey) (uint64, error)
	// ListClientKeys returns every client key, revoked ones too, sorted by id.
	ListClientKeys(ctx context.Context) ([]*mcpmeshv1.StoredClientKey, error)
	// RevokeClientKey sets revoked_at to at unless it is already set (then
	// the revision is bumped), and returns the key as stored. ErrNotFound if
	// it does not exist.
	RevokeClientKey(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredClientKey, error)

	// Dump returns the configuration and every credential (not health or
	// events) read in one transaction, secrets in clear: what a backup holds.
	Dump(ctx context.Context) (*Dump, error)
	// Restore replaces servers, settings, tokens, client keys, the cluster
	// secret and the previous secrets with d's in one transaction and
	// returns the new config revision, which is past both the store's and
	// d.Revision; every restored server is stamped created and modified at
	// it (timestamps kept), previous secrets already expired are dropped,
	// health and events stay. d is checked first (Dump.Check). Unless force,
	// a store that is not empty (Dump.Empty) is refused with ErrNotEmpty.
	Restore(ctx context.Context, d *Dump, force bool) (uint64, error)

	OAuthStore

	// Watch returns a channel that receives the new config revision after
	// every committed config write. Notifications coalesce: a slow reader sees
	// the newest revision, not every one. The channel is closed when ctx ends.
	Watch(ctx context.Context) <-chan uint64

	// Close releases the store; further calls fail.
	Close() error
}
