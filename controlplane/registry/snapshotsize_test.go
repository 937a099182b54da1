package registry_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// padded is a stdio server whose env carries about size bytes.
func padded(name string, size int) *mcpmeshv1.Server {
	s := stdio(name)
	for i := 0; size > 0; i++ {
		n := min(size, registry.MaxMapValueLen)
		s.Stdio.Env[fmt.Sprintf("PAD_%d", i)] = strings.Repeat("x", n)
		size -= n
	}
	return s
}

func snapshotSize(t *testing.T, st store.Store) int {
	t.Helper()
	state, err := st.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return proto.Size(discovery.BuildSnapshot(state))
}

// wantTooLarge checks the refusal of a write that would overflow the
// snapshot: InvalidArgument on field, naming both sizes.
func wantTooLarge(t *testing.T, err error, field string, limit int) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument, field+": the config snapshot sent to data planes would be ")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, fmt.Sprintf("over its limit of %d bytes", limit)) {
		t.Fatalf("message %q does not name the limit %d", msg, limit)
	}
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && br.GetFieldViolations()[0].GetField() == field {
			return
		}
	}
	t.Fatalf("no BadRequest detail for field %s in %v", field, err)
}

func TestSnapshotLimitRefusesWrites(t *testing.T) {
	ctx := context.Background()
	const maxMsg = 1 << 20
	limit := limits.MaxSnapshotSize(maxMsg)
	st := store.NewMemory()
	agg := health.New(st, nil, nil)
	disc := discovery.New(st, agg, nil)
	t.Cleanup(func() { disc.Close(); st.Close() })
	svc := registry.New(st, disc, agg, nil, registry.WithMaxMessageSize(maxMsg))
	create := func(s *mcpmeshv1.Server, dry bool) error {
		_, err := svc.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: s, ValidateOnly: dry})
		return err
	}

	// Fill the snapshot with 300 KB servers until one no longer fits.
	n := 0
	for ; ; n++ {
		s := padded(fmt.Sprintf("s%d", n), 300<<10)
		if err := create(s, true); err != nil {
			wantTooLarge(t, err, "server", limit)
			before := snapshotSize(t, st)
			rev, _ := st.Revision(ctx)
			wantTooLarge(t, create(s, false), "server", limit)
			if r, _ := st.Revision(ctx); r != rev || snapshotSize(t, st) != before {
				t.Fatal("a refused create changed the store")
			}
			break
		}
		if err := create(s, false); err != nil {
			t.Fatalf("dry run accepted server %d, create refused it: %v", n, err)
		}
	}
	if n != 3 {
		t.Fatalf("%d servers of 300 KB fit in a %d-byte snapshot, want 3", n, limit)
	}

	// Growing a server past the limit is refused; a small server still fits.
	cur, err := st.GetServer(ctx, "s0")
	if err != nil {
		t.Fatal(err)
	}
	grown := padded("s0", 600<<10)
	_, err = svc.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: grown})
	wantTooLarge(t, err, "server", limit)
	if got, _ := st.GetServer(ctx, "s0"); !proto.Equal(got, cur) {
		t.Fatal("a refused update changed the server")
	}
	if err := create(stdio("small"), false); err != nil {
		t.Fatalf("a small server was refused below the limit: %v", err)
	}

	// Fill the rest to within a few bytes with a description, then a
	// setting that adds bytes is refused too.
	for i := 0; ; i++ {
		room := limit - snapshotSize(t, st)
		if room < 32 {
			break
		}
		s := stdio(fmt.Sprintf("fill%d", i))
		lo, hi := 0, registry.MaxDescriptionLen // largest description that fits, by dry runs
		for lo < hi {
			mid := (lo + hi + 1) / 2
			s.Description = strings.Repeat("d", mid)
			if create(s, true) == nil {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		if lo == 0 {
			break
		}
		s.Description = strings.Repeat("d", lo)
		if err := create(s, false); err != nil {
			t.Fatal(err)
		}
	}
	if room := limit - snapshotSize(t, st); room > 64 || room < 0 {
		t.Fatalf("%d bytes left in the snapshot after filling it", room)
	}
	_, err = svc.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "resilience.backoff", Value: strings.TrimSuffix(strings.Repeat("59m,", 20), ",")})
	wantTooLarge(t, err, "value", limit)

	// Disabling a server takes it out of the snapshot: always allowed, and
	// it makes room again.
	off := proto.Clone(cur).(*mcpmeshv1.Server)
	off.Enabled = proto.Bool(false)
	if _, err := svc.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: off}); err != nil {
		t.Fatalf("disabling a server was refused: %v", err)
	}
	if err := create(padded("again", 200<<10), false); err != nil {
		t.Fatalf("no room after disabling a server: %v", err)
	}
	if size := snapshotSize(t, st); size > limit {
		t.Fatalf("snapshot is %d bytes, over the limit %d", size, limit)
	}
}

// A snapshot already over the limit (stored before the check existed) does
// not block writes that shrink it or leave it as large.
func TestSnapshotLimitLetsAnOversizedStoreShrink(t *testing.T) {
	ctx := context.Background()
	const maxMsg = 1 << 20
	st := store.NewMemory()
	agg := health.New(st, nil, nil)
	disc := discovery.New(st, agg, nil)
	t.Cleanup(func() { disc.Close(); st.Close() })
	svc := registry.New(st, disc, agg, nil, registry.WithMaxMessageSize(maxMsg))
	for i := range 4 {
		if _, err := st.CreateServer(ctx, padded(fmt.Sprintf("old%d", i), 300<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if snapshotSize(t, st) <= limits.MaxSnapshotSize(maxMsg) {
		t.Fatal("setup: the store is not over the limit")
	}
	_, err := svc.CreateServer(ctx, &mcpmeshv1.CreateServerRequest{Server: stdio("more")})
	wantTooLarge(t, err, "server", limits.MaxSnapshotSize(maxMsg))
	if _, err := svc.UpdateServer(ctx, &mcpmeshv1.UpdateServerRequest{Server: padded("old0", 100<<10)}); err != nil {
		t.Fatalf("shrinking a server of an oversized snapshot was refused: %v", err)
	}
	if _, err := svc.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: "resilience.jitter", Value: "false"}); err != nil {
		t.Fatalf("a setting that does not grow the snapshot was refused: %v", err)
	}
}
