package front

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

// Session ids are self-contained so that any data plane replica of a cluster
// can serve any request of a streamable HTTP session. An id is the unpadded,
// strict base64url encoding of
//
//	version(1)=2 keyID(4) nonce(12) AES-256-GCM(plaintext, AAD=version+keyID) tag(16)
//	plaintext: issuedAt(8, unix s, big endian) flags(1)
//	           len(1)+protocol len(1)+clientName len(1)+clientVersion
//	           len(2)+capabilities len(2)+upstream
//
// The key is keys.Derive(keys.SessionLabel) of the cluster secret; keyID
// names that secret, so a replica tells "sealed under a secret I do not hold"
// (another cluster, a rotation whose grace ended, a restart before the first
// snapshot) from "tampered". The nonce is random and is also what makes the
// id unique: the deny-list is keyed by it. The id is encrypted, not only
// signed, because Upstream may carry what the router must not show clients.
//
// A typical id (short client info, ~100 bytes of capabilities and upstream)
// is about 300 characters; the bounds make the longest ~8.5 KB, which some
// proxies' header limits (nginx: 8 KB per line) refuse, so the router should
// keep Upstream small.
//
// What a stateless id cannot do, by design: expire on idleness (no replica
// knows when another last saw it: it expires SessionMaxAge after issue), be
// revoked everywhere (DELETE deny-lists it on the replica that received it),
// or change after initialize.
const (
	idVersion      = 2
	nonceLen       = 12
	tagLen         = 16
	headerLen      = 1 + keys.IDLen + nonceLen
	maxProtocol    = 32
	maxClientField = 64
	plainFixed     = 8 + 1 + 1 + 1 + 1 + 2 + 2
	maxPlain       = plainFixed + maxProtocol + 2*maxClientField + MaxCapabilities + MaxUpstream
	minRaw         = headerLen + plainFixed + tagLen
	maxRaw         = headerLen + maxPlain + tagLen
	clockSkew      = 5 * time.Minute
	// denyListSize bounds the per-replica list of ids ended by DELETE.
	denyListSize = 100_000

	flagSSE = 1 << 0
)

var (
	idEncoding = base64.RawURLEncoding.Strict()
	maxEncoded = idEncoding.EncodedLen(maxRaw)
)

type nonce [nonceLen]byte

// sessionError says why an id was refused; it is answered 404 (initialize
// a new session) with the reason in the JSON-RPC error's message.
type sessionError struct{ reason string }

func (e *sessionError) Error() string { return "session id rejected: " + e.reason }

func refuse(format string, args ...any) error {
	return &sessionError{reason: fmt.Sprintf(format, args...)}
}

var (
	errTampered   = refuse("it does not decrypt (tampered, truncated or forged); initialize a new session")
	errUnknownKey = refuse("sealed with a key this data plane does not hold: issued by another cluster, " +
		"before a restart without a control plane, or before a secret rotation whose grace period ended; initialize a new session")
	errTerminated = refuse("the session was terminated (DELETE) on this data plane; initialize a new session")
)

// sealKey is one session key as a cipher.
type sealKey struct {
	id   keys.KeyID
	aead cipher.AEAD
	// until bounds a previous key (zero for the current one).
	until time.Time
}

type ciphers struct {
	gen  uint64
	cur  sealKey
	prev []sealKey // previous secrets' keys still accepted, newest first
}

// codec mints and opens session ids.
type codec struct {
	keys   *keys.Keys
	maxAge time.Duration
	grace  time.Duration // Options.SecretGrace, 0: as long as keys keeps it
	now    func() time.Time
	// random fills nonces; the fuzz test makes it deterministic.
	random func([]byte)

	ciphers atomic.Pointer[ciphers]
	deny    denyList
}

func newCodec(k *keys.Keys, maxAge, grace time.Duration, now func() time.Time) *codec {
	return &codec{keys: k, maxAge: maxAge, grace: grace, now: now, deny: denyList{m: map[nonce]int64{}},
		random: func(b []byte) { _, _ = rand.Read(b) }} // never fails (crypto/rand docs)
}

