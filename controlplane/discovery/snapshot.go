package discovery

import (
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/internal/settings"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// BuildSnapshot returns the config snapshot data planes receive for state:
// its enabled servers, effective settings, the cluster secret and the
// client keys live when it is built (unrevoked, unexpired; data planes check
// expiry again on every request, since a snapshot outlives the moment). The
// registry builds it too, to refuse a write whose snapshot would not fit in
// a gRPC message. The snapshot shares state's messages.
func BuildSnapshot(state *store.State) *mcpmeshv1.ConfigSnapshot {
	snap := &mcpmeshv1.ConfigSnapshot{
		Revision:      state.Revision,
		Settings:      settings.Effective(state.Settings),
		ClusterSecret: state.ClusterSecret,
	}
	for _, srv := range state.Servers {
		if srv.Enabled == nil || srv.GetEnabled() {
			snap.Servers = append(snap.Servers, srv) // already sorted by name
		}
	}
	now := time.Now()
	for _, k := range state.ClientKeys {
		if k.GetKey().GetRevokedAt() != nil {
			continue
		}
		if exp := k.GetKey().GetExpiresAt(); exp != nil && !now.Before(exp.AsTime()) {
			continue
		}
		snap.ClientKeys = append(snap.ClientKeys, k) // sorted by id
	}
	return snap
}
