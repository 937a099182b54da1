package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// EnvAddr names the environment variable with the control plane's address.
const EnvAddr = "MCPMESH_ADDR"

// Environment variables of the TLS flags (--ca, --client-cert, --client-key).
const (
	EnvCA         = "MCPMESH_CA"
	EnvClientCert = "MCPMESH_CLIENT_CERT"
	EnvClientKey  = "MCPMESH_CLIENT_KEY"
)

// Defaults used when neither a flag nor the environment says otherwise.
const (
	DefaultAddr           = "127.0.0.1:7070"
	DefaultTokenFile      = "./data/" + authtoken.FileName
	DefaultRequestTimeout = 10 * time.Second
)

// options are the global flags, shared by every command.
type options struct {
	addr           string
	tokenFile      string
	output         string
	requestTimeout time.Duration
	tls            tlsconfig.ClientFiles
	insecure       bool
	configPath     string // --config
	contextName    string // --context

	format printer.Format
	stdout io.Writer
	getenv func(string) string
	flags  *pflag.FlagSet // the global flags, to tell a flag given from its default

	// Set by resolve: where the token comes from when not a file (a
	// context's token-env), and the context in use ("" if none).
	tokenEnv string
	context  string
	resolved bool
}

// Execute runs mcpctl with the process's arguments and returns the exit code.
func Execute() int {
	// Ctrl-C ends `status --watch` cleanly and aborts any call in flight.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
}

// Run runs mcpctl with args, writing output to stdout and the one-line error
// to stderr, and returns the exit code (0 ok, 1 error). getenv supplies the
// environment (os.Getenv in production).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	root := newRootCommand(stdout, getenv)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		// One line, always: a multi-line gRPC message would break scripts
		// that read the first line of stderr.
		msg := strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
		fmt.Fprintf(stderr, "Error: %s\n", msg)
		return 1
	}
	return 0
}

func newRootCommand(stdout io.Writer, getenv func(string) string) *cobra.Command {
	root, _ := newRoot(stdout, getenv)
	return root
}

// newRoot builds the command tree and the options its commands share.
func newRoot(stdout io.Writer, getenv func(string) string) (*cobra.Command, *options) {
	o := &options{stdout: stdout, getenv: getenv}
	root := &cobra.Command{
		Use:           "mcpctl",
		Short:         "Administer an mcpmesh control plane",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			f, err := printer.ParseFormat(o.output)
			if err != nil {
				return err
			}
			o.format = f
			if o.requestTimeout <= 0 {
				return fmt.Errorf("--request-timeout must be positive, got %s", o.requestTimeout)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	o.flags = pf
	pf.StringVar(&o.addr, "addr", DefaultAddr, "control plane gRPC address (env "+EnvAddr+", or the context's addr)")
	pf.StringVar(&o.tokenFile, "token-file", DefaultTokenFile, "admin token file (env "+authtoken.EnvTokenFile+", or the context's token-file or token-env)")
	pf.StringVarP(&o.output, "output", "o", string(printer.Table), "output format: table, json or yaml")
	pf.StringVar(&o.tls.CA, "ca", "", "PEM CA bundle the control plane's TLS certificate must chain to; turns TLS on (env "+EnvCA+")")
	pf.StringVar(&o.tls.Cert, "client-cert", "", "PEM client certificate for a control plane with mutual TLS (env "+EnvClientCert+")")
	pf.StringVar(&o.tls.Key, "client-key", "", "PEM private key of --client-cert (env "+EnvClientKey+")")
	pf.StringVar(&o.tls.ServerName, "tls-server-name", "", "name the control plane's certificate must carry (default: the host of --addr)")
	pf.BoolVar(&o.insecure, "insecure", false, "allow plaintext to a non-loopback --addr (the token crosses the network unencrypted)")
	pf.DurationVar(&o.requestTimeout, "request-timeout", DefaultRequestTimeout, "deadline of each call to the control plane")
	pf.StringVar(&o.configPath, "config", "", "mcpctl config file with contexts (env "+ctlconfig.EnvConfig+"; default $XDG_CONFIG_HOME/mcpmesh/config.yaml or ~/.config/mcpmesh/config.yaml)")
	pf.StringVar(&o.contextName, "context", "", "context of the config file to use instead of its current-context (env "+ctlconfig.EnvContext+")")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("context", o.completeContexts)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})

	server := &cobra.Command{Use: "server", Short: "Manage registered backend MCP servers"}
	server.AddCommand(newServerAddCommand(o), newServerUpdateCommand(o), newServerRemoveCommand(o), newServerListCommand(o),
		newServerGetCommand(o), newServerEnableCommand(o, true), newServerEnableCommand(o, false),
		newServerImportCommand(o), newServerExportCommand(o))
	config := &cobra.Command{Use: "config", Short: "Read and change cluster settings"}
	config.AddCommand(newConfigGetCommand(o), newConfigSetCommand(o))
	dataplane := &cobra.Command{Use: "dataplane", Short: "Inspect data planes"}
	dataplane.AddCommand(newDataplaneListCommand(o))
	token := &cobra.Command{Use: "token", Short: "Issue, list and revoke control-plane credentials (admin, viewer, dataplane)"}
	token.AddCommand(newTokenCreateCommand(o), newTokenListCommand(o), newTokenRevokeCommand(o))
	secret := &cobra.Command{Use: "secret", Short: "Manage the cluster secret (the key of session ids and cursors)"}
	secret.AddCommand(newSecretRotateCommand(o))
	clientKey := &cobra.Command{Use: "client-key", Short: "Issue, list and revoke the API keys MCP clients present to data planes (--client-keys)"}
	clientKey.AddCommand(newClientKeyCreateCommand(o), newClientKeyListCommand(o), newClientKeyRevokeCommand(o))
	contexts := &cobra.Command{Use: "context", Short: "Manage the named control planes of the config file (like kubectl config contexts)"}
	contexts.AddCommand(newContextListCommand(o), newContextUseCommand(o), newContextSetCommand(o), newContextDeleteCommand(o))
	root.AddCommand(server, config, dataplane, token, secret, clientKey, contexts, newStatusCommand(o), newVersionCommand(o),
		newBackupCommand(o), newRestoreCommand(o), newOAuthCommand(o))
	return root, o
}

