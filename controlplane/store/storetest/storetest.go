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

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
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
			tc.fn(t, s)
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

func testCreateGetList(t *testing.T, s store.Store) {
	ctx := context.Background()
	if r := rev(t, s); r != 0 {
		t.Fatalf("fresh store revision = %d, want 0", r)
	}
	b, err := s.CreateServer(ctx, Server("bravo"))
	if err != nil {
		t.Fatalf("CreateServer: %v", err)
	}
	if b.GetCreateRevision() != 1 || b.GetModRevision() != 1 || b.GetCreatedAt() == nil || b.GetUpdatedAt() == nil {
		t.Fatalf("created server not stamped: %v", b)
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
	if r != 2 || len(list) != 2 || list[0].GetName() != "alpha" || list[1].GetName() != "bravo" {
		t.Fatalf("ListServers = %v at %d, want alpha,bravo at 2", list, r)
	}
	if _, err := s.GetServer(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetServer(nope) err = %v, want ErrNotFound", err)
	}
}

func testCreateExists(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.CreateServer(ctx, Server("a")); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateServer(ctx, Server("a"))
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create err = %v, want ErrExists", err)
	}
	if r := rev(t, s); r != 1 {
		t.Fatalf("failed create bumped revision to %d", r)
	}
}

func testCreateServers(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.CreateServer(ctx, Server("first")); err != nil {
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
	if r != 2 || rev(t, s) != 2 {
		t.Fatalf("CreateServers revision = %d, store at %d; want both 2 (one revision for all)", r, rev(t, s))
	}
	if len(out) != 3 {
		t.Fatalf("CreateServers returned %d servers, want 3", len(out))
	}
	for i, srv := range out {
		if srv.GetName() != keep[i].GetName() {
			t.Errorf("result %d is %q, want %q (request order)", i, srv.GetName(), keep[i].GetName())
		}
		if srv.GetCreateRevision() != 2 || srv.GetModRevision() != 2 || srv.GetCreatedAt() == nil || srv.GetUpdatedAt() == nil {
			t.Errorf("result %q stamped %d/%d at %v/%v, want revision 2 and times set", srv.GetName(), srv.GetCreateRevision(), srv.GetModRevision(), srv.GetCreatedAt(), srv.GetUpdatedAt())
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
		if n != 2 {
			t.Fatalf("watch got %d, want 2", n)
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

func testCreateServersAllOrNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.CreateServer(ctx, Server("taken")); err != nil {
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
	if r != 1 || len(list) != 1 || list[0].GetName() != "taken" {
		t.Fatalf("after failed CreateServers: %d servers at revision %d, want only taken at 1", len(list), r)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.CreateServers(cctx, []*mcpmeshv1.Server{Server("x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateServers on a cancelled context err = %v, want context.Canceled", err)
	}
}

func testUpdateRules(t *testing.T, s store.Store) {
	ctx := context.Background()
	created, err := s.CreateServer(ctx, Server("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, Server("other")); err != nil {
		t.Fatal(err)
	}
	upd := Server("a")
	upd.Description = "v2"
	got, err := s.UpdateServer(ctx, upd, created.GetModRevision())
	if err != nil {
		t.Fatalf("UpdateServer with current revision: %v", err)
	}
	if got.GetModRevision() != 3 || got.GetCreateRevision() != 1 || !proto.Equal(got.GetCreatedAt(), created.GetCreatedAt()) || got.GetDescription() != "v2" {
		t.Fatalf("updated server = %v", got)
	}
	// Stale expected revision.
	_, err = s.UpdateServer(ctx, upd, created.GetModRevision())
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update err = %v, want ErrConflict", err)
	}
	// Unconditional.
	if _, err := s.UpdateServer(ctx, upd, 0); err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	if _, err := s.UpdateServer(ctx, Server("missing"), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing err = %v, want ErrNotFound", err)
	}
	if r := rev(t, s); r != 4 {
		t.Fatalf("revision = %d, want 4 (failed writes must not bump it)", r)
	}
}

func testDeleteRules(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.CreateServer(ctx, Server("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteServer(ctx, "a", c.GetModRevision()+7); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("delete with wrong revision err = %v, want ErrConflict", err)
	}
	r, err := s.DeleteServer(ctx, "a", c.GetModRevision())
	if err != nil || r != 2 {
		t.Fatalf("DeleteServer = %d, %v; want 2, nil", r, err)
	}
	if _, err := s.DeleteServer(ctx, "a", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetServer(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted err = %v", err)
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := context.Background()
	st, r, err := s.GetSettings(ctx)
	if err != nil || st == nil || r != 0 {
		t.Fatalf("GetSettings on empty store = %v, %d, %v", st, r, err)
	}
	want := &mcpmeshv1.Settings{Pagination: &mcpmeshv1.PaginationSettings{Enabled: true, PageSize: 7}}
	r, err = s.PutSettings(ctx, want)
	if err != nil || r != 1 {
		t.Fatalf("PutSettings = %d, %v", r, err)
	}
	got, r, err := s.GetSettings(ctx)
	if err != nil || r != 1 || !proto.Equal(got, want) {
		t.Fatalf("GetSettings = %v, %d, %v; want %v", got, r, err, want)
	}
}

func testStateAndSecret(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, n := range []string{"c", "a", "b"} {
		if _, err := s.CreateServer(ctx, Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 3 || len(st.Servers) != 3 || st.Servers[0].GetName() != "a" || st.Servers[2].GetName() != "c" {
		t.Fatalf("State = rev %d servers %v", st.Revision, st.Servers)
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

func testHealthIsNotConfig(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.CreateServer(ctx, Server("a")); err != nil {
		t.Fatal(err)
	}
	watch := s.Watch(ctx)
	err := s.PutHealth(ctx, "dp2", []*mcpmeshv1.BackendHealth{
		health("dp2", "b", mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY),
		health("dp2", "a", mcpmeshv1.BackendState_BACKEND_STATE_RETRYING),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutHealth(ctx, "dp1", []*mcpmeshv1.BackendHealth{health("dp1", "a", mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY)}, nil); err != nil {
		t.Fatal(err)
	}
	if r := rev(t, s); r != 1 {
		t.Fatalf("health writes bumped the config revision to %d", r)
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

func testEventsBounded(t *testing.T, s store.Store) {
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

func testWatch(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx)
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.CreateServer(context.Background(), Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	// Three commits, one pending slot: the reader sees only the newest.
	select {
	case r := <-ch:
		if r != 3 {
			t.Fatalf("watch got %d, want newest revision 3", r)
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
	if _, err := s.CreateServer(context.Background(), Server("d")); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != 4 {
		t.Fatalf("watch got %d, want 4", r)
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

func testCopies(t *testing.T, s store.Store) {
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

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.CreateServer(ctx, Server("shared")); err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.CreateServer(ctx, Server(name)); err != nil {
					t.Errorf("create %s: %v", name, err)
					return
				}
				cur, err := s.GetServer(ctx, "shared")
				if err != nil {
					t.Errorf("get shared: %v", err)
					return
				}
				if _, err := s.UpdateServer(ctx, cur, cur.GetModRevision()); errors.Is(err, store.ErrConflict) {
					mu.Lock()
					conflicts++
					mu.Unlock()
				} else if err != nil {
					t.Errorf("update shared: %v", err)
					return
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
	// Every successful write bumped the revision exactly once.
	wantRev := uint64(1 + workers*each + workers*each - conflicts)
	if r != wantRev {
		t.Fatalf("revision %d, want %d (conflicts %d)", r, wantRev, conflicts)
	}
}

func testBadArguments(t *testing.T, s store.Store) {
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

func testTokens(t *testing.T, s store.Store) {
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
	rv, err := s.RevokeToken(ctx, "aa", at)
	if err != nil || !rv.GetToken().GetRevokedAt().AsTime().Equal(at) {
		t.Fatalf("revoke = %v, %v", rv, err)
	}
	rv, err = s.RevokeToken(ctx, "aa", at.Add(time.Hour)) // the first revocation time stays
	if err != nil || !rv.GetToken().GetRevokedAt().AsTime().Equal(at) {
		t.Fatalf("second revoke = %v, %v", rv, err)
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
func testRotateClusterSecret(t *testing.T, s store.Store) {
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
	if r0 != before.Revision+1 || <-watch != r0 {
		t.Fatalf("rotation at revision %d (watch), want %d", r0, before.Revision+1)
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
	if err != nil || r != third.Revision+1 {
		t.Fatalf("DropExpiredSecrets at the expiry = %d, %v; want revision %d", r, err, third.Revision+1)
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
func testRotationsBounded(t *testing.T, s store.Store) {
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
func testClientKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	mk := func(id string, tags ...string) *mcpmeshv1.StoredClientKey {
		return &mcpmeshv1.StoredClientKey{
			Key:          &mcpmeshv1.ClientKey{Id: id, Tags: tags, CreatedAt: timestamppb.New(time.Unix(1700000000, 0))},
			SecretSha256: []byte("0123456789abcdef0123456789abcdef"),
		}
	}
	before := rev(t, s)
	r1, err := s.CreateClientKey(ctx, mk("bb", "team-a"))
	if err != nil || r1 != before+1 {
		t.Fatalf("create client key: rev %d, %v (was %d)", r1, err, before)
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
	rv, err := s.RevokeClientKey(ctx, "bb", at)
	if err != nil || !rv.GetKey().GetRevokedAt().AsTime().Equal(at) || rev(t, s) != mid+1 {
		t.Fatalf("revoke = %v, %v (revision %d, was %d)", rv, err, rev(t, s), mid)
	}
	rv, err = s.RevokeClientKey(ctx, "bb", at.Add(time.Hour))
	if err != nil || !rv.GetKey().GetRevokedAt().AsTime().Equal(at) || rev(t, s) != mid+1 {
		t.Fatalf("second revoke = %v, %v (revision %d)", rv, err, rev(t, s))
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
