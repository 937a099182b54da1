package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// DefaultEtcdPrefix is where the etcd store keeps its keys unless told
// otherwise (--etcd-prefix).
const DefaultEtcdPrefix = "/mcpmesh/"

// DefaultEtcdDialTimeout bounds how long OpenEtcd waits for etcd before it
// fails naming the endpoints.
const DefaultEtcdDialTimeout = 5 * time.Second

// EtcdConfig says how to reach etcd.
type EtcdConfig struct {
	// Endpoints are the etcd client URLs (http://host:2379 or
	// https://host:2379; a bare host:port is taken as is).
	Endpoints []string
	// Prefix starts every key the store writes; "" is DefaultEtcdPrefix. A
	// missing trailing "/" is added, so "/a" and "/ab" cannot overlap.
	Prefix string
	// CAFile, CertFile and KeyFile are PEM files for TLS to etcd: CAFile
	// alone verifies etcd's certificate, CertFile and KeyFile add a client
	// certificate. All empty: plaintext.
	CAFile, CertFile, KeyFile string
	// SecretsKeyFile holds the key secrets are sealed with (64 hex digits,
	// the format of KeyFileName). Every control plane on the same etcd and
	// prefix must use the same key; it is never created here, so that two
	// replicas starting together cannot each invent one.
	SecretsKeyFile string
	// DialTimeout bounds the first contact and each store call that finds
	// no etcd leader; 0 is DefaultEtcdDialTimeout.
	DialTimeout time.Duration
	// Logger receives the etcd client's own log; nil discards it.
	Logger *zap.Logger
}

// EtcdStore is the Store kept in etcd, shared by every control plane
// replica that opens the same endpoints and prefix.
//
// Every change is one etcd transaction. A change compares the mod revision
// of every key it read (the config revision key included, for config
// writes), so two replicas writing at once cannot both win: the loser
// re-reads and tries again, and a precondition that no longer holds
// (ErrExists, ErrConflict) is reported as such.
//
// The config revision is etcd's own: every config change also writes the
// key meta/revision, and that key's mod revision (the etcd revision of the
// last config change) is the config revision, so it is the same on every
// replica and needs no counter of its own. Writes that are not config
// (health, events, tokens) leave the key alone and the config revision with
// it. A server's create_revision and mod_revision are its key's. The key's
// value is an offset added to all of these, 0 unless a restore brought a
// backup whose revision was ahead of etcd's (data planes may hold such a
// revision, and revisions never go back); it never shrinks. Watch follows
// meta/revision with an etcd watch, so every replica sees the writes of
// every other.
type EtcdStore struct {
	cli      *clientv3.Client
	prefix   string
	seal     *sealer
	timeout  time.Duration
	watchers watchers
	now      func() time.Time

	mu       sync.Mutex // guards notified
	notified uint64     // newest revision handed to watchers

	closed    atomic.Bool
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

var _ Store = (*EtcdStore)(nil)

// etcd keys, below the prefix: bucket + "/" + key, with schema.go's names.
//
//	servers/<name>          mcpmeshv1.Server, sealed
//	settings/cluster        mcpmeshv1.Settings
//	health/<dataplane>      mcpmeshv1.HealthReport: the data plane's last report
//	events/<last seq>       mcpmeshv1.HealthReport: one PutHealth's events, the
//	                        last with sequence <last seq> (20 digits), the
//	                        others just before it
//	tokens/<id>             mcpmeshv1.StoredToken
//	client_keys/<id>        mcpmeshv1.StoredClientKey
//	meta/revision           rewritten by every config change: its mod revision
//	                        plus its value (the offset, decimal) is the config
//	                        revision
//	meta/restored           rewritten by every restore: its mod revision is the
//	                        restore's, the create revision of the servers it
//	                        wrote over existing keys (etcd keeps a key's)
//	meta/event_seq          the last event sequence, decimal
//	meta/schema_version     decimal
//	meta/cluster_secret     sealed
//	meta/previous_secrets   mcpmeshv1.StoredSecrets, sealed
//	meta/secrets_key_id     keyID of the sealing key
//	election/               the maintenance election (concurrency.Election)
var (
	metaEventSeq = []byte("event_seq")
	metaRestored = []byte("restored")
)

func (s *EtcdStore) key(bucket, k []byte) string {
	return s.prefix + string(bucket) + "/" + string(k)
}

func (s *EtcdStore) bucketPrefix(bucket []byte) string { return s.prefix + string(bucket) + "/" }

// maxTxnAttempts bounds the retries of a transaction that lost a race to a
// concurrent writer.
const maxTxnAttempts = 100

// OpenEtcd connects to etcd, checks the sealing key against the one the
// data was sealed with (recording it and creating the cluster secret when
// the prefix is empty) and starts following the config revision. It fails
// within cfg.DialTimeout, naming the endpoints, when etcd does not answer.
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*EtcdStore, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("open etcd store: no etcd endpoints (--etcd-endpoints)")
	}
	for _, ep := range cfg.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return nil, fmt.Errorf("open etcd store: empty endpoint in %q", strings.Join(cfg.Endpoints, ","))
		}
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultEtcdDialTimeout
	}
	sl, err := loadSharedKey(cfg.SecretsKeyFile)
	if err != nil {
		return nil, fmt.Errorf("open etcd store: %w", err)
	}
	tc, err := etcdTLS(cfg)
	if err != nil {
		return nil, fmt.Errorf("open etcd store: %w", err)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          timeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: timeout,
		TLS:                  tc,
		Logger:               lg,
		// Writes of several keys (servers, health reports) may be large.
		MaxCallSendMsgSize: 4 << 20,
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd store at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &EtcdStore{cli: cli, prefix: prefix, seal: sl, timeout: timeout, now: time.Now, watchDone: make(chan struct{})}
	ictx, cancel := context.WithTimeout(ctx, timeout)
	rev, err := s.init(ictx)
	timedOut := errors.Is(ictx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		cli.Close()
		var se *SchemaError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("open etcd store %s%s: %w", strings.Join(cfg.Endpoints, ","), prefix, err)
		}
		if timedOut || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("open etcd store: etcd at %s did not answer within %s (is it running and reachable, are --etcd-ca/--etcd-cert/--etcd-key right?): %w",
				strings.Join(cfg.Endpoints, ","), timeout, err)
		}
		return nil, fmt.Errorf("open etcd store at %s (prefix %s): %w", strings.Join(cfg.Endpoints, ","), prefix, err)
	}
	s.notified = rev
	wctx, stop := context.WithCancel(context.Background())
	s.stopWatch = stop
	go s.watchLoop(wctx)
	return s, nil
}

