package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Grant returns a grant of server holding access token tok, for tests.
func Grant(server, tok string) *mcpmeshv1.StoredOAuthGrant {
	return &mcpmeshv1.StoredOAuthGrant{
		Authorization: &mcpmeshv1.Authorization{
			Server: server, State: mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED,
			Issuer: "https://as.example", ClientId: "client-1", Refreshable: true,
			ExpiresAt: timestamppb.New(time.Unix(1_900_000_000, 0)),
		},
		AccessToken: tok, RefreshToken: "refresh-" + tok, TokenType: "Bearer",
		TokenEndpoint: "https://as.example/token", ClientSecret: "client-secret-" + server,
		Resource: "https://" + server + ".example/mcp",
	}
}

func testOAuthGrants(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.PutOAuthGrant(ctx, Grant("nosuch", "t")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant of a missing server: %v, want ErrNotFound", err)
	}
	for _, n := range []string{"b", "a"} {
		if _, err := s.CreateServer(ctx, Server(n)); err != nil {
			t.Fatal(err)
		}
	}
	r0 := rev(t, s)
	r1, err := s.PutOAuthGrant(ctx, Grant("b", "tok-1"))
	if err != nil || r1 <= r0 || rev(t, s) != r1 {
		t.Fatalf("first grant: rev %d, %v; want past %d", r1, err, r0)
	}
	// A change data planes do not see (refreshed_at, last_error) is no revision.
	g := Grant("b", "tok-1")
	g.Authorization.RefreshedAt = timestamppb.Now()
	g.Authorization.LastError = "x"
	if r, err := s.PutOAuthGrant(ctx, g); err != nil || r != 0 || rev(t, s) != r1 {
		t.Fatalf("grant without a token change: rev %d, %v; want 0 and revision %d kept", r, err, r1)
	}
	got, err := s.GetOAuthGrant(ctx, "b")
	if err != nil || !proto.Equal(got, g) {
		t.Fatalf("GetOAuthGrant = %v, %v; want %v", got, err, g)
	}
	got.AccessToken = "mutated"
	if again, _ := s.GetOAuthGrant(ctx, "b"); again.GetAccessToken() != "tok-1" {
		t.Fatal("a returned grant shares memory with the store")
	}
	r2, err := s.PutOAuthGrant(ctx, Grant("b", "tok-2"))
	if err != nil || r2 <= r1 {
		t.Fatalf("new access token: rev %d, %v; want past %d", r2, err, r1)
	}
	if _, err := s.PutOAuthGrant(ctx, Grant("a", "tok-a")); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListOAuthGrants(ctx)
	if err != nil || len(list) != 2 || list[0].GetAuthorization().GetServer() != "a" || list[1].GetAccessToken() != "tok-2" {
		t.Fatalf("ListOAuthGrants = %v, %v; want a then b", list, err)
	}
	// Removing the access token (a refused refresh) is a revision.
	noTok := Grant("a", "")
	r3 := rev(t, s)
	if r, err := s.PutOAuthGrant(ctx, noTok); err != nil || r <= r3 {
		t.Fatalf("token removed: rev %d, %v; want past %d", r, err, r3)
	}
	// Deleting a grant without a token is not; with one it is.
	r4 := rev(t, s)
	if r, err := s.DeleteOAuthGrant(ctx, "a"); err != nil || r != 0 || rev(t, s) != r4 {
		t.Fatalf("delete tokenless grant: rev %d, %v; want 0", r, err)
	}
	if r, err := s.DeleteOAuthGrant(ctx, "a"); err != nil || r != 0 {
		t.Fatalf("delete missing grant: rev %d, %v; want 0, nil", r, err)
	}
	if _, err := s.GetOAuthGrant(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted grant: %v, want ErrNotFound", err)
	}
	if r, err := s.DeleteOAuthGrant(ctx, "b"); err != nil || r <= r4 {
		t.Fatalf("delete grant with a token: rev %d, %v; want past %d", r, err, r4)
	}
	// Deleting a server deletes its grant: a new server of that name starts unauthorized.
	if _, err := s.PutOAuthGrant(ctx, Grant("b", "tok-3")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteServer(ctx, "b", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, Server("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOAuthGrant(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant after its server was deleted: %v, want ErrNotFound", err)
	}
}

func pending(state string, expires time.Time) *mcpmeshv1.StoredOAuthPending {
	return &mcpmeshv1.StoredOAuthPending{State: state, Server: "a", CodeVerifier: "verifier-" + state,
		RedirectUri: "http://127.0.0.1:8080/oauth/callback", ExpiresAt: timestamppb.New(expires)}
}

func testOAuthPending(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	r0 := rev(t, s)
	if err := s.PutOAuthPending(ctx, pending("a.1", now.Add(store.PendingTTL))); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOAuthPending(ctx, pending("a.1", now.Add(store.PendingTTL))); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same state twice: %v, want ErrExists", err)
	}
	if err := s.PutOAuthPending(ctx, &mcpmeshv1.StoredOAuthPending{State: "x"}); err == nil {
		t.Fatal("a pending flow without expiry was stored")
	}
	p, err := s.TakeOAuthPending(ctx, "a.1", now)
	if err != nil || p.GetCodeVerifier() != "verifier-a.1" {
		t.Fatalf("take: %v, %v", p, err)
	}
	if _, err := s.TakeOAuthPending(ctx, "a.1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second take: %v, want ErrNotFound", err)
	}
	if err := s.PutOAuthPending(ctx, pending("a.2", now.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeOAuthPending(ctx, "a.2", now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take of an expired flow: %v, want ErrNotFound", err)
	}
	for i, exp := range []time.Duration{time.Second, 2 * time.Second, time.Hour} {
		if err := s.PutOAuthPending(ctx, pending("s."+string(rune('0'+i)), now.Add(exp))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.SweepOAuthPending(ctx, now.Add(2*time.Second)); err != nil || n != 2 {
		t.Fatalf("sweep: %d, %v; want 2", n, err)
	}
	if _, err := s.TakeOAuthPending(ctx, "s.2", now); err != nil {
		t.Fatalf("the unexpired flow did not survive the sweep: %v", err)
	}
	if rev(t, s) != r0 {
		t.Fatalf("pending flows moved the config revision from %d to %d", r0, rev(t, s))
	}

	// Of concurrent takes of one state, exactly one gets the flow.
	if err := s.PutOAuthPending(ctx, pending("race", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 8 {
		wg.Go(func() {
			if _, err := s.TakeOAuthPending(ctx, "race", now); err == nil {
				mu.Lock()
				got++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("take: %v", err)
			}
		})
	}
	wg.Wait()
	if got != 1 {
		t.Fatalf("%d concurrent takes got the flow, want exactly 1", got)
	}
}

// testOAuthDumpRestore: a dump carries the grants and a restore brings them back.
func testOAuthDumpRestore(t *testing.T, open Open) {
	ctx := context.Background()
	src, dst := open(t), open(t)
	t.Cleanup(func() { _ = src.Close(); _ = dst.Close() })
	if _, err := src.CreateServer(ctx, Server("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := src.PutOAuthGrant(ctx, Grant("a", "tok-a")); err != nil {
		t.Fatal(err)
	}
	d, err := src.Dump(ctx)
	if err != nil || len(d.OAuthGrants) != 1 || d.OAuthGrants[0].GetAccessToken() != "tok-a" {
		t.Fatalf("dump grants = %v, %v", d.OAuthGrants, err)
	}
	if _, err := dst.Restore(ctx, d, false); err != nil {
		t.Fatal(err)
	}
	if g, err := dst.GetOAuthGrant(ctx, "a"); err != nil || !proto.Equal(g, d.OAuthGrants[0]) {
		t.Fatalf("restored grant = %v, %v", g, err)
	}
	// A grant of a server the backup does not hold is refused.
	d.OAuthGrants = append(d.OAuthGrants, Grant("ghost", "t"))
	if _, err := dst.Restore(ctx, d, true); err == nil {
		t.Fatal("restore of a grant without its server succeeded")
	}
	// A forced restore of a dump without grants drops the ones held.
	d.OAuthGrants = nil
	if _, err := dst.Restore(ctx, d, true); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.GetOAuthGrant(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant after restoring a dump without it: %v, want ErrNotFound", err)
	}
}
