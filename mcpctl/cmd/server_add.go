package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// addFlags are the flags of `server add`, as typed by the user.
type addFlags struct {
	url         string
	transport   string
	env         []string
	headers     []string
	tags        []string
	endpoints   []string
	timeout     time.Duration
	backoff     string
	cwd         string
	description string
	disabled    bool
	dryRun      bool
	// prefix is --prefix; prefixSet tells "--prefix ''" from no flag.
	prefix    string
	prefixSet bool
	session   string
	// secretArgs are --secret-arg positions, counted from 1 after COMMAND.
	secretArgs []uint
	oauth      oauthFlags
	// changed reports which flags were given (set by RunE).
	changed func(string) bool
}

func newServerAddCommand(o *options) *cobra.Command {
	var f addFlags
	c := &cobra.Command{
		Use:   "add NAME (-- COMMAND [ARGS...] | --url URL)",
		Short: "Register a backend MCP server",
		Example: `  mcpctl server add files -- npx -y @modelcontextprotocol/server-filesystem /srv
  mcpctl server add github --url https://api.example.com/mcp --header Authorization="Bearer $TOKEN"
  mcpctl server add legacy --url http://10.0.0.5:9000/sse --transport sse --tag team-a
  mcpctl server add tools --url http://127.0.0.1:3000/mcp --prefix ''    # tools keep their own names
  mcpctl server add cache --url http://10.0.0.7:3000/mcp --session shared # one upstream session per data plane`,
		RunE: func(c *cobra.Command, args []string) error {
			name, command, err := splitAddArgs(args, c.ArgsLenAtDash())
			if err != nil {
				return err
			}
			if err := checkDryRunAfterDash(name, command, c.Flags().Changed("dry-run")); err != nil {
				return err
			}
			f.prefixSet = c.Flags().Changed("prefix")
			f.changed = c.Flags().Changed
			req, err := buildCreateRequest(name, command, f)
			if err != nil {
				return err
			}
			return o.withClient(c.Context(), name, func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.CreateServer(ctx, req)
				if err != nil {
					return err
				}
				if f.dryRun {
					sv := printer.ServerFromProto(resp.GetServer())
					return o.print(printer.DryRun{DryRun: true, Action: "create", Kind: "server", Name: name,
						Revision: resp.GetRevision(), Changes: printer.ServerChanges(nil, &sv), Server: &sv})
				}
				return o.print(printer.Result{Action: "created", Name: name, Revision: resp.GetRevision()})
			})
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.url, "url", "", "URL of a streamable HTTP or SSE server")
	fl.StringVar(&f.transport, "transport", "", "transport of --url: streamable-http (default) or sse")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable KEY=VALUE for a stdio server (repeatable)")
	fl.StringArrayVar(&f.headers, "header", nil, "HTTP header KEY=VALUE sent to a --url server (repeatable)")
	fl.StringArrayVar(&f.tags, "tag", nil, "tag (repeatable)")
	fl.StringArrayVar(&f.endpoints, "endpoint", nil, "extra replica URL of a --url server (repeatable)")
	fl.DurationVar(&f.timeout, "timeout", 0, "per-request deadline towards this server (0 = cluster default)")
	fl.StringVar(&f.backoff, "backoff", "", "connect retry waits for this server, e.g. 1s,2s,4s,8s (default: the cluster's resilience.backoff)")
	fl.StringVar(&f.cwd, "cwd", "", "working directory of a stdio server")
	fl.StringVar(&f.description, "description", "", "human description")
	fl.StringVar(&f.prefix, "prefix", "", "prefix of the server's tool and prompt names (default NAME__; '' exposes them under their own names)")
	fl.StringVar(&f.session, "session", "", "upstream sessions: per-client (each client its own; default for --url) or shared (one per data plane; default for stdio)")
	fl.UintSliceVar(&f.secretArgs, "secret-arg", nil, "position N (1 = the first after COMMAND) of a stdio arg that is a secret, shown as *** like --env values (repeatable)")
	fl.BoolVar(&f.disabled, "disabled", false, "register the server without serving it")
	fl.BoolVar(&f.dryRun, "dry-run", false, "validate with the control plane and print what would be created")
	f.oauth.register(c, false)
	return c
}

// splitAddArgs separates NAME from the stdio command given after "--".
// dash is cobra's ArgsLenAtDash: -1 without "--".
func splitAddArgs(args []string, dash int) (name string, command []string, err error) {
	switch {
	case len(args) == 0 || dash == 0:
		return "", nil, errors.New("server add needs a NAME before the command (see 'mcpctl server add --help')")
	case dash < 0 && len(args) > 1:
		return "", nil, fmt.Errorf("unexpected arguments %q: put a stdio command after -- (mcpctl server add %s -- %s)", args[1:], args[0], strings.Join(args[1:], " "))
	case dash > 1:
		return "", nil, fmt.Errorf("unexpected arguments %q before --: server add takes one NAME", args[1:dash])
	}
	if dash == 1 {
		command = args[1:]
	}
	return args[0], command, nil
}

