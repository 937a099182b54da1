// Command dataplane serves every backend MCP server registered in the control
// plane as one aggregated MCP server on /mcp (streamable HTTP) and /sse.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/app"
	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/clientauth"
	"github.com/mcpmesh/mcpmesh/dataplane/configclient"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/h1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/logging"
	"github.com/mcpmesh/mcpmesh/internal/pprofserve"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/internal/tracing"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"google.golang.org/grpc/credentials"
)

func main() { os.Exit(run()) }

type config struct {
	controlPlane string
	listen       string
	id           string
	tokenFile    string
	logLevel     string
	logFormat    string
	pprofAddr    string
	advertise    string
	publicURL    string
	showVersion  bool
	limits       app.Limits
	oauthIssuer  string
	oauthRes     string
	oauthJWKS    string
	oauthScopes  string
	clientKeys   bool
	// cpTLS verifies the control plane; listenTLS is the MCP listener's.
	cpTLS     tlsconfig.ClientFiles
	listenTLS tlsconfig.ServerFiles
	insecure  bool
	childEnv  []string
	// Browsers and egress (issue 11 points 4 and 7).
	allowedOrigins, allowedHosts listFlag
	allowPrivateEgress           bool
	procs                        int
	gcPercent                    int
	shutdownTimeout              time.Duration
	accessLog                    bool
	otlpEndpoint                 string
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func parseFlags() config {
	host, _ := os.Hostname()
	tokenFile := os.Getenv(authtoken.EnvTokenFile)
	if tokenFile == "" {
		tokenFile = "./data/" + authtoken.FileName
	}
	var c config
	flag.StringVar(&c.controlPlane, "control-plane", "127.0.0.1:7070", "control plane gRPC address: host:port, a DNS name whose records are several control planes (dns:///name:port), or several host:port separated by commas; the data plane streams from one and fails over to another")
	flag.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve MCP clients, /health and /metrics on")
	flag.StringVar(&c.id, "id", host, "data plane id reported to the control plane (default: hostname)")
	flag.StringVar(&c.tokenFile, "token-file", tokenFile, "token file, a dataplane token from 'mcpctl token create --role dataplane' (default: $"+authtoken.EnvTokenFile+" or ./data/admin.token)")
	flag.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	flag.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	flag.StringVar(&c.pprofAddr, "pprof-addr", "", "serve net/http/pprof on this address, on a listener of its own (default off)")
	flag.StringVar(&c.advertise, "advertise-addr", "", "host:port other data planes reach this one on, for client answers a balancer sends to another replica (default: the --listen address; for 0.0.0.0, the first non-loopback address)")
	flag.StringVar(&c.publicURL, "public-url", "", "absolute http(s) base URL browsers and OAuth authorization servers reach this data plane on, e.g. https://mcp.example.com: the /oauth page and its callback live under it (default: http://<--listen address>, with 0.0.0.0 or [::] replaced by 127.0.0.1)")
	flag.BoolVar(&c.accessLog, "access-log", true, "log one line per MCP request at info level (method, server, tool or URI, duration, outcome, JSON-RPC error code, request id, client session, credential id)")
	flag.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "export OpenTelemetry traces over OTLP/HTTP to this collector URL (http://host:4318); default off unless $"+tracing.EnvEndpoint+" or $"+tracing.EnvTracesEndpoint+" is set")
	flag.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	flag.DurationVar(&c.shutdownTimeout, "shutdown-timeout", app.DefaultShutdownTimeout, "on SIGTERM or SIGINT: how long to wait for the client requests in flight (new connections are refused at once) before cutting them; backends and stdio children are closed after it")
	flag.IntVar(&c.gcPercent, "gc-percent", gcPercentAuto, "the garbage collector's target, as GOGC: heap growth over the live heap, in percent, before a collection; -1: off (default: 200, or $GOGC when set)")
	flag.IntVar(&c.procs, "procs", procsAuto, "OS threads that run the data plane at once (GOMAXPROCS); 0: every CPU the machine or cgroup allows (default: half of those, at least 1, or $GOMAXPROCS when set)")
	flag.StringVar(&c.cpTLS.CA, "ca", "", "PEM CA bundle the control plane's TLS certificate must chain to; turns TLS on for --control-plane (re-read when it changes)")
	flag.StringVar(&c.cpTLS.Cert, "client-cert", "", "PEM client certificate for a control plane with mutual TLS (--client-ca there)")
	flag.StringVar(&c.cpTLS.Key, "client-key", "", "PEM private key of --client-cert")
	flag.StringVar(&c.cpTLS.ServerName, "tls-server-name", "", "name the control plane's certificate must carry (default: the host of --control-plane)")
	flag.BoolVar(&c.insecure, "insecure", false, "allow plaintext to a non-loopback --control-plane (the token and every secret of the config stream cross the network unencrypted)")
	flag.StringVar(&c.listenTLS.Cert, "tls-cert", "", "PEM certificate chain the MCP listener (--listen) serves TLS with (re-read when it changes)")
	flag.StringVar(&c.listenTLS.Key, "tls-key", "", "PEM private key of --tls-cert")
	l := &c.limits
	flag.Int64Var(&l.MaxBody, "max-body", front.DefaultMaxBody, "largest client POST body in bytes (413 past it)")
	flag.IntVar(&l.MaxHeaderBytes, "max-header-bytes", http.DefaultMaxHeaderBytes, "largest request head in bytes (431 past it)")
	flag.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", h1.DefaultReadHeaderTimeout, "time a client has to send a request's head")
	flag.DurationVar(&l.BodyTimeout, "body-timeout", h1.DefaultBodyTimeout, "time a client has to send a request's body after its head (408 past it; negative: no limit)")
	flag.DurationVar(&l.IdleTimeout, "idle-timeout", h1.DefaultIdleTimeout, "how long a keep-alive connection may wait for its next request")
	flag.IntVar(&l.MaxConcurrent, "max-concurrent-per-client", front.DefaultMaxConcurrent, "POSTs one client (session, or address without one) may have in flight (429 past it; negative: no limit)")
	flag.IntVar(&l.Lists.MaxItems, "max-list-items", catalog.DefaultMaxItems, "items of one list (tools, prompts, resources, templates) one server may offer; the rest are left out with a warning")
	flag.IntVar(&l.Lists.MaxKey, "max-name-bytes", catalog.DefaultMaxKey, "longest tool or prompt name or resource URI in bytes; longer items are left out with a warning")
	flag.IntVar(&l.Lists.MaxDescription, "max-description-bytes", catalog.DefaultMaxDescription, "longest item description in bytes (as JSON); longer items are left out with a warning")
	flag.StringVar(&c.oauthIssuer, "oauth-issuer", "", "require OAuth access tokens from clients, issued by this authorization server (issuer URL); off by default")
	flag.StringVar(&c.oauthRes, "oauth-resource", "", "with --oauth-issuer: this data plane's resource URL as clients reach it, the tokens' audience (default: http(s)://<advertise address>/mcp); the same on every replica")
	flag.StringVar(&c.oauthJWKS, "oauth-jwks-url", "", "with --oauth-issuer: the authorization server's JWKS URL (default: discovered from its metadata)")
	flag.BoolVar(&c.clientKeys, "client-keys", false, "require an API key from clients (Authorization: Bearer mcpk_…, issued by mcpctl client-key create); with --oauth-issuer too, either credential; off by default")
	flag.StringVar(&c.oauthScopes, "oauth-scopes", "", "with --oauth-issuer: comma-separated scopes every token must carry")
	flag.Func("child-env", "NAME or PREFIX* (comma-separated, repeatable) of this process's environment that stdio backends inherit besides "+strings.Join(backend.DefaultChildEnv, ",")+"; MCPMESH_* never", func(v string) error {
		names := strings.Split(v, ",")
		if err := backend.CheckChildEnv(names); err != nil {
			return err
		}
		c.childEnv = append(c.childEnv, names...)
		return nil
	})
	flag.Var(&c.allowedOrigins, "allowed-origins", "browser origins (scheme://host[:port]) the MCP endpoints serve besides loopback ones, answering CORS for them; comma-separated or repeated; no wildcards (default: requests without Origin and from http(s)://localhost, 127.0.0.0/8, [::1] only)")
	flag.Var(&c.allowedHosts, "allowed-hosts", "Host names (name or name:port) the MCP endpoints serve: on loopback, besides loopback names (for a proxy that keeps the public name); elsewhere, when set, the only names besides loopback names and IP addresses; comma-separated or repeated")
	flag.BoolVar(&c.allowPrivateEgress, "allow-private-egress", false, "let URL backends connect to link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254), checked after name resolution; refused by default")
	flag.Parse()
	return c
}

