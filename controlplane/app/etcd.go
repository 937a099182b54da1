package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Store kinds (--store).
const (
	StoreBolt = "bolt"
	StoreEtcd = "etcd"
)

// openStore opens the store cfg names: the bbolt file in the data dir, or
// etcd (shared by every replica).
func openStore(ctx context.Context, cfg Config) (store.Store, *store.EtcdStore, error) {
	switch cfg.Store {
	case "", StoreBolt:
		st, err := store.OpenBolt(filepath.Join(cfg.DataDir, store.FileName))
		return st, nil, err
	case StoreEtcd:
		es, err := store.OpenEtcd(ctx, cfg.Etcd)
		if err != nil {
			return nil, nil, err
		}
		return es, es, nil
	}
	return nil, nil, fmt.Errorf("--store %q: use bolt or etcd", cfg.Store)
}

// replicaID names this control plane among the replicas sharing an etcd:
// the host name for people, a random suffix so two on one host differ.
func replicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "controlplane"
	}
	host = strings.ReplaceAll(host, "/", "_")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// etcdSessionTTL is how long (seconds) the election and the presence keys
// of a replica outlive it when it dies without closing its session: another
// replica takes over the maintenance within about that long.
const etcdSessionTTL = 10

// etcdRetry is the pause before a new session after etcd failed.
const etcdRetry = time.Second

// revokeTimeout bounds the revocation of a session's lease on the way out.
const revokeTimeout = 2 * time.Second

// endSession ends sess and revokes its lease, so the keys written with it
// go at once. Session.Close revokes with the session's context, which has
// usually ended by then (the replica is stopping): the lease would be
// abandoned, and its keys (the data planes this replica published) would
// outlive the replica by up to etcdSessionTTL. Without an etcd leader the
// revocation fails fast and the lease expires on its own.
func endSession(cli *clientv3.Client, sess *concurrency.Session) {
	sess.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	_, _ = cli.Revoke(clientv3.WithRequireLeader(ctx), sess.Lease())
}

// electionClient is cli as an election should use it: a Campaign whose
// context ends withdraws its candidacy with its client's context, which for
// cli lasts as long as the store, so without an etcd quorum it would block
// the replica's shutdown until the process is killed. This client shares
// cli's connection (its KV, Lease and Watcher) but its context is ctx: the
// withdrawal gives up with ctx, and endSession's revocation of the lease
// removes the candidacy anyway. It needs no Close (that would close cli's).
func electionClient(ctx context.Context, cli *clientv3.Client) *clientv3.Client {
	c := clientv3.NewCtxClient(ctx)
	c.KV, c.Lease, c.Watcher = cli.KV, cli.Lease, cli.Watcher
	return c
}

func waitOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runElected runs work while this replica holds the etcd election at
// key, and campaigns again whenever it loses it (its session expired),
// until ctx ends: work that must happen once among the replicas runs on one.
func runElected(ctx context.Context, cli *clientv3.Client, key, id string, log *slog.Logger, work func(ctx context.Context)) {
	ecli := electionClient(ctx, cli)
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(ecli, concurrency.WithTTL(etcdSessionTTL), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot open an etcd session for the maintenance election; retrying", "err", err, "retry_in", etcdRetry)
				waitOrDone(ctx, etcdRetry)
			}
			continue
		}
		el := concurrency.NewElection(sess, key)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-sess.Done(): // a campaign must not outlive its lease
				cancel()
			case <-cctx.Done():
			}
		}()
		err = el.Campaign(cctx, id)
		if err != nil {
			cancel()
			endSession(cli, sess)
			if ctx.Err() == nil {
				log.Warn("maintenance election campaign ended; retrying", "err", err)
				waitOrDone(ctx, etcdRetry)
			}
			continue
		}
		log.Info("elected to run work done once in the cluster", "election", key, "replica", id)
		done := make(chan struct{})
		go func() { defer close(done); work(cctx) }()
		select {
		case <-sess.Done():
			log.Warn("lost the maintenance election: the etcd session ended", "replica", id)
		case <-ctx.Done():
		}
		cancel()
		<-done
		rctx, rcancel := context.WithTimeout(context.Background(), revokeTimeout)
		_ = el.Resign(clientv3.WithRequireLeader(rctx))
		rcancel()
		endSession(cli, sess)
	}
}

// restartOnChange runs run, restarting it after every config revision the
// store announces (a rotation through another replica changes when the
// next secret expires), until ctx ends.
func restartOnChange(ctx context.Context, st store.Store, run func(ctx context.Context)) {
	watch := st.Watch(ctx)
	for ctx.Err() == nil {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); run(rctx) }()
		_, ok := <-watch
		cancel()
		<-done
		if !ok {
			return
		}
	}
}

// presence shares which data planes have a config stream open to which
// replica, so that every replica counts a data plane's health reports
// (health.Aggregator only counts connected data planes), whichever replica
// it streams from. Each replica writes its own keys
// <prefix>dataplanes/<replica>/<dataplane> with a lease, so the keys of a
// replica that died vanish within etcdSessionTTL.
type presence struct {
	cli     *clientv3.Client
	prefix  string // <prefix>dataplanes/
	replica string
	local   func() map[string]bool
	log     *slog.Logger
}

func newPresence(es *store.EtcdStore, replica string, local func() map[string]bool, log *slog.Logger) *presence {
	return &presence{cli: es.Client(), prefix: es.Prefix() + "dataplanes/", replica: replica, local: local, log: log}
}

// publish keeps this replica's keys equal to its connected data planes,
// after every change changes signals, until ctx ends; it revokes them then.
func (p *presence) publish(ctx context.Context, changes <-chan struct{}) {
	mine := p.prefix + p.replica + "/"
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(p.cli, concurrency.WithTTL(etcdSessionTTL), concurrency.WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("cannot open an etcd session to publish connected data planes; retrying", "err", err, "retry_in", etcdRetry)
				waitOrDone(ctx, etcdRetry)
			}
			continue
		}
		published := map[string]bool{}
		failed := false
		for !failed {
			now := p.local()
			for id := range now {
				if published[id] {
					continue
				}
				if _, err := p.cli.Put(ctx, mine+id, "", clientv3.WithLease(sess.Lease())); err != nil {
					failed = true
					break
				}
				published[id] = true
			}
			for id := range published {
				if now[id] || failed {
					continue
				}
				if _, err := p.cli.Delete(ctx, mine+id); err != nil {
					failed = true
					break
				}
				delete(published, id)
			}
			if failed {
				break
			}
			select {
			case <-ctx.Done():
				failed = true
			case <-sess.Done():
				failed = true
			case <-changes:
			}
		}
		endSession(p.cli, sess) // revokes the lease: the keys go with it
		if ctx.Err() == nil {
			waitOrDone(ctx, etcdRetry)
		}
	}
}

// presenceReadTimeout bounds the etcd read of connected data planes; on
// failure only this replica's own data planes count.
const presenceReadTimeout = 2 * time.Second

// connected returns the data planes connected to any replica.
func (p *presence) connected() map[string]bool {
	out := p.local()
	ctx, cancel := context.WithTimeout(context.Background(), presenceReadTimeout)
	defer cancel()
	resp, err := p.cli.Get(ctx, p.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		p.log.Warn("cannot read the data planes connected to other replicas; counting this replica's only", "err", err)
		return out
	}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), p.prefix)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			out[rest[i+1:]] = true
		}
	}
	return out
}
