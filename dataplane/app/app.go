package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/clientauth"
	"github.com/mcpmesh/mcpmesh/dataplane/configclient"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/h1"
	"github.com/mcpmesh/mcpmesh/dataplane/httpapi"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
	"github.com/mcpmesh/mcpmesh/dataplane/oauthpage"
	"github.com/mcpmesh/mcpmesh/dataplane/router"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/mcpmesh/mcpmesh/internal/authtoken"
)

// DefaultShutdownTimeout bounds the drain of a graceful stop (Config.ShutdownTimeout).
const DefaultShutdownTimeout = 30 * time.Second

// goodbyeTimeout bounds telling the control plane this data plane leaves.
const goodbyeTimeout = 2 * time.Second

// cursorLabel names the key that signs list cursors.
const cursorLabel = keys.CursorLabel

// Config is what a data plane is started with.
type Config struct {
	ControlPlane string // gRPC address of the control plane
	ID           string // data plane id
	Token        string // credential for the config stream
	// ControlPlaneCreds secure the config stream (TLS); nil is plaintext.
	ControlPlaneCreds credentials.TransportCredentials
	// ListenTLS, if set, makes the MCP listener serve TLS (HTTP/1.1 only).
	ListenTLS *tls.Config
	// Advertise is the host:port other replicas reach this one's MCP
	// listener on (AdvertiseAddr gives the default for a listener).
	Advertise string
	// PublicURL is the base URL browsers reach this data plane on
	// (PublicURL, --public-url): the /oauth page and its OAuth callback are
	// under it; "" means http://<Advertise>.
	PublicURL string
	Logger    *slog.Logger
	// Limits bound what clients and backends can make the data plane hold
	// or wait for; zero fields take the defaults.
	Limits Limits
	// OAuth, when set, makes the data plane an OAuth resource server: every
	// MCP request needs an access token it accepts (clientauth).
	OAuth *clientauth.OAuth
	// ClientKeys, when set, makes every MCP request need an API key issued
	// by mcpctl client-key create (or, with OAuth too, either credential);
	// the live keys arrive in config snapshots (clientauth.Keys).
	ClientKeys bool
	// ChildEnv names variables of the data plane's environment stdio
	// backends inherit besides backend.DefaultChildEnv.
	ChildEnv []string
	// AllowedOrigins and AllowedHosts add browser origins and Host names to
	// what the MCP endpoints serve (front.BrowserPolicy; --allowed-origins,
	// --allowed-hosts). The Advertise host is always allowed: other
	// replicas send it.
	AllowedOrigins, AllowedHosts []string
	// AllowPrivateEgress lets URL backends reach link-local and metadata
	// addresses (--allow-private-egress).
	AllowPrivateEgress bool
	// ShutdownTimeout bounds how long a stop waits for the client requests
	// in flight (--shutdown-timeout); 0 is DefaultShutdownTimeout. Past it
	// the remaining connections are cut. Closing backends comes after it
	// (a stdio child gets a few seconds more to exit).
	ShutdownTimeout time.Duration
	// AccessLog turns on the router's line per client request (at info
	// level on Logger; dataplane --access-log).
	AccessLog bool
	// Tracer, when set, traces client requests and upstream calls
	// (internal/tracing); nil: tracing off.
	Tracer trace.Tracer
}

// Limits bound what clients and backends can make a data plane hold or
// wait for. Zero fields take the defaults of the package that applies them.
type Limits struct {
	MaxBody           int64         // a client's POST body (front.DefaultMaxBody); 413 past it
	MaxHeaderBytes    int           // a request's head (1 MB); 431 past it
	ReadHeaderTimeout time.Duration // reading a request's head (h1.DefaultReadHeaderTimeout)
	BodyTimeout       time.Duration // reading a request's body (h1.DefaultBodyTimeout); 408 past it
	IdleTimeout       time.Duration // a keep-alive connection with no request (h1.DefaultIdleTimeout)
	MaxConcurrent     int           // POSTs in flight per client (front.DefaultMaxConcurrent); 429 past it
	Lists             catalog.Limits
}

// DataPlane is a built, not yet running data plane.
type DataPlane struct {
	cfg       Config
	log       *slog.Logger
	mgr       *backend.Manager
	router    *router.Router
	front     *front.Front
	api       *httpapi.API
	client    atomic.Pointer[configclient.Client]
	keys      *keys.Keys
	ckeys     *clientauth.Keys // nil unless Config.ClientKeys
	readiness *httpapi.Readiness
	// cp is a connection to the control plane with no credential of its
	// own, for OAuthService and TokenService calls (each call brings the
	// data plane's token or a signed-in operator's).
	cp        *grpc.ClientConn
	publicURL string
}

