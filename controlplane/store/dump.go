package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
)

// ErrNotEmpty: a restore without force into a store that holds something.
var ErrNotEmpty = errors.New("store is not empty")

// Dump is everything a backup carries, read in one transaction: the whole
// configuration (State) and every credential. Health and events are not in
// it; data planes report them again.
type Dump struct {
	State
	// Tokens are every admin and data plane credential, revoked ones too,
	// sorted by id (hashes, never secrets).
	Tokens []*mcpmeshv1.StoredToken
}

// MaxRestoreRevision bounds the revision of a dump a store restores: far
// past any real store's, and far enough from the top that revisions after it
// cannot wrap (etcd's are int64).
const MaxRestoreRevision = 1 << 62

// Counts is how much a store or a dump holds, for the operator.
type Counts struct {
	Servers, Tokens, ClientKeys, PreviousSecrets int
}

// Counts reports how much d holds.
func (d *Dump) Counts() Counts {
	return Counts{Servers: len(d.Servers), Tokens: len(d.Tokens), ClientKeys: len(d.ClientKeys), PreviousSecrets: len(d.PreviousSecrets)}
}

// Empty reports whether d holds nothing an operator made: no server, token,
// client key or previous secret, and default settings. (Every store has a
// cluster secret from its first open; it does not count.)
func (d *Dump) Empty() bool {
	c := d.Counts()
	return c == (Counts{}) && (d.Settings == nil || proto.Size(d.Settings) == 0)
}

// Check reports the first thing in d a store cannot hold: a missing or
// duplicated name or id, a cluster secret of the wrong size, too many
// previous secrets, a revision past MaxRestoreRevision. It does not judge a
// server's fields (the registry does).
func (d *Dump) Check() error {
	if d.Revision > MaxRestoreRevision {
		return fmt.Errorf("revision %d is past any store's (at most %d)", d.Revision, uint64(MaxRestoreRevision))
	}
	if len(d.ClusterSecret) != clusterSecretLen {
		return fmt.Errorf("cluster secret is %d bytes, want %d", len(d.ClusterSecret), clusterSecretLen)
	}
	if len(d.PreviousSecrets) > MaxPreviousSecrets {
		return fmt.Errorf("%d previous cluster secrets, at most %d are kept", len(d.PreviousSecrets), MaxPreviousSecrets)
	}
	for i, p := range d.PreviousSecrets {
		if len(p.Secret) != clusterSecretLen {
			return fmt.Errorf("previous cluster secret %d is %d bytes, want %d", i, len(p.Secret), clusterSecretLen)
		}
	}
	if err := unique("server", d.Servers, func(s *mcpmeshv1.Server) (string, error) {
		return s.GetName(), validateServerArg(s)
	}); err != nil {
		return err
	}
	if err := unique("token", d.Tokens, func(t *mcpmeshv1.StoredToken) (string, error) {
		return t.GetToken().GetId(), validateTokenArg(t)
	}); err != nil {
		return err
	}
	if err := unique("client key", d.ClientKeys, func(k *mcpmeshv1.StoredClientKey) (string, error) {
		return k.GetKey().GetId(), validateClientKeyArg(k)
	}); err != nil {
		return err
	}
	servers := make(map[string]bool, len(d.Servers))
	for _, s := range d.Servers {
		servers[s.GetName()] = true
	}
	return unique("oauth grant", d.OAuthGrants, func(g *mcpmeshv1.StoredOAuthGrant) (string, error) {
		if err := validateGrantArg(g); err != nil {
			return "", err
		}
		if !servers[g.GetAuthorization().GetServer()] {
			return "", fmt.Errorf("grant of server %q, which the backup does not hold", g.GetAuthorization().GetServer())
		}
		return g.GetAuthorization().GetServer(), nil
	})
}

// unique checks every item is valid and its key appears once.
func unique[T any](what string, items []T, key func(T) (string, error)) error {
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		k, err := key(it)
		if err != nil {
			return fmt.Errorf("%s %d: %w", what, i, err)
		}
		if seen[k] {
			return fmt.Errorf("%s %q appears twice", what, k)
		}
		seen[k] = true
	}
	return nil
}

// restoreRevision is the config revision a restore writes: past both the
// store's and the backup's, so that no data plane, whichever of the two it
// last streamed, holds that revision already.
func restoreRevision(cur, dumped uint64) uint64 { return max(cur, dumped) + 1 }

// restoredServers are d's servers as a restore at rev stores them: the
// revisions they carried belong to another store, so every one is stamped
// created and modified at rev (their timestamps are kept), sorted by name.
func restoredServers(d *Dump, rev uint64) []*mcpmeshv1.Server {
	out := make([]*mcpmeshv1.Server, len(d.Servers))
	for i, s := range d.Servers {
		c := proto.CloneOf(s)
		c.CreateRevision, c.ModRevision, c.Redacted = rev, rev, false
		out[i] = c
	}
	slices.SortFunc(out, func(a, b *mcpmeshv1.Server) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// restorable checks d and, unless force, that the store's own dump cur is
// empty.
func restorable(cur, d *Dump, force bool) error {
	if d == nil {
		return fmt.Errorf("nothing to restore")
	}
	if err := d.Check(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if !force && !cur.Empty() {
		c := cur.Counts()
		return fmt.Errorf("it holds %d servers, %d tokens, %d client keys, %d previous secrets and its settings (restore with force to replace them): %w",
			c.Servers, c.Tokens, c.ClientKeys, c.PreviousSecrets, ErrNotEmpty)
	}
	return nil
}

// previousUnexpired drops the previous secrets a dump carries that are
// expired at now: a store never holds those for long anyway.
func previousUnexpired(d *Dump, now time.Time) []PreviousSecret {
	return clonePrevious(unexpired(d.PreviousSecrets, now))
}