func etcdTLS(cfg EtcdConfig) (*tls.Config, error) {
	if cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together: set both or neither")
	}
	for _, f := range []string{cfg.CAFile, cfg.CertFile, cfg.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS (%s): %w", info, err)
	}
	return tc, nil
}

// loadSharedKey reads the secrets key every replica shares.
func loadSharedKey(path string) (*sealer, error) {
	if path == "" {
		return nil, errors.New("no secrets key file (--secrets-key-file): every control plane on the same etcd must seal secrets with the same key; create it once with `openssl rand -hex 32 > secrets.key` (mode 0600) and give it to each")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secrets key file %s does not exist: create it once with `openssl rand -hex 32 > %s` (mode 0600) and give the same file to every control plane on this etcd", path, path)
	}
	key, err := loadOrCreateKey(path, false)
	if err != nil {
		return nil, err
	}
	return newSealer(key)
}

// init records the key id, schema version and cluster secret on first use
// of the prefix, in one transaction (two replicas starting together: one
// wins, the other reads what it wrote), and checks them otherwise. It
// returns the current config revision.
func (s *EtcdStore) init(ctx context.Context) (uint64, error) {
	kid := s.key(bucketMeta, metaSecretsKeyID)
	secret, err := newClusterSecret()
	if err != nil {
		return 0, err
	}
	sealed, err := s.seal.seal(bucketMeta, metaClusterSecret, secret)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(kid), "=", 0)).
		Then(
			clientv3.OpPut(kid, string(s.seal.id)),
			clientv3.OpPut(s.key(bucketMeta, metaSchemaVersion), strconv.FormatUint(schemaVersion, 10)),
			clientv3.OpPut(s.key(bucketMeta, metaClusterSecret), string(sealed)),
			clientv3.OpGet(s.key(bucketMeta, metaRevision)),
		).
		Else(
			clientv3.OpGet(kid),
			clientv3.OpGet(s.key(bucketMeta, metaSchemaVersion)),
			clientv3.OpGet(s.key(bucketMeta, metaRevision)),
		).Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		return configRevision(one(resp.Responses[3].GetResponseRange()))
	}
	stored := one(resp.Responses[0].GetResponseRange())
	if !bytes.Equal(stored.Value, s.seal.id) {
		return 0, errors.New("the secrets key file is not the key this etcd prefix was sealed with: give every control plane the same --secrets-key-file")
	}
	ver, err := decimal(one(resp.Responses[1].GetResponseRange()))
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if ver > schemaVersion {
		return 0, &SchemaError{Found: ver, Supported: schemaVersion}
	}
	return configRevision(one(resp.Responses[2].GetResponseRange()))
}

func one(r interface{ GetKvs() []*mvccpb.KeyValue }) *mvccpb.KeyValue {
	if r == nil || len(r.GetKvs()) == 0 {
		return nil
	}
	return r.GetKvs()[0]
}

// decimal parses a decimal value (a counter, an offset); an absent key is 0.
func decimal(kv *mvccpb.KeyValue) (uint64, error) {
	if kv == nil {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(kv.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decode %s: %q is not a number", kv.Key, kv.Value)
	}
	return v, nil
}

// revisions turn etcd's revisions into config revisions (see EtcdStore).
type revisions struct {
	// offset is meta/revision's value, added to every etcd revision.
	offset uint64
	// config is the config revision: 0 before the first config change.
	config uint64
	// restored is the etcd revision of the last restore, 0 if none.
	restored uint64
}

// readRevisions reads meta/revision and meta/restored as get returned them
// (nil if absent).
func readRevisions(revKV, restoredKV *mvccpb.KeyValue) (revisions, error) {
	off, err := decimal(revKV)
	if err != nil {
		return revisions{}, err
	}
	r := revisions{offset: off}
	if revKV != nil {
		r.config = uint64(revKV.ModRevision) + off
	}
	if restoredKV != nil {
		r.restored = uint64(restoredKV.ModRevision)
	}
	return r, nil
}

// configRevision is the config revision meta/revision (revKV, nil if
// absent) says.
func configRevision(revKV *mvccpb.KeyValue) (uint64, error) {
	r, err := readRevisions(revKV, nil)
	return r.config, err
}

// stamp sets srv's revisions from those of its key kv. A restore rewrites
// every server it restores, but etcd keeps the create revision of a key
// that existed: those servers were created by the restore all the same.
func (r revisions) stamp(srv *mcpmeshv1.Server, kv *mvccpb.KeyValue) {
	srv.ModRevision = uint64(kv.ModRevision) + r.offset
	srv.CreateRevision = max(uint64(kv.CreateRevision), r.restored) + r.offset
}

// Client is the store's etcd client (for the maintenance election and the
// presence of data planes; the store closes it).
func (s *EtcdStore) Client() *clientv3.Client { return s.cli }

// Prefix is the key prefix the store writes under, ending in "/".
func (s *EtcdStore) Prefix() string { return s.prefix }

// Close ends every watch and closes the etcd client.
func (s *EtcdStore) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopWatch()
	<-s.watchDone
	s.watchers.closeAll()
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd store: %w", err)
	}
	return nil
}

