package clientauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/internal/testauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const resource = "http://127.0.0.1:8080/mcp"

func newOAuth(t *testing.T, as *testauth.Server, scopes ...string) *OAuth {
	t.Helper()
	o, err := NewOAuth(context.Background(), OAuthConfig{Issuer: as.Issuer(), Resource: resource, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

func TestOAuthAuthenticate(t *testing.T) {
	as, err := testauth.New()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	o := newOAuth(t, as, "mcp")
	mint := func(c testauth.Claims) string {
		tok, err := as.Token(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	foreign, err := as.ForeignToken(testauth.Claims{Audience: resource, Scope: "mcp"})
	if err != nil {
		t.Fatal(err)
	}
	// Tokens no key of the set signed: unsigned ("none"), and an HMAC
	// whose secret an attacker chose (the classic confusion with a public key).
	claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"test-user","scope":"mcp","exp":%d}`, as.Issuer(), resource, time.Now().Add(time.Hour).Unix())
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(claims)) + "."
	hsInput := b64([]byte(`{"alg":"HS256","typ":"JWT","kid":"test-key-1"}`)) + "." + b64([]byte(claims))
	mac := hmac.New(sha256.New, []byte("attacker-chosen"))
	mac.Write([]byte(hsInput))
	hmacToken := hsInput + "." + b64(mac.Sum(nil))
	for _, tc := range []struct {
		name, header string
		status       int
		code, reason string
	}{
		{"valid", "Bearer " + mint(testauth.Claims{Audience: resource, Scope: "mcp other", Extra: map[string]any{"client_id": "app-1"}}), 0, "", ""},
		{"no header", "", 401, "", "needs an OAuth access token"},
		{"basic", "Basic dXNlcjpwdw==", 401, "invalid_request", "Bearer"},
		{"garbage", "Bearer not.a.jwt", 401, "invalid_token", ""},
		{"expired", "Bearer " + mint(testauth.Claims{Audience: resource, Scope: "mcp", Expiry: time.Now().Add(-time.Hour)}), 401, "invalid_token", "expired"},
		{"other audience", "Bearer " + mint(testauth.Claims{Audience: "http://elsewhere/mcp", Scope: "mcp"}), 401, "invalid_token", "audience"},
		{"other issuer", "Bearer " + mint(testauth.Claims{Issuer: "http://evil.example", Audience: resource, Scope: "mcp"}), 401, "invalid_token", "authorization server"},
		{"foreign key", "Bearer " + foreign, 401, "invalid_token", "signature"},
		{"unsigned", "Bearer " + unsigned, 401, "invalid_token", ""},
		{"hmac", "Bearer " + hmacToken, 401, "invalid_token", ""},
		{"not yet valid", "Bearer " + mint(testauth.Claims{Audience: resource, Scope: "mcp", Extra: map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}}), 401, "invalid_token", "not valid yet"},
		{"missing scope", "Bearer " + mint(testauth.Claims{Audience: resource, Scope: "other"}), 403, "insufficient_scope", `"mcp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, resource, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			id, aerr := o.Authenticate(r)
			if tc.status == 0 {
				if aerr != nil {
					t.Fatalf("refused: %v", aerr)
				}
				if id.Subject != "test-user" || id.ClientID != "app-1" || len(id.Scopes) != 2 {
					t.Errorf("identity = %+v", id)
				}
				return
			}
			if aerr == nil {
				t.Fatalf("accepted: %+v", id)
			}
			if aerr.Status != tc.status || aerr.Code != tc.code || !strings.Contains(aerr.Msg, tc.reason) {
				t.Errorf("refusal = %d %q %q; want %d %q containing %q", aerr.Status, aerr.Code, aerr.Msg, tc.status, tc.code, tc.reason)
			}
			ch := o.Challenge(aerr)
			if !strings.HasPrefix(ch, `Bearer resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"`) ||
				!strings.Contains(ch, `scope="mcp"`) || (tc.code != "" && !strings.Contains(ch, `error="`+tc.code+`"`)) {
				t.Errorf("challenge = %s", ch)
			}
		})
	}
}

func TestOAuthMetadata(t *testing.T) {
	as, err := testauth.New()
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	o := newOAuth(t, as)
	if p := o.MetadataPaths(); len(p) != 2 || p[0] != "/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("metadata paths = %v", p)
	}
	w := httptest.NewRecorder()
	o.ServeMetadata(w, httptest.NewRequest(http.MethodGet, "/.well-known/oauth-protected-resource/mcp", nil))
	if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, `"resource":"`+resource+`"`) ||
		!strings.Contains(body, `"authorization_servers":["`+as.Issuer()+`"]`) {
		t.Errorf("metadata = %d %s", w.Code, body)
	}
}

func TestNewOAuthErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewOAuth(ctx, OAuthConfig{Issuer: "ftp://x", Resource: resource}); err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Errorf("bad issuer = %v", err)
	}
	if _, err := NewOAuth(ctx, OAuthConfig{Issuer: "http://127.0.0.1:1", Resource: resource}); err == nil || !strings.Contains(err.Error(), "no authorization server metadata") {
		t.Errorf("unreachable issuer = %v", err)
	}
}
