package router

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
)

// Per-client upstream sessions. At initialize the router opens, on every
// ready per-client server, an upstream session of the client's own (with its
// capabilities and client info) and returns their ids as the upstream payload,
// which the front seals into the client's session id. Any replica that gets a
// request of the session reads them back and continues the same upstream
// session: no sticky routing, no shared store.
//
// Payload: version(1) | client key(16) | uvarint count |
// count × (uvarint len | server | uvarint endpoint | uvarint len | upstream id)
// | [uvarint len | home].
// The client key names the client towards backends (their messages come back
// tagged with it); it is random, not the session id, which does not exist yet
// when the payload is made. Home is the advertised address of the replica
// that took initialize: the session's requests to shared servers are served
// there (peers.go). It comes last, so that a replica of a release before homes
// (which reads version 1 and ignores what follows the entries) still reads
// the upstream sessions of an id minted by a newer one during an upgrade,
// and an id without it reads as having no home.
const (
	upstreamVersion = 1
	// maxHome bounds the home address in a payload.
	maxHome      = 255
	clientKeyLen = 16
	// maxUpstreamPayload stays under the front's bound with room to spare; a
	// server that does not fit gets its session on first use instead.
	maxUpstreamPayload = 3072
	// openTimeout bounds initialize's wait for the upstream sessions.
	openTimeout = 10 * time.Second
)

// upstreams is a session's decoded payload.
type upstreams struct {
	key  string // hex of the client key
	home string // "" when the payload names none
	refs map[string]backend.Upstream
}