// Watch implements Store.
func (s *EtcdStore) Watch(ctx context.Context) <-chan uint64 { return s.watchers.watch(ctx) }

// notify hands rev to watchers unless a revision at least as new was
// handed already: local commits and the etcd watch both report each write.
func (s *EtcdStore) notify(rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev <= s.notified {
		return
	}
	s.notified = rev
	s.watchers.notify(rev)
}

// watchLoop follows meta/revision, so config writes through other replicas reach
// this replica's watchers; after an error it re-reads the key (nothing is
// missed: watchers only want the newest revision) and watches again.
func (s *EtcdStore) watchLoop(ctx context.Context) {
	defer close(s.watchDone)
	revKey := s.key(bucketMeta, metaRevision)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		retry.Reset(time.Second)
		gctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.cli.Get(gctx, revKey)
		cancel()
		if err != nil {
			continue
		}
		if rev, err := configRevision(one((*etcdserverpb.RangeResponse)(resp))); err == nil {
			s.notify(rev)
		}
		wctx, cancelWatch := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range s.cli.Watch(wctx, revKey, clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type != mvccpb.PUT {
					continue
				}
				if rev, err := configRevision(ev.Kv); err == nil {
					s.notify(rev)
				}
			}
		}
		cancelWatch()
	}
}

func (s *EtcdStore) check(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	return checkCtx(ctx, op)
}

// etx collects one attempt of a transaction: what was read (each read adds
// a compare of the key's mod revision), what to write, and whether it is a
// config change (bump).
type etx struct {
	s    *EtcdStore
	ctx  context.Context
	cmps []clientv3.Cmp
	ops  []clientv3.Op

	bumped bool   // bump was called: the transaction changes the config
	offset uint64 // the revision offset it writes
}

// get reads keys in one round trip; absent keys are nil. The transaction
// commits only if none of them changed meanwhile.
func (t *etx) get(keys ...string) ([]*mvccpb.KeyValue, error) {
	gets := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		gets[i] = clientv3.OpGet(k)
	}
	resp, err := t.s.cli.Txn(t.ctx).Then(gets...).Commit()
	if err != nil {
		return nil, err
	}
	out := make([]*mvccpb.KeyValue, len(keys))
	for i, k := range keys {
		kv := one(resp.Responses[i].GetResponseRange())
		out[i] = kv
		if kv == nil {
			t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		} else {
			t.cmps = append(t.cmps, clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision))
		}
	}
	return out, nil
}

func (t *etx) put(key string, v []byte) { t.ops = append(t.ops, clientv3.OpPut(key, string(v))) }

func (t *etx) putSealed(bucket, k, v []byte) error {
	sealed, err := t.s.seal.seal(bucket, k, v)
	if err != nil {
		return err
	}
	t.put(t.s.key(bucket, k), sealed)
	return nil
}

func (t *etx) del(key string, opts ...clientv3.OpOption) {
	t.ops = append(t.ops, clientv3.OpDelete(key, opts...))
}

// bump marks the transaction as a config change. It rewrites meta/revision,
// given as read by get (so the transaction also compares it: config changes
// are serialised, and the offset it carries forward is current). That key's
// new mod revision, the transaction's etcd revision, is the new config
// revision; it exists only once the transaction commits, and update returns
// it.
func (t *etx) bump(revKV *mvccpb.KeyValue) error { return t.bumpPast(revKV, 0, 0) }

// bumpPast is bump for a transaction whose config revision must be past
// past, although etcd's revision, read at readRev, may be behind it (a
// restore of a backup taken from a store that was further ahead): it raises
// the offset so that any etcd revision after readRev lands past past. The
// offset never shrinks.
func (t *etx) bumpPast(revKV *mvccpb.KeyValue, past uint64, readRev int64) error {
	off, err := decimal(revKV)
	if err != nil {
		return err
	}
	if lowest := uint64(readRev) + 1 + off; past >= lowest {
		off += past - lowest + 1
	}
	t.bumped, t.offset = true, off
	t.put(t.s.revKey(), []byte(strconv.FormatUint(off, 10)))
	return nil
}

