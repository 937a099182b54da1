package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// Server is one backend as the router uses it; *backend.Backend is one.
type Server interface {
	Name() string
	State() mcpmeshv1.BackendState
	Request(ctx context.Context, r backend.Request) (json.RawMessage, error)
	Notify(ctx context.Context, cs *backend.ClientSession, method string, params json.RawMessage) error
	ToolRetryable(name string) bool
	Catalog() (catalog.Server, bool)
	FetchPage(ctx context.Context, k catalog.Kind, cursor string) (catalog.Page, error)
	Capabilities() json.RawMessage
	// Connected reports whether an endpoint is ready for requests.
	Connected() bool
	// Per-client upstream sessions (backend.Backend documents them).
	PerClient() bool
	OpenSession(ctx context.Context, init backend.SessionInit) (backend.Upstream, error)
	CloseSession(ctx context.Context, cs *backend.ClientSession) error
	Listen(ctx context.Context, cs *backend.ClientSession) error
}

// Servers is where the router finds backends; backend.Manager is one (through Adapt).
type Servers interface {
	List() []Server
	Get(name string) (Server, bool)
}

// Clients is the way back to clients that have no request open: the front's
// per-session streams on this replica.
type Clients interface {
	Push(sessionID string, msg []byte) bool
	Broadcast(msg []byte)
}

// Options configure a Router.
type Options struct {
	Servers Servers
	// Observe, when set, is told the method, the server it was routed to
	// ("" when the gateway answered it), the outcome (OutcomeOK,
	// OutcomeToolError, OutcomeError) and the duration of every client request.
	Observe func(method, server, status string, d time.Duration)
	// AccessLog, when set, gets one line per client request at info level
	// (warn for a failure of the gateway or a backend): method, server,
	// tool, prompt or URI, duration, outcome, JSON-RPC error code, request
	// id, client session (Session.Ref), credential (Session.Principal).
	AccessLog *slog.Logger
	// Tracer, when set, traces every client request (a server span) and
	// every call forwarded upstream (a client span), and passes the trace
	// context to backends (traceparent header and params._meta). nil: no
	// span is ever made.
	Tracer trace.Tracer
	// Advertise is the address other replicas reach this one on (host:port
	// of its MCP listener), for answers to relayed requests that a balancer
	// sends to another replica.
	Advertise string
	// Keys derives the key that signs replica addresses; nil means keys of
	// this process only (answers are then not forwarded between replicas).
	Keys   *keys.Keys
	Logger *slog.Logger
}

// Router implements front.Router.
type Router struct {
	servers Servers
	observe func(method, server, status string, d time.Duration)
	access  *slog.Logger
	tracer  trace.Tracer
	log     *slog.Logger
	clients atomic.Pointer[clientsBox]

	advertise string
	keys      *keys.Keys
	peers     *http.Client
	// proxyClient carries requests and streams relayed to other replicas
	// (peers.go); they last as long as the client's, so it has no timeout.
	proxyClient *http.Client

	cat   atomic.Pointer[catalog.Catalog]
	lists atomic.Pointer[listConfig]

	mu       sync.Mutex // guards the fingerprints and serialises Refresh
	fp       [4]uint64
	refreshd bool
	// logged holds the catalog problems already logged, so that a refresh
	// logs only new ones.
	logged map[catalog.Problem]bool

	relay     relay
	listeners listeners // subscriptions/listen streams (modern.go)
}

type clientsBox struct{ Clients }

// listConfig is what the latest snapshot says about list methods.
type listConfig struct {
	paginate bool
	pageSize int
	revision uint64
	key      []byte
}

var _ front.Router = (*Router)(nil)

// New returns a router serving an empty catalog until Refresh.
func New(o Options) *Router {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observe == nil {
		o.Observe = func(string, string, string, time.Duration) {}
	}
	if o.Keys == nil {
		o.Keys = keys.New()
	}
	r := &Router{servers: o.Servers, observe: o.Observe, access: o.AccessLog, tracer: o.Tracer, log: o.Logger, advertise: o.Advertise, keys: o.Keys,
		peers: &http.Client{Timeout: forwardTimeout, Transport: newPeerTransport()}, proxyClient: &http.Client{Transport: newPeerTransport()}}
	r.cat.Store(catalog.Build(nil))
	r.lists.Store(&listConfig{pageSize: catalog.DefaultPageSize, key: randomKey()})
	r.relay.init(r)
	return r
}

