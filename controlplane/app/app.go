package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/httpapi"
	"github.com/mcpmesh/mcpmesh/controlplane/oauth"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/secrets"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/pprofserve"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Config is what the flags set.
type Config struct {
	DataDir  string
	GRPCAddr string
	HTTPAddr string
	// PprofAddr, if set, serves net/http/pprof there (internal/pprofserve).
	PprofAddr string
	// TLS, if any file is named, makes the gRPC API serve TLS (and with
	// TLS.ClientCA, mutual TLS). The files are re-read when they change.
	TLS tlsconfig.ServerFiles
	// Insecure allows plaintext gRPC on a non-loopback address.
	Insecure bool
	// ShutdownTimeout bounds the graceful stop (gRPC calls and HTTP requests
	// in flight) before connections are cut; 0 is DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxMessageSize is the largest gRPC message sent or received; 0 means
	// limits.MaxMessageSize, which is also the most data planes and mcpctl
	// accept. Config writes whose snapshot would not fit are refused.
	MaxMessageSize int
	Logger         *slog.Logger
	// Ready, if set, is called once both listeners are open, with their
	// actual addresses (useful with port 0).
	Ready func(grpcAddr, httpAddr string)
	// Registrations is what servers may name: private egress, commands
	// (--allow-private-egress, --allow-command).
	Registrations registry.Policy
	// Store is StoreBolt (the default: mcpmesh.db in DataDir) or StoreEtcd
	// (Etcd says where; several replicas may share it).
	Store string
	// Etcd is the etcd store's config, with Store StoreEtcd.
	Etcd store.EtcdConfig
}

// ServerOptions returns what every control plane gRPC server runs with: the
// keepalive policy data planes rely on, and the interceptor chain of every
// service, unary and stream alike: metrics, logging, panic recovery (→
// Internal), then bearer-token auth and the caller's role (controlplane/access;
// streams are also tracked per token, so a revoked token's streams end).
// Metrics come first so that rejected and panicking calls are counted too.
func ServerOptions(logger *slog.Logger, authn *access.Authenticator, m *Metrics) []grpc.ServerOption {
	logFn := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	recOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in gRPC handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error (the control plane log has details)")
	})}
	authUnary, authStream := authn.Interceptors()
	return append(keepaliveOptions(),
		grpc.ChainUnaryInterceptor(
			m.grpc.unary(),
			logging.UnaryServerInterceptor(logFn, logOpts...),
			recovery.UnaryServerInterceptor(recOpts...),
			authUnary,
		),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{
			m.grpc.stream(),
			logging.StreamServerInterceptor(logFn, logOpts...),
			recovery.StreamServerInterceptor(recOpts...),
		}, authStream...)...),
	)
}

// Keepalive of the gRPC server. Data planes ping every 10 s (the least gRPC
// clients may ask for); the enforcement policy must allow that, or the
// server answers with GOAWAY "too_many_pings" and cuts every config stream.
const (
	keepaliveMinPingInterval = 5 * time.Second
	keepalivePingTime        = 30 * time.Second
	keepalivePingTimeout     = 10 * time.Second
)

// keepaliveOptions let data planes ping the server (also between streams) and
// make the server ping idle connections itself, so a data plane whose
// network died silently is dropped (and shown disconnected) within about
// 40 s instead of never.
func keepaliveOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinPingInterval,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    keepalivePingTime,
			Timeout: keepalivePingTimeout,
		}),
	}
}

// MinMaxMessageSize is the least --grpc-max-message-size accepted.
const MinMaxMessageSize = 1 << 20

// CheckMaxMessageSize refuses a message limit data planes and mcpctl could
// not live with: above limits.MaxMessageSize they cannot receive what the
// control plane would send.
func CheckMaxMessageSize(n int) error {
	if n < MinMaxMessageSize || n > limits.MaxMessageSize {
		return fmt.Errorf("--grpc-max-message-size %d is out of range: use %d (1 MiB) to %d (16 MiB, what data planes and mcpctl accept)",
			n, MinMaxMessageSize, limits.MaxMessageSize)
	}
	return nil
}

// messageSizeOptions set the gRPC message limit explicitly (gRPC's default
// is 4 MiB): a health report or snapshot over it ends its stream.
func messageSizeOptions(n int) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(n), grpc.MaxSendMsgSize(n)}
}