// update runs fn and commits what it collected, again from scratch while
// another writer changed what fn read. If fn bumped, update returns the new
// config revision (announced to watchers after the commit); otherwise 0.
func (s *EtcdStore) update(ctx context.Context, op string, fn func(t *etx) error) (uint64, error) {
	if err := s.check(ctx, op); err != nil {
		return 0, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	for range maxTxnAttempts {
		t := &etx{s: s, ctx: ctx}
		if err := fn(t); err != nil {
			if ctx.Err() != nil {
				return 0, s.etcdError(ctx, op, err)
			}
			return 0, fmt.Errorf("%s: %w", op, err)
		}
		if len(t.ops) == 0 {
			return 0, nil
		}
		resp, err := s.cli.Txn(ctx).If(t.cmps...).Then(t.ops...).Commit()
		if err != nil {
			return 0, s.txnError(ctx, op, len(t.ops), err)
		}
		if !resp.Succeeded {
			continue
		}
		if !t.bumped {
			return 0, nil
		}
		// A transaction that writes has the revision its header names.
		rev := uint64(resp.Header.Revision) + t.offset
		s.notify(rev)
		return rev, nil
	}
	return 0, fmt.Errorf("%s: lost %d races to concurrent writers; try again", op, maxTxnAttempts)
}

// opContext bounds one store call by the dial timeout and makes etcd
// refuse it at once when the member it reaches has no leader: without a
// quorum, calls fail within a bound instead of hanging.
func (s *EtcdStore) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// txnError is etcdError, with etcd's per-transaction limits explained:
// a change of many servers (import, restore) is one transaction.
func (s *EtcdStore) txnError(ctx context.Context, op string, ops int, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%s: etcd refused one transaction of %d writes (over its --max-txn-ops, 128 by default): start etcd with --max-txn-ops of at least %d", op, ops, ops)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%s: etcd refused the transaction as too large (over its --max-request-bytes, 1.5 MiB by default): raise it", op)
	}
	return s.etcdError(ctx, op, err)
}

// etcdError names what failed; a call that ran out of its bound says so.
func (s *EtcdStore) etcdError(ctx context.Context, op string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: etcd did not answer within %s (is a majority of its members up?): %v: %w", op, s.timeout, err, ErrUnavailable) // err not %w: callers map a deadline to a bare "deadline exceeded"
	}
	return fmt.Errorf("%s: etcd: %w", op, err)
}

// read runs gets in one read-only transaction: one consistent view.
func (s *EtcdStore) read(ctx context.Context, op string, gets ...clientv3.Op) ([]*etcdserverpb.RangeResponse, error) {
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, s.etcdError(ctx, op, err)
	}
	return ranges(resp), nil
}

// ranges are the range responses of a transaction made only of gets.
func ranges(resp *clientv3.TxnResponse) []*etcdserverpb.RangeResponse {
	out := make([]*etcdserverpb.RangeResponse, len(resp.Responses))
	for i, r := range resp.Responses {
		out[i] = r.GetResponseRange()
	}
	return out
}

// decodeServer decodes the server kept in kv, with the revisions r derives
// from kv's (the stored message carries none).
func (s *EtcdStore) decodeServer(kv *mvccpb.KeyValue, r revisions) (*mcpmeshv1.Server, error) {
	name := []byte(strings.TrimPrefix(string(kv.Key), s.bucketPrefix(bucketServers)))
	plain, err := s.seal.open(bucketServers, name, kv.Value)
	if err != nil {
		return nil, fmt.Errorf("decode server %q: %w", name, err)
	}
	srv := &mcpmeshv1.Server{}
	if err := proto.Unmarshal(plain, srv); err != nil {
		return nil, fmt.Errorf("decode server %q: %w", name, err)
	}
	r.stamp(srv, kv)
	return srv, nil
}

func (s *EtcdStore) decodeServers(kvs []*mvccpb.KeyValue, r revisions) ([]*mcpmeshv1.Server, error) {
	out := make([]*mcpmeshv1.Server, 0, len(kvs))
	for _, kv := range kvs {
		srv, err := s.decodeServer(kv, r)
		if err != nil {
			return nil, err
		}
		out = append(out, srv)
	}
	return out, nil // etcd returns a range sorted by key, so by name
}

// putServer stores srv without its revisions: those are its key's.
func (t *etx) putServer(srv *mcpmeshv1.Server) error {
	srv = proto.CloneOf(srv)
	srv.CreateRevision, srv.ModRevision = 0, 0
	b, err := proto.Marshal(srv)
	if err != nil {
		return fmt.Errorf("encode server %q: %w", srv.GetName(), err)
	}
	return t.putSealed(bucketServers, []byte(srv.GetName()), b)
}

func (s *EtcdStore) serverKey(name string) string { return s.key(bucketServers, []byte(name)) }
func (s *EtcdStore) revKey() string               { return s.key(bucketMeta, metaRevision) }
func (s *EtcdStore) restoredKey() string          { return s.key(bucketMeta, metaRestored) }

// CreateServer implements Store.
func (s *EtcdStore) CreateServer(ctx context.Context, srv *mcpmeshv1.Server) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("create server: %w", err)
	}
	out, _, err := s.createServers(ctx, fmt.Sprintf("create server %q", srv.GetName()), []*mcpmeshv1.Server{srv})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// CreateServers stores several new servers at one new revision, all or none:
// ErrExists if any name is taken (or repeated).
func (s *EtcdStore) CreateServers(ctx context.Context, srvs []*mcpmeshv1.Server) ([]*mcpmeshv1.Server, uint64, error) {
	if err := validateServersArg(srvs); err != nil {
		return nil, 0, fmt.Errorf("create servers: %w", err)
	}
	return s.createServers(ctx, fmt.Sprintf("create %d servers", len(srvs)), srvs)
}

