package front

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

// Transport names, as Session.Transport spells them.
const (
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
)

// Defaults of Options.
const (
	DefaultSessionMaxAge = 7 * 24 * time.Hour
	DefaultSSEKeepAlive  = 25 * time.Second
	DefaultMaxBody       = 4 << 20
)

// Bounds of what a session id carries; see Session.
const (
	MaxCapabilities = 2 << 10
	MaxUpstream     = 4 << 10
)

// Session is what the transport knows of the client session a message
// belongs to. On streamable HTTP it is decoded from the sealed session id of
// every request, so every replica sees the same; on SSE it lives in memory
// with the /sse stream (see sse.go).
type Session struct {
	ID                        string // "" before initialize and on 2026-07-28 (stateless) requests
	Protocol                  string // negotiated version (stateless: the MCP-Protocol-Version header)
	ClientName, ClientVersion string // from initialize, each cut to 64 bytes
	// Capabilities is the client capabilities object as sent in initialize
	// (at most MaxCapabilities bytes; larger is refused with -32602).
	Capabilities json.RawMessage
	// Upstream is the router's opaque state returned by Initialize, sealed
	// inside the id (at most MaxUpstream bytes).
	Upstream  []byte
	Paginate  bool   // ?pagination=true on the request URL (SSE: on the /sse URL)
	Transport string // TransportStreamableHTTP or TransportSSE
	// LogLevel is a stateless request's _meta logLevel ("" when absent: it
	// wants no notifications/message); see modern.go.
	LogLevel string
	// Credential is the request's Authorization header when the data plane
	// authenticates clients: a request relayed to another replica carries
	// it, so that the replica admits it too. It is never sent to a backend.
	Credential string
	// Allow, when set, says which servers the client's credential lets it
	// see and call (by their tags); the others are as if not there.
	Allow func(server string) bool
	// Principal names the authenticated credential (a client key id, a
	// token's subject) for logs; never the credential itself.
	Principal string
	// TraceParent and TraceState are the request's W3C trace context
	// headers (streamable HTTP and 2026-07-28 requests; "" on SSE, whose
	// session outlives a request).
	TraceParent, TraceState string
	// Peer is the Mcpmesh-Peer header of a GET or DELETE: another replica
	// sent it for the session's sake (the router signs and checks it).
	Peer string
	// Relayed says the request came from another replica, which relayed
	// it here to be served (the Mcpmesh-Relayed header): the router serves
	// it itself rather than relaying it again. A client that sends the
	// header only keeps its own request from being relayed.
	Relayed bool

	// issued is when the id was minted (unix seconds), for the deny-list.
	issued int64
	nonce  nonce
}

// Stream carries messages related to the request being handled.
type Stream interface {
	// Send writes a message related to the request being handled (progress,
	// a server-to-client request) before its response. On streamable HTTP
	// the first Send turns the POST's answer into an SSE stream; without any
	// Send the answer is one application/json body (the fast path). Send is
	// safe for concurrent use; it writes synchronously to the client (it
	// blocks while the connection does not take the bytes) and fails once
	// the request was answered or the client is gone.
	Send(msg []byte) error
}

// Router handles what clients send. The transport calls it from the HTTP
// handler's goroutine (Listening excepted) with the request's context, which
// is cancelled when the client disconnects. Messages and the Session point
// into the request body and must not be modified; they stay valid after the
// call returns (they are never reused).
type Router interface {
	// Initialize answers initialize; upstream is sealed into the session
	// id (SSE: kept in memory). s.Protocol holds the version the transport
	// would negotiate; the result's protocolVersion is what the session
	// records.
	Initialize(ctx context.Context, s *Session, params json.RawMessage) (result json.RawMessage, upstream []byte, err error)
	// Handle answers a request; err becomes its JSON-RPC error (jsonrpc.AsError).
	Handle(ctx context.Context, s *Session, req *jsonrpc.Message, out Stream) (json.RawMessage, error)
	// Notify receives client notifications (cancelled, initialized,
	// roots/list_changed, progress).
	Notify(ctx context.Context, s *Session, n *jsonrpc.Message)
	// Respond receives client answers to server-to-client requests.
	Respond(ctx context.Context, s *Session, resp *jsonrpc.Message)
	// Listening says a GET or SSE stream opened; ctx ends when it closes.
	// It runs in its own goroutine, which Close waits for.
	Listening(ctx context.Context, s *Session)
	// Ended says a session ended on this replica: DELETE, an expired id
	// presented here, or the end of an SSE stream. It may come more than
	// once for one session (an expired id presented twice).
	Ended(s *Session)
}

