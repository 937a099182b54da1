package mcpserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Session ids are self-contained so that any data plane replica can serve any
// request of a streamable HTTP session (2025-11-25 and earlier revisions;
// 2026-07-28 has no sessions). An id is the unpadded base64url encoding of
//
//	version(1) keyID(4) random(16) issuedAt(8, unix s, big endian)
//	capabilities(1) len+protocolVersion len+clientName len+clientVersion
//	HMAC-SHA256(32)
//
// The MAC covers every byte before it. Its key is derived from the cluster
// secret of the config snapshot, so every replica of a cluster accepts the
// ids of every other one and nothing else does. keyID names the secret that
// signed the id, which lets a replica tell "another cluster, or a secret
// rotated away" from "tampered".
//
// Keys: until the first snapshot a replica signs with a random per-process key
// (its ids work on that replica only). When the secret changes, the previous
// key is still accepted for SecretGrace (default 1 h), then its sessions get
// 404 and must initialize again. While a new secret reaches the replicas
// (well under 100 ms), an id minted by a replica that has it is refused by
// one that does not yet.
//
// A typical id is about 120 characters (at most 215).
//
// What a stateless id cannot do, by design:
//   - idle expiry: no replica knows when another last saw the session, so an
//     id expires a fixed MaxAge (default 7 days) after it was issued;
//   - revocation everywhere: DELETE deny-lists the id on the replica that
//     receives it only; other replicas keep accepting it until it expires;
//   - per-session state changed after initialize (logging/setLevel,
//     resources/subscribe) stays on the replica that received it.
const (
	sessionIDVersion = 1
	sessionKeyIDLen  = 4
	sessionRandLen   = 16
	sessionMACLen    = sha256.Size
	// sessionHeaderLen is the fixed part before the length-prefixed strings.
	sessionHeaderLen = 1 + sessionKeyIDLen + sessionRandLen + 8 + 1
	// sessionFieldMax bounds each carried string, which keeps ids short
	// enough for any proxy's header limits.
	sessionFieldMax = 32
	sessionMaxRaw   = sessionHeaderLen + 3*(1+sessionFieldMax) + sessionMACLen
	// sessionMaxEncoded lets Validate reject oversized input before decoding.
	sessionMaxEncoded = (sessionMaxRaw*8 + 5) / 6
	// sessionClockSkew is how far in the future an issued-at may lie: replicas'
	// clocks differ a little.
	sessionClockSkew = 5 * time.Minute
)

// sessionEncoding is strict so that each id has exactly one spelling: mcp-go
// keys its per-replica session state by the id string.
var sessionEncoding = base64.RawURLEncoding.Strict()

// Defaults of SessionIDOptions.
const (
	DefaultSessionMaxAge      = 7 * 24 * time.Hour
	DefaultSessionSecretGrace = time.Hour
	// DefaultSessionDenyListSize bounds the per-replica list of ids ended by
	// DELETE.
	DefaultSessionDenyListSize = 100_000
)

// Capability flags carried in an id: the client capabilities that change how
// a server may talk to the client.
const (
	capRoots uint8 = 1 << iota
	capRootsListChanged
	capSampling
	capSamplingContext
	capSamplingTools
	capElicitation
	capElicitationForm
	capElicitationURL
)

// SessionFacts are what a replica needs to serve a session it did not
// initialize: the negotiated protocol version and what the client said about
// itself in initialize.
type SessionFacts struct {
	// ProtocolVersion is the version negotiated in initialize.
	ProtocolVersion string
	// ClientInfo is the client's name and version, each truncated to 32 bytes.
	ClientInfo mcp.Implementation
	// Capabilities are the client's roots, sampling and elicitation
	// capabilities (experimental, extensions and tasks are not carried).
	Capabilities mcp.ClientCapabilities
	// IssuedAt is when initialize minted the id (second precision).
	IssuedAt time.Time
}

// SessionIDError says why an id was refused. Status is the HTTP status the
// transport answers with: 400 for input that can never be a session id, 404
// for an id that is well formed but not (or no longer) acceptable, which per
// the MCP specification tells the client to initialize a new session.
type SessionIDError struct {
	Status int
	Reason string
}

func (e *SessionIDError) Error() string { return "session id rejected: " + e.Reason }

func malformed(reason string) error {
	return &SessionIDError{Status: http.StatusBadRequest, Reason: "malformed: " + reason}
}