func encodeUpstreams(key []byte, home string, refs map[string]backend.Upstream, order []string) []byte {
	b := []byte{upstreamVersion}
	b = append(b, key...)
	if len(home) > maxHome {
		home = "" // an address that long is no address: serve shared servers where the requests land
	}
	var entries [][]byte
	for _, name := range order {
		up, ok := refs[name]
		if !ok {
			continue
		}
		e := binary.AppendUvarint(nil, uint64(len(name)))
		e = append(e, name...)
		e = binary.AppendUvarint(e, uint64(up.Endpoint))
		e = binary.AppendUvarint(e, uint64(len(up.ID)))
		e = append(e, up.ID...)
		entries = append(entries, e)
	}
	size := len(b) + 2*binary.MaxVarintLen64 + len(home)
	n := 0
	for _, e := range entries {
		if size+len(e) > maxUpstreamPayload {
			break
		}
		size += len(e)
		n++
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, e := range entries[:n] {
		b = append(b, e...)
	}
	if home != "" {
		b = binary.AppendUvarint(b, uint64(len(home)))
		b = append(b, home...)
	}
	return b
}

var errPayload = errors.New("malformed upstream session payload")

func decodeUpstreams(b []byte) (upstreams, error) {
	if len(b) < 1+clientKeyLen || b[0] != upstreamVersion {
		return upstreams{}, errPayload
	}
	u := upstreams{key: hex.EncodeToString(b[1 : 1+clientKeyLen]), refs: map[string]backend.Upstream{}}
	b = b[1+clientKeyLen:]
	str := func() (string, bool) {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s, true
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1000 {
		return upstreams{}, errPayload
	}
	b = b[k:]
	for range n {
		name, ok := str()
		if !ok {
			return upstreams{}, errPayload
		}
		ep, k := binary.Uvarint(b)
		if k <= 0 || ep > 1<<16 {
			return upstreams{}, errPayload
		}
		b = b[k:]
		id, ok := str()
		if !ok {
			return upstreams{}, errPayload
		}
		u.refs[name] = backend.Upstream{Endpoint: int(ep), ID: id}
	}
	if len(b) > 0 {
		home, ok := str()
		if !ok || len(home) > maxHome || len(b) > 0 {
			return upstreams{}, errPayload
		}
		u.home = home
	}
	return u, nil
}

// openUpstreams opens the client's sessions on every ready per-client server.
func (r *Router) openUpstreams(ctx context.Context, s *front.Session) []byte {
	key := make([]byte, clientKeyLen)
	_, _ = rand.Read(key)
	init := initFor(s, hex.EncodeToString(key))
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	var (
		mu    sync.Mutex
		refs  = map[string]backend.Upstream{}
		order []string
		wg    sync.WaitGroup
	)
	for _, b := range r.servers.List() {
		if !b.PerClient() || !b.Connected() {
			continue
		}
		order = append(order, b.Name())
		wg.Add(1)
		go func() {
			defer wg.Done()
			up, err := b.OpenSession(ctx, init)
			if err != nil {
				// The session is opened on the first request instead.
				r.log.Info("open a client's upstream session", "server", b.Name(), "err", err)
				return
			}
			if !up.IsZero() {
				mu.Lock()
				refs[b.Name()] = up
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return encodeUpstreams(key, r.advertise, refs, order)
}

func initFor(s *front.Session, key string) backend.SessionInit {
	return backend.SessionInit{
		Client:        key,
		Capabilities:  s.Capabilities,
		ClientName:    s.ClientName,
		ClientVersion: s.ClientVersion,
	}
}

// clientSession is the session of client s with server b, for a request
// routed to a per-client server; nil for shared servers and for clients that
// have no session (stateless requests), whose requests use the shared one.
func (r *Router) clientSession(s *front.Session, b Server) *backend.ClientSession {
	if !b.PerClient() || s == nil || len(s.Upstream) == 0 {
		return nil
	}
	u, err := decodeUpstreams(s.Upstream)
	if err != nil {
		r.log.Warn("client session", "err", err)
		return nil
	}
	r.remember(u.key, s)
	return &backend.ClientSession{Init: initFor(s, u.key), Upstream: u.refs[b.Name()]}
}

// keyEntry is a session last seen with a client key, and when.
type keyEntry struct {
	s    *front.Session
	seen time.Time
}

// keyIdle is how long a client key is remembered without a request or an
// open stream of its session on this replica (the backend forgets idle
// upstream sessions after as long).
const keyIdle = backend.DefaultSessionIdle

// remember maps a client key to the latest session seen with it on this
// replica, for messages that come back on the client's upstream sessions.
func (r *Router) remember(key string, s *front.Session) {
	now := time.Now()
	rl := &r.relay
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if _, ok := rl.byKey[key]; !ok {
		rl.keyInsert++
		if len(rl.byKey) >= maxClients || rl.keyInsert%1024 == 0 || now.Sub(rl.keySweep) > keyIdle {
			rl.sweepKeysLocked(now)
		}
		if len(rl.byKey) >= maxClients {
			return
		}
	}
	rl.byKey[key] = keyEntry{s: s, seen: now}
}

// sweepKeysLocked forgets the client keys unseen for keyIdle.
func (rl *relay) sweepKeysLocked(now time.Time) {
	rl.keySweep = now
	for k, e := range rl.byKey {
		if now.Sub(e.seen) > keyIdle {
			delete(rl.byKey, k)
		}
	}
}

// sessionOf is the session a client key names, if this replica saw it.
func (r *Router) sessionOf(key string) *front.Session {
	r.relay.mu.Lock()
	defer r.relay.mu.Unlock()
	return r.relay.byKey[key].s
}

// Listening holds the client's upstream event streams (of every per-client
// server) while its stream here is open, so that what its backends send on
// their own reaches it, and follows the stream of the session's home replica
// for what its shared servers send (peers.go). A stream another replica
// opened to follow this one carries only what this replica pushes.
func (r *Router) Listening(ctx context.Context, s *front.Session) {
	if r.fromPeer(s) {
		return
	}
	if home, ok := r.homeOf(s); ok && r.hasShared() {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { r.followHome(ctx, home, s) })
	}
	if u, err := decodeUpstreams(s.Upstream); err == nil {
		// A client that only listens is not idle: keep its key.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(keyIdle / 3)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					r.remember(u.key, s)
				case <-ctx.Done():
					return
				case <-stop:
					return
				}
			}
		}()
	}
	r.eachClientSession(s, func(b Server, cs *backend.ClientSession) {
		if err := b.Listen(ctx, cs); err != nil {
			r.log.Debug("listen on a client's upstream session", "server", b.Name(), "err", err)
		}
	})
}

// eachClientSession runs f for each per-client server with the client's
// session of it, concurrently, and waits for them all.
func (r *Router) eachClientSession(s *front.Session, f func(Server, *backend.ClientSession)) {
	var wg sync.WaitGroup
	for _, b := range r.servers.List() {
		if cs := r.clientSession(s, b); cs != nil {
			wg.Go(func() { f(b, cs) })
		}
	}
	wg.Wait()
}

// closeUpstreams ends the client's upstream sessions.
func (r *Router) closeUpstreams(s *front.Session) {
	if len(s.Upstream) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.eachClientSession(s, func(b Server, cs *backend.ClientSession) {
		if err := b.CloseSession(ctx, cs); err != nil {
			r.log.Debug("close a client's upstream session", "server", b.Name(), "err", err)
		}
	})
	if u, err := decodeUpstreams(s.Upstream); err == nil {
		r.relay.mu.Lock()
		delete(r.relay.byKey, u.key)
		r.relay.mu.Unlock()
	}
}