// New wires a data plane. Nothing runs until Serve.
func New(cfg Config) (_ *DataPlane, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &DataPlane{cfg: cfg, log: log, keys: keys.New(), publicURL: cfg.PublicURL}
	if d.publicURL == "" {
		d.publicURL = "http://" + cfg.Advertise
	}
	cp, err := configclient.Dial(cfg.ControlPlane, cfg.ControlPlaneCreds)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = cp.Close() // nothing else holds it
		}
	}()
	d.cp = cp
	d.readiness = httpapi.NewReadiness(httpapi.ReadinessOptions{Logger: log.With("component", "readiness")})

	// The router and the manager refer to each other (backends relay what
	// they receive through the router; the router reads the backends), so
	// the manager's callbacks go through d.
	hosts := cfg.AllowedHosts
	if h, _, err := net.SplitHostPort(cfg.Advertise); err == nil && h != "" {
		hosts = append(hosts[:len(hosts):len(hosts)], h)
	}
	browsers, err := front.NewBrowserPolicy(cfg.AllowedOrigins, hosts)
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Options{
		DataPlaneID: cfg.ID,
		Health:      func() []*mcpmeshv1.BackendHealth { return d.mgr.Health() },
		Revision: func() uint64 {
			if c := d.client.Load(); c != nil {
				return c.Revision()
			}
			return 0
		},
		Connected: func() bool { c := d.client.Load(); return c != nil && c.Connected() },
		Shadowed:  func() map[string][]string { return d.router.Shadowed() },
		Protocols: func() map[string]string { return d.mgr.Protocols() },
		Sessions:  func() map[string]int { return d.mgr.Sessions() },
		Ready:     d.readiness.Ready,
		Logger:    log.With("component", "httpapi"),
	})
	if err != nil {
		return nil, err
	}
	d.api = api
	d.mgr = backend.NewManager(backend.ManagerOptions{
		Logger:             log.With("component", "backend"),
		PublicURL:          d.publicURL,
		Refresh:            d.refreshToken,
		AllowPrivateEgress: cfg.AllowPrivateEgress,
		OnChange:           d.onBackendChange,
		ListLimits:         cfg.Limits.Lists,
		ChildEnv:           cfg.ChildEnv,
		Observer:           api,
		OnNotification: func(server, client string, n *jsonrpc.Message) {
			api.ObserveNotification(server, n.Method)
			d.router.OnNotification(server, client, n)
		},
		OnRequest: func(ctx context.Context, server, client string, req *jsonrpc.Message) (json.RawMessage, error) {
			res, err := d.router.OnRequest(ctx, server, client, req)
			api.ObserveServerRequest(server, req.Method, err)
			return res, err
		},
	})
	var access *slog.Logger
	if cfg.AccessLog {
		access = log.With("component", "access")
	}
	d.router = router.New(router.Options{
		Servers:   router.Adapt[*backend.Backend](d.mgr),
		Observe:   api.ObserveMCP,
		AccessLog: access,
		Tracer:    cfg.Tracer,
		Advertise: cfg.Advertise,
		Keys:      d.keys,
		Logger:    log.With("component", "router"),
	})
	d.router.Refresh() // an empty, valid catalog until the first snapshot
	var auth func(*http.Request) (front.Grant, int, string, string)
	if cfg.ClientKeys {
		d.ckeys = clientauth.NewKeys()
	}
	if cfg.OAuth != nil || d.ckeys != nil {
		o := &clientauth.Authenticator{Keys: d.ckeys, OAuth: cfg.OAuth}
		auth = func(r *http.Request) (front.Grant, int, string, string) {
			id, err := o.Authenticate(r)
			if err != nil {
				return front.Grant{}, err.Status, o.Challenge(err), err.Msg
			}
			g := front.Grant{Principal: id.Subject}
			if len(id.Tags) > 0 {
				g.Allow = func(server string) bool {
					b, ok := d.mgr.Get(server)
					return ok && clientauth.Allows(id.Tags, b.Config().GetTags())
				}
			}
			return g, 0, "", ""
		}
	}
	d.front = front.New(front.Options{
		Auth:          auth,
		Browsers:      browsers,
		Router:        d.router,
		Keys:          d.keys,
		Logger:        log.With("component", "front"),
		MaxBody:       cfg.Limits.MaxBody,
		MaxConcurrent: cfg.Limits.MaxConcurrent,
	})
	d.router.SetClients(d.front)
	return d, nil
}

func (d *DataPlane) onBackendChange() {
	if d.router != nil {
		d.refresh()
	}
	if c := d.client.Load(); c != nil {
		c.NotifyHealth()
	}
}

// refresh rebuilds the catalog and tells readiness whether every backend
// had made its first connect attempt before the rebuild.
func (d *DataPlane) refresh() {
	d.readiness.Rebuild(d.firstAttemptPending, d.router.Refresh)
}

