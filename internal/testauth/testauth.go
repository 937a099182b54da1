// Package testauth is a local OAuth 2.1 authorization server for tests: it
// publishes RFC 8414 metadata and a JWKS, and mints signed JWT access
// tokens. It issues tokens on request (Token), not through a browser flow.
package testauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Server is a running test authorization server.
type Server struct {
	ts  *httptest.Server
	key jwk.Key // private signing key
}

// New starts a server; Close stops it.
func New() (*Server, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return nil, err
	}
	_ = key.Set(jwk.KeyIDKey, "test-key-1")
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256())
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	s := &Server{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                           s.Issuer(),
			"jwks_uri":                         s.Issuer() + "/jwks",
			"authorization_endpoint":           s.Issuer() + "/authorize",
			"token_endpoint":                   s.Issuer() + "/token",
			"code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	s.ts = httptest.NewServer(mux)
	return s, nil
}

// Issuer is the server's issuer URL.
func (s *Server) Issuer() string { return s.ts.URL }

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// Claims of a token to mint; zero fields get defaults (sub "test-user",
// expiry in an hour, issued now).
type Claims struct {
	Issuer   string // default: the server's
	Audience string
	Subject  string
	Scope    string // space-separated
	Expiry   time.Time
	Extra    map[string]any
}

// Token mints an access token signed with the server's key.
func (s *Server) Token(c Claims) (string, error) {
	return s.sign(c, s.key)
}

// ForeignToken mints a token signed with a key the server does not publish.
func (s *Server) ForeignToken(c Claims) (string, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	k, err := jwk.Import(raw)
	if err != nil {
		return "", err
	}
	_ = k.Set(jwk.KeyIDKey, "test-key-1") // the same kid: only the signature tells
	return s.sign(c, k)
}

func (s *Server) sign(c Claims, key jwk.Key) (string, error) {
	if c.Issuer == "" {
		c.Issuer = s.Issuer()
	}
	if c.Subject == "" {
		c.Subject = "test-user"
	}
	if c.Expiry.IsZero() {
		c.Expiry = time.Now().Add(time.Hour)
	}
	b := jwt.NewBuilder().Issuer(c.Issuer).Subject(c.Subject).Audience([]string{c.Audience}).
		IssuedAt(time.Now()).Expiration(c.Expiry)
	if c.Scope != "" {
		b = b.Claim("scope", c.Scope)
	}
	for k, v := range c.Extra {
		b = b.Claim(k, v)
	}
	t, err := b.Build()
	if err != nil {
		return "", err
	}
	signed, err := jwt.Sign(t, jwt.WithKey(jwa.ES256(), key))
	if err != nil {
		return "", err
	}
	return string(signed), nil
}
