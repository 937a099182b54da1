package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/controlplane/store/storetest"
	"google.golang.org/protobuf/types/known/timestamppb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// TestBoltOAuthSealed: grants and pending flows hold tokens, client secrets
// and PKCE verifiers; none of them is in the file in clear.
func TestBoltOAuthSealed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServer(ctx, storetest.Server("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutOAuthGrant(ctx, storetest.Grant("a", "access-token-4711")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOAuthPending(ctx, &mcpmeshv1.StoredOAuthPending{State: "a.xyz", Server: "a",
		CodeVerifier: "pkce-verifier-4711", ExpiresAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"access-token-4711", "refresh-access-token-4711", "client-secret-a", "pkce-verifier-4711"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("%s is in the store file in clear", secret)
		}
	}
	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if g, err := s.GetOAuthGrant(ctx, "a"); err != nil || g.GetAccessToken() != "access-token-4711" {
		t.Fatalf("grant after reopen: %v, %v", g, err)
	}
}