// apply takes a config snapshot.
func (d *DataPlane) apply(_ context.Context, snap *mcpmeshv1.ConfigSnapshot) error {
	if len(snap.GetClusterSecret()) == 0 {
		// An admin token gets masked snapshots: serving them would sign
		// with a key no other replica holds, and "***" for every secret.
		err := errors.New("the control plane sent no cluster secret: is the token a dataplane token? (mcpctl token create --role dataplane)")
		d.log.Error("config snapshot refused", "revision", snap.GetRevision(), "err", err)
		d.api.ObserveApply(0, err)
		return err
	}
	start := time.Now()
	err := d.applySnapshot(snap)
	d.api.ObserveApply(time.Since(start), err)
	return err
}

func (d *DataPlane) applySnapshot(snap *mcpmeshv1.ConfigSnapshot) error {
	if err := d.mgr.Apply(snap); err != nil {
		return err
	}
	names := make([]string, 0, len(snap.GetServers()))
	for _, srv := range snap.GetServers() {
		names = append(names, srv.GetName())
	}
	d.api.SetServers(names)
	var previous []keys.Retired
	for _, p := range snap.GetPreviousSecrets() {
		previous = append(previous, keys.Retired{Secret: p.GetSecret(), Until: p.GetExpiresAt().AsTime()})
	}
	d.keys.Update(snap.GetClusterSecret(), previous)
	if d.ckeys != nil {
		d.ckeys.Set(snap.GetClientKeys())
		if n := d.front.Reauthorize(); n > 0 { // a revoked key's open streams end now
			d.log.Info("client streams ended after a key change", "streams", n)
		}
	}
	// Settings and key before the lists, so the first page cut from this
	// snapshot's lists follows its rules.
	d.router.SetConfig(snap.GetSettings(), d.keys.Derive(cursorLabel), snap.GetRevision())
	d.readiness.Applied()
	d.refresh()
	return nil
}

// firstAttemptPending counts the backends still making their first connect
// attempt: until it is zero, a rebuilt list may lack some of them.
func (d *DataPlane) firstAttemptPending() int {
	n := 0
	for _, b := range d.mgr.List() {
		if b.State() == mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING {
			n++
		}
	}
	return n
}

// Serve runs the data plane on ln until ctx ends or something fails for
// good, then stops everything it started.
func (d *DataPlane) Serve(ctx context.Context, ln net.Listener) error {
	client := configclient.New(configclient.Options{
		Addr:                 d.cfg.ControlPlane,
		Token:                d.cfg.Token,
		TransportCredentials: d.cfg.ControlPlaneCreds,
		DataPlaneID:          d.cfg.ID,
		Version:              version.Version,
		ListenAddr:           ln.Addr().String(),
		PublicURL:            d.publicURL,
		Logger:               d.log.With("component", "configclient"),
		Apply:                d.apply,
		Health:               d.mgr.Health,
	})
	d.client.Store(client)
	mux := http.NewServeMux()
	d.api.Register(mux)
	fh := d.front.Handler()
	for _, p := range []string{"/mcp", "/sse", "/message"} {
		mux.Handle(p, fh)
	}
	page, err := oauthpage.New(oauthpage.Options{
		Conn:      d.cp,
		Keys:      d.keys,
		PublicURL: d.publicURL,
		Ready:     func() bool { return client.Revision() > 0 },
		Backends:  oauthpage.BackendStates(d.mgr.Health),
		Logger:    d.log.With("component", "oauthpage"),
	})
	if err != nil {
		return err
	}
	page.Register(mux)
	if o := d.cfg.OAuth; o != nil {
		for _, p := range o.MetadataPaths() {
			mux.HandleFunc(p, o.ServeMetadata)
		}
	}
	// h1.Server, not net/http's: it starts no goroutine for a request
	// answered within a few milliseconds (see its doc).
	drain := newDrainer()
	httpSrv := &h1.Server{
		Handler:           drain.wrap(d.api.Instrument(mux)),
		ReadHeaderTimeout: d.cfg.Limits.ReadHeaderTimeout,
		BodyTimeout:       d.cfg.Limits.BodyTimeout,
		IdleTimeout:       d.cfg.Limits.IdleTimeout,
		MaxHeaderBytes:    d.cfg.Limits.MaxHeaderBytes,
		Logger:            d.log.With("component", "http"),
	}
	scheme := "http"
	if d.cfg.ListenTLS != nil {
		// h1 handshakes each *tls.Conn itself, under its read-header timeout.
		// The TCP connections under TLS get h1's raw socket I/O too.
		ln = tls.NewListener(h1.WrapListener(ln), d.cfg.ListenTLS)
		scheme = "https"
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	// Not ended by ctx: a stop first says goodbye on the stream (shutdown).
	clientCtx, stopClient := context.WithCancel(context.WithoutCancel(ctx))
	defer stopClient()
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Run(clientCtx) }()

	if d.cfg.OAuth != nil || d.ckeys != nil {
		// Credentials also expire while their streams are open.
		reauthCtx, stopReauth := context.WithCancel(ctx)
		reauthDone := make(chan struct{})
		go func() {
			defer close(reauthDone)
			t := time.NewTicker(reauthorizeEvery)
			defer t.Stop()
			for {
				select {
				case <-reauthCtx.Done():
					return
				case <-t.C:
					d.front.Reauthorize()
				}
			}
		}()
		defer func() { stopReauth(); <-reauthDone }()
	}

	base := scheme + "://" + ln.Addr().String()
	d.log.Info("data plane serving",
		"mcp_url", base+"/mcp", "sse_url", base+"/sse", "health_url", base+"/health", "oauth_url", d.publicURL+"/oauth",
		"dataplane", d.cfg.ID, "control_plane", d.cfg.ControlPlane, "version", version.Version)

	var failed error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case err := <-serveErr:
		failed = fmt.Errorf("serve HTTP: %w", err)
	case err := <-clientDone:
		// Run returns early only when it gives up (e.g. a rejected token).
		failed = fmt.Errorf("config client stopped: %w", err)
		clientDone <- err
	}

	d.shutdown(httpSrv, drain, client, stopClient, clientDone)
	d.log.Info("stopped")
	return failed
}