func (s *EtcdStore) createServers(ctx context.Context, op string, srvs []*mcpmeshv1.Server) ([]*mcpmeshv1.Server, uint64, error) {
	var out []*mcpmeshv1.Server
	rev, err := s.update(ctx, op, func(t *etx) error {
		keys := []string{s.revKey()}
		for _, srv := range srvs {
			keys = append(keys, s.serverKey(srv.GetName()))
		}
		kvs, err := t.get(keys...)
		if err != nil {
			return err
		}
		for i, kv := range kvs[1:] {
			if kv != nil {
				return fmt.Errorf("server %q: %w", srvs[i].GetName(), ErrExists)
			}
		}
		if err := t.bump(kvs[0]); err != nil {
			return err
		}
		now := s.now()
		out = out[:0]
		for _, srv := range srvs {
			st := stampCreate(srv, 0, now) // the revision is known at the commit
			if err := t.putServer(st); err != nil {
				return err
			}
			out = append(out, st)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, srv := range out { // fresh keys: created and modified by this transaction
		srv.CreateRevision, srv.ModRevision = rev, rev
	}
	return cloneServers(out), rev, nil
}

// getServer reads, inside t, meta/revision (returned for bump) and the
// server name, decoded with its revisions; ErrNotFound if it is absent.
func (t *etx) getServer(name string) (*mvccpb.KeyValue, *mcpmeshv1.Server, error) {
	kvs, err := t.get(t.s.revKey(), t.s.restoredKey(), t.s.serverKey(name))
	if err != nil {
		return nil, nil, err
	}
	r, err := readRevisions(kvs[0], kvs[1])
	if err != nil {
		return nil, nil, err
	}
	if kvs[2] == nil {
		return nil, nil, fmt.Errorf("server %q: %w", name, ErrNotFound)
	}
	cur, err := t.s.decodeServer(kvs[2], r)
	return kvs[0], cur, err
}

// UpdateServer implements Store. expectedRevision is compared with the
// server key's mod revision as read, and the transaction commits only if
// that key is unchanged: the check holds at the commit.
func (s *EtcdStore) UpdateServer(ctx context.Context, srv *mcpmeshv1.Server, expectedRevision uint64) (*mcpmeshv1.Server, error) {
	if err := validateServerArg(srv); err != nil {
		return nil, fmt.Errorf("update server: %w", err)
	}
	var out *mcpmeshv1.Server
	rev, err := s.update(ctx, fmt.Sprintf("update server %q", srv.GetName()), func(t *etx) error {
		revKV, cur, err := t.getServer(srv.GetName())
		if err != nil {
			return err
		}
		if err := checkExpected(srv.GetName(), cur, expectedRevision); err != nil {
			return err
		}
		if err := t.bump(revKV); err != nil {
			return err
		}
		out = stampUpdate(srv, cur, 0, s.now()) // the revision is known at the commit
		return t.putServer(out)
	})
	if err != nil {
		return nil, err
	}
	out.ModRevision = rev
	return proto.Clone(out).(*mcpmeshv1.Server), nil
}

// DeleteServer implements Store, with UpdateServer's expectedRevision.
func (s *EtcdStore) DeleteServer(ctx context.Context, name string, expectedRevision uint64) (uint64, error) {
	return s.update(ctx, fmt.Sprintf("delete server %q", name), func(t *etx) error {
		revKV, cur, err := t.getServer(name)
		if err != nil {
			return err
		}
		if err := checkExpected(name, cur, expectedRevision); err != nil {
			return err
		}
		t.del(s.serverKey(name))
		t.del(s.grantKey(name)) // etcd_oauth.go: a server's grant goes with it
		return t.bump(revKV)
	})
}

// GetServer implements Store.
func (s *EtcdStore) GetServer(ctx context.Context, name string) (*mcpmeshv1.Server, error) {
	op := fmt.Sprintf("get server %q", name)
	r, err := s.read(ctx, op, clientv3.OpGet(s.serverKey(name)), clientv3.OpGet(s.revKey()), clientv3.OpGet(s.restoredKey()))
	if err != nil {
		return nil, err
	}
	kv := one(r[0])
	if kv == nil {
		return nil, fmt.Errorf("%s: server %q: %w", op, name, ErrNotFound)
	}
	revs, err := readRevisions(one(r[1]), one(r[2]))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	srv, err := s.decodeServer(kv, revs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return srv, nil
}

// ListServers implements Store.
func (s *EtcdStore) ListServers(ctx context.Context) ([]*mcpmeshv1.Server, uint64, error) {
	r, err := s.read(ctx, "list servers",
		clientv3.OpGet(s.bucketPrefix(bucketServers), clientv3.WithPrefix()),
		clientv3.OpGet(s.revKey()), clientv3.OpGet(s.restoredKey()))
	if err != nil {
		return nil, 0, err
	}
	revs, err := readRevisions(one(r[1]), one(r[2]))
	if err != nil {
		return nil, 0, fmt.Errorf("list servers: %w", err)
	}
	out, err := s.decodeServers(r[0].Kvs, revs)
	if err != nil {
		return nil, revs.config, fmt.Errorf("list servers: %w", err)
	}
	return out, revs.config, nil
}

func decodeSettings(kv *mvccpb.KeyValue) (*mcpmeshv1.Settings, error) {
	st := &mcpmeshv1.Settings{}
	if kv != nil {
		if err := proto.Unmarshal(kv.Value, st); err != nil {
			return nil, fmt.Errorf("decode settings: %w", err)
		}
	}
	return st, nil
}

// GetSettings implements Store.
func (s *EtcdStore) GetSettings(ctx context.Context) (*mcpmeshv1.Settings, uint64, error) {
	r, err := s.read(ctx, "get settings", clientv3.OpGet(s.key(bucketSettings, settingsKey)), clientv3.OpGet(s.revKey()))
	if err != nil {
		return nil, 0, err
	}
	rev, err := configRevision(one(r[1]))
	if err != nil {
		return nil, 0, fmt.Errorf("get settings: %w", err)
	}
	st, err := decodeSettings(one(r[0]))
	if err != nil {
		return nil, rev, fmt.Errorf("get settings: %w", err)
	}
	return st, rev, nil
}

// PutSettings implements Store.
func (s *EtcdStore) PutSettings(ctx context.Context, settings *mcpmeshv1.Settings) (uint64, error) {
	if settings == nil {
		settings = &mcpmeshv1.Settings{}
	}
	b, err := proto.Marshal(settings)
	if err != nil {
		return 0, fmt.Errorf("put settings: encode: %w", err)
	}
	return s.update(ctx, "put settings", func(t *etx) error {
		kvs, err := t.get(s.revKey())
		if err != nil {
			return err
		}
		t.put(s.key(bucketSettings, settingsKey), b)
		return t.bump(kvs[0])
	})
}

// Revision implements Store.
func (s *EtcdStore) Revision(ctx context.Context) (uint64, error) {
	r, err := s.read(ctx, "read revision", clientv3.OpGet(s.revKey()))
	if err != nil {
		return 0, err
	}
	rev, err := configRevision(one(r[0]))
	if err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

func (s *EtcdStore) openSecret(kv *mvccpb.KeyValue, name []byte) ([]byte, error) {
	if kv == nil {
		return nil, nil
	}
	plain, err := s.seal.open(bucketMeta, name, kv.Value)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(plain), nil
}

func (s *EtcdStore) decodePrevious(kv *mvccpb.KeyValue) ([]PreviousSecret, error) {
	plain, err := s.openSecret(kv, metaPreviousSecrets)
	if err != nil {
		return nil, fmt.Errorf("read previous cluster secrets: %w", err)
	}
	if plain == nil {
		return nil, nil
	}
	m := &mcpmeshv1.StoredSecrets{}
	if err := proto.Unmarshal(plain, m); err != nil {
		return nil, fmt.Errorf("decode previous cluster secrets: %w", err)
	}
	return previousFromProto(m), nil
}

func decodeClientKeys(kvs []*mvccpb.KeyValue) ([]*mcpmeshv1.StoredClientKey, error) {
	var out []*mcpmeshv1.StoredClientKey
	for _, kv := range kvs {
		ck := &mcpmeshv1.StoredClientKey{}
		if err := proto.Unmarshal(kv.Value, ck); err != nil {
			return nil, fmt.Errorf("decode client key %q: %w", kv.Key, err)
		}
		out = append(out, ck)
	}
	return out, nil
}

// What stateOps read, in this order; dumpOps adds the tokens after them.
const (
	rServers = iota
	rSettings
	rRevision
	rRestored
	rClusterSecret
	rPreviousSecrets
	rClientKeys
	rOAuthGrants
	rStateOps // how many

	rTokens = rStateOps
)

// stateOps read what a State holds, in the order above.
func (s *EtcdStore) stateOps() []clientv3.Op {
	ops := [rStateOps]clientv3.Op{
		rServers:         clientv3.OpGet(s.bucketPrefix(bucketServers), clientv3.WithPrefix()),
		rSettings:        clientv3.OpGet(s.key(bucketSettings, settingsKey)),
		rRevision:        clientv3.OpGet(s.revKey()),
		rRestored:        clientv3.OpGet(s.restoredKey()),
		rClusterSecret:   clientv3.OpGet(s.key(bucketMeta, metaClusterSecret)),
		rPreviousSecrets: clientv3.OpGet(s.key(bucketMeta, metaPreviousSecrets)),
		rClientKeys:      clientv3.OpGet(s.bucketPrefix(bucketClientKeys), clientv3.WithPrefix()),
		rOAuthGrants:     clientv3.OpGet(s.bucketPrefix(bucketOAuthGrants), clientv3.WithPrefix()), // etcd_oauth.go
	}
	return ops[:]
}

// decodeState decodes the responses of stateOps.
func (s *EtcdStore) decodeState(r []*etcdserverpb.RangeResponse) (*State, error) {
	st := &State{}
	revs, err := readRevisions(one(r[rRevision]), one(r[rRestored]))
	if err != nil {
		return nil, err
	}
	st.Revision = revs.config
	if st.Servers, err = s.decodeServers(r[rServers].Kvs, revs); err != nil {
		return nil, err
	}
	if st.Settings, err = decodeSettings(one(r[rSettings])); err != nil {
		return nil, err
	}
	if st.ClusterSecret, err = s.openSecret(one(r[rClusterSecret]), metaClusterSecret); err != nil {
		return nil, fmt.Errorf("read cluster secret: %w", err)
	}
	if len(st.ClusterSecret) != clusterSecretLen {
		return nil, fmt.Errorf("cluster secret is %d bytes, want %d", len(st.ClusterSecret), clusterSecretLen)
	}
	if st.PreviousSecrets, err = s.decodePrevious(one(r[rPreviousSecrets])); err != nil {
		return nil, err
	}
	if st.ClientKeys, err = decodeClientKeys(r[rClientKeys].Kvs); err != nil {
		return nil, err
	}
	if st.OAuthGrants, err = s.decodeGrants(r[rOAuthGrants].Kvs); err != nil {
		return nil, err
	}
	return st, nil
}

// State implements Store.
func (s *EtcdStore) State(ctx context.Context) (*State, error) {
	r, err := s.read(ctx, "read state", s.stateOps()...)
	if err != nil {
		return nil, err
	}
	st, err := s.decodeState(r)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return st, nil
}

func eventKey(prefix string, seq uint64) string { return prefix + fmt.Sprintf("%020d", seq) }

// PutHealth implements Store. It does not bump the config revision. The
// data plane's report is one key, and so are the events of one call, so the
// transaction stays a handful of operations however many backends there are.
func (s *EtcdStore) PutHealth(ctx context.Context, dataplaneID string, backends, events []*mcpmeshv1.BackendHealth) error {
	if dataplaneID == "" {
		return fmt.Errorf("put health: data plane id is empty")
	}
	report, err := proto.Marshal(&mcpmeshv1.HealthReport{Backends: backends})
	if err != nil {
		return fmt.Errorf("put health of data plane %q: encode: %w", dataplaneID, err)
	}
	evs, err := proto.Marshal(&mcpmeshv1.HealthReport{Backends: events})
	if err != nil {
		return fmt.Errorf("put health of data plane %q: encode events: %w", dataplaneID, err)
	}
	hkey := s.key(bucketHealth, []byte(dataplaneID))
	_, err = s.update(ctx, fmt.Sprintf("put health of data plane %q", dataplaneID), func(t *etx) error {
		if len(backends) == 0 {
			t.del(hkey)
		} else {
			t.put(hkey, report)
		}
		if len(events) == 0 {
			return nil
		}
		seqKey := s.key(bucketMeta, metaEventSeq)
		kvs, err := t.get(seqKey)
		if err != nil {
			return err
		}
		seq, err := decimal(kvs[0])
		if err != nil {
			return err
		}
		last := seq + uint64(len(events))
		ep := s.bucketPrefix(bucketEvents)
		t.put(eventKey(ep, last), evs)
		t.put(seqKey, []byte(strconv.FormatUint(last, 10)))
		if last > MaxEvents {
			// Batches whose last event is older than the oldest kept one.
			t.del(ep, clientv3.WithRange(eventKey(ep, last-MaxEvents+1)))
		}
		return nil
	})
	return err
}

// ListHealth implements Store.
func (s *EtcdStore) ListHealth(ctx context.Context) ([]*mcpmeshv1.BackendHealth, error) {
	r, err := s.read(ctx, "list health", clientv3.OpGet(s.bucketPrefix(bucketHealth), clientv3.WithPrefix()))
	if err != nil {
		return nil, err
	}
	var out []*mcpmeshv1.BackendHealth
	for _, kv := range r[0].Kvs { // sorted by key: by data plane id
		m := &mcpmeshv1.HealthReport{}
		if err := proto.Unmarshal(kv.Value, m); err != nil {
			return nil, fmt.Errorf("list health: decode %q: %w", kv.Key, err)
		}
		bs := m.GetBackends()
		sort.SliceStable(bs, func(i, j int) bool { return bs[i].GetServer() < bs[j].GetServer() })
		out = append(out, bs...)
	}
	return out, nil
}

// ListEvents implements Store.
func (s *EtcdStore) ListEvents(ctx context.Context, limit int) ([]Event, error) {
	ep := s.bucketPrefix(bucketEvents)
	r, err := s.read(ctx, "list events", clientv3.OpGet(ep, clientv3.WithPrefix()))
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, kv := range r[0].Kvs { // sorted by key: by sequence
		last, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), ep), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("list events: bad key %q", kv.Key)
		}
		m := &mcpmeshv1.HealthReport{}
		if err := proto.Unmarshal(kv.Value, m); err != nil {
			return nil, fmt.Errorf("list events: decode event %d: %w", last, err)
		}
		n := uint64(len(m.GetBackends()))
		for i, h := range m.GetBackends() {
			out = append(out, Event{Seq: last - n + 1 + uint64(i), Health: h})
		}
	}
	// Batches straddling the bound are kept whole; show only MaxEvents.
	keep := len(out)
	if keep > MaxEvents {
		keep = MaxEvents
	}
	if limit > 0 && limit < keep {
		keep = limit
	}
	return out[len(out)-keep:], nil
}

func decodeToken(kv *mvccpb.KeyValue) (*mcpmeshv1.StoredToken, error) {
	tok := &mcpmeshv1.StoredToken{}
	if err := proto.Unmarshal(kv.Value, tok); err != nil {
		return nil, fmt.Errorf("decode token %q: %w", kv.Key, err)
	}
	return tok, nil
}

// CreateToken implements Store. It does not bump the config revision.
func (s *EtcdStore) CreateToken(ctx context.Context, tok *mcpmeshv1.StoredToken) error {
	if err := validateTokenArg(tok); err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	id := tok.GetToken().GetId()
	b, err := proto.Marshal(tok)
	if err != nil {
		return fmt.Errorf("create token %q: encode: %w", id, err)
	}
	_, err = s.update(ctx, fmt.Sprintf("create token %q", id), func(t *etx) error {
		k := s.key(bucketTokens, []byte(id))
		kvs, err := t.get(k)
		if err != nil {
			return err
		}
		if kvs[0] != nil {
			return fmt.Errorf("token %q: %w", id, ErrExists)
		}
		t.put(k, b)
		return nil
	})
	return err
}

// GetToken implements Store.
func (s *EtcdStore) GetToken(ctx context.Context, id string) (*mcpmeshv1.StoredToken, error) {
	op := fmt.Sprintf("get token %q", id)
	r, err := s.read(ctx, op, clientv3.OpGet(s.key(bucketTokens, []byte(id))))
	if err != nil {
		return nil, err
	}
	kv := one(r[0])
	if kv == nil {
		return nil, fmt.Errorf("%s: token %q: %w", op, id, ErrNotFound)
	}
	tok, err := decodeToken(kv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return tok, nil
}

// ListTokens implements Store.
func (s *EtcdStore) ListTokens(ctx context.Context) ([]*mcpmeshv1.StoredToken, error) {
	r, err := s.read(ctx, "list tokens", clientv3.OpGet(s.bucketPrefix(bucketTokens), clientv3.WithPrefix()))
	if err != nil {
		return nil, err
	}
	var out []*mcpmeshv1.StoredToken
	for _, kv := range r[0].Kvs {
		tok, err := decodeToken(kv)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, tok)
	}
	return out, nil
}

// RevokeToken implements Store. It does not bump the config revision.
func (s *EtcdStore) RevokeToken(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredToken, error) {
	var out *mcpmeshv1.StoredToken
	_, err := s.update(ctx, fmt.Sprintf("revoke token %q", id), func(t *etx) error {
		k := s.key(bucketTokens, []byte(id))
		kvs, err := t.get(k)
		if err != nil {
			return err
		}
		if kvs[0] == nil {
			return fmt.Errorf("token %q: %w", id, ErrNotFound)
		}
		tok, err := decodeToken(kvs[0])
		if err != nil {
			return err
		}
		out = tok
		if !stampRevoked(tok, at) {
			return nil
		}
		b, err := proto.Marshal(tok)
		if err != nil {
			return fmt.Errorf("encode token %q: %w", id, err)
		}
		t.put(k, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *etx) putPrevious(prev []PreviousSecret) error {
	if len(prev) == 0 {
		t.del(t.s.key(bucketMeta, metaPreviousSecrets))
		return nil
	}
	b, err := proto.Marshal(previousToProto(prev))
	if err != nil {
		return fmt.Errorf("encode previous cluster secrets: %w", err)
	}
	return t.putSealed(bucketMeta, metaPreviousSecrets, b)
}

// RotateClusterSecret implements Store.
func (s *EtcdStore) RotateClusterSecret(ctx context.Context, now, until time.Time) (uint64, error) {
	secret, err := newClusterSecret()
	if err != nil {
		return 0, fmt.Errorf("rotate cluster secret: %w", err)
	}
	return s.update(ctx, "rotate cluster secret", func(t *etx) error {
		kvs, err := t.get(s.revKey(), s.key(bucketMeta, metaClusterSecret), s.key(bucketMeta, metaPreviousSecrets))
		if err != nil {
			return err
		}
		old, err := s.openSecret(kvs[1], metaClusterSecret)
		if err != nil {
			return fmt.Errorf("read cluster secret: %w", err)
		}
		prev, err := s.decodePrevious(kvs[2])
		if err != nil {
			return err
		}
		if err := t.putPrevious(rotated(prev, old, now, until)); err != nil {
			return err
		}
		if err := t.putSealed(bucketMeta, metaClusterSecret, secret); err != nil {
			return fmt.Errorf("write cluster secret: %w", err)
		}
		return t.bump(kvs[0])
	})
}

// DropExpiredSecrets implements Store.
func (s *EtcdStore) DropExpiredSecrets(ctx context.Context, now time.Time) (uint64, error) {
	return s.update(ctx, "drop expired cluster secrets", func(t *etx) error {
		kvs, err := t.get(s.revKey(), s.key(bucketMeta, metaPreviousSecrets))
		if err != nil {
			return err
		}
		prev, err := s.decodePrevious(kvs[1])
		if err != nil {
			return err
		}
		keep := unexpired(prev, now)
		if len(keep) == len(prev) {
			return nil
		}
		if err := t.putPrevious(keep); err != nil {
			return err
		}
		return t.bump(kvs[0])
	})
}

// CreateClientKey implements Store. It bumps the config revision.
func (s *EtcdStore) CreateClientKey(ctx context.Context, k *mcpmeshv1.StoredClientKey) (uint64, error) {
	if err := validateClientKeyArg(k); err != nil {
		return 0, fmt.Errorf("create client key: %w", err)
	}
	id := k.GetKey().GetId()
	b, err := proto.Marshal(k)
	if err != nil {
		return 0, fmt.Errorf("create client key %q: encode: %w", id, err)
	}
	return s.update(ctx, fmt.Sprintf("create client key %q", id), func(t *etx) error {
		key := s.key(bucketClientKeys, []byte(id))
		kvs, err := t.get(s.revKey(), key)
		if err != nil {
			return err
		}
		if kvs[1] != nil {
			return fmt.Errorf("client key %q: %w", id, ErrExists)
		}
		t.put(key, b)
		return t.bump(kvs[0])
	})
}

// ListClientKeys implements Store.
func (s *EtcdStore) ListClientKeys(ctx context.Context) ([]*mcpmeshv1.StoredClientKey, error) {
	r, err := s.read(ctx, "list client keys", clientv3.OpGet(s.bucketPrefix(bucketClientKeys), clientv3.WithPrefix()))
	if err != nil {
		return nil, err
	}
	out, err := decodeClientKeys(r[0].Kvs)
	if err != nil {
		return nil, fmt.Errorf("list client keys: %w", err)
	}
	return out, nil
}

// RevokeClientKey implements Store. It bumps the config revision when it
// revokes.
func (s *EtcdStore) RevokeClientKey(ctx context.Context, id string, at time.Time) (*mcpmeshv1.StoredClientKey, error) {
	var out *mcpmeshv1.StoredClientKey
	_, err := s.update(ctx, fmt.Sprintf("revoke client key %q", id), func(t *etx) error {
		key := s.key(bucketClientKeys, []byte(id))
		kvs, err := t.get(s.revKey(), key)
		if err != nil {
			return err
		}
		if kvs[1] == nil {
			return fmt.Errorf("client key %q: %w", id, ErrNotFound)
		}
		cks, err := decodeClientKeys(kvs[1:])
		if err != nil {
			return err
		}
		out = cks[0]
		if !stampClientKeyRevoked(out, at) {
			return nil
		}
		b, err := proto.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode client key %q: %w", id, err)
		}
		t.put(key, b)
		return t.bump(kvs[0])
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
