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
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/health"
	"github.com/mcpmesh/mcpmesh/controlplane/httpapi"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/pprofserve"
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
	// ShutdownTimeout bounds the graceful stop before connections are cut.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Ready, if set, is called once both listeners are open, with their
	// actual addresses (useful with port 0).
	Ready func(grpcAddr, httpAddr string)
	// Registrations is what servers may name: private egress, commands
	// (--allow-private-egress, --allow-command).
	Registrations registry.Policy
}

// ServerOptions returns what every control plane gRPC server runs with: the
// keepalive policy data planes rely on, and the interceptor chain of every
// service, unary and stream alike: metrics, logging, panic recovery (→
// Internal), then bearer-token auth. Metrics come first so that rejected and
// panicking calls are counted too.
func ServerOptions(logger *slog.Logger, token string, m *Metrics) []grpc.ServerOption {
	logFn := logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		logger.Log(ctx, slog.Level(lvl), msg, fields...)
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	recOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in gRPC handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error (the control plane log has details)")
	})}
	authFn := authtoken.AuthFunc(token)
	return append(keepaliveOptions(),
		grpc.ChainUnaryInterceptor(
			m.grpc.unary(),
			logging.UnaryServerInterceptor(logFn, logOpts...),
			recovery.UnaryServerInterceptor(recOpts...),
			auth.UnaryServerInterceptor(authFn),
		),
		grpc.ChainStreamInterceptor(
			m.grpc.stream(),
			logging.StreamServerInterceptor(logFn, logOpts...),
			recovery.StreamServerInterceptor(recOpts...),
			auth.StreamServerInterceptor(authFn),
		),
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

// Run starts the control plane and blocks until ctx ends, then stops
// gracefully. Errors name what failed (e.g. the address in use).
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	tokenPath := filepath.Join(cfg.DataDir, authtoken.FileName)
	token, err := authtoken.LoadOrCreate(tokenPath)
	if err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(cfg.DataDir, store.FileName))
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
	if !isLoopback(grpcLis.Addr()) {
		log.Warn("the admin and discovery gRPC API listens on a non-loopback address without TLS; protect it with a firewall or a TLS proxy",
			"grpc_addr", grpcLis.Addr().String())
	}

	m := NewMetrics()
	var disc *discovery.Server
	agg := health.New(st, func() map[string]bool { return disc.ConnectedIDs() }, log)
	disc = discovery.New(st, agg, log)
	regSvc := registry.New(st, disc, agg, log)
	regSvc.SetPolicy(cfg.Registrations)
	if p := cfg.Registrations; p.AllowPrivateEgress || len(p.AllowCommands) > 0 {
		log.Info("registration policy", "allow_private_egress", p.AllowPrivateEgress, "allow_command", p.AllowCommands)
	}
	m.RegisterState(st, disc)

	gs := grpc.NewServer(ServerOptions(log, token, m)...)
	mcpmeshv1.RegisterRegistryServiceServer(gs, regSvc)
	mcpmeshv1.RegisterDiscoveryServiceServer(gs, disc)
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
	log.Info("control plane started", "grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String(),
		"data_dir", cfg.DataDir, "token_file", tokenPath, "version", version.Version)
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
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop() // waits for open streams, so a timeout below cuts them
		close(stopped)
	}()
	timer := time.NewTimer(cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		log.Warn("graceful stop timed out; closing remaining connections", "timeout", cfg.ShutdownTimeout)
		gs.Stop()
		<-stopped
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	disc.Close()
	if err := st.Close(); err != nil && runErr == nil {
		runErr = err
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

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