// exactArgs is cobra.ExactArgs with a message that names what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %s, got %d argument(s) (see '%s --help')", c.CommandPath(), what, len(args), c.CommandPath())
		}
		return nil
	}
}

// conn is an open client for one command run.
type conn struct {
	o      *options
	cc     *grpc.ClientConn
	client mcpmeshv1.RegistryServiceClient
	tokens mcpmeshv1.TokenServiceClient
	secret mcpmeshv1.SecretServiceClient
	ckeys  mcpmeshv1.ClientKeyServiceClient
}

// dial reads the admin token and prepares a client. grpc.NewClient does not
// connect; the first call does, and fails fast (no WaitForReady) when the
// control plane is down.
func (o *options) dial() (*conn, error) {
	if err := o.resolve(); err != nil {
		return nil, err
	}
	tok, err := o.readToken()
	if err != nil {
		return nil, err
	}
	creds, err := o.transportCredentials()
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(o.addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(authtoken.Credentials(tok)),
		limits.CallOptions(), // lists and statuses past gRPC's 4 MiB default
	)
	if err != nil {
		return nil, fmt.Errorf("control plane address %q is invalid: %w (set --addr or %s)", o.addr, err, EnvAddr)
	}
	return &conn{o: o, cc: cc, client: mcpmeshv1.NewRegistryServiceClient(cc), tokens: mcpmeshv1.NewTokenServiceClient(cc),
		secret: mcpmeshv1.NewSecretServiceClient(cc), ckeys: mcpmeshv1.NewClientKeyServiceClient(cc)}, nil
}

func (c *conn) Close() { _ = c.cc.Close() }

// transportCredentials are TLS when a TLS flag is set, else plaintext,
// which is refused off loopback unless --insecure: the token would cross
// the network in the clear.
func (o *options) transportCredentials() (credentials.TransportCredentials, error) {
	if o.tls.Enabled() {
		if o.insecure {
			return nil, errors.New("--insecure contradicts --ca/--client-cert: drop one")
		}
		return tlsconfig.GRPCClient(o.tls, nil)
	}
	if o.tls.ServerName != "" {
		return nil, fmt.Errorf("--tls-server-name needs --ca (env %s)", EnvCA)
	}
	if !o.insecure && !tlsconfig.IsLoopbackTarget(o.addr) {
		return nil, fmt.Errorf("refusing plaintext to control plane %s (not a loopback address): set --ca (env %s) to the CA bundle of its TLS certificate, or --insecure to allow plaintext", o.addr, EnvCA)
	}
	return insecure.NewCredentials(), nil
}

