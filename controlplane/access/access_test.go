package access

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMintParse(t *testing.T) {
	tok, id, hash, err := mint()
	if err != nil {
		t.Fatal(err)
	}
	gotID, secret, ok := parse(tok)
	if !ok || gotID != id || string(hashSecret(secret)) != string(hash) {
		t.Fatalf("parse(mint()) = %q, %q, %v", gotID, secret, ok)
	}
	if strings.Contains(string(hash), secret) {
		t.Fatal("the hash contains the secret")
	}
	for _, bad := range []string{"", "mcpm_", "mcpm_" + id, "mcpm_" + id + "_", tok + "0", "x" + tok,
		"mcpm_" + strings.Repeat("g", 16) + "_" + strings.Repeat("0", 64), strings.Repeat("a", 64)} {
		if _, _, ok := parse(bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

// FuzzParse: parse reads untrusted bearer tokens; it must never panic and
// accept only the exact format.
func FuzzParse(f *testing.F) {
	tok, _, _, _ := mint()
	f.Add(tok)
	f.Add("mcpm_0123456789abcdef_" + strings.Repeat("ab", 32))
	f.Add("mcpm__")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, ok := parse(s)
		if ok && s != tokenPrefix+id+"_"+secret {
			t.Fatalf("parse(%q) = %q, %q: not a split of the input", s, id, secret)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	a := NewAuthenticator("boot", st, nil)
	svc := NewService(st, a, nil)
	ctx := context.Background()
	now := time.Now()
	a.now = func() time.Time { return now }
	svc.now = a.now
	mk := func(role mcpmeshv1.Role, ttl time.Duration) *mcpmeshv1.CreateTokenResponse {
		t.Helper()
		req := &mcpmeshv1.CreateTokenRequest{Role: role}
		if ttl != 0 {
			req.Ttl = durationpb.New(ttl)
		}
		resp, err := svc.CreateToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	viewer := mk(mcpmeshv1.Role_ROLE_VIEWER, 0)
	short := mk(mcpmeshv1.Role_ROLE_DATAPLANE, time.Minute)
	if id, err := a.authenticate(ctx, "boot"); err != nil || id.Role != mcpmeshv1.Role_ROLE_ADMIN || id.TokenID != BootstrapID {
		t.Fatalf("bootstrap: %v, %v", id, err)
	}
	if id, err := a.authenticate(ctx, viewer.GetSecret()); err != nil || id.Role != mcpmeshv1.Role_ROLE_VIEWER || !id.ExpiresAt.IsZero() {
		t.Fatalf("viewer: %v, %v", id, err)
	}
	if id, err := a.authenticate(ctx, short.GetSecret()); err != nil || !id.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("short-lived: %v, %v", id, err)
	}
	now = now.Add(time.Minute) // expiry is exclusive
	if _, err := a.authenticate(ctx, short.GetSecret()); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	if _, err := svc.RevokeToken(ctx, &mcpmeshv1.RevokeTokenRequest{Id: viewer.GetToken().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.authenticate(ctx, viewer.GetSecret()); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked: %v", err)
	}
	for _, bad := range []string{"", "boot ", "mcpm_" + viewer.GetToken().GetId() + "_" + strings.Repeat("0", 64), "garbage"} {
		if _, err := a.authenticate(ctx, bad); status.Code(err) != codes.Unauthenticated {
			t.Errorf("authenticate(%q) = %v, want Unauthenticated", bad, err)
		}
	}
	// No bootstrap token configured: the empty string never matches it.
	if _, err := NewAuthenticator("", st, nil).authenticate(ctx, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("empty bootstrap accepted an empty token: %v", err)
	}
}

func TestCreateTokenValidation(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	svc := NewService(st, NewAuthenticator("", st, nil), nil)
	for name, req := range map[string]*mcpmeshv1.CreateTokenRequest{
		"no role":     {},
		"bad role":    {Role: mcpmeshv1.Role(42)},
		"negative":    {Role: mcpmeshv1.Role_ROLE_VIEWER, Ttl: durationpb.New(-time.Second)},
		"long descr.": {Role: mcpmeshv1.Role_ROLE_VIEWER, Description: strings.Repeat("x", MaxDescription+1)},
	} {
		if _, err := svc.CreateToken(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if list, _ := st.ListTokens(context.Background()); len(list) != 0 {
		t.Errorf("refused requests stored %d tokens", len(list))
	}
}

func TestWhoAmI(t *testing.T) {
	s := &Service{}
	if _, err := s.WhoAmI(context.Background(), &mcpmeshv1.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no identity: got %v, want Unauthenticated", err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ctx := WithIdentity(context.Background(), Identity{TokenID: "abc", Role: mcpmeshv1.Role_ROLE_VIEWER, ExpiresAt: exp})
	resp, err := s.WhoAmI(ctx, &mcpmeshv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetId() != "abc" || resp.GetRole() != mcpmeshv1.Role_ROLE_VIEWER || !resp.GetExpiresAt().AsTime().Equal(exp) {
		t.Fatalf("got %v", resp)
	}
}