func newAEAD(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic("front: session key: " + err.Error()) // keys.KeyLen is a valid AES key size
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic("front: session key: " + err.Error())
	}
	return a
}

// load returns the ciphers of the current keys, rebuilt when the secret
// changed. The generation is read first, so a rotation racing the rebuild
// only causes one more rebuild.
func (c *codec) load() *ciphers {
	gen := c.keys.Generation()
	if cs := c.ciphers.Load(); cs != nil && cs.gen == gen {
		return cs
	}
	cur := c.keys.Current(keys.SessionLabel)
	cs := &ciphers{gen: gen, cur: sealKey{id: cur.ID, aead: newAEAD(cur.Bytes)}}
	for _, prev := range c.keys.Accepted(keys.SessionLabel) {
		until := prev.Until
		if c.grace > 0 && !prev.Retired.IsZero() && prev.Retired.Add(c.grace).Before(until) {
			until = prev.Retired.Add(c.grace)
		}
		cs.prev = append(cs.prev, sealKey{id: prev.ID, aead: newAEAD(prev.Bytes), until: until})
	}
	c.ciphers.Store(cs)
	return cs
}

// seal mints the id of s (its ID, issued and nonce fields are set).
func (c *codec) seal(s *Session) string {
	cs := c.load()
	proto := cut(s.Protocol, maxProtocol)
	name, version := cut(s.ClientName, maxClientField), cut(s.ClientVersion, maxClientField)
	n := plainFixed + len(proto) + len(name) + len(version) + len(s.Capabilities) + len(s.Upstream)
	raw := make([]byte, headerLen, headerLen+n+tagLen)
	raw[0] = idVersion
	copy(raw[1:], cs.cur.id[:])
	c.random(raw[1+keys.IDLen : headerLen])
	s.issued = c.now().Unix()
	copy(s.nonce[:], raw[1+keys.IDLen:headerLen])

	pt := binary.BigEndian.AppendUint64(raw[headerLen:], uint64(s.issued))
	var flags byte
	if s.Transport == TransportSSE {
		flags |= flagSSE
	}
	pt = append(pt, flags)
	pt = appendShort(pt, proto)
	pt = appendShort(pt, name)
	pt = appendShort(pt, version)
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(s.Capabilities)))
	pt = append(pt, s.Capabilities...)
	pt = binary.BigEndian.AppendUint16(pt, uint16(len(s.Upstream)))
	pt = append(pt, s.Upstream...)
	sealed := cs.cur.aead.Seal(pt[:0], raw[1+keys.IDLen:headerLen], pt, raw[:1+keys.IDLen])
	raw = raw[:headerLen+len(sealed)]
	s.ID = idEncoding.EncodeToString(raw)
	return s.ID
}

