// Package etcdtest runs real etcd members inside the test process (etcd's
// embed package), so tests of the etcd store and of several control planes
// need no etcd binary: free loopback ports, temporary data dirs.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long a cluster may take to elect a leader; the
// machine running tests may be loaded.
const startTimeout = 60 * time.Second

// Member is one etcd server of a Cluster.
type Member struct {
	Name      string
	ClientURL string
	peerURL   string
	dir       string

	mu   sync.Mutex
	etcd *embed.Etcd
}

// Cluster is a set of etcd members that formed one cluster.
type Cluster struct {
	Members []*Member
}

// Options tune Start.
type Options struct {
	// Fsync makes members sync their log to disk, as production etcd does
	// (off by default: tests want speed, not durability).
	Fsync bool
}

// Start starts an n-member cluster, waits until it serves, and stops it
// when the test ends.
func Start(t testing.TB, n int, opts ...Options) *Cluster {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	c := &Cluster{}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: "http://" + freeAddr(t),
			peerURL:   "http://" + freeAddr(t),
			dir:       filepath.Join(t.TempDir(), fmt.Sprintf("m%d.etcd", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.peerURL)
	}
	t.Cleanup(c.Stop)
	errc := make(chan error, n)
	for _, m := range c.Members {
		go func() { errc <- m.start(strings.Join(initial, ","), o) }()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatalf("start embedded etcd: %v", err)
		}
	}
	return c
}

func (m *Member) start(initial string, o Options) error {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.dir
	cu, _ := url.Parse(m.ClientURL)
	pu, _ := url.Parse(m.peerURL)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = initial
	cfg.InitialClusterToken = "mcpmesh-test"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = !o.Fsync
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", m.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("member %s: %w", m.Name, err)
	case <-time.After(startTimeout):
		e.Close()
		return fmt.Errorf("member %s: not ready within %s", m.Name, startTimeout)
	}
	m.mu.Lock()
	m.etcd = e
	m.mu.Unlock()
	return nil
}

// Stop stops the member (as losing its machine would: its clients see the
// connection end); stopping a stopped member does nothing.
func (m *Member) Stop() {
	m.mu.Lock()
	e := m.etcd
	m.etcd = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Endpoints returns the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Stop stops every member.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Go(m.Stop)
	}
	wg.Wait()
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
