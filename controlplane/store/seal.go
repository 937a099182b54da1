package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KeyFileName is the file, next to the store file, holding the key that
// encrypts secrets at rest (server records: env and header values, URLs,
// args; the cluster secret). It is created (mode 0600) on first open.
const KeyFileName = "secrets.key"

// sealedPrefix starts every encrypted value. A protobuf message never starts
// with a 0x00 byte (field number 0 is invalid), so a value without it is a
// plaintext record written before encryption, which still loads.
var sealedPrefix = []byte{0x00, 'm', 'e', '1'}

// sealer encrypts values with AES-256-GCM, binding each one to where it is
// stored (bucket and key as additional data), so a value copied under
// another name does not decrypt.
type sealer struct {
	aead cipher.AEAD
	id   []byte // keyID of the key
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return &sealer{aead: aead, id: keyID(key)}, nil
}

// keyID names a key without revealing it; the store records it in meta so
// that opening with another key fails clearly instead of as garbage.
func keyID(key []byte) []byte {
	h := sha256.Sum256(append([]byte("mcpmesh secrets key id\x00"), key...))
	return h[:8]
}

func sealAAD(bucket, key []byte) []byte {
	return append(append(append([]byte(nil), bucket...), 0), key...)
}

// seal returns plain encrypted for bucket/key.
func (s *sealer) seal(bucket, key, plain []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	out := make([]byte, len(sealedPrefix)+n, len(sealedPrefix)+n+len(plain)+s.aead.Overhead())
	copy(out, sealedPrefix)
	if _, err := rand.Read(out[len(sealedPrefix):]); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return s.aead.Seal(out, out[len(sealedPrefix):], plain, sealAAD(bucket, key)), nil
}

// open returns the plaintext of a value read from bucket/key: decrypted
// when sealed, as is when it predates encryption.
func (s *sealer) open(bucket, key, v []byte) ([]byte, error) {
	if !isSealed(v) {
		return v, nil
	}
	v = v[len(sealedPrefix):]
	n := s.aead.NonceSize()
	if len(v) < n {
		return nil, errors.New("decrypt: value is truncated")
	}
	plain, err := s.aead.Open(nil, v[:n], v[n:], sealAAD(bucket, key))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w (was it written with another %s?)", err, KeyFileName)
	}
	return plain, nil
}

func isSealed(v []byte) bool { return bytes.HasPrefix(v, sealedPrefix) }

// loadOrCreateKey reads the key file at path, creating it with a fresh key
// when it does not exist and create is set.
func loadOrCreateKey(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("secrets key %s: want 64 hex digits (a 256-bit key)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read secrets key: %w", err)
	}
	if !create {
		return nil, fmt.Errorf("secrets key %s is missing, but the store holds secrets encrypted with it: restore the file from a backup", path)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate secrets key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secrets key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secrets key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync secrets key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close secrets key %s: %w", path, err)
	}
	return key, nil
}
