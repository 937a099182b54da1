package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Open returns a fresh, empty store; the suite closes it.
type Open func(t *testing.T) store.Store

// Server returns a valid stdio server named name, for tests.
func Server(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STDIO,
		Stdio: &mcpmeshv1.StdioConfig{
			Command: "/bin/" + name,
			Env:     map[string]string{"TOKEN": "secret-" + name},
		},
		Timeout: durationpb.New(5 * time.Second),
	}
}

// Revisions says how an engine numbers config revisions. Either way a fresh
// store is at 0, every config write moves the revision forward, and writes
// that are not config leave it alone.
type Revisions int

const (
	// Consecutive: every config write is the previous revision + 1 (bbolt,
	// memory).
	Consecutive Revisions = iota
	// Increasing: every config write has a larger revision than the one
	// before, not necessarily the next (etcd: its revision counts every
	// write to the cluster).
	Increasing
)

// follows reports whether got may be the revision after n more config
// writes (n >= 1) from prev.
func (rv Revisions) follows(prev uint64, n int, got uint64) bool {
	if rv == Consecutive {
		return got == prev+uint64(n)
	}
	return got > prev
}

// want says what follows expects, for failure messages.
func (rv Revisions) want(prev uint64, n int) string {
	if rv == Consecutive {
		return fmt.Sprint(prev + uint64(n))
	}
	return fmt.Sprintf("past %d", prev)
}

// Run runs the whole suite against stores made by open, whose revisions
// are Consecutive.
func Run(t *testing.T, open Open) { RunWith(t, open, Consecutive) }

// RunWith runs the whole suite against stores made by open, whose revisions
// are numbered as rv says.
func RunWith(t *testing.T, open Open, rv Revisions) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, rv Revisions)
	}{
		{"CreateGetList", testCreateGetList},
		{"CreateExists", testCreateExists},
		{"CreateServersOneRevision", testCreateServers},
		{"CreateServersAllOrNothing", testCreateServersAllOrNothing},
		{"UpdateRules", testUpdateRules},
		{"DeleteRules", testDeleteRules},
		{"Settings", testSettings},
		{"StateAndSecret", testStateAndSecret},
		{"HealthIsNotConfig", testHealthIsNotConfig},
		{"EventsBounded", testEventsBounded},
		{"WatchAfterCommitCoalesces", testWatch},
		{"ReturnedCopiesAreIndependent", testCopies},
		{"Concurrent", testConcurrent},
		{"BadArguments", testBadArguments},
		{"Tokens", testTokens},
		{"RotateClusterSecret", testRotateClusterSecret},
		{"RotationsAreBounded", testRotationsBounded},
		{"ClientKeys", testClientKeys},
		{"DumpRestoreRules", testDumpRestoreRules},
		{"OAuthGrants", testOAuthGrants},
		{"OAuthPending", testOAuthPending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s, rv)
		})
	}
	t.Run("DumpRestoreIntoEmpty", func(t *testing.T) { testRestoreIntoEmpty(t, open) })
	t.Run("OAuthDumpRestore", func(t *testing.T) { testOAuthDumpRestore(t, open) })
}

func rev(t *testing.T, s store.Store) uint64 {
	t.Helper()
	r, err := s.Revision(context.Background())
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	return r
}

