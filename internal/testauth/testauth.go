// Package testauth is a real local OAuth 2.1 authorization server for tests,
// and an OAuth-protected MCP backend that trusts it.
//
// The authorization server publishes RFC 8414 metadata and a JWKS, accepts
// RFC 7591 dynamic client registration, runs the authorization code flow
// with a plain HTML consent page (PKCE S256 required, RFC 8707 resource
// required), refreshes with rotation, revokes (RFC 7009), and mints signed
// JWT access tokens with a configurable lifetime. It also mints tokens on
// request (Token), for tests of resource servers.
//
// Test controls, in process (RevokeClient, RevokeAll, Stats,
// SetAccessTokenTTL) and over HTTP for a separate process (demo-backend
// --oauth-as, see internal/testbackend/cmd/demo-backend):
//
//	POST /_test/revoke?client_id=ID   revoke every grant of a client (all clients without client_id)
//	GET  /_test/stats                 {"token_calls":N,"refresh_calls":N,"registrations":N,"revocations":N}
//	POST /_test/token-ttl?d=2s        set the lifetime of access tokens issued from now on
package testauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Options configure an authorization server. The zero value is usable.
type Options struct {
	// Addr to listen on (e.g. "127.0.0.1:9000"); empty means a random
	// loopback port.
	Addr string
	// AccessTokenTTL is the lifetime of issued access tokens; 0 means an hour.
	AccessTokenTTL time.Duration
	// Subject is the user who approves on the consent page; empty means
	// "test-user".
	Subject string
	// Scopes advertised in the metadata (scopes_supported).
	Scopes []string
	// CIMD advertises client_id_metadata_document_supported (the server
	// does not fetch such documents: a client must still register).
	CIMD bool
	// PlainOnly advertises only the "plain" PKCE method (a non-compliant
	// server, for clients' negative tests); the token endpoint still
	// requires S256.
	PlainOnly bool
	// NoRevocation leaves revocation_endpoint out of the metadata.
	NoRevocation bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats counts calls to the token endpoint, for tests.
type Stats struct {
	// TokenCalls counts authorization_code exchanges (successful or not).
	TokenCalls int `json:"token_calls"`
	// RefreshCalls counts refresh_token grants (successful or not).
	RefreshCalls  int `json:"refresh_calls"`
	Registrations int `json:"registrations"`
	Revocations   int `json:"revocations"`
}

// Server is a running test authorization server.
type Server struct {
	ts   *httptest.Server
	key  jwk.Key // private signing key
	opts Options

	mu       sync.Mutex
	ttl      time.Duration
	clients  map[string]*client   // by client_id
	pending  map[string]*consent  // consent page requests by id
	codes    map[string]*authCode // by code
	grants   map[string]*grant    // by grant id
	refresh  map[string]*grant    // current refresh token → grant
	rotated  map[string]*grant    // refresh tokens already rotated away → grant (reuse detection)
	accesses map[string]*grant    // access token jti → grant
	revokedJ map[string]bool      // access tokens revoked on their own
	stats    Stats
}

// New starts a server with default options; Close stops it.
func New() (*Server, error) { return Start(Options{}) }

// Start starts a server; Close stops it.
func Start(opts Options) (*Server, error) {
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Subject == "" {
		opts.Subject = "test-user"
	}
	ttl := opts.AccessTokenTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	s := &Server{
		key: key, opts: opts, ttl: ttl,
		clients: map[string]*client{}, pending: map[string]*consent{}, codes: map[string]*authCode{},
		grants: map[string]*grant{}, refresh: map[string]*grant{}, rotated: map[string]*grant{},
		accesses: map[string]*grant{}, revokedJ: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveMetadata)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	mux.HandleFunc("POST /register", s.serveRegister)
	mux.HandleFunc("GET /authorize", s.serveAuthorize)
	mux.HandleFunc("POST /authorize", s.serveConsent)
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /revoke", s.serveRevoke)
	mux.HandleFunc("POST /_test/revoke", s.serveTestRevoke)
	mux.HandleFunc("GET /_test/stats", s.serveTestStats)
	mux.HandleFunc("POST /_test/token-ttl", s.serveTestTTL)
	s.ts = httptest.NewUnstartedServer(mux)
	if opts.Addr != "" {
		ln, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
		}
		_ = s.ts.Listener.Close()
		s.ts.Listener = ln
	}
	s.ts.Start()
	return s, nil
}

// Issuer is the server's issuer URL.
func (s *Server) Issuer() string { return s.ts.URL }

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// Stats returns the call counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// SetAccessTokenTTL sets the lifetime of access tokens issued from now on.
func (s *Server) SetAccessTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// RevokeClient revokes every grant of a client: its access tokens stop
// validating and a refresh fails with invalid_grant. It returns how many
// grants it revoked.
func (s *Server) RevokeClient(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.grants {
		if !g.revoked && (clientID == "" || g.clientID == clientID) {
			g.revoked = true
			n++
		}
	}
	return n
}

// RevokeAll revokes every grant of every client.
func (s *Server) RevokeAll() int { return s.RevokeClient("") }

// Clients returns the ids of the registered clients.
func (s *Server) Clients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.clients))
	for id := range s.clients {
		out = append(out, id)
	}
	return out
}

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
	now := s.opts.Now()
	if c.Issuer == "" {
		c.Issuer = s.Issuer()
	}
	if c.Subject == "" {
		c.Subject = "test-user"
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(time.Hour)
	}
	b := jwt.NewBuilder().Issuer(c.Issuer).Subject(c.Subject).Audience([]string{c.Audience}).
		IssuedAt(now).Expiration(c.Expiry)
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
