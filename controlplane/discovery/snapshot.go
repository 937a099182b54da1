package discovery

import (
	"github.com/mcpmesh/mcpmesh/controlplane/internal/settings"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// BuildSnapshot returns the config snapshot data planes receive for state:
// its enabled servers, effective settings and the cluster secret. The
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
	return snap
}