// reauthorizeEvery is how often open client streams have their credential
// checked again, so that an expired key or token stops receiving messages.
const reauthorizeEvery = 15 * time.Second

// shutdown stops the data plane in the order that loses no call: goodbye to
// the control plane (it shows this data plane departed at once), no new
// connections, the requests in flight answered (bounded by
// ShutdownTimeout), then the client streams ended (clients learn to
// reconnect elsewhere), the config stream, and last the backends and their
// stdio children.
func (d *DataPlane) shutdown(httpSrv *h1.Server, drain *drainer, client *configclient.Client, stopClient func(), clientDone chan error) {
	timeout := d.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	start := time.Now()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	gctx, gcancel := context.WithTimeout(shutdownCtx, goodbyeTimeout)
	if client.Goodbye(gctx, "shutting down") {
		d.log.Info("told the control plane this data plane is leaving")
	}
	gcancel()

	drain.start()
	// Shutdown closes the listeners at once (new connections are refused),
	// then closes each connection once it is idle.
	srvDone := make(chan error, 1)
	go func() { srvDone <- httpSrv.Shutdown(shutdownCtx) }()
	if n := drain.wait(shutdownCtx); n > 0 {
		d.log.Warn("shutdown timeout reached with requests in flight; cutting them", "in_flight", n, "timeout", timeout)
	}
	// The streams last: a legacy SSE client gets its answers on them.
	if err := d.front.Close(); err != nil {
		d.log.Warn("close client sessions", "err", err)
	}
	if err := <-srvDone; err != nil {
		d.log.Warn("shut down HTTP server", "err", err)
		_ = httpSrv.Close()
	}
	d.log.Info("client connections closed", "duration", time.Since(start).Round(time.Millisecond))
	stopClient()
	if err := <-clientDone; err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("config client", "err", err)
	}
	if err := d.mgr.Close(); err != nil {
		d.log.Warn("close backends", "err", err)
	}
	_ = d.cp.Close()
}

// refreshToken asks the control plane, with the data plane's own
// credential, for a new access token of server after its backend refused
// the one whose SHA-256 is rejected (backend.RefreshFunc).
func (d *DataPlane) refreshToken(ctx context.Context, server, rejected string) (string, error) {
	resp, err := mcpmeshv1.NewOAuthServiceClient(d.cp).RefreshAuthorization(ctx,
		&mcpmeshv1.RefreshAuthorizationRequest{Server: server, RejectedTokenSha256: rejected},
		grpc.PerRPCCredentials(authtoken.Credentials(d.cfg.Token)))
	if err != nil {
		return "", fmt.Errorf("OAuthService.RefreshAuthorization: %s", status.Convert(err).Message())
	}
	if resp.GetAuthorization().GetState() != mcpmeshv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED {
		return "", nil
	}
	return resp.GetAccessToken(), nil
}

// AdvertiseAddr is the address other replicas reach a listener on: its own,
// or for a listener on every interface (0.0.0.0, ::), the first non-loopback
// address of the machine with the listener's port.
func AdvertiseAddr(l net.Addr) string {
	ta, ok := l.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return l.String()
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return net.JoinHostPort(ipn.IP.String(), fmt.Sprint(ta.Port))
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(ta.Port))
}