// unavailable explains a call that never reached the service. Over TLS,
// anything but a refused connection is most likely TLS's doing: a server
// that wants a client certificate may hang up (broken pipe) before the
// client reads why. A plaintext client hung up on before the server's first
// frame was most likely talking to a TLS server.
func (o *options) unavailable(msg string) error {
	down := strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host")
	switch {
	case strings.HasPrefix(msg, "the control plane's store is unavailable"):
		return fmt.Errorf("control plane at %s answered, but %s (nothing was written; retry when its etcd has a quorum)", o.addr, msg)
	case down:
	case o.tls.Enabled() && o.tls.Cert == "":
		return fmt.Errorf("TLS with control plane at %s failed: %s (check --ca; if it requires mutual TLS, set --client-cert and --client-key, env %s and %s)", o.addr, msg, EnvClientCert, EnvClientKey)
	case o.tls.Enabled():
		return fmt.Errorf("TLS with control plane at %s failed: %s (check --ca, --client-cert, --client-key and --tls-server-name)", o.addr, msg)
	case strings.Contains(msg, "server preface") || strings.Contains(msg, "EOF") || strings.Contains(msg, "broken pipe") || strings.Contains(msg, "reset by peer"):
		return fmt.Errorf("control plane at %s closed the connection before answering: if it serves TLS, set --ca (env %s) to the CA bundle of its certificate", o.addr, EnvCA)
	}
	return fmt.Errorf("cannot reach control plane at %s: is it running? (set --addr or %s)", o.addr, EnvAddr)
}

// callCtx bounds one unary call.
func (o *options) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, o.requestTimeout)
}

// withClient dials, runs fn, and turns gRPC errors into what to do.
func (o *options) withClient(ctx context.Context, server string, fn func(ctx context.Context, c mcpmeshv1.RegistryServiceClient) error) error {
	c, err := o.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return o.explain(fn(ctx, c.client), server)
}

// withClientKeyClient is withClient for the client key service.
func (o *options) withClientKeyClient(ctx context.Context, fn func(ctx context.Context, c mcpmeshv1.ClientKeyServiceClient) error) error {
	c, err := o.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return o.explain(fn(ctx, c.ckeys), "")
}

// withTokenClient is withClient for the token service.
func (o *options) withTokenClient(ctx context.Context, fn func(ctx context.Context, c mcpmeshv1.TokenServiceClient) error) error {
	c, err := o.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return o.explain(fn(ctx, c.tokens), "")
}

// explain maps a gRPC error to a one-line message that says what to do.
// server names the server the command is about ("" if none).
func (o *options) explain(err error, server string) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("control plane at %s did not answer within %s (raise --request-timeout)", o.addr, o.requestTimeout)
		}
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		return o.unavailable(st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("control plane at %s did not answer within %s (raise --request-timeout)", o.addr, o.requestTimeout)
	case codes.Unauthenticated:
		return fmt.Errorf("control plane rejected the token from %s: %s (set --token-file or %s)", o.tokenSource(), st.Message(), authtoken.EnvTokenFile)
	case codes.PermissionDenied:
		return fmt.Errorf("control plane denied the request: %s", st.Message())
	case codes.NotFound:
		if server != "" {
			return fmt.Errorf("server %q not found (see 'mcpctl server list')", server)
		}
		return fmt.Errorf("not found: %s", st.Message())
	case codes.AlreadyExists:
		if server != "" {
			return fmt.Errorf("server %q already exists (remove it first or choose another name)", server)
		}
		return fmt.Errorf("already exists: %s", st.Message())
	case codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted:
		return errors.New(st.Message())
	case codes.Aborted:
		return fmt.Errorf("%s changed concurrently: %s (run the command again)", orWord(server), st.Message())
	case codes.Canceled:
		return errors.New("cancelled")
	case codes.Unimplemented:
		return fmt.Errorf("control plane at %s does not support this command (is it older than mcpctl %s?)", o.addr, version.Version)
	default:
		return fmt.Errorf("control plane error (%s): %s", st.Code(), st.Message())
	}
}

func orWord(server string) string {
	if server == "" {
		return "the configuration"
	}
	return fmt.Sprintf("server %q", server)
}

func (o *options) print(v printer.View) error {
	return printer.Print(o.stdout, o.format, v)
}