func appendShort(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// cut shortens s to at most n bytes at a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// open verifies id and returns the session it carries. An expired id comes
// back with its session and an error, so that the caller can tell the router
// the session ended. Any error is a *sessionError.
func (c *codec) open(id string) (*Session, error) {
	switch {
	case id == "":
		return nil, refuse("empty")
	case len(id) > maxEncoded:
		return nil, refuse("too long (%d characters) to be a session id of this data plane", len(id))
	case strings.IndexByte(id, '\n') >= 0 || strings.IndexByte(id, '\r') >= 0:
		// The decoder skips line breaks: the id would have two spellings.
		return nil, refuse("not base64url")
	}
	raw := make([]byte, idEncoding.DecodedLen(len(id)))
	n, err := idEncoding.Decode(raw, []byte(id))
	if err != nil {
		return nil, refuse("not base64url")
	}
	raw = raw[:n]
	if n == 0 || raw[0] != idVersion {
		v := -1
		if n > 0 {
			v = int(raw[0])
		}
		return nil, refuse("unknown session id version %d (this data plane mints version %d); initialize a new session", v, idVersion)
	}
	if n < minRaw {
		return nil, refuse("too short to be a session id of this data plane")
	}
	var kid keys.KeyID
	copy(kid[:], raw[1:1+keys.IDLen])
	cs := c.load()
	now := c.now()
	var aead cipher.AEAD
	switch {
	case kid == cs.cur.id:
		aead = cs.cur.aead
	default:
		for _, p := range cs.prev {
			if kid == p.id {
				if !now.Before(p.until) {
					return nil, refuse("sealed with a previous cluster secret, whose grace period ended; initialize a new session")
				}
				aead = p.aead
				break
			}
		}
		if aead == nil {
			return nil, errUnknownKey
		}
	}
	pt, err := aead.Open(raw[headerLen:headerLen], raw[1+keys.IDLen:headerLen], raw[headerLen:], raw[:1+keys.IDLen])
	if err != nil {
		return nil, errTampered
	}
	s, ok := parsePlain(pt)
	if !ok {
		// Sealed by us, so written by seal; parsed defensively all the same
		// so that a future layout cannot panic an older replica.
		return nil, refuse("malformed contents")
	}
	s.ID = id
	copy(s.nonce[:], raw[1+keys.IDLen:headerLen])
	issued := time.Unix(s.issued, 0)
	if issued.After(now.Add(clockSkew)) {
		return nil, refuse("issued in the future (%s ahead: clock skew between data planes?)", issued.Sub(now).Truncate(time.Second))
	}
	if !now.Before(issued.Add(c.maxAge)) {
		return s, refuse("expired: issued %s ago, the maximum session age is %s; initialize a new session",
			now.Sub(issued).Truncate(time.Second), c.maxAge)
	}
	if c.deny.has(s.nonce) {
		return nil, errTerminated
	}
	return s, nil
}

func parsePlain(pt []byte) (*Session, bool) {
	if len(pt) < plainFixed {
		return nil, false
	}
	s := &Session{issued: int64(binary.BigEndian.Uint64(pt)), Transport: TransportStreamableHTTP}
	if pt[8]&flagSSE != 0 {
		s.Transport = TransportSSE
	}
	p := pt[9:]
	var fields [3][]byte
	for i := range fields {
		if len(p) < 1 || len(p) < 1+int(p[0]) {
			return nil, false
		}
		fields[i], p = p[1:1+int(p[0])], p[1+int(p[0]):]
	}
	var blobs [2][]byte
	for i := range blobs {
		if len(p) < 2 {
			return nil, false
		}
		l := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+l {
			return nil, false
		}
		if l > 0 {
			blobs[i] = p[2 : 2+l : 2+l]
		}
		p = p[2+l:]
	}
	if len(p) != 0 {
		return nil, false
	}
	s.Protocol = internProtocol(fields[0])
	s.ClientName, s.ClientVersion = string(fields[1]), string(fields[2])
	s.Capabilities, s.Upstream = blobs[0], blobs[1]
	return s, true
}

// internProtocol spells the known versions without allocating.
func internProtocol(b []byte) string {
	for _, v := range mcp.ValidProtocolVersions {
		if string(b) == v {
			return v
		}
	}
	return string(b)
}

// revoke deny-lists s on this replica until it would have expired anyway.
func (c *codec) revoke(s *Session) {
	c.deny.add(s.nonce, s.issued+int64(c.maxAge/time.Second), c.now().Unix())
}

// denyList holds the nonces of ids ended by DELETE on this replica.
type denyList struct {
	n  atomic.Int64 // len(m), read without the lock on every request
	mu sync.RWMutex
	m  map[nonce]int64 // nonce → when the id expires (unix s)
}

func (d *denyList) has(k nonce) bool {
	if d.n.Load() == 0 {
		return false
	}
	d.mu.RLock()
	_, ok := d.m[k]
	d.mu.RUnlock()
	return ok
}

func (d *denyList) add(k nonce, expires, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.m) >= denyListSize {
		// Expired ids are refused without the list: drop them first, then
		// the one closest to expiry. Forgetting a revocation only re-admits
		// a client that asked to end its own session.
		var (
			oldest    nonce
			oldestExp int64 = -1
		)
		for n, exp := range d.m {
			if exp <= now {
				delete(d.m, n)
				continue
			}
			if oldestExp < 0 || exp < oldestExp {
				oldest, oldestExp = n, exp
			}
		}
		if len(d.m) >= denyListSize {
			delete(d.m, oldest)
		}
	}
	d.m[k] = expires
	d.n.Store(int64(len(d.m)))
}