// checkLimits refuses limits that would make the data plane unusable.
func checkLimits(l app.Limits) error {
	for _, v := range []struct {
		name string
		val  int64
	}{
		{"--max-body", l.MaxBody}, {"--max-header-bytes", int64(l.MaxHeaderBytes)},
		{"--max-list-items", int64(l.Lists.MaxItems)}, {"--max-name-bytes", int64(l.Lists.MaxKey)},
		{"--max-description-bytes", int64(l.Lists.MaxDescription)},
		{"--read-header-timeout", int64(l.ReadHeaderTimeout)}, {"--idle-timeout", int64(l.IdleTimeout)},
	} {
		if v.val <= 0 {
			return fmt.Errorf("%s must be positive", v.name)
		}
	}
	if l.MaxConcurrent == 0 {
		return fmt.Errorf("--max-concurrent-per-client must not be 0 (negative turns the limit off)")
	}
	if l.BodyTimeout == 0 {
		return fmt.Errorf("--body-timeout must not be 0 (negative turns the limit off)")
	}
	return nil
}

// controlPlaneCreds are the config stream's TLS credentials (nil: plaintext).
// Plaintext to a control plane off loopback is refused unless --insecure.
func controlPlaneCreds(cfg config, log *slog.Logger) (credentials.TransportCredentials, error) {
	if cfg.cpTLS.Enabled() {
		if cfg.insecure {
			return nil, fmt.Errorf("--insecure contradicts --ca/--client-cert: drop one")
		}
		return tlsconfig.GRPCClient(cfg.cpTLS, log.With("component", "tls"))
	}
	if cfg.cpTLS.ServerName != "" {
		return nil, fmt.Errorf("--tls-server-name needs --ca (TLS to the control plane)")
	}
	if allLoopback(cfg.controlPlane) {
		return nil, nil
	}
	if !cfg.insecure {
		return nil, fmt.Errorf("refusing plaintext to --control-plane %s (not a loopback address): set --ca to the CA bundle of the control plane's TLS certificate, or --insecure to allow plaintext", cfg.controlPlane)
	}
	log.Warn("INSECURE: plaintext config stream to a non-loopback control plane (--insecure): the token and every secret of the config stream cross the network unencrypted; set --ca",
		"control_plane", cfg.controlPlane)
	return nil, nil
}

