package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// Labels of the keys derived from the cluster secret, one per use: a value
// valid in one role never verifies in another.
const (
	SessionLabel = "mcpmesh session v2" // dataplane/front: session id encryption (AES-256-GCM)
	CursorLabel  = "mcpmesh cursor v3"  // list cursor signing (HMAC-SHA256)
	// dataplane/oauthpage: /oauth session cookies (AES-256-GCM) and the
	// CSRF tokens of its forms (HMAC-SHA256).
	OAuthSessionLabel = "mcpmesh oauth session v1"
	OAuthCSRFLabel    = "mcpmesh oauth csrf v1"
)

// DefaultGrace is how long the previous secret stays accepted after a
// rotation when Options.Grace is zero: long enough for every replica to see
// the new snapshot and for open sessions to carry on.
const DefaultGrace = time.Hour

// KeyLen is the length of every derived key (AES-256, HMAC-SHA256).
const KeyLen = 32

// IDLen is the length of a KeyID.
const IDLen = 4

// KeyID names the secret a key was derived from, so that a receiver can pick
// the key to verify with, and tell "sealed under a secret I no longer (or
// never) had" from "tampered". It is the same for every label of a secret and
// reveals nothing about it (HKDF output).
type KeyID [IDLen]byte

// Key is one derived key.
type Key struct {
	ID    KeyID
	Bytes []byte // KeyLen bytes; shared, must not be modified
	// Retired is when SetSecret replaced the secret of a previous key, and
	// Until when that key stops being accepted; both zero for the current key.
	Retired, Until time.Time
}

// Options configure Keys; zero values mean defaults.
type Options struct {
	// Grace is how long the previous secret is kept after SetSecret
	// replaced it.
	Grace time.Duration
	// Now is the clock of the grace; tests inject one.
	Now func() time.Time
}

// Keys derives keys from the cluster secret. It is safe for concurrent use.
type Keys struct {
	grace time.Duration
	now   func() time.Time
	gen   atomic.Uint64

	// mu serialises SetSecret; readers load state without a lock.
	mu    sync.Mutex
	state atomic.Pointer[state]
}

type state struct {
	cur  *secret
	prev *secret // nil when there is none
	// prevRetired is when prev was replaced.
	prevRetired time.Time
	// listed are the previous secrets the control plane named (Update),
	// each accepted until its own deadline.
	listed []listedSecret
}

type listedSecret struct {
	s     *secret
	until time.Time
}

// Retired is a previous cluster secret the control plane still accepts
// until Until (ConfigSnapshot.previous_secrets).
type Retired struct {
	Secret []byte
	Until  time.Time
}

// secret is one cluster secret and the keys derived from it so far.
type secret struct {
	raw []byte
	id  KeyID
	// derived caches the keys by label (string → []byte): Derive is on the
	// request path of its users, so a read takes no lock.
	derived sync.Map
}

func newSecret(raw []byte) *secret {
	s := &secret{raw: bytes.Clone(raw)}
	copy(s.id[:], derive(raw, "mcpmesh key id", IDLen))
	return s
}

func (s *secret) key(label string) []byte {
	if k, ok := s.derived.Load(label); ok {
		return k.([]byte)
	}
	k, _ := s.derived.LoadOrStore(label, derive(s.raw, label, KeyLen))
	return k.([]byte)
}

func derive(secret []byte, label string, n int) []byte {
	// HKDF-SHA256 fails only for lengths above 255*32 bytes.
	k, err := hkdf.Key(sha256.New, secret, nil, label, n)
	if err != nil {
		panic("keys: derive: " + err.Error())
	}
	return k
}

// New returns Keys with a random secret, so that a data plane that has not
// yet received a config snapshot still works on its own: what it issues is
// accepted by this process only.
func New() *Keys { return NewWithOptions(Options{}) }

// NewWithOptions is New with options.
func NewWithOptions(o Options) *Keys {
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	boot := make([]byte, 32)
	_, _ = rand.Read(boot) // never fails (crypto/rand docs)
	k := &Keys{grace: o.Grace, now: o.Now}
	k.state.Store(&state{cur: newSecret(boot)})
	return k
}

