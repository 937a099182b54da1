package oauthpage

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

// sessionTTL is how long a browser sign-in lasts (capped at the token's own
// expiry).
const sessionTTL = 12 * time.Hour

// maxCookie bounds a session cookie we try to open.
const maxCookie = 4096

// sessionAAD binds sealed sessions to their use.
var sessionAAD = []byte("mcpmesh /oauth session")

var (
	errNoSession = errors.New("no session")
	errBadCookie = errors.New("the session cookie is not valid here (tampered, or sealed under a retired cluster secret)")
	errExpired   = errors.New("the session expired")
)

// session is what the cookie carries: the operator's own token and when the
// sign-in ends.
type session struct {
	token   string
	expires time.Time
}

// seal encrypts s under the current session key of ks: keyID || nonce ||
// AES-256-GCM(expiry unix seconds (8 bytes) || token), base64url. Any replica
// holding the cluster secret opens it.
func seal(ks *keys.Keys, s session) (string, error) {
	k := ks.Current(keys.OAuthSessionLabel)
	aead, err := newAEAD(k.Bytes)
	if err != nil {
		return "", err
	}
	plain := make([]byte, 8, 8+len(s.token))
	binary.BigEndian.PutUint64(plain, uint64(s.expires.Unix()))
	plain = append(plain, s.token...)
	out := make([]byte, 0, keys.IDLen+aead.NonceSize()+len(plain)+aead.Overhead())
	out = append(out, k.ID[:]...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out = append(out, nonce...)
	out = aead.Seal(out, nonce, plain, sessionAAD)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// open reverses seal and checks the expiry against now.
func open(ks *keys.Keys, v string, now time.Time) (session, error) {
	if v == "" {
		return session{}, errNoSession
	}
	if len(v) > maxCookie {
		return session{}, errBadCookie
	}
	// Strict: a changed last character whose dropped bits differ must not
	// decode to the same bytes.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(raw) < keys.IDLen {
		return session{}, errBadCookie
	}
	var id keys.KeyID
	copy(id[:], raw)
	k, ok := ks.Lookup(keys.OAuthSessionLabel, id)
	if !ok {
		return session{}, errBadCookie
	}
	aead, err := newAEAD(k.Bytes)
	if err != nil {
		return session{}, err
	}
	rest := raw[keys.IDLen:]
	if len(rest) < aead.NonceSize()+aead.Overhead()+8 {
		return session{}, errBadCookie
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], sessionAAD)
	if err != nil {
		return session{}, errBadCookie
	}
	s := session{expires: time.Unix(int64(binary.BigEndian.Uint64(plain)), 0), token: string(plain[8:])}
	if !now.Before(s.expires) {
		return session{}, errExpired
	}
	return s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// csrfToken is the token every form of a session carries: an HMAC of the
// session cookie under a key of its own, so only a page we rendered for
// that cookie has it.
func csrfToken(ks *keys.Keys, cookie string) string {
	m := hmac.New(sha256.New, ks.Derive(keys.OAuthCSRFLabel))
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK checks a form's token against the session cookie, in constant time.
func csrfOK(ks *keys.Keys, cookie, got string) bool {
	if cookie == "" || got == "" {
		return false
	}
	return hmac.Equal([]byte(csrfToken(ks, cookie)), []byte(got))
}
