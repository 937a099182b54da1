// Command dataplane serves every backend MCP server registered in the control
// plane as one aggregated MCP server on /mcp (streamable HTTP) and /sse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/configclient"
	"github.com/mcpmesh/mcpmesh/dataplane/httpapi"
	"github.com/mcpmesh/mcpmesh/dataplane/mcpserver"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/logging"
	"github.com/mcpmesh/mcpmesh/internal/pprofserve"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// shutdownTimeout bounds the graceful stop of the HTTP server.
const shutdownTimeout = 5 * time.Second

func main() { os.Exit(run()) }

type config struct {
	controlPlane string
	listen       string
	id           string
	tokenFile    string
	logLevel     string
	logFormat    string
	pprofAddr    string
	showVersion  bool
}

func parseFlags() config {
	host, _ := os.Hostname()
	tokenFile := os.Getenv(authtoken.EnvTokenFile)
	if tokenFile == "" {
		tokenFile = "./data/" + authtoken.FileName
	}
	var c config
	flag.StringVar(&c.controlPlane, "control-plane", "127.0.0.1:7070", "control plane gRPC address")
	flag.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve MCP clients, /health and /metrics on")
	flag.StringVar(&c.id, "id", host, "data plane id reported to the control plane (default: hostname)")
	flag.StringVar(&c.tokenFile, "token-file", tokenFile, "admin token file (default: $"+authtoken.EnvTokenFile+" or ./data/admin.token)")
	flag.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	flag.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	flag.StringVar(&c.pprofAddr, "pprof-addr", "", "serve net/http/pprof on this address, on a listener of its own (default off)")
	flag.BoolVar(&c.showVersion, "version", false, "print the version and exit")
	flag.Parse()
	return c
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
	if cfg.id == "" {
		return fail("--id is empty and the hostname is unknown: set --id")
	}
	token, err := authtoken.Read(cfg.tokenFile)
	if err != nil {
		return fail("%v (set --token-file or %s)", err, authtoken.EnvTokenFile)
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

	// The manager reports changes before the server and client below exist
	// only in theory (it has no backends until the first snapshot); the
	// pointers make that order harmless.
	var (
		aggregated atomic.Pointer[mcpserver.Server]
		cc         atomic.Pointer[configclient.Client]
		mgr        *backend.Manager
	)
	readiness := httpapi.NewReadiness(httpapi.ReadinessOptions{Logger: log.With("component", "readiness")})
	// refresh rebuilds the aggregated lists and tells readiness whether
	// every backend had made its first connect attempt before the rebuild.
	refresh := func(s *mcpserver.Server) {
		readiness.Rebuild(func() int { return firstAttemptPending(mgr) }, s.Refresh)
	}
	mgr = backend.NewManager(backend.ManagerOptions{
		Logger: log.With("component", "backend"),
		OnChange: func() {
			if s := aggregated.Load(); s != nil {
				refresh(s)
			}
			if c := cc.Load(); c != nil {
				c.NotifyHealth()
			}
		},
	})

	api, err := httpapi.New(httpapi.Options{
		DataPlaneID: cfg.id,
		Health:      mgr.Health,
		Revision: func() uint64 {
			if c := cc.Load(); c != nil {
				return c.Revision()
			}
			return 0
		},
		Connected: func() bool {
			c := cc.Load()
			return c != nil && c.Connected()
		},
		Shadowed: func() map[string][]string {
			if s := aggregated.Load(); s != nil {
				return s.Shadowed()
			}
			return nil
		},
		Ready:  readiness.Ready,
		Logger: log.With("component", "httpapi"),
	})
	if err != nil {
		ln.Close()
		mgr.Close()
		return fail("%v", err)
	}
	srv, err := mcpserver.New(mcpserver.Options{
		Source: mcpserver.Adapt[*backend.Backend](mgr),
		Logger: log.With("component", "mcpserver"),
		Hooks:  api.MCPHooks(),
	})
	if err != nil {
		ln.Close()
		mgr.Close()
		return fail("%v", err)
	}
	srv.Refresh() // serve an empty, valid server until the first snapshot
	aggregated.Store(srv)

	transports := mcpserver.NewHTTP(srv, mcpserver.HTTPOptions{
		Logger: log.With("component", "mcp-http"),
		// /mcp?pagination=true opts a client into pagination.
		ContextFunc: mcpserver.PaginationFromRequest,
	})
	client := configclient.New(configclient.Options{
		Addr:        cfg.controlPlane,
		Token:       token,
		DataPlaneID: cfg.id,
		Version:     version.Version,
		ListenAddr:  ln.Addr().String(),
		Logger:      log.With("component", "configclient"),
		Apply: func(_ context.Context, snap *mcpmeshv1.ConfigSnapshot) error {
			if err := mgr.Apply(snap); err != nil {
				return err
			}
			transports.SetSessionSecret(snap.GetClusterSecret())
			// Settings and secret before the lists, so the first page cut
			// from this snapshot's lists follows its rules.
			srv.SetConfig(snap.GetSettings(), snap.GetClusterSecret(), snap.GetRevision())
			readiness.Applied()
			refresh(srv)
			return nil
		},
		Health: mgr.Health,
	})
	cc.Store(client)

	mux := http.NewServeMux()
	api.Register(mux)
	transports.Register(mux)
	httpSrv := &http.Server{
		Handler:           api.Instrument(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	clientCtx, stopClient := context.WithCancel(ctx)
	defer stopClient()
	clientDone := make(chan error, 1)
	go func() { clientDone <- client.Run(clientCtx) }()

	base := "http://" + ln.Addr().String()
	log.Info("data plane serving",
		"mcp_url", base+"/mcp", "sse_url", base+"/sse", "health_url", base+"/health",
		"dataplane", cfg.id, "control_plane", cfg.controlPlane, "version", version.Version)

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("serve HTTP", "err", err)
		code = 1
	case err := <-clientDone:
		// Run returns early only when it gives up (e.g. a rejected token).
		log.Error("config client stopped", "err", err)
		clientDone <- err
		code = 1
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Sessions first: their long-lived streams would otherwise hold
	// Shutdown until the timeout.
	if err := transports.Close(shutdownCtx); err != nil {
		log.Warn("close MCP sessions", "err", err)
	}
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shut down HTTP server", "err", err)
		_ = httpSrv.Close()
	}
	stopClient()
	if err := <-clientDone; err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("config client", "err", err)
	}
	if err := mgr.Close(); err != nil {
		log.Warn("close backends", "err", err)
	}
	log.Info("stopped")
	return code
}

// firstAttemptPending counts the backends still making their first connect
// attempt: until it is zero, a rebuilt list may lack some of them.
func firstAttemptPending(mgr *backend.Manager) int {
	n := 0
	for _, b := range mgr.List() {
		if b.State() == mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING {
			n++
		}
	}
	return n
}