func refused(reason string) error {
	return &SessionIDError{Status: http.StatusNotFound, Reason: reason}
}

// SessionIDOptions configure a SessionIDManager. Zero values mean defaults.
type SessionIDOptions struct {
	// MaxAge is how long after initialize an id is accepted.
	MaxAge time.Duration
	// SecretGrace is how long ids signed with the previous secret are still
	// accepted after SetSecret changed it. Sessions older than a rotation
	// plus the grace get 404 and must initialize again.
	SecretGrace time.Duration
	// DenyListSize bounds how many terminated ids this replica remembers.
	DenyListSize int
	// Now is the clock; tests inject one. Defaults to time.Now.
	Now func() time.Time
}

// sessionKey is one derived MAC key and the id that names it.
type sessionKey struct {
	mac [sha256.Size]byte
	id  [sessionKeyIDLen]byte
	// secret is kept to recognise a snapshot that carries the same secret.
	secret []byte
}

func deriveSessionKey(secret []byte) *sessionKey {
	k := &sessionKey{secret: bytes.Clone(secret)}
	// Domain separation: the same cluster secret also signs cursors; a value
	// valid in one role must never verify in the other.
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("mcpmesh/session-id/v1/mac"))
	h.Sum(k.mac[:0])
	h = hmac.New(sha256.New, secret)
	h.Write([]byte("mcpmesh/session-id/v1/key-id"))
	copy(k.id[:], h.Sum(nil))
	return k
}

// SessionIDManager mints and checks signed, self-contained session ids. It
// implements server.SessionIdManager; its Terminate is a no-op because mcp-go
// also calls it when its idle sweeper drops a replica's local state, which
// must not end a session other replicas still serve. Revoke is the DELETE
// path. It is safe for concurrent use.
type SessionIDManager struct {
	maxAge   time.Duration
	grace    time.Duration
	denySize int
	now      func() time.Time
	// random fills the random part of new ids; tests make it deterministic.
	random func([]byte)

	mu        sync.RWMutex
	cur       *sessionKey
	prev      *sessionKey // nil when there is none or its grace ended
	prevUntil time.Time
	// denied maps the random part of ids ended by DELETE on this replica to
	// when they would have expired anyway.
	denied map[[sessionRandLen]byte]time.Time
}

var _ server.SessionIdManager = (*SessionIDManager)(nil)

// NewSessionIDManager returns a manager signing with a random per-process
// key until SetSecret gives it the cluster secret. Ids minted before that
// are accepted by this replica only.
func NewSessionIDManager(opts SessionIDOptions) *SessionIDManager {
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultSessionMaxAge
	}
	if opts.SecretGrace <= 0 {
		opts.SecretGrace = DefaultSessionSecretGrace
	}
	if opts.DenyListSize <= 0 {
		opts.DenyListSize = DefaultSessionDenyListSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	boot := make([]byte, 32)
	_, _ = rand.Read(boot) // never fails on supported platforms (crypto/rand docs)
	return &SessionIDManager{
		maxAge:   opts.MaxAge,
		grace:    opts.SecretGrace,
		denySize: opts.DenyListSize,
		now:      opts.Now,
		random:   func(b []byte) { _, _ = rand.Read(b) },
		cur:      deriveSessionKey(boot),
		denied:   map[[sessionRandLen]byte]time.Time{},
	}
}

// SetSecret makes secret the signing key. The key it replaces stays
// acceptable for SecretGrace, so sessions survive a rotation that every
// replica sees within that window. An empty secret or the current one is a
// no-op; it reports whether the key changed.
func (m *SessionIDManager) SetSecret(secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if bytes.Equal(m.cur.secret, secret) {
		return false
	}
	m.prev, m.prevUntil = m.cur, m.now().Add(m.grace)
	m.cur = deriveSessionKey(secret)
	return true
}

// Generate mints an id that carries no client facts. mcp-go calls it for a
// GET stream opened without a session; initialize goes through Issue.
func (m *SessionIDManager) Generate() string { return m.Issue(SessionFacts{}) }

