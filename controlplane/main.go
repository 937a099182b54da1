// Command controlplane runs the mcpmesh control plane: the admin API used by
// mcpctl, the config stream data planes subscribe to, and an HTTP status side.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mcpmesh/mcpmesh/controlplane/app"
	"github.com/mcpmesh/mcpmesh/controlplane/registry"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/logging"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, as one line, below
	dataDir := fs.String("data-dir", "./data", "directory for mcpmesh.db and admin.token (created 0700)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:7070", "address of the gRPC admin and discovery API")
	httpAddr := fs.String("http-addr", "127.0.0.1:7071", "address of /health, /metrics and the status page")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	maxMsg := fs.Int("grpc-max-message-size", limits.MaxMessageSize, "largest gRPC message in bytes (1 MiB to 16 MiB); a server or setting change whose config snapshot would not fit is refused")
	pprofAddr := fs.String("pprof-addr", "", "serve net/http/pprof on this address, on a listener of its own (default off)")
	var tlsFiles tlsconfig.ServerFiles
	fs.StringVar(&tlsFiles.Cert, "tls-cert", "", "PEM certificate chain the gRPC API serves TLS with (re-read when it changes)")
	fs.StringVar(&tlsFiles.Key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&tlsFiles.ClientCA, "client-ca", "", "PEM CA bundle client certificates must chain to: mutual TLS (needs --tls-cert)")
	insecure := fs.Bool("insecure", false, "allow plaintext gRPC on a non-loopback --grpc-addr (tokens and secrets cross the network unencrypted)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	shutdownTimeout := fs.Duration("shutdown-timeout", app.DefaultShutdownTimeout, "on SIGTERM or SIGINT: how long the gRPC and HTTP servers may take to finish the calls in flight before they are cut; the store is closed (flushed) after it")
	storeKind := fs.String("store", app.StoreBolt, "where the config lives: bolt (mcpmesh.db in --data-dir, one control plane) or etcd (--etcd-endpoints, shared by several control planes)")
	var etcdCfg store.EtcdConfig
	fs.Func("etcd-endpoints", "comma-separated etcd client URLs, e.g. https://etcd-0:2379,https://etcd-1:2379 (with --store etcd)", func(v string) error {
		for _, ep := range strings.Split(v, ",") {
			if ep = strings.TrimSpace(ep); ep == "" {
				return fmt.Errorf("empty endpoint in %q", v)
			}
			etcdCfg.Endpoints = append(etcdCfg.Endpoints, ep)
		}
		return nil
	})
	fs.StringVar(&etcdCfg.Prefix, "etcd-prefix", store.DefaultEtcdPrefix, "key prefix of this mesh in etcd; replicas of one mesh share it, another mesh on the same etcd needs its own")
	fs.StringVar(&etcdCfg.CAFile, "etcd-ca", "", "PEM CA bundle etcd's certificate must chain to (TLS to etcd)")
	fs.StringVar(&etcdCfg.CertFile, "etcd-cert", "", "PEM client certificate for etcd (with --etcd-key)")
	fs.StringVar(&etcdCfg.KeyFile, "etcd-key", "", "PEM private key of --etcd-cert")
	fs.DurationVar(&etcdCfg.DialTimeout, "etcd-dial-timeout", store.DefaultEtcdDialTimeout, "how long to wait for etcd at start before failing")
	fs.StringVar(&etcdCfg.SecretsKeyFile, "secrets-key-file", "", "with --store etcd (required): the key secrets are encrypted with in etcd, 64 hex digits (openssl rand -hex 32); the same file on every control plane of the mesh")
	var reg registry.Policy
	fs.BoolVar(&reg.AllowPrivateEgress, "allow-private-egress", false, "accept URL backends in link-local and cloud metadata ranges (169.254.0.0/16, fe80::/10, fd00:ec2::254); refused by default")
	fs.Func("allow-command", "an executable stdio servers may name, exactly as registered (repeatable; default: any). It limits the executable, not its arguments", func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("empty command")
		}
		reg.AllowCommands = append(reg.AllowCommands, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "Usage: controlplane [flags]")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "controlplane: %v (see controlplane --help)\n", err)
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "controlplane: unexpected argument %q (see controlplane --help)\n", fs.Arg(0))
		return 1
	}
	if *showVersion {
		fmt.Fprintln(stdout, "controlplane", version.Version)
		return 0
	}
	if *shutdownTimeout <= 0 {
		fmt.Fprintf(stderr, "controlplane: --shutdown-timeout must be positive, got %s\n", *shutdownTimeout)
		return 1
	}
	if err := app.CheckMaxMessageSize(*maxMsg); err != nil {
		fmt.Fprintf(stderr, "controlplane: %v\n", err)
		return 1
	}
	if err := checkStoreFlags(fs, *storeKind, etcdCfg); err != nil {
		fmt.Fprintf(stderr, "controlplane: %v\n", err)
		return 1
	}
	logger, err := logging.New(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "controlplane: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = app.Run(ctx, app.Config{DataDir: *dataDir, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, PprofAddr: *pprofAddr,
		TLS: tlsFiles, Insecure: *insecure, MaxMessageSize: *maxMsg, Logger: logger, Registrations: reg, ShutdownTimeout: *shutdownTimeout,
		Store: *storeKind, Etcd: etcdCfg})
	if err != nil {
		fmt.Fprintf(stderr, "controlplane: %v\n", err)
		return 1
	}
	return 0
}

// checkStoreFlags refuses etcd flags without --store etcd (they would be
// ignored silently) and --store etcd without what it needs.
func checkStoreFlags(fs *flag.FlagSet, kind string, cfg store.EtcdConfig) error {
	switch kind {
	case app.StoreBolt:
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "etcd-") || f.Name == "secrets-key-file" {
				set = append(set, "--"+f.Name)
			}
		})
		if len(set) > 0 {
			return fmt.Errorf("%s need --store etcd (the bolt store keeps its key in --data-dir)", strings.Join(set, ", "))
		}
	case app.StoreEtcd:
		if len(cfg.Endpoints) == 0 {
			return fmt.Errorf("--store etcd needs --etcd-endpoints")
		}
		if cfg.SecretsKeyFile == "" {
			return fmt.Errorf("--store etcd needs --secrets-key-file: the key every control plane of the mesh encrypts secrets with (create it once: openssl rand -hex 32 > secrets.key)")
		}
		if cfg.DialTimeout <= 0 {
			return fmt.Errorf("--etcd-dial-timeout must be positive, got %s", cfg.DialTimeout)
		}
		if (cfg.CertFile == "") != (cfg.KeyFile == "") {
			return fmt.Errorf("--etcd-cert and --etcd-key go together: set both or neither")
		}
	default:
		return fmt.Errorf("--store %q: use bolt or etcd", kind)
	}
	return nil
}