func testCreateGetList(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	if r := rev(t, s); r != 0 {
		t.Fatalf("fresh store revision = %d, want 0", r)
	}
	b, err := s.CreateServer(ctx, Server("bravo"))
	if err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	if !rv.follows(0, 1, b.GetCreateRevision()) || b.GetModRevision() != b.GetCreateRevision() || b.GetCreatedAt() == nil || b.GetUpdatedAt() == nil {
		t.Fatalf("created server not stamped (want revisions %s): %v", rv.want(0, 1), b)
	}
	if _, err := s.CreateServer(ctx, Server("alpha")); err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	got, err := s.GetServer(ctx, "bravo")
	if err != nil {
		t.Fatalf("GetServer: %v", err)
	}
	if !proto.Equal(got, b) {
		t.Fatalf("GetServer = %v, want %v", got, b)
	}
	if got.GetStdio().GetEnv()["TOKEN"] != "secret-bravo" {
		t.Fatalf("store must keep secrets verbatim, got %v", got.GetStdio().GetEnv())
	}
	list, r, err := s.ListServers(ctx)
	if err != nil {
		t.Fatalf("ListServers: %v", err)
	}
	if !rv.follows(b.GetModRevision(), 1, r) || len(list) != 2 || list[0].GetName() != "alpha" || list[1].GetName() != "bravo" {
		t.Fatalf("ListServers = %v at %d, want alpha,bravo at %s", list, r, rv.want(b.GetModRevision(), 1))
	}
	if list[0].GetModRevision() != r {
		t.Fatalf("alpha at revision %d, want the list's %d (the last write)", list[0].GetModRevision(), r)
	}
	if _, err := s.GetServer(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetServer(nope) err = %v, want ErrNotFound", err)
	}
}

