package clientauth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// A verified-token cache: checking a JWT's signature costs more CPU than the
// rest of a proxied call, and a client sends the same token with every
// request. A token that passed every check is remembered, by the SHA-256 of
// its text (the token itself is not kept), until the earlier of its expiry
// and verifiedTTL from now. verifiedTTL matches the key set's shortest
// refresh interval, so a key the authorization server withdraws stops
// admitting its tokens about as soon as it would without the cache.
const (
	verifiedTTL = time.Minute
	maxVerified = 10000
)

type verifiedEntry struct {
	id    *Identity
	until time.Time
}

type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedEntry
}

// get returns the identity of a token verified before and still fresh.
func (c *verifiedCache) get(key [sha256.Size]byte, now time.Time) *Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok {
		return nil
	}
	if !now.Before(e.until) {
		delete(c.m, key)
		return nil
	}
	return e.id
}

// put remembers a verified token until the earlier of exp (zero: none) and
// now+verifiedTTL. At maxVerified entries, expired ones are swept first,
// then an arbitrary one goes, so memory stays bounded.
func (c *verifiedCache) put(key [sha256.Size]byte, id *Identity, exp, now time.Time) {
	until := now.Add(verifiedTTL)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[[sha256.Size]byte]verifiedEntry)
	}
	if len(c.m) >= maxVerified {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxVerified {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = verifiedEntry{id: id, until: until}
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
