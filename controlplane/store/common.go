package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The helpers below hold the write rules both implementations share, so the
// bbolt and in-memory stores cannot drift apart.

func checkCtx(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func validateServerArg(srv *mcpmeshv1.Server) error {
	if srv == nil {
		return fmt.Errorf("server is nil")
	}
	if srv.GetName() == "" {
		return fmt.Errorf("server name is empty")
	}
	return nil
}

// validateServersArg checks the argument of CreateServers: non-empty, each
// server valid, no name twice.
func validateServersArg(srvs []*mcpmeshv1.Server) error {
	if len(srvs) == 0 {
		return fmt.Errorf("no servers given")
	}
	seen := make(map[string]bool, len(srvs))
	for i, srv := range srvs {
		if err := validateServerArg(srv); err != nil {
			return fmt.Errorf("server %d: %w", i+1, err)
		}
		if seen[srv.GetName()] {
			return fmt.Errorf("server %q is given twice: %w", srv.GetName(), ErrExists)
		}
		seen[srv.GetName()] = true
	}
	return nil
}

// stampCreate returns the copy of srv to store as a new server at rev.
func stampCreate(srv *mcpmeshv1.Server, rev uint64, now time.Time) *mcpmeshv1.Server {
	s := proto.Clone(srv).(*mcpmeshv1.Server)
	ts := timestamppb.New(now)
	s.CreateRevision, s.ModRevision = rev, rev
	s.CreatedAt, s.UpdatedAt = ts, ts
	s.Redacted = false
	return s
}

// stampUpdate returns the copy of srv to store over cur at rev.
func stampUpdate(srv, cur *mcpmeshv1.Server, rev uint64, now time.Time) *mcpmeshv1.Server {
	s := proto.Clone(srv).(*mcpmeshv1.Server)
	s.CreateRevision, s.CreatedAt = cur.GetCreateRevision(), cur.GetCreatedAt()
	s.ModRevision, s.UpdatedAt = rev, timestamppb.New(now)
	s.Redacted = false
	return s
}

func checkExpected(name string, cur *mcpmeshv1.Server, expected uint64) error {
	if expected != 0 && expected != cur.GetModRevision() {
		return fmt.Errorf("server %q is at revision %d, expected %d: %w", name, cur.GetModRevision(), expected, ErrConflict)
	}
	return nil
}

func cloneServers(in []*mcpmeshv1.Server) []*mcpmeshv1.Server {
	out := make([]*mcpmeshv1.Server, len(in))
	for i, s := range in {
		out[i] = proto.Clone(s).(*mcpmeshv1.Server)
	}
	return out
}

func cloneHealth(h *mcpmeshv1.BackendHealth) *mcpmeshv1.BackendHealth {
	return proto.Clone(h).(*mcpmeshv1.BackendHealth)
}

func validateTokenArg(tok *mcpmeshv1.StoredToken) error {
	if tok == nil || tok.GetToken() == nil {
		return fmt.Errorf("token is nil")
	}
	if tok.GetToken().GetId() == "" {
		return fmt.Errorf("token id is empty")
	}
	if len(tok.GetSecretSha256()) == 0 {
		return fmt.Errorf("token %q has no secret hash", tok.GetToken().GetId())
	}
	return nil
}

func cloneToken(t *mcpmeshv1.StoredToken) *mcpmeshv1.StoredToken {
	return proto.Clone(t).(*mcpmeshv1.StoredToken)
}

// stampRevoked sets revoked_at unless it is set already; it reports whether
// it changed tok.
func stampRevoked(tok *mcpmeshv1.StoredToken, at time.Time) bool {
	if tok.GetToken().GetRevokedAt() != nil {
		return false
	}
	tok.Token.RevokedAt = timestamppb.New(at)
	return true
}

func newClusterSecret() ([]byte, error) {
	secret := make([]byte, clusterSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate cluster secret: %w", err)
	}
	return secret, nil
}

// unexpired returns the previous secrets still accepted after now.
func unexpired(prev []PreviousSecret, now time.Time) []PreviousSecret {
	return slices.DeleteFunc(slices.Clone(prev), func(p PreviousSecret) bool { return !p.ExpiresAt.After(now) })
}

// rotated returns the previous secrets after old was replaced at now, to be
// accepted until until: old first, then the unexpired ones of earlier
// rotations; past MaxPreviousSecrets, those that expire first go.
func rotated(prev []PreviousSecret, old []byte, now, until time.Time) []PreviousSecret {
	out := append([]PreviousSecret{{Secret: bytes.Clone(old), ExpiresAt: until}}, unexpired(prev, now)...)
	for len(out) > MaxPreviousSecrets {
		first := 0
		for i, p := range out {
			if p.ExpiresAt.Before(out[first].ExpiresAt) {
				first = i
			}
		}
		out = slices.Delete(out, first, first+1)
	}
	return out
}

func clonePrevious(prev []PreviousSecret) []PreviousSecret {
	if len(prev) == 0 {
		return nil
	}
	out := make([]PreviousSecret, len(prev))
	for i, p := range prev {
		out[i] = PreviousSecret{Secret: bytes.Clone(p.Secret), ExpiresAt: p.ExpiresAt}
	}
	return out
}

func previousToProto(prev []PreviousSecret) *mcpmeshv1.StoredSecrets {
	out := &mcpmeshv1.StoredSecrets{}
	for _, p := range prev {
		out.Previous = append(out.Previous, &mcpmeshv1.PreviousSecret{Secret: p.Secret, ExpiresAt: timestamppb.New(p.ExpiresAt)})
	}
	return out
}

func previousFromProto(m *mcpmeshv1.StoredSecrets) []PreviousSecret {
	var out []PreviousSecret
	for _, p := range m.GetPrevious() {
		out = append(out, PreviousSecret{Secret: bytes.Clone(p.GetSecret()), ExpiresAt: p.GetExpiresAt().AsTime()})
	}
	return out
}

func validateClientKeyArg(k *mcpmeshv1.StoredClientKey) error {
	if k == nil || k.GetKey() == nil {
		return fmt.Errorf("client key is nil")
	}
	if k.GetKey().GetId() == "" {
		return fmt.Errorf("client key id is empty")
	}
	if len(k.GetSecretSha256()) == 0 {
		return fmt.Errorf("client key %q has no secret hash", k.GetKey().GetId())
	}
	return nil
}

func cloneClientKey(k *mcpmeshv1.StoredClientKey) *mcpmeshv1.StoredClientKey {
	return proto.Clone(k).(*mcpmeshv1.StoredClientKey)
}

// stampClientKeyRevoked sets revoked_at unless it is set already; it reports
// whether it changed k.
func stampClientKeyRevoked(k *mcpmeshv1.StoredClientKey, at time.Time) bool {
	if k.GetKey().GetRevokedAt() != nil {
		return false
	}
	k.Key.RevokedAt = timestamppb.New(at)
	return true
}