// checkDryRunAfterDash refuses "server add NAME -- CMD ... --dry-run": after
// "--" every word is the command's, so that would really create the server
// with --dry-run among CMD's arguments, while the user most likely meant a
// dry run. Setting mcpctl's own --dry-run before "--" (to true or false)
// makes the line unambiguous, and then --dry-run after "--" is CMD's.
func checkDryRunAfterDash(name string, command []string, dryRunSet bool) error {
	if dryRunSet {
		return nil
	}
	for _, a := range command {
		if a == "--dry-run" || strings.HasPrefix(a, "--dry-run=") {
			return fmt.Errorf("%s after -- is an argument of the command %q, so the server would really be created: "+
				"to validate only, put --dry-run before -- (mcpctl server add %s --dry-run -- %s); "+
				"to pass it to the command, say --dry-run=false before -- (mcpctl server add %s --dry-run=false -- %s)",
				a, command[0], name, strings.Join(without(command, a), " "), name, strings.Join(command, " "))
		}
	}
	return nil
}

// without returns words without the ones equal to w.
func without(words []string, w string) []string {
	var out []string
	for _, x := range words {
		if x != w {
			out = append(out, x)
		}
	}
	return out
}

// buildCreateRequest turns the command line into the request; it is pure so
// that every flag combination is tested without a control plane.
func buildCreateRequest(name string, command []string, f addFlags) (*mcpmeshv1.CreateServerRequest, error) {
	if err := names.ValidateServer(name); err != nil {
		return nil, err
	}
	s := &mcpmeshv1.Server{
		Name:        name,
		Description: f.description,
		Enabled:     proto.Bool(!f.disabled),
	}
	switch {
	case f.url != "" && len(command) > 0:
		return nil, errors.New("give either --url URL or a command after --, not both")
	case f.url == "" && len(command) == 0:
		return nil, errors.New("give a command after -- (stdio server) or --url URL (HTTP server)")
	case len(command) > 0:
		if command[0] == "" {
			return nil, errors.New("the command after -- is empty")
		}
		oauthSet := f.changed != nil && slices.ContainsFunc(oauthFlagNames, f.changed)
		for flag, set := range map[string]bool{"--transport": f.transport != "", "--header": len(f.headers) > 0, "--endpoint": len(f.endpoints) > 0, "--oauth": oauthSet} {
			if set {
				return nil, fmt.Errorf("%s applies only to --url servers, not to a stdio command", flag)
			}
		}
		env, err := parseEnv(f.env)
		if err != nil {
			return nil, err
		}
		s.Transport = mcpmeshv1.Transport_TRANSPORT_STDIO
		s.Stdio = &mcpmeshv1.StdioConfig{Command: command[0], Args: command[1:], Env: env, WorkingDir: f.cwd}
		for _, n := range f.secretArgs {
			if n < 1 || int(n) >= len(command) {
				return nil, fmt.Errorf("--secret-arg %d: the command has %d args after %s (count from 1)", n, len(command)-1, command[0])
			}
			s.Stdio.SecretArgs = append(s.Stdio.SecretArgs, uint32(n-1))
		}
	default:
		if len(f.env) > 0 {
			return nil, errors.New("--env applies only to stdio servers (a command after --); use --header for HTTP")
		}
		if len(f.secretArgs) > 0 {
			return nil, errors.New("--secret-arg applies only to stdio servers (a command after --)")
		}
		if f.cwd != "" {
			return nil, errors.New("--cwd applies only to stdio servers (a command after --)")
		}
		switch f.transport {
		case "", "streamable-http", "http":
			s.Transport = mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP
		case "sse":
			s.Transport = mcpmeshv1.Transport_TRANSPORT_SSE
		default:
			return nil, fmt.Errorf("--transport %q is not supported: use streamable-http or sse", f.transport)
		}
		if err := checkFlagURL("--url", f.url); err != nil {
			return nil, err
		}
		for _, e := range f.endpoints {
			if err := checkFlagURL("--endpoint", e); err != nil {
				return nil, err
			}
		}
		headers, err := parseHeaders(f.headers)
		if err != nil {
			return nil, err
		}
		s.Http = &mcpmeshv1.HttpConfig{Url: f.url, Headers: headers}
		s.Endpoints = f.endpoints
		if f.changed != nil {
			if err := f.oauth.apply(s.Http, f.changed); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if f.timeout < 0 {
		return nil, fmt.Errorf("--timeout must not be negative, got %s", f.timeout)
	}
	if f.timeout > 0 {
		s.Timeout = durationpb.New(f.timeout)
	}
	if f.backoff != "" {
		if s.Backoff, err = parseBackoff(f.backoff); err != nil {
			return nil, err
		}
	}
	if f.prefixSet {
		if err := names.ValidatePrefix(f.prefix); err != nil {
			return nil, fmt.Errorf("--prefix: %w", err)
		}
		s.Prefix = proto.String(f.prefix)
	}
	if f.session != "" {
		m, err := states.ParseSession(f.session)
		if err != nil {
			return nil, fmt.Errorf("--session: %w", err)
		}
		s.Session = m
	}
	seen := map[string]bool{}
	for _, t := range f.tags {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("--tag must not be empty")
		}
		if !seen[t] {
			seen[t] = true
			s.Tags = append(s.Tags, t)
		}
	}
	return &mcpmeshv1.CreateServerRequest{Server: s, ValidateOnly: f.dryRun}, nil
}

func checkFlagURL(flag, raw string) error {
	if err := names.ValidateURL(raw); err != nil {
		return fmt.Errorf("%s %w", flag, err)
	}
	return nil
}

// parseBackoff parses --backoff: positive durations separated by commas.
func parseBackoff(v string) ([]*durationpb.Duration, error) {
	var out []*durationpb.Duration
	for _, part := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--backoff %q: want positive durations separated by commas, e.g. 1s,2s,4s,8s", v)
		}
		out = append(out, durationpb.New(d))
	}
	return out, nil
}