// DefaultShutdownTimeout bounds a graceful stop of the control plane.
const DefaultShutdownTimeout = 10 * time.Second

// Run starts the control plane and blocks until ctx ends, then stops
// gracefully. Errors name what failed (e.g. the address in use).
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = limits.MaxMessageSize
	}
	if err := CheckMaxMessageSize(cfg.MaxMessageSize); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	tokenPath := filepath.Join(cfg.DataDir, authtoken.FileName)
	token, err := authtoken.LoadOrCreate(tokenPath)
	if err != nil {
		return err
	}
	var grpcCreds []grpc.ServerOption
	if cfg.TLS.Enabled() {
		tc, err := tlsconfig.Server(cfg.TLS, nil, log.With("component", "tls"))
		if err != nil {
			return err
		}
		grpcCreds = append(grpcCreds, grpc.Creds(tlsconfig.GRPCServer(tc)))
	}
	st, es, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return listenError("--grpc-addr", cfg.GRPCAddr, err)
	}
	defer grpcLis.Close()
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return listenError("--http-addr", cfg.HTTPAddr, err)
	}
	defer httpLis.Close()
	pprofCtx, stopPprof := context.WithCancel(ctx)
	defer stopPprof()
	if _, err := pprofserve.Start(pprofCtx, cfg.PprofAddr, log.With("component", "pprof")); err != nil {
		return err
	}
	if err := checkPlaintext(cfg, grpcLis.Addr(), log); err != nil {
		return err
	}

	m := NewMetrics()
	var disc *discovery.Server
	connected := func() map[string]bool { return disc.ConnectedIDs() }
	var pres *presence
	replica := ""
	if es != nil {
		replica = replicaID()
		pres = newPresence(es, replica, connected, log.With("component", "presence"))
		connected = pres.connected
	}
	agg := health.New(st, connected, log)
	disc = discovery.New(st, agg, log, discovery.WithMaxMessageSize(cfg.MaxMessageSize))
	regSvc := registry.New(st, disc, agg, log, registry.WithMaxMessageSize(cfg.MaxMessageSize))
	regSvc.SetPolicy(cfg.Registrations)
	if p := cfg.Registrations; p.AllowPrivateEgress || len(p.AllowCommands) > 0 {
		log.Info("registration policy", "allow_private_egress", p.AllowPrivateEgress, "allow_command", p.AllowCommands)
	}
	m.RegisterState(st, disc)

	authn := access.NewAuthenticator(token, st, log.With("component", "access"))
	gs := grpc.NewServer(append(append(ServerOptions(log, authn, m), grpcCreds...), messageSizeOptions(cfg.MaxMessageSize)...)...)
	mcpmeshv1.RegisterRegistryServiceServer(gs, regSvc)
	mcpmeshv1.RegisterDiscoveryServiceServer(gs, disc)
	mcpmeshv1.RegisterTokenServiceServer(gs, access.NewService(st, authn, log.With("component", "tokens")))
	secretSvc := secrets.New(st, log.With("component", "secrets"))
	mcpmeshv1.RegisterSecretServiceServer(gs, secretSvc)
	// Drops rotated-out secrets at their expiry; stopped before the store closes.
	secretsCtx, stopSecrets := context.WithCancel(ctx)
	secretsDone := make(chan struct{})
	if es == nil {
		go func() { defer close(secretsDone); secretSvc.Run(secretsCtx) }()
	} else {
		// Several replicas: one of them, elected, drops the secrets; it
		// re-reads when the next expires after every config change, since
		// a rotation may have gone through another replica. Each replica
		// publishes the data planes streaming from it.
		changes, unsubscribe := disc.Subscribe()
		go func() {
			defer close(secretsDone)
			defer unsubscribe()
			presDone := make(chan struct{})
			go func() { defer close(presDone); pres.publish(secretsCtx, changes) }()
			runElected(secretsCtx, es.Client(), es.Prefix()+"election/maintenance", replica, log.With("component", "election"),
				func(ctx context.Context) { restartOnChange(ctx, st, secretSvc.Run) })
			<-presDone
		}()
	}
	defer func() { stopSecrets(); <-secretsDone }()
	oauthSvc := oauth.New(st, log.With("component", "oauth"), oauth.AllowPrivateEgress(cfg.Registrations.AllowPrivateEgress))
	mcpmeshv1.RegisterOAuthServiceServer(gs, oauthSvc)
	// Refreshes backend OAuth grants before they expire: once in the
	// cluster (elected, like the secrets' expiry), since two refreshes of
	// one rotating refresh token would revoke it.
	oauthCtx, stopOAuth := context.WithCancel(ctx)
	oauthDone := make(chan struct{})
	go func() {
		defer close(oauthDone)
		if es == nil {
			oauthSvc.Run(oauthCtx)
			return
		}
		runElected(oauthCtx, es.Client(), es.Prefix()+"election/oauth-refresh", replica, log.With("component", "election"), oauthSvc.Run)
	}()
	defer func() { stopOAuth(); <-oauthDone }()
	mcpmeshv1.RegisterClientKeyServiceServer(gs, access.NewClientKeyService(st, log.With("component", "client-keys")))
	storeName := StoreBolt
	if cfg.Store == StoreEtcd {
		storeName = StoreEtcd
	}
	mcpmeshv1.RegisterBackupServiceServer(gs, regSvc.Backup(storeName))
	m.grpc.initialize(gs)
	hs := &http.Server{
		Handler:           httpapi.New(httpapi.Deps{Store: st, DataPlanes: disc, Health: agg, Metrics: m.Handler(log), Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	errc := make(chan error, 2)
	go func() {
		if err := gs.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("serve gRPC: %w", err)
		}
	}()
	go func() {
		if err := hs.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve HTTP: %w", err)
		}
	}()
	storeAttrs := []any{"store", StoreBolt}
	if es != nil {
		storeAttrs = []any{"store", StoreEtcd, "etcd_endpoints", strings.Join(cfg.Etcd.Endpoints, ","), "etcd_prefix", es.Prefix(), "replica", replica}
	}
	log.Info("control plane started", append([]any{"grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String(),
		"data_dir", cfg.DataDir, "token_file", tokenPath, "grpc_tls", tlsMode(cfg.TLS), "version", version.Version}, storeAttrs...)...)
	if cfg.Ready != nil {
		cfg.Ready(grpcLis.Addr().String(), httpLis.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server failed, shutting down", "err", runErr)
	}
	disc.Shutdown() // config streams never end on their own
	// One deadline for the whole stop, gRPC and HTTP together.
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop() // waits for open streams, so a timeout below cuts them
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-sctx.Done():
		log.Warn("graceful stop timed out; closing remaining connections", "timeout", cfg.ShutdownTimeout)
		gs.Stop()
		<-stopped
	}
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	disc.Close()
	// The maintenance and presence goroutines use the store (and its etcd
	// client: their leases are revoked on the way out): stop them first.
	stopSecrets()
	<-secretsDone
	// bbolt syncs every commit; Close releases the file lock, so the next
	// start (or an offline backup) can open it at once.
	if err := st.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close store: %w", err)
	}
	log.Info("control plane stopped")
	return runErr
}

