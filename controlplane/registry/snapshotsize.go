package registry

import (
	"context"
	"sort"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// checkSnapshot refuses, as InvalidArgument on field, a config write whose
// snapshot would not fit in a gRPC message: sending it would cut every data
// plane's config stream. change applies the write to a copy of the current
// state. A write that does not grow a snapshot already over the limit (one
// stored before this check) is let through, so it can be shrunk. It returns
// the current revision; s.writeMu must be held.
func (s *Service) checkSnapshot(ctx context.Context, field string, change func(*store.State)) (uint64, error) {
	state, err := s.st.State(ctx)
	if err != nil {
		return 0, storeError("", err)
	}
	rev := state.Revision
	before := proto.Size(discovery.BuildSnapshot(state))
	change(state)
	after := proto.Size(discovery.BuildSnapshot(state))
	if limit := limits.MaxSnapshotSize(s.maxMessage); after > limit && after > before {
		return 0, invalid(field, "the config snapshot sent to data planes would be %d bytes, over its limit of %d bytes (gRPC messages are limited to %d): shrink env, headers or args, or remove servers",
			after, limit, s.maxMessage).status()
	}
	return rev, nil
}

// stamped is in as the store would write it at rev over cur (nil: created),
// so that its size is the size it will have in the snapshot.
func stamped(in, cur *mcpmeshv1.Server, rev uint64) *mcpmeshv1.Server {
	out := proto.CloneOf(in)
	now := timestamppb.Now()
	out.CreateRevision, out.CreatedAt = rev, now
	if cur != nil {
		out.CreateRevision, out.CreatedAt = cur.GetCreateRevision(), cur.GetCreatedAt()
	}
	out.ModRevision, out.UpdatedAt, out.Redacted = rev, now, false
	return out
}

// putServer adds or replaces srv in st.Servers, keeping them sorted by name.
func putServer(st *store.State, srv *mcpmeshv1.Server) {
	i := sort.Search(len(st.Servers), func(i int) bool { return st.Servers[i].GetName() >= srv.GetName() })
	if i < len(st.Servers) && st.Servers[i].GetName() == srv.GetName() {
		st.Servers[i] = srv
		return
	}
	st.Servers = append(st.Servers, nil)
	copy(st.Servers[i+1:], st.Servers[i:])
	st.Servers[i] = srv
}
