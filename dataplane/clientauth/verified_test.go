package clientauth

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

// A verified token is served from the cache until the earlier of its expiry
// and a minute; a token past its expiry is refused even when cached; only
// tokens that passed every check are cached; the cache is bounded.
func TestVerifiedTokenCache(t *testing.T) {
	as, err := testauth.New()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	o := newOAuth(t, as, "mcp")
	now := time.Now()
	o.now = func() time.Time { return now }
	req := func(tok string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, resource, nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	long, err := as.Token(testauth.Claims{Audience: resource, Scope: "mcp", Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	first, aerr := o.Authenticate(req(long))
	if aerr != nil {
		t.Fatal(aerr)
	}
	if again, aerr := o.Authenticate(req(long)); aerr != nil || again != first {
		t.Fatalf("second use: %v, %v; want the cached identity", again, aerr)
	}
	now = now.Add(verifiedTTL + time.Second) // past the cache's minute: verified again, still valid
	if again, aerr := o.Authenticate(req(long)); aerr != nil || again == first {
		t.Fatalf("after a minute: %v, %v; want a fresh verification", again, aerr)
	}

	short, err := as.Token(testauth.Claims{Audience: resource, Scope: "mcp", Expiry: now.Add(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, aerr := o.Authenticate(req(short)); aerr != nil {
		t.Fatal(aerr)
	}
	now = now.Add(time.Minute) // past exp and the 30 s skew
	if id, aerr := o.Authenticate(req(short)); aerr == nil {
		t.Fatalf("an expired token was accepted from the cache: %+v", id)
	}

	noScope, err := as.Token(testauth.Claims{Audience: resource, Scope: "other", Expiry: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	before := o.verified.len()
	for range 2 {
		if _, aerr := o.Authenticate(req(noScope)); aerr == nil || aerr.Code != "insufficient_scope" {
			t.Fatalf("token without the scope: %v", aerr)
		}
	}
	if o.verified.len() != before {
		t.Fatal("a refused token was cached")
	}

	var c verifiedCache
	for i := range maxVerified + 50 {
		c.put(sha256.Sum256([]byte(fmt.Sprint(i))), &Identity{}, time.Time{}, now)
	}
	if n := c.len(); n > maxVerified {
		t.Fatalf("cache holds %d entries, bound %d", n, maxVerified)
	}
}