// Options configure a Front. Zero values mean defaults.
type Options struct {
	Router Router
	// Keys derives the session key ("mcpmesh session v2"); nil means a
	// keys.New() of its own (ids valid on this process only).
	Keys   *keys.Keys
	Logger *slog.Logger
	// Now is the clock of session expiry; tests inject one.
	Now func() time.Time
	// SessionMaxAge is how long after initialize an id is accepted
	// (DefaultSessionMaxAge). Ids are stateless: they cannot expire on
	// idleness.
	SessionMaxAge time.Duration
	// SecretGrace, when set, shortens how long ids sealed under the previous
	// cluster secret are accepted after a rotation; the previous secret is
	// never accepted longer than Keys keeps it (keys.Options.Grace).
	SecretGrace time.Duration
	// SSEKeepAlive is the interval of keep-alive comments on GET and SSE
	// streams, and on the answer of a POST that takes longer than it (which
	// then becomes an event stream) (DefaultSSEKeepAlive).
	SSEKeepAlive time.Duration
	// MaxBody bounds a POST body (DefaultMaxBody); larger gets 413.
	MaxBody int64
	// MaxConcurrent bounds the POSTs one client may have in flight
	// (DefaultMaxConcurrent; negative: no bound); more get 429.
	MaxConcurrent int
	// Browsers vets every request's Host and Origin headers (origin.go); a
	// refusal is answered 403 saying why. nil means NewBrowserPolicy(nil,
	// nil): requests without Origin and from loopback origins.
	Browsers *BrowserPolicy
	// Auth, when set, vets every request's credential before anything else
	// but the origin check: a non-zero status refuses it with that status,
	// the WWW-Authenticate challenge (if any) and msg. Otherwise the Grant
	// says what the credential may do (Session.Allow, Session.Principal).
	Auth func(r *http.Request) (g Grant, status int, challenge, msg string)
	// StreamQueue bounds the messages waiting for one GET or SSE stream
	// (default 256); a stream that falls further behind is closed.
	StreamQueue int
}

// Front serves the MCP transports. It is safe for concurrent use.
type Front struct {
	router    Router
	log       *slog.Logger
	codec     *codec
	keepAlive time.Duration
	maxBody   int64
	inflight  inflight
	browsers  *BrowserPolicy
	auth      func(*http.Request) (Grant, int, string, string)
	queueLen  int

	streams registry
	listens listenSet // open subscriptions/listen requests (modern.go)

	// mu guards closed against wg.Add: every stream and Listening goroutine
	// is counted in wg, which Close waits for.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a Front. o.Router is required.
func New(o Options) *Front {
	if o.Router == nil {
		panic("front: Options.Router is nil")
	}
	if o.Keys == nil {
		o.Keys = keys.New()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionMaxAge <= 0 {
		o.SessionMaxAge = DefaultSessionMaxAge
	}
	if o.SSEKeepAlive <= 0 {
		o.SSEKeepAlive = DefaultSSEKeepAlive
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.StreamQueue <= 0 {
		o.StreamQueue = 256
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.Browsers == nil {
		o.Browsers, _ = NewBrowserPolicy(nil, nil)
	}
	return &Front{
		router:    o.Router,
		log:       o.Logger,
		codec:     newCodec(o.Keys, o.SessionMaxAge, o.SecretGrace, o.Now),
		keepAlive: o.SSEKeepAlive,
		maxBody:   o.MaxBody,
		inflight:  inflight{max: o.MaxConcurrent, n: map[string]int{}},
		browsers:  o.Browsers,
		auth:      o.Auth,
		queueLen:  o.StreamQueue,
		streams:   registry{m: map[string]*listener{}},
	}
}

// Handler serves /mcp, /sse and /message.
// The caller's mux routes those paths here (it also cleans paths), so a
// switch on the path is all the second routing needed: a mux of its own
// matched every request again.
func (f *Front) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/mcp":
			f.serveMCP(w, r)
		case "/sse":
			f.serveSSE(w, r)
		case "/message":
			f.serveMessage(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// Push sends an unsolicited message to the open GET or SSE stream of the
// session on this replica. It is false when there is none, or when the
// stream is too far behind (it is then closed: the client reconnects).
func (f *Front) Push(sessionID string, msg []byte) bool {
	l := f.streams.get(sessionID)
	return l != nil && l.offer(msg)
}

// Broadcast sends msg to every open stream on this replica (list_changed).
func (f *Front) Broadcast(msg []byte) { f.streams.each(func(l *listener) { l.offer(msg) }) }

// Close ends every open stream, so that an http.Server.Shutdown after it does
// not wait for them, and waits for their handlers and Listening calls to
// return. Streams opened after Close are refused with 503.
func (f *Front) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.streams.each(func(l *listener) { l.stop() })
	f.listens.close()
	f.wg.Wait()
	return nil
}

// track counts a stream handler (or a Listening call) in wg; false after Close.
func (f *Front) track() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

// listening runs Router.Listening in a goroutine Close waits for.
func (f *Front) listening(ctx context.Context, s *Session) {
	if !f.track() {
		return
	}
	go func() {
		defer f.wg.Done()
		f.router.Listening(ctx, s)
	}()
}

var errClosing = errors.New("the data plane is shutting down")

// Grant is what Options.Auth learned of a request's credential.
type Grant struct {
	// Allow, when not nil, says which servers the credential may see and
	// call (Session.Allow).
	Allow func(server string) bool
	// Principal names the credential in logs (Session.Principal).
	Principal string
}

type grantKey struct{}

// traceContext gives a per-request s the request's W3C trace context.
func traceContext(s *Session, r *http.Request) {
	s.TraceParent, s.TraceState = r.Header.Get("Traceparent"), r.Header.Get("Tracestate")
}

// Ref is a short, stable name of the session for logs and traces (the hex
// of its id's random nonce, which is no credential: the id itself is a
// bearer of the session and never logged); "" for a stateless request.
func (s *Session) Ref() string {
	if s.nonce == (nonce{}) {
		return ""
	}
	return hex.EncodeToString(s.nonce[:8])
}

// bind gives s what the request's credential allows: Credential (its
// Authorization header, when clients authenticate) and Allow.
func (f *Front) bind(s *Session, r *http.Request) {
	if f.auth == nil {
		return
	}
	s.Credential = r.Header.Get("Authorization")
	if g, ok := r.Context().Value(grantKey{}).(*Grant); ok {
		s.Allow, s.Principal = g.Allow, g.Principal
	}
}