// Issue mints an id carrying f (IssuedAt is set to now).
func (m *SessionIDManager) Issue(f SessionFacts) string {
	m.mu.RLock()
	key := m.cur
	m.mu.RUnlock()

	buf := make([]byte, 0, sessionMaxRaw)
	buf = append(buf, sessionIDVersion)
	buf = append(buf, key.id[:]...)
	var rnd [sessionRandLen]byte
	m.random(rnd[:])
	buf = append(buf, rnd[:]...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(m.now().Unix()))
	buf = append(buf, encodeCaps(f.Capabilities))
	buf = appendField(buf, f.ProtocolVersion)
	buf = appendField(buf, f.ClientInfo.Name)
	buf = appendField(buf, f.ClientInfo.Version)
	mac := hmac.New(sha256.New, key.mac[:])
	mac.Write(buf)
	buf = mac.Sum(buf)
	return sessionEncoding.EncodeToString(buf)
}

// Validate implements server.SessionIdManager: err is a *SessionIDError when
// the id is not acceptable here, isTerminated is true when it was ended by
// DELETE on this replica.
func (m *SessionIDManager) Validate(id string) (isTerminated bool, err error) {
	_, err = m.Decode(id)
	if err == errSessionTerminated {
		return true, nil
	}
	return false, err
}

// Terminate implements server.SessionIdManager as a no-op; see the type's
// documentation. Revoke ends a session on this replica.
func (m *SessionIDManager) Terminate(string) (isNotAllowed bool, err error) { return false, nil }

// errSessionTerminated is what Decode returns for an id revoked here.
var errSessionTerminated = &SessionIDError{Status: http.StatusNotFound,
	Reason: "session was terminated (DELETE) on this data plane; initialize a new session"}

// Decode verifies id and returns what it carries. Any error is a
// *SessionIDError.
func (m *SessionIDManager) Decode(id string) (SessionFacts, error) {
	rnd, f, err := m.verify(id)
	if err != nil {
		return SessionFacts{}, err
	}
	m.mu.RLock()
	_, gone := m.denied[rnd]
	m.mu.RUnlock()
	if gone {
		return SessionFacts{}, errSessionTerminated
	}
	return f, nil
}

// Revoke ends the session on this replica: later requests with id get 404
// here. Other replicas are not told (ids are stateless; see the package
// comment above), so the session ends everywhere only when it expires.
func (m *SessionIDManager) Revoke(id string) error {
	rnd, f, err := m.verify(id)
	if err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.denied) >= m.denySize {
		// Expired ids are refused without the list; drop them first. If the
		// list is still full the oldest entry goes: forgetting a revocation
		// only re-admits a client that asked to end its own session.
		var (
			oldest    [sessionRandLen]byte
			oldestExp time.Time
		)
		for k, exp := range m.denied {
			if !now.Before(exp) {
				delete(m.denied, k)
				continue
			}
			if oldestExp.IsZero() || exp.Before(oldestExp) {
				oldest, oldestExp = k, exp
			}
		}
		if len(m.denied) >= m.denySize {
			delete(m.denied, oldest)
		}
	}
	m.denied[rnd] = f.IssuedAt.Add(m.maxAge)
	return nil
}