// listenError names the flag and the address once, then the cause
// ("bind: address already in use"), instead of net's repeated address.
func listenError(flag, addr string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	return fmt.Errorf("listen on %s %s: %w", flag, addr, err)
}

// checkPlaintext refuses plaintext gRPC off loopback (tokens and every
// secret of the config stream would cross the network in the clear) unless
// cfg.Insecure says so, and then says so loudly.
func checkPlaintext(cfg Config, addr net.Addr, log *slog.Logger) error {
	if cfg.TLS.Enabled() || tlsconfig.IsLoopbackAddr(addr) {
		return nil
	}
	if !cfg.Insecure {
		return fmt.Errorf("refusing plaintext gRPC on --grpc-addr %s, which is not a loopback address (listening on %s): set --tls-cert and --tls-key to serve TLS, or --insecure to allow plaintext", cfg.GRPCAddr, addr)
	}
	log.Warn("INSECURE: gRPC serves plaintext on a non-loopback address (--insecure): admin tokens, data plane tokens and every secret of the config stream cross the network unencrypted; set --tls-cert and --tls-key",
		"grpc_addr", addr.String())
	return nil
}

func tlsMode(f tlsconfig.ServerFiles) string {
	switch {
	case f.ClientCA != "":
		return "mtls"
	case f.Enabled():
		return "tls"
	}
	return "off"
}