func testCreateExists(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	a, err := s.CreateServer(ctx, Server("a"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateServer(ctx, Server("a"))
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create err = %v, want ErrExists", err)
	}
	if r := rev(t, s); r != a.GetModRevision() {
		t.Fatalf("failed create moved the revision from %d to %d", a.GetModRevision(), r)
	}
}

func testCreateServers(t *testing.T, s store.Store, rv Revisions) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := s.CreateServer(ctx, Server("first"))
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(ctx)
	in := []*mcpmeshv1.Server{Server("zulu"), Server("alpha"), Server("mike")}
	keep := make([]*mcpmeshv1.Server, len(in))
	for i, srv := range in {
		keep[i] = proto.CloneOf(srv)
	}
	out, r, err := s.CreateServers(ctx, in)
	if err != nil {
		t.Fatalf("CreateServers: %v", err)
	}
	if !rv.follows(first.GetModRevision(), 1, r) || rev(t, s) != r {
		t.Fatalf("CreateServers revision = %d, store at %d; want both %s (one revision for all)", r, rev(t, s), rv.want(first.GetModRevision(), 1))
	}
	if len(out) != 3 {
		t.Fatalf("CreateServers returned %d servers, want 3", len(out))
	}
	for i, srv := range out {
		if srv.GetName() != keep[i].GetName() {
			t.Errorf("result %d is %q, want %q (request order)", i, srv.GetName(), keep[i].GetName())
		}
		if srv.GetCreateRevision() != r || srv.GetModRevision() != r || srv.GetCreatedAt() == nil || srv.GetUpdatedAt() == nil {
			t.Errorf("result %q stamped %d/%d at %v/%v, want revision %d and times set", srv.GetName(), srv.GetCreateRevision(), srv.GetModRevision(), srv.GetCreatedAt(), srv.GetUpdatedAt(), r)
		}
		if !proto.Equal(in[i], keep[i]) {
			t.Errorf("CreateServers modified its argument %d", i)
		}
		got, err := s.GetServer(ctx, srv.GetName())
		if err != nil || !proto.Equal(got, srv) {
			t.Errorf("GetServer(%q) = %v, %v; want what CreateServers returned", srv.GetName(), got, err)
		}
	}
	out[0].Description = "changed by the caller"
	if got, _ := s.GetServer(ctx, "zulu"); got.GetDescription() != "" {
		t.Error("CreateServers returned the stored message, not a copy")
	}
	select {
	case n := <-ch:
		if n != r {
			t.Fatalf("watch got %d, want %d", n, r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch notification after CreateServers")
	}
	select {
	case n := <-ch:
		t.Fatalf("extra watch notification %d: CreateServers is one write", n)
	default:
	}
}

func testCreateServersAllOrNothing(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	taken, err := s.CreateServer(ctx, Server("taken"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		srvs    []*mcpmeshv1.Server
		exists  bool   // want ErrExists
		mention string // the error must name this
	}{
		{"taken name last", []*mcpmeshv1.Server{Server("new1"), Server("new2"), Server("taken")}, true, `"taken"`},
		{"taken name first", []*mcpmeshv1.Server{Server("taken"), Server("new1")}, true, `"taken"`},
		{"name twice", []*mcpmeshv1.Server{Server("new1"), Server("dup"), Server("dup")}, true, `"dup"`},
		{"empty list", nil, false, "no servers"},
		{"nil server", []*mcpmeshv1.Server{Server("new1"), nil}, false, "server 2"},
		{"empty name", []*mcpmeshv1.Server{{}}, false, "server 1"},
	}
	for _, tc := range cases {
		out, r, err := s.CreateServers(ctx, tc.srvs)
		if err == nil {
			t.Errorf("%s: CreateServers succeeded (%v at %d)", tc.name, out, r)
			continue
		}
		if errors.Is(err, store.ErrExists) != tc.exists {
			t.Errorf("%s: err = %v, ErrExists %v, want %v", tc.name, err, !tc.exists, tc.exists)
		}
		if !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: err = %v, want it to name %s", tc.name, err, tc.mention)
		}
	}
	list, r, err := s.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r != taken.GetModRevision() || len(list) != 1 || list[0].GetName() != "taken" {
		t.Fatalf("after failed CreateServers: %d servers at revision %d, want only taken at %d", len(list), r, taken.GetModRevision())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.CreateServers(cctx, []*mcpmeshv1.Server{Server("x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateServers on a cancelled context err = %v, want context.Canceled", err)
	}
}

func testUpdateRules(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	created, err := s.CreateServer(ctx, Server("a"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateServer(ctx, Server("other"))
	if err != nil {
		t.Fatal(err)
	}
	upd := Server("a")
	upd.Description = "v2"
	got, err := s.UpdateServer(ctx, upd, created.GetModRevision())
	if err != nil {
		t.Fatalf("UpdateServer with current revision: %v", err)
	}
	if !rv.follows(other.GetModRevision(), 1, got.GetModRevision()) || got.GetCreateRevision() != created.GetCreateRevision() ||
		!proto.Equal(got.GetCreatedAt(), created.GetCreatedAt()) || got.GetDescription() != "v2" {
		t.Fatalf("updated server = %v, want it modified at %s and created at %d", got, rv.want(other.GetModRevision(), 1), created.GetCreateRevision())
	}
	if again, err := s.GetServer(ctx, "a"); err != nil || !proto.Equal(again, got) {
		t.Fatalf("GetServer after the update = %v, %v; want what UpdateServer returned", again, err)
	}
	// Stale expected revision.
	_, err = s.UpdateServer(ctx, upd, created.GetModRevision())
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update err = %v, want ErrConflict", err)
	}
	// Unconditional.
	last, err := s.UpdateServer(ctx, upd, 0)
	if err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	if !rv.follows(got.GetModRevision(), 1, last.GetModRevision()) {
		t.Fatalf("unconditional update at %d, want %s", last.GetModRevision(), rv.want(got.GetModRevision(), 1))
	}
	if _, err := s.UpdateServer(ctx, Server("missing"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing err = %v, want ErrNotFound", err)
	}
	if r := rev(t, s); r != last.GetModRevision() {
		t.Fatalf("revision = %d, want %d (failed writes must not bump it)", r, last.GetModRevision())
	}
}

func testDeleteRules(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	c, err := s.CreateServer(ctx, Server("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteServer(ctx, "a", c.GetModRevision()+7); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete with wrong revision err = %v, want ErrConflict", err)
	}
	r, err := s.DeleteServer(ctx, "a", c.GetModRevision())
	if err != nil || !rv.follows(c.GetModRevision(), 1, r) || rev(t, s) != r {
		t.Fatalf("DeleteServer = %d, %v (store at %d); want %s, nil", r, err, rev(t, s), rv.want(c.GetModRevision(), 1))
	}
	if _, err := s.DeleteServer(ctx, "a", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetServer(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted err = %v", err)
	}
}

func testSettings(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	st, r, err := s.GetSettings(ctx)
	if err != nil || st == nil || r != 0 {
		t.Fatalf("GetSettings on empty store = %v, %d, %v", st, r, err)
	}
	want := &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true, PageSize: 7}}
	put, err := s.PutSettings(ctx, want)
	if err != nil || !rv.follows(0, 1, put) {
		t.Fatalf("PutSettings = %d, %v; want %s", put, err, rv.want(0, 1))
	}
	got, r, err := s.GetSettings(ctx)
	if err != nil || r != put || !proto.Equal(got, want) {
		t.Fatalf("GetSettings = %v, %d, %v; want %v at %d", got, r, err, want, put)
	}
}

func testStateAndSecret(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	var last *mcpmeshv1.Server
	for _, n := range []string{"c", "a", "b"} {
		var err error
		if last, err = s.CreateServer(ctx, Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != last.GetModRevision() || !rv.follows(0, 3, st.Revision) || len(st.Servers) != 3 || st.Servers[0].GetName() != "a" || st.Servers[2].GetName() != "c" {
		t.Fatalf("State = rev %d servers %v, want rev %d (b's)", st.Revision, st.Servers, last.GetModRevision())
	}
	if !proto.Equal(st.Servers[1], last) {
		t.Fatalf("State has b as %v, want what CreateServer returned: %v", st.Servers[1], last)
	}
	if len(st.ClusterSecret) != 32 || st.Settings == nil {
		t.Fatalf("State secret len %d settings %v", len(st.ClusterSecret), st.Settings)
	}
	st2, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(st2.ClusterSecret) != string(st.ClusterSecret) {
		t.Fatal("cluster secret changed between reads")
	}
}

func health(dp, server string, state mcpmeshv1.BackendState) *mcpmeshv1.BackendHealth {
	return &mcpmeshv1.BackendHealth{DataplaneId: dp, Server: server, State: state}
}

func testHealthIsNotConfig(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	a, err := s.CreateServer(ctx, Server("a"))
	if err != nil {
		t.Fatal(err)
	}
	watch := s.Watch(ctx)
	err = s.PutHealth(ctx, "dp2", []*mcpmeshv1.BackendHealth{
		health("dp2", "b", mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY),
		health("dp2", "a", mcpmeshv1.BackendState_BACKEND_STATE_RETRYING),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutHealth(ctx, "dp1", []*mcpmeshv1.BackendHealth{health("dp1", "a", mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)}, nil); err != nil {
		t.Fatal(err)
	}
	dp1 := []*mcpmeshv1.BackendHealth{health("dp1", "a", mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)}
	if err := s.PutHealth(ctx, "dp1", dp1, dp1); err != nil { // with an event
		t.Fatal(err)
	}
	if r := rev(t, s); r != a.GetModRevision() {
		t.Fatalf("health writes moved the config revision from %d to %d", a.GetModRevision(), r)
	}
	select {
	case r := <-watch:
		t.Fatalf("health write notified config watchers with %d", r)
	default:
	}
	got, err := s.ListHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, h := range got {
		keys = append(keys, h.GetDataplaneId()+"/"+h.GetServer())
	}
	if fmt.Sprint(keys) != "[dp1/a dp2/a dp2/b]" {
		t.Fatalf("ListHealth keys = %v", keys)
	}
	// A new report replaces the data plane's previous one entirely.
	if err := s.PutHealth(ctx, "dp2", []*mcpmeshv1.BackendHealth{health("dp2", "a", mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)}, nil); err != nil {
		t.Fatal(err)
	}
	got, err = s.ListHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].GetState() != mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY {
		t.Fatalf("after replace ListHealth = %v", got)
	}
	if err := s.PutHealth(ctx, "", nil, nil); err == nil {
		t.Fatal("PutHealth with empty data plane id succeeded")
	}
}

func testEventsBounded(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	const total = store.MaxEvents + 150
	for i := 0; i < total; i += 50 {
		var evs []*mcpmeshv1.BackendHealth
		for j := i; j < i+50; j++ {
			evs = append(evs, &mcpmeshv1.BackendHealth{DataplaneId: "dp", Server: "s", ConsecutiveFailures: uint32(j)})
		}
		if err := s.PutHealth(ctx, "dp", nil, evs); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.ListEvents(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != store.MaxEvents {
		t.Fatalf("kept %d events, want %d", len(all), store.MaxEvents)
	}
	if first := all[0].Health.GetConsecutiveFailures(); first != total-store.MaxEvents {
		t.Fatalf("oldest kept event = %d, want %d", first, total-store.MaxEvents)
	}
	last, err := s.ListEvents(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 3 || last[2].Health.GetConsecutiveFailures() != total-1 || last[0].Seq >= last[2].Seq {
		t.Fatalf("ListEvents(3) = %v", last)
	}
}

func testWatch(t *testing.T, s store.Store, rv Revisions) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx)
	var last *mcpmeshv1.Server
	for _, n := range []string{"a", "b", "c"} {
		var err error
		if last, err = s.CreateServer(context.Background(), Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	// Three commits, one pending slot: the reader sees only the newest.
	select {
	case r := <-ch:
		if r != last.GetModRevision() || !rv.follows(0, 3, r) {
			t.Fatalf("watch got %d, want newest revision %d", r, last.GetModRevision())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch notification")
	}
	select {
	case r := <-ch:
		t.Fatalf("unexpected extra notification %d", r)
	default:
	}
	// When the watcher is notified, the write is already visible.
	got := make(chan uint64, 1)
	go func() {
		r := <-ch
		if _, err := s.GetServer(context.Background(), "d"); err != nil {
			t.Errorf("notified of %d before the commit was visible: %v", r, err)
		}
		got <- r
	}()
	d, err := s.CreateServer(context.Background(), Server("d"))
	if err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != d.GetModRevision() || !rv.follows(last.GetModRevision(), 1, r) {
		t.Fatalf("watch got %d, want %d (d's)", r, d.GetModRevision())
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("channel delivered after cancel instead of closing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after ctx cancel")
	}
}

func testCopies(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	in := Server("a")
	out, err := s.CreateServer(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	in.Stdio.Command = "changed-input"
	out.Stdio.Command = "changed-output"
	got, err := s.GetServer(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStdio().GetCommand() != "/bin/a" {
		t.Fatalf("store shares memory with callers: command = %q", got.GetStdio().GetCommand())
	}
	if in.GetModRevision() != 0 {
		t.Fatal("CreateServer modified its argument")
	}
}

func testConcurrent(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	shared, err := s.CreateServer(ctx, Server("shared"))
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	revs := map[uint64]string{shared.GetModRevision(): "create shared"} // of every successful write
	wrote := func(r uint64, what string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := revs[r]; ok {
			t.Errorf("%s and %s share revision %d", what, prev, r)
		}
		revs[r] = what
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("w%d-%d", w, i)
				c, err := s.CreateServer(ctx, Server(name))
				if err != nil {
					t.Errorf("create %s: %v", name, err)
					return
				}
				wrote(c.GetModRevision(), "create "+name)
				cur, err := s.GetServer(ctx, "shared")
				if err != nil {
					t.Errorf("get shared: %v", err)
					return
				}
				u, err := s.UpdateServer(ctx, cur, cur.GetModRevision())
				switch {
				case errors.Is(err, store.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
				case err != nil:
					t.Errorf("update shared: %v", err)
					return
				default:
					wrote(u.GetModRevision(), fmt.Sprintf("update shared by %s", name))
				}
				if _, _, err := s.ListServers(ctx); err != nil {
					t.Errorf("list: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	list, r, err := s.ListServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != workers*each+1 {
		t.Fatalf("%d servers, want %d", len(list), workers*each+1)
	}
	// Every successful write had a revision of its own, and the store is at
	// the newest; consecutive revisions count the writes.
	if len(revs) != 1+workers*each+workers*each-conflicts {
		t.Fatalf("%d distinct revisions, want one per successful write: %d (conflicts %d)", len(revs), 1+workers*each+workers*each-conflicts, conflicts)
	}
	newest := uint64(0)
	for r := range revs {
		newest = max(newest, r)
	}
	if r != newest || !rv.follows(0, len(revs), r) {
		t.Fatalf("revision %d, want the newest write's %d (%s; conflicts %d)", r, newest, rv.want(0, len(revs)), conflicts)
	}
}

func testBadArguments(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	if _, err := s.CreateServer(ctx, nil); err == nil {
		t.Fatal("CreateServer(nil) succeeded")
	}
	if _, err := s.CreateServer(ctx, &mcpmeshv1.Server{}); err == nil {
		t.Fatal("CreateServer with empty name succeeded")
	}
	if _, err := s.UpdateServer(ctx, nil, 0); err == nil {
		t.Fatal("UpdateServer(nil) succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.CreateServer(cctx, Server("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("create with cancelled ctx err = %v", err)
	}
}

func testTokens(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	before := rev(t, s)
	mk := func(id string, role mcpmeshv1.Role) *mcpmeshv1.StoredToken {
		return &mcpmeshv1.StoredToken{
			Token:        &mcpmeshv1.Token{Id: id, Role: role, CreatedAt: timestamppb.New(time.Unix(1700000000, 0))},
			SecretSha256: []byte("0123456789abcdef0123456789abcdef"),
		}
	}
	if err := s.CreateToken(ctx, mk("bb", mcpmeshv1.Role_ROLE_VIEWER)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, mk("aa", mcpmeshv1.Role_ROLE_DATAPLANE)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, mk("aa", mcpmeshv1.Role_ROLE_ADMIN)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("create duplicate id: err = %v, want ErrExists", err)
	}
	if err := s.CreateToken(ctx, &mcpmeshv1.StoredToken{Token: &mcpmeshv1.Token{Id: "nohash"}}); err == nil {
		t.Fatal("create token without a hash succeeded")
	}
	got, err := s.GetToken(ctx, "aa")
	if err != nil || got.GetToken().GetRole() != mcpmeshv1.Role_ROLE_DATAPLANE || !proto.Equal(got, mk("aa", mcpmeshv1.Role_ROLE_DATAPLANE)) {
		t.Fatalf("get token = %v, %v", got, err)
	}
	got.Token.Role = mcpmeshv1.Role_ROLE_ADMIN // a copy: the store must not change
	if again, _ := s.GetToken(ctx, "aa"); again.GetToken().GetRole() != mcpmeshv1.Role_ROLE_DATAPLANE {
		t.Fatal("GetToken returned the stored message, not a copy")
	}
	if _, err := s.GetToken(ctx, "zz"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing token: err = %v", err)
	}
	at := time.Unix(1700000100, 0)
	rt, err := s.RevokeToken(ctx, "aa", at)
	if err != nil || !rt.GetToken().GetRevokedAt().AsTime().Equal(at) {
		t.Fatalf("revoke = %v, %v", rt, err)
	}
	rt, err = s.RevokeToken(ctx, "aa", at.Add(time.Hour)) // the first revocation time stays
	if err != nil || !rt.GetToken().GetRevokedAt().AsTime().Equal(at) {
		t.Fatalf("second revoke = %v, %v", rt, err)
	}
	if _, err := s.RevokeToken(ctx, "zz", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke missing token: err = %v", err)
	}
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].GetToken().GetId() != "aa" || list[1].GetToken().GetId() != "bb" ||
		list[0].GetToken().GetRevokedAt() == nil || list[1].GetToken().GetRevokedAt() != nil {
		t.Fatalf("list tokens = %v, %v", list, err)
	}
	if after := rev(t, s); after != before {
		t.Fatalf("token writes moved the config revision from %d to %d", before, after)
	}
}

func state(t *testing.T, s store.Store) *store.State {
	t.Helper()
	st, err := s.State(context.Background())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	return st
}

// A rotation makes a new secret, keeps the old one with its expiry and
// bumps the revision (announced to watchers); dropping the expired ones
// bumps it again, and only when there was something to drop. The clock is
// the caller's: no test sleeps.
func testRotateClusterSecret(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	before := state(t, s)
	if len(before.PreviousSecrets) != 0 {
		t.Fatalf("fresh store has previous secrets %v", before.PreviousSecrets)
	}
	watch := s.Watch(t.Context())

	r0, err := s.RotateClusterSecret(ctx, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("RotateClusterSecret: %v", err)
	}
	if w := <-watch; !rv.follows(before.Revision, 1, r0) || w != r0 {
		t.Fatalf("rotation at revision %d (watch %d), want %s", r0, w, rv.want(before.Revision, 1))
	}
	after := state(t, s)
	if len(after.ClusterSecret) != 32 || string(after.ClusterSecret) == string(before.ClusterSecret) {
		t.Fatal("rotation kept the cluster secret")
	}
	if len(after.PreviousSecrets) != 1 || string(after.PreviousSecrets[0].Secret) != string(before.ClusterSecret) ||
		!after.PreviousSecrets[0].ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("previous secrets after a rotation = %+v, want the old one until %v", after.PreviousSecrets, t0.Add(time.Hour))
	}

	// A second rotation within the grace keeps both, newest first.
	t1 := t0.Add(10 * time.Minute)
	if _, err := s.RotateClusterSecret(ctx, t1, t1.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	third := state(t, s)
	if got := third.PreviousSecrets; len(got) != 2 || string(got[0].Secret) != string(after.ClusterSecret) ||
		string(got[1].Secret) != string(before.ClusterSecret) {
		t.Fatalf("previous secrets after two rotations = %d, want the two replaced, newest first", len(got))
	}

	// Nothing expired yet: no write, no revision.
	if r, err := s.DropExpiredSecrets(ctx, t0.Add(time.Hour-time.Nanosecond)); err != nil || r != 0 {
		t.Fatalf("DropExpiredSecrets before any expiry = %d, %v; want 0", r, err)
	}
	if r := rev(t, s); r != third.Revision {
		t.Fatalf("revision moved to %d with nothing dropped", r)
	}
	// At the first expiry the first replaced secret goes.
	r, err := s.DropExpiredSecrets(ctx, t0.Add(time.Hour))
	if err != nil || !rv.follows(third.Revision, 1, r) || rev(t, s) != r {
		t.Fatalf("DropExpiredSecrets at the expiry = %d, %v (store at %d); want revision %s", r, err, rev(t, s), rv.want(third.Revision, 1))
	}
	if got := state(t, s).PreviousSecrets; len(got) != 1 || string(got[0].Secret) != string(after.ClusterSecret) {
		t.Fatalf("previous secrets after the first expiry = %d, want the newer one", len(got))
	}
	if _, err := s.DropExpiredSecrets(ctx, t1.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	final := state(t, s)
	if len(final.PreviousSecrets) != 0 || string(final.ClusterSecret) != string(third.ClusterSecret) {
		t.Fatalf("after every expiry: %d previous secrets, current changed %v", len(final.PreviousSecrets),
			string(final.ClusterSecret) != string(third.ClusterSecret))
	}

	// Returned secrets are copies.
	final.ClusterSecret[0] ^= 0xff
	if string(state(t, s).ClusterSecret) == string(final.ClusterSecret) {
		t.Fatal("State returned the stored secret, not a copy")
	}
}

// Rotations in a row keep at most MaxPreviousSecrets, dropping the ones
// that expire first; those already expired go at the next rotation.
func testRotationsBounded(t *testing.T, s store.Store, _ Revisions) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var replaced [][]byte
	for i := range store.MaxPreviousSecrets + 2 {
		replaced = append(replaced, state(t, s).ClusterSecret)
		// Each expires later than the one before.
		if _, err := s.RotateClusterSecret(ctx, t0, t0.Add(time.Duration(i+1)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	got := state(t, s).PreviousSecrets
	if len(got) != store.MaxPreviousSecrets {
		t.Fatalf("%d previous secrets kept, want %d", len(got), store.MaxPreviousSecrets)
	}
	for i, p := range got { // newest first: the last replaced
		want := replaced[len(replaced)-1-i]
		if string(p.Secret) != string(want) {
			t.Fatalf("previous secret %d is not the %d-th newest replaced", i, i+1)
		}
	}
	// A rotation after most have expired keeps only those still valid.
	late := t0.Add(time.Duration(store.MaxPreviousSecrets+1) * time.Hour)
	if _, err := s.RotateClusterSecret(ctx, late, late.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := state(t, s).PreviousSecrets; len(got) != 2 || !got[1].ExpiresAt.Equal(t0.Add(time.Duration(store.MaxPreviousSecrets+2)*time.Hour)) {
		t.Fatalf("after a late rotation: %+v, want the new one and the one still valid", got)
	}
}

// testClientKeys: client keys are config (data planes receive them), so
// creating and revoking one bumps the revision and State carries them;
// a second revocation changes nothing.
func testClientKeys(t *testing.T, s store.Store, rv Revisions) {
	ctx := context.Background()
	mk := func(id string, tags ...string) *mcpmeshv1.StoredClientKey {
		return &mcpmeshv1.StoredClientKey{
			Key:          &mcpmeshv1.ClientKey{Id: id, Tags: tags, CreatedAt: timestamppb.New(time.Unix(1700000000, 0))},
			SecretSha256: []byte("0123456789abcdef0123456789abcdef"),
		}
	}
	before := rev(t, s)
	r1, err := s.CreateClientKey(ctx, mk("bb", "team-a"))
	if err != nil || !rv.follows(before, 1, r1) || rev(t, s) != r1 {
		t.Fatalf("create client key: rev %d, %v (was %d, want %s)", r1, err, before, rv.want(before, 1))
	}
	if _, err := s.CreateClientKey(ctx, mk("aa")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateClientKey(ctx, mk("aa", "x")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate id: %v, want ErrExists", err)
	}
	if _, err := s.CreateClientKey(ctx, &mcpmeshv1.StoredClientKey{Key: &mcpmeshv1.ClientKey{Id: "nohash"}}); err == nil {
		t.Fatal("a key without a hash was stored")
	}
	at := time.Unix(1700000100, 0).UTC()
	mid := rev(t, s)
	rk, err := s.RevokeClientKey(ctx, "bb", at)
	revoked := rev(t, s)
	if err != nil || !rk.GetKey().GetRevokedAt().AsTime().Equal(at) || !rv.follows(mid, 1, revoked) {
		t.Fatalf("revoke = %v, %v (revision %d, was %d, want %s)", rk, err, revoked, mid, rv.want(mid, 1))
	}
	rk, err = s.RevokeClientKey(ctx, "bb", at.Add(time.Hour))
	if err != nil || !rk.GetKey().GetRevokedAt().AsTime().Equal(at) || rev(t, s) != revoked {
		t.Fatalf("second revoke = %v, %v (revision %d, want %d)", rk, err, rev(t, s), revoked)
	}
	if _, err := s.RevokeClientKey(ctx, "zz", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v, want ErrNotFound", err)
	}
	list, err := s.ListClientKeys(ctx)
	if err != nil || len(list) != 2 || list[0].GetKey().GetId() != "aa" || list[1].GetKey().GetId() != "bb" ||
		list[1].GetKey().GetRevokedAt() == nil || list[0].GetKey().GetRevokedAt() != nil {
		t.Fatalf("list client keys = %v, %v", list, err)
	}
	list[0].Key.Tags = []string{"changed"} // a copy: the store must not change
	st, err := s.State(ctx)
	if err != nil || len(st.ClientKeys) != 2 || st.Revision != rev(t, s) || len(st.ClientKeys[0].GetKey().GetTags()) != 0 ||
		!proto.Equal(st.ClientKeys[0], mk("aa")) {
		t.Fatalf("state client keys = %v, %v", st.ClientKeys, err)
	}
}
