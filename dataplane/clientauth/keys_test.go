package clientauth

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func stored(id, secret string, exp time.Time, tags ...string) *mcpmeshv1.StoredClientKey {
	h := sha256.Sum256([]byte(secret))
	k := &mcpmeshv1.ClientKey{Id: id, Tags: tags}
	if !exp.IsZero() {
		k.ExpiresAt = timestamppb.New(exp)
	}
	return &mcpmeshv1.StoredClientKey{Key: k, SecretSha256: h[:]}
}

func reqWith(auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func TestKeys(t *testing.T) {
	now := time.Unix(1700000000, 0)
	k := NewKeys()
	k.now = func() time.Time { return now }
	k.Set([]*mcpmeshv1.StoredClientKey{
		stored("aa", "s1", time.Time{}, "team-a"),
		stored("bb", "s2", now.Add(-time.Second)),
	})
	id, err := k.Authenticate(reqWith("Bearer mcpk_aa_s1"))
	if err != nil || !slices.Equal(id.Tags, []string{"team-a"}) {
		t.Fatalf("good key: %+v, %v", id, err)
	}
	for _, tc := range []struct{ name, auth, code, msg string }{
		{"missing", "", "", "needs an API key"},
		{"not bearer", "Basic xyz", "invalid_request", "Bearer"},
		{"wrong secret", "Bearer mcpk_aa_s2", "invalid_token", "unknown"},
		{"unknown id", "Bearer mcpk_zz_s1", "invalid_token", "unknown"},
		{"no prefix", "Bearer aa_s1", "invalid_token", "unknown"},
		{"expired", "Bearer mcpk_bb_s2", "invalid_token", "expired"},
	} {
		_, err := k.Authenticate(reqWith(tc.auth))
		if err == nil || err.Status != 401 || err.Code != tc.code || !strings.Contains(err.Msg, tc.msg) {
			t.Errorf("%s: %+v", tc.name, err)
		}
		if ch := k.Challenge(err); !strings.HasPrefix(ch, "Bearer ") {
			t.Errorf("%s: challenge %q", tc.name, ch)
		}
	}
	k.Set(nil) // revoked: the next snapshot lacks it
	if _, err := k.Authenticate(reqWith("Bearer mcpk_aa_s1")); err == nil {
		t.Fatal("a key missing from the new snapshot was accepted")
	}
}

// TestKeysConcurrentSet: requests and snapshot swaps race freely (-race).
func TestKeysConcurrentSet(t *testing.T) {
	k := NewKeys()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 200 {
			k.Set([]*mcpmeshv1.StoredClientKey{stored("aa", "s1", time.Time{})})
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			_, _ = k.Authenticate(reqWith("Bearer mcpk_aa_s1"))
		}
	}()
	wg.Wait()
}

func TestAuthenticatorKeysOnly(t *testing.T) {
	k := NewKeys()
	k.Set([]*mcpmeshv1.StoredClientKey{stored("aa", "s1", time.Time{})})
	a := &Authenticator{Keys: k}
	if _, err := a.Authenticate(reqWith("Bearer mcpk_aa_s1")); err != nil {
		t.Fatal(err)
	}
	_, err := a.Authenticate(reqWith("Bearer eyJhbGciOi.x.y"))
	if err == nil || err.Code != "invalid_token" || !strings.Contains(a.Challenge(err), `error="invalid_token"`) {
		t.Fatalf("a JWT with keys only: %+v", err)
	}
}