// SetSecret makes secret the cluster secret. The one it replaces stays
// accepted (Lookup, Previous) for the grace, so that what was issued under it
// survives a rotation that every replica sees within that window; the one
// before that is forgotten. An empty secret or the current one is a no-op;
// it reports whether the secret changed. Call it with every snapshot.
func (k *Keys) SetSecret(secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.state.Load()
	if bytes.Equal(old.cur.raw, secret) {
		return false
	}
	next := &state{cur: newSecret(secret), prev: old.cur, prevRetired: k.now()}
	for _, l := range old.listed {
		if bytes.Equal(l.s.raw, old.cur.raw) {
			// The control plane named the replaced one: its deadline holds.
			next.prev = nil
		}
		if !bytes.Equal(l.s.raw, secret) {
			next.listed = append(next.listed, l)
		}
	}
	k.state.Store(next)
	k.gen.Add(1)
	return true
}

// Update makes cur the cluster secret, as SetSecret, and previous the
// replaced secrets the control plane still accepts, each until its own
// deadline, so that a data plane started after a rotation accepts what was
// made before it. A secret named in previous takes its deadline from there
// (not SetSecret's grace), and is forgotten once a snapshot no longer names
// it. It reports whether anything changed.
func (k *Keys) Update(cur []byte, previous []Retired) bool {
	if len(cur) == 0 {
		return false
	}
	changed := k.SetSecret(cur)
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.state.Load()
	next := &state{cur: old.cur, prev: old.prev, prevRetired: old.prevRetired}
	for _, p := range previous {
		if len(p.Secret) == 0 || bytes.Equal(p.Secret, cur) {
			continue
		}
		ls := listedSecret{until: p.Until}
		for _, o := range old.listed { // keep the derived keys
			if bytes.Equal(o.s.raw, p.Secret) {
				ls.s = o.s
			}
		}
		if ls.s == nil {
			ls.s = newSecret(p.Secret)
		}
		if next.prev != nil && bytes.Equal(next.prev.raw, p.Secret) {
			next.prev = nil // the control plane's deadline wins
		}
		next.listed = append(next.listed, ls)
	}
	if !changed && sameListed(old.listed, next.listed) && (old.prev == nil) == (next.prev == nil) {
		return false
	}
	k.state.Store(next)
	k.gen.Add(1)
	return true
}

func sameListed(a, b []listedSecret) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].s.id != b[i].s.id || !a[i].until.Equal(b[i].until) {
			return false
		}
	}
	return true
}

// Accepted returns the keys for label of every previous secret still
// accepted now, newest first: the one SetSecret replaced, then those the
// control plane named.
func (k *Keys) Accepted(label string) []Key {
	st := k.state.Load()
	now := k.now()
	var out []Key
	if p, ok := k.Previous(label); ok {
		out = append(out, p)
	}
	for _, l := range st.listed {
		if now.Before(l.until) {
			out = append(out, Key{ID: l.s.id, Bytes: l.s.key(label), Until: l.until})
		}
	}
	return out
}

// Generation changes with every SetSecret that changed the secret; a user
// that caches something built from a key (a cipher) rebuilds it when this
// changes.
func (k *Keys) Generation() uint64 { return k.gen.Load() }

// Grace is how long a previous secret is kept.
func (k *Keys) Grace() time.Duration { return k.grace }

// Derive returns the current key for label, e.g. "mcpmesh cursor v3". The
// slice is shared and must not be modified.
func (k *Keys) Derive(label string) []byte { return k.Current(label).Bytes }

// Current returns the current key for label and its id.
func (k *Keys) Current(label string) Key {
	cur := k.state.Load().cur
	return Key{ID: cur.id, Bytes: cur.key(label)}
}

// Previous returns the key for label of the previous secret while its grace
// lasts.
func (k *Keys) Previous(label string) (Key, bool) {
	st := k.state.Load()
	prev, retired := st.prev, st.prevRetired
	if prev == nil {
		return Key{}, false
	}
	until := retired.Add(k.grace)
	if !k.now().Before(until) {
		return Key{}, false
	}
	return Key{ID: prev.id, Bytes: prev.key(label), Retired: retired, Until: until}, true
}

// Lookup returns the key for label of the secret named id: the current one,
// or the previous one while its grace lasts.
func (k *Keys) Lookup(label string, id KeyID) (Key, bool) {
	if cur := k.Current(label); cur.ID == id {
		return cur, true
	}
	for _, p := range k.Accepted(label) {
		if p.ID == id {
			return p, true
		}
	}
	return Key{}, false
}