func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crashes the program instead)
	return k
}

// SetClients connects the router to the front it serves (they refer to
// each other, so one is given to the other after both exist).
func (r *Router) SetClients(c Clients) { r.clients.Store(&clientsBox{c}) }

func (r *Router) push(sessionID string, msg []byte) bool {
	if c := r.clients.Load(); c != nil {
		return c.Push(sessionID, msg)
	}
	return false
}

func (r *Router) broadcast(msg []byte) {
	if c := r.clients.Load(); c != nil {
		c.Broadcast(msg)
	}
}

// SetConfig applies the list settings of a snapshot and the key that signs
// cursors (derived from the cluster secret).
func (r *Router) SetConfig(settings *mcpmeshv1.Settings, cursorKey []byte, revision uint64) {
	p := settings.GetPagination()
	// catalog.List bounds the size (0 is its default).
	cfg := &listConfig{paginate: p.GetEnabled(), pageSize: int(p.GetPageSize()), revision: revision, key: cursorKey}
	if len(cfg.key) == 0 {
		cfg.key = r.lists.Load().key
	}
	r.lists.Store(cfg)
}

// Catalog returns what is served now.
func (r *Router) Catalog() *catalog.Catalog { return r.cat.Load() }

// Shadowed is the catalog's report of names an earlier server keeps.
func (r *Router) Shadowed() map[string][]string { return r.cat.Load().Shadowed() }

// Refresh rebuilds the catalog from the ready backends and tells every
// client with an open stream which lists changed.
func (r *Router) Refresh() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var servers []catalog.Server
	for _, s := range r.servers.List() {
		if cs, ok := s.Catalog(); ok {
			servers = append(servers, cs)
		}
	}
	cat := catalog.Build(servers)
	r.cat.Store(cat)
	r.logProblems(cat)
	var changed []catalog.Kind
	for _, k := range catalog.Kinds {
		fp := fingerprint(cat, k)
		if r.refreshd && fp != r.fp[k] {
			changed = append(changed, k)
		}
		r.fp[k] = fp
	}
	r.refreshd = true
	if len(changed) > 0 {
		r.listChangedToListeners(changed)
	}
	sent := map[string]bool{}
	for _, k := range changed {
		m := listChangedMethod(k)
		if !sent[m] {
			sent[m] = true
			r.broadcast(jsonrpc.Notification(m, nil))
		}
	}
}

// fingerprint hashes the whole exposed list of kind k.
func fingerprint(cat *catalog.Catalog, k catalog.Kind) uint64 {
	res, err := cat.List(context.Background(), k, catalog.ListRequest{}, nil)
	h := fnv.New64a()
	if err != nil {
		h.Write([]byte(err.Error()))
	}
	h.Write(res)
	return h.Sum64()
}

func listChangedMethod(k catalog.Kind) string {
	switch k {
	case catalog.Tools:
		return "notifications/tools/list_changed"
	case catalog.Prompts:
		return "notifications/prompts/list_changed"
	default:
		return "notifications/resources/list_changed"
	}
}

func (r *Router) relayKey() []byte { return r.keys.Derive(relayLabel) }

// replicaTag makes this replica's progress tokens and request ids its own.
var replicaTag = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// quote is s as a JSON string.
func quote(s string) json.RawMessage { return jsonrpc.Quote(s) }

func errorf(code int, format string, args ...any) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// logProblems logs what the catalog left out, once per problem.
func (r *Router) logProblems(cat *catalog.Catalog) {
	now := map[catalog.Problem]bool{}
	for _, p := range cat.Problems() {
		now[p] = true
		if r.logged[p] {
			continue
		}
		attrs := []any{"server", p.Server, "reason", p.Reason}
		if p.Key != "" {
			attrs = append(attrs, "kind", p.Kind.String(), "item", p.Key)
		}
		if p.KeptBy != "" {
			attrs = append(attrs, "kept_by", p.KeptBy)
		}
		r.log.Warn("catalog: backend item not served", attrs...)
	}
	r.logged = now
}
