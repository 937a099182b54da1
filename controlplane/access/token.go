package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// An issued token reads "mcpm_<id>_<secret>": id is 8 random bytes and the
// secret 32, both hex. The id is public (it names the token in lists and
// revocations and finds its record); only the SHA-256 of the secret is
// stored. A plain hash is enough for a 256-bit random secret: there is
// nothing to guess, so no slow password hash is needed.
const (
	tokenPrefix = "mcpm_"
	idBytes     = 8
	secretBytes = 32
)

// mint returns a fresh token string, its id and the hash to store.
func mint() (token, id string, hash []byte, err error) { return mintWith(tokenPrefix) }

// mintWith is mint for a credential whose string starts with prefix.
func mintWith(prefix string) (token, id string, hash []byte, err error) {
	b := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, fmt.Errorf("generate token: %w", err)
	}
	id = hex.EncodeToString(b[:idBytes])
	secret := hex.EncodeToString(b[idBytes:])
	return prefix + id + "_" + secret, id, hashSecret(secret), nil
}

// parse splits an issued token into id and secret; ok is false for anything
// else (the bootstrap token, garbage).
func parse(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) != 2*idBytes || len(secret) != 2*secretBytes || !isHex(id) || !isHex(secret) {
		return "", "", false
	}
	return id, secret, true
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