// allLoopback reports whether every address of a --control-plane list is
// loopback (one address off loopback makes the whole list need TLS). A list
// that does not parse is not loopback; Run reports what is wrong with it.
func allLoopback(target string) bool {
	addrs, err := configclient.Targets(target)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if !tlsconfig.IsLoopbackTarget(a) {
			return false
		}
	}
	return true
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "dataplane: "+format+"\n", args...)
	return 1
}

func run() int {
	cfg := parseFlags()
	if cfg.showVersion {
		fmt.Println(version.Version)
		return 0
	}
	log, err := logging.New(os.Stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		return fail("%v", err)
	}
	procs, err := setProcs(cfg.procs)
	if err != nil {
		return fail("%v", err)
	}
	gcPercent, err := setGCPercent(cfg.gcPercent)
	if err != nil {
		return fail("%v", err)
	}
	if cfg.id == "" {
		return fail("--id is empty and the hostname is unknown: set --id")
	}
	if cfg.shutdownTimeout <= 0 {
		return fail("--shutdown-timeout must be positive")
	}
	if err := checkLimits(cfg.limits); err != nil {
		return fail("%v", err)
	}
	token, err := authtoken.Read(cfg.tokenFile)
	if err != nil {
		return fail("%v (set --token-file or %s)", err, authtoken.EnvTokenFile)
	}
	if err := tracing.CheckEndpoint(cfg.otlpEndpoint); err != nil {
		return fail("%v", err)
	}
	cpCreds, err := controlPlaneCreds(cfg, log)
	if err != nil {
		return fail("%v", err)
	}
	var listenTLS *tls.Config
	if cfg.listenTLS.Enabled() {
		// h1 speaks HTTP/1.x only: advertising h2 would break clients.
		if listenTLS, err = tlsconfig.Server(cfg.listenTLS, []string{"http/1.1"}, log.With("component", "tls")); err != nil {
			return fail("%v", err)
		}
	}
	// Listen before starting anything, so a taken address fails at once with
	// nothing to clean up.
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fail("listen on %s: %v (is another data plane running? set --listen)", cfg.listen, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := pprofserve.Start(ctx, cfg.pprofAddr, log.With("component", "pprof")); err != nil {
		ln.Close()
		return fail("%v", err)
	}
	if listenTLS == nil && !tlsconfig.IsLoopbackAddr(ln.Addr()) {
		log.Warn("the MCP listener serves plaintext HTTP on a non-loopback address; set --tls-cert and --tls-key, or keep it behind a TLS-terminating proxy",
			"listen", ln.Addr().String())
	}
	publicURL, err := app.PublicURL(cfg.publicURL, ln.Addr(), listenTLS != nil)
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}
	advertise := cfg.advertise
	if advertise == "" {
		advertise = app.AdvertiseAddr(ln.Addr())
	}
	var oauth *clientauth.OAuth
	switch {
	case cfg.oauthIssuer != "":
		res := cfg.oauthRes
		if res == "" {
			res = "http://" + advertise + "/mcp"
			if listenTLS != nil {
				res = "https://" + advertise + "/mcp"
			}
		}
		var scopes []string
		for _, s := range strings.Split(cfg.oauthScopes, ",") {
			if s = strings.TrimSpace(s); s != "" {
				scopes = append(scopes, s)
			}
		}
		oauth, err = clientauth.NewOAuth(ctx, clientauth.OAuthConfig{Issuer: cfg.oauthIssuer, Resource: res, JWKSURL: cfg.oauthJWKS, Scopes: scopes})
		if err != nil {
			ln.Close()
			return fail("%v (--oauth-issuer)", err)
		}
		defer oauth.Close()
		log.Info("clients authenticate with OAuth", "issuer", cfg.oauthIssuer, "resource", res, "scopes", scopes)
	case cfg.oauthRes != "" || cfg.oauthJWKS != "" || cfg.oauthScopes != "":
		ln.Close()
		return fail("--oauth-resource, --oauth-jwks-url and --oauth-scopes need --oauth-issuer")
	}
	tp, err := tracing.New(ctx, tracing.Config{Endpoint: cfg.otlpEndpoint, Service: "mcpmesh-dataplane", Version: version.Version, Instance: cfg.id})
	if err != nil {
		ln.Close()
		return fail("%v (--otlp-endpoint)", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}()
	if tp.Tracer != nil {
		endpoint := cfg.otlpEndpoint
		for _, env := range []string{tracing.EnvTracesEndpoint, tracing.EnvEndpoint} {
			if v := os.Getenv(env); endpoint == "" && v != "" {
				endpoint = "$" + env + "=" + v
			}
		}
		log.Info("tracing to an OTLP collector", "endpoint", endpoint)
	}
	log.Info("scheduler threads", "procs", procs, "cpus", runtime.NumCPU(), "gc_percent", gcPercent)
	if cfg.clientKeys {
		log.Info("clients authenticate with API keys (mcpctl client-key)")
	}
	dp, err := app.New(app.Config{
		ControlPlane: cfg.controlPlane,
		ID:           cfg.id,
		Token:        token,
		Advertise:    advertise,
		PublicURL:    publicURL,
		Logger:       log,
		Limits:       cfg.limits,
		OAuth:        oauth,
		ClientKeys:   cfg.clientKeys,
		ListenTLS:    listenTLS,

		ControlPlaneCreds: cpCreds,
		ChildEnv:          cfg.childEnv,

		AllowedOrigins:     cfg.allowedOrigins,
		AllowedHosts:       cfg.allowedHosts,
		AllowPrivateEgress: cfg.allowPrivateEgress,
		ShutdownTimeout:    cfg.shutdownTimeout,
		AccessLog:          cfg.accessLog,
		Tracer:             tp.Tracer,
	})
	if err != nil {
		ln.Close()
		return fail("%v", err)
	}
	if err := dp.Serve(ctx, ln); err != nil {
		log.Error("data plane stopped", "err", err)
		return 1
	}
	return 0
}