// verify checks format, signature and age, and decodes the id.
func (m *SessionIDManager) verify(id string) ([sessionRandLen]byte, SessionFacts, error) {
	var rnd [sessionRandLen]byte
	if id == "" {
		return rnd, SessionFacts{}, malformed("empty")
	}
	if len(id) > sessionMaxEncoded {
		return rnd, SessionFacts{}, malformed("too long")
	}
	// The decoder skips \r and \n; an id spelled with them would be a second
	// string for the same session.
	if strings.ContainsAny(id, "\r\n") {
		return rnd, SessionFacts{}, malformed("not base64url")
	}
	raw, err := sessionEncoding.DecodeString(id)
	if err != nil {
		return rnd, SessionFacts{}, malformed("not base64url")
	}
	if len(raw) < sessionHeaderLen+3+sessionMACLen {
		return rnd, SessionFacts{}, malformed("too short")
	}
	if raw[0] != sessionIDVersion {
		return rnd, SessionFacts{}, malformed(fmt.Sprintf("unknown version %d", raw[0]))
	}
	body, sum := raw[:len(raw)-sessionMACLen], raw[len(raw)-sessionMACLen:]

	now := m.now()
	m.mu.RLock()
	cur, prev, prevUntil := m.cur, m.prev, m.prevUntil
	m.mu.RUnlock()
	keyID := body[1 : 1+sessionKeyIDLen]
	var candidates [2]*sessionKey
	n := 0
	if bytes.Equal(keyID, cur.id[:]) {
		candidates[n] = cur
		n++
	}
	if prev != nil && now.Before(prevUntil) && bytes.Equal(keyID, prev.id[:]) {
		candidates[n] = prev
		n++
	}
	if n == 0 {
		return rnd, SessionFacts{}, refused("signed with an unknown key: issued by another cluster, " +
			"before a data plane restart without a control plane, or before a secret rotation whose grace period ended; initialize a new session")
	}
	ok := false
	for _, k := range candidates[:n] {
		mac := hmac.New(sha256.New, k.mac[:])
		mac.Write(body)
		var want [sessionMACLen]byte
		if hmac.Equal(mac.Sum(want[:0]), sum) {
			ok = true
			break
		}
	}
	if !ok {
		return rnd, SessionFacts{}, refused("signature does not match (tampered or forged id); initialize a new session")
	}

	// Signed by us, so the layout below was written by Issue; it is still
	// parsed defensively so that a future version's id cannot panic an older
	// replica.
	p := 1 + sessionKeyIDLen
	copy(rnd[:], body[p:p+sessionRandLen])
	p += sessionRandLen
	issued := time.Unix(int64(binary.BigEndian.Uint64(body[p:p+8])), 0)
	p += 8
	f := SessionFacts{IssuedAt: issued, Capabilities: decodeCaps(body[p])}
	p++
	var fields [3]string
	for i := range fields {
		if p >= len(body) {
			return rnd, SessionFacts{}, malformed("truncated fields")
		}
		l := int(body[p])
		p++
		if l > sessionFieldMax || p+l > len(body) {
			return rnd, SessionFacts{}, malformed("bad field length")
		}
		fields[i] = string(body[p : p+l])
		p += l
	}
	if p != len(body) {
		return rnd, SessionFacts{}, malformed("trailing bytes")
	}
	f.ProtocolVersion = fields[0]
	f.ClientInfo = mcp.Implementation{Name: fields[1], Version: fields[2]}

	if issued.After(now.Add(sessionClockSkew)) {
		return rnd, SessionFacts{}, refused("issued in the future (clock skew between data planes?)")
	}
	if !now.Before(issued.Add(m.maxAge)) {
		return rnd, SessionFacts{}, refused(fmt.Sprintf("expired: issued %s ago, maximum session age is %s; initialize a new session",
			now.Sub(issued).Truncate(time.Second), m.maxAge))
	}
	return rnd, f, nil
}

// appendField appends a length-prefixed string cut to sessionFieldMax bytes
// at a rune boundary.
func appendField(buf []byte, s string) []byte {
	if len(s) > sessionFieldMax {
		s = s[:sessionFieldMax]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	buf = append(buf, byte(len(s)))
	return append(buf, s...)
}

func encodeCaps(c mcp.ClientCapabilities) uint8 {
	var b uint8
	if c.Roots != nil {
		b |= capRoots
		if c.Roots.ListChanged {
			b |= capRootsListChanged
		}
	}
	if c.Sampling != nil {
		b |= capSampling
		if c.Sampling.Context != nil {
			b |= capSamplingContext
		}
		if c.Sampling.Tools != nil {
			b |= capSamplingTools
		}
	}
	if c.Elicitation != nil {
		b |= capElicitation
		if c.Elicitation.Form != nil {
			b |= capElicitationForm
		}
		if c.Elicitation.URL != nil {
			b |= capElicitationURL
		}
	}
	return b
}

func decodeCaps(b uint8) mcp.ClientCapabilities {
	var c mcp.ClientCapabilities
	if b&capRoots != 0 {
		c.Roots = &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: b&capRootsListChanged != 0}
	}
	if b&capSampling != 0 {
		c.Sampling = &mcp.SamplingCapability{}
		if b&capSamplingContext != 0 {
			c.Sampling.Context = &struct{}{}
		}
		if b&capSamplingTools != 0 {
			c.Sampling.Tools = &struct{}{}
		}
	}
	if b&capElicitation != 0 {
		c.Elicitation = &mcp.ElicitationCapability{}
		if b&capElicitationForm != 0 {
			c.Elicitation.Form = &struct{}{}
		}
		if b&capElicitationURL != 0 {
			c.Elicitation.URL = &struct{}{}
		}
	}
	return c
}
