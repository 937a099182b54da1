package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/internal/states"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// updateFlags are the flags of `server update`. Scalars replace the stored
// value; env, headers, tags and endpoints are edited entry by entry.
type updateFlags struct {
	url, transport, backoff, cwd, description, prefix, session string
	timeout                                                    time.Duration
	env, unsetEnv, headers, unsetHeaders                       []string
	tags, untags, endpoints, removeEndpoints                   []string
	secretArgs                                                 []uint
	defaultPrefix, dryRun, force                               bool
	oauth                                                      oauthFlags
}

// forceAttempts bounds the re-read loop of --force when writes keep racing.
const forceAttempts = 3

func newServerUpdateCommand(o *options) *cobra.Command {
	var f updateFlags
	c := &cobra.Command{
		Use:   "update NAME [flags] [-- COMMAND [ARGS...]]",
		Short: "Change the given settings of a server, keeping the others",
		Long: `Change a server: only the flags given change, everything else (secrets
included) stays as stored. The update is based on the revision read at the
start; if someone else changed the server in between, nothing is written and
the error says what they changed. --force writes over their change.

--env, --header, --tag and --endpoint add (or replace one entry);
--unset-env, --unset-header, --untag and --remove-endpoint remove one.
A stdio server's command and args are replaced by what follows "--".`,
		Example: `  mcpctl server update github --timeout 30s --tag prod
  mcpctl server update github --header Authorization="Bearer $NEW" --dry-run
  mcpctl server update files --unset-env DEBUG -- npx -y @modelcontextprotocol/server-filesystem /data`,
		ValidArgsFunction: completeServerNames(o),
		RunE: func(c *cobra.Command, args []string) error {
			dash := c.ArgsLenAtDash()
			if len(args) == 0 || dash == 0 {
				return errors.New("server update needs a NAME (see 'mcpctl server update --help')")
			}
			if (dash < 0 && len(args) > 1) || dash > 1 {
				return fmt.Errorf("unexpected arguments %q: server update takes one NAME; a new command goes after --", args[1:])
			}
			name, command := args[0], []string(nil)
			if dash == 1 {
				command = args[1:]
				if len(command) == 0 || command[0] == "" {
					return errors.New("the command after -- is empty")
				}
			}
			if err := names.ValidateServer(name); err != nil {
				return err
			}
			changed := c.Flags().Changed
			if !anyChange(changed, command) {
				return fmt.Errorf("nothing to change: give at least one setting (see 'mcpctl server update --help')")
			}
			return o.withClient(c.Context(), name, func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				var err error
				for range forceAttempts {
					err = runUpdate(ctx, o, cl, name, command, f, changed)
					if !f.force || status.Code(err) != codes.Aborted {
						return err
					}
				}
				return err
			})
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.url, "url", "", "new URL of a URL server")
	fl.StringVar(&f.transport, "transport", "", "transport of a URL server: streamable-http or sse")
	fl.StringArrayVar(&f.env, "env", nil, "set environment variable KEY=VALUE of a stdio server (repeatable)")
	fl.StringArrayVar(&f.unsetEnv, "unset-env", nil, "remove environment variable KEY (repeatable)")
	fl.StringArrayVar(&f.headers, "header", nil, "set HTTP header KEY=VALUE of a URL server (repeatable)")
	fl.StringArrayVar(&f.unsetHeaders, "unset-header", nil, "remove HTTP header KEY (repeatable)")
	fl.StringArrayVar(&f.tags, "tag", nil, "add a tag (repeatable)")
	fl.StringArrayVar(&f.untags, "untag", nil, "remove a tag (repeatable)")
	fl.StringArrayVar(&f.endpoints, "endpoint", nil, "add an extra replica URL (repeatable)")
	fl.StringArrayVar(&f.removeEndpoints, "remove-endpoint", nil, "remove an extra replica URL (repeatable)")
	fl.DurationVar(&f.timeout, "timeout", 0, "per-request deadline towards this server (0 = cluster default)")
	fl.StringVar(&f.backoff, "backoff", "", "connect retry waits, e.g. 1s,2s,4s,8s ('' = the cluster's resilience.backoff)")
	fl.StringVar(&f.cwd, "cwd", "", "working directory of a stdio server ('' = none)")
	fl.StringVar(&f.description, "description", "", "human description")
	fl.StringVar(&f.prefix, "prefix", "", "prefix of the server's tool and prompt names ('' = their own names)")
	fl.BoolVar(&f.defaultPrefix, "default-prefix", false, "go back to the default prefix NAME__")
	fl.StringVar(&f.session, "session", "", "upstream sessions: per-client or shared")
	fl.UintSliceVar(&f.secretArgs, "secret-arg", nil, "with a new command after --: position N (from 1) of an arg that is a secret (repeatable)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "validate with the control plane and print what would change, without changing it")
	fl.BoolVar(&f.force, "force", false, "write even if the server changed since it was read (overwrites that change)")
	c.MarkFlagsMutuallyExclusive("prefix", "default-prefix")
	f.oauth.register(c, true)
	return c
}

// updateChangeFlags are the flags that change something.
var updateChangeFlags = []string{"url", "transport", "env", "unset-env", "header", "unset-header", "tag", "untag",
	"endpoint", "remove-endpoint", "timeout", "backoff", "cwd", "description", "prefix", "default-prefix", "session", "secret-arg",
	"oauth", "no-oauth", "oauth-client-id", "oauth-client-secret", "oauth-client-secret-file", "oauth-scopes"}

func anyChange(changed func(string) bool, command []string) bool {
	return len(command) > 0 || slices.ContainsFunc(updateChangeFlags, changed)
}

// runUpdate reads the server, applies the flags and writes it back based on
// the revision read (any revision with --force).
func runUpdate(ctx context.Context, o *options, cl mcpmeshv1.RegistryServiceClient, name string, command []string, f updateFlags, changed func(string) bool) error {
	read, err := getServer(ctx, o, cl, name)
	if err != nil {
		return err
	}
	next := proto.CloneOf(read)
	renewed, err := applyUpdate(next, command, f, changed)
	if err != nil {
		return err
	}
	expected := read.GetModRevision()
	if f.force {
		expected = 0
	}
	uctx, cancel := o.callCtx(ctx)
	defer cancel()
	resp, err := cl.UpdateServer(uctx, &mcpmeshv1.UpdateServerRequest{Server: next, ExpectedRevision: expected, ValidateOnly: f.dryRun})
	if status.Code(err) == codes.Aborted && !f.force {
		return staleError(ctx, o, cl, read)
	}
	if err != nil {
		return err
	}
	before, after := printer.ServerFromProto(read), printer.ServerFromProto(resp.GetServer())
	changes := printer.ServerChanges(&before, &after, renewed...)
	if f.dryRun {
		return o.print(printer.DryRun{DryRun: true, Action: "update", Kind: "server", Name: name, Revision: resp.GetRevision(), Changes: changes, Server: &after})
	}
	return o.print(printer.Result{Action: "updated", Name: name, Revision: resp.GetRevision(), Changes: changes})
}

func getServer(ctx context.Context, o *options, cl mcpmeshv1.RegistryServiceClient, name string) (*mcpmeshv1.Server, error) {
	gctx, cancel := o.callCtx(ctx)
	defer cancel()
	got, err := cl.GetServer(gctx, &mcpmeshv1.GetServerRequest{Name: name})
	if err != nil {
		return nil, err
	}
	if got.GetServer() == nil {
		return nil, status.Errorf(codes.Internal, "control plane returned no server for %q", name)
	}
	return got.GetServer(), nil
}

// staleError says what changed between the server as read and as it is now.
func staleError(ctx context.Context, o *options, cl mcpmeshv1.RegistryServiceClient, read *mcpmeshv1.Server) error {
	name := read.GetName()
	cur, err := getServer(ctx, o, cl, name)
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("server %q was removed by someone else since you read it at revision %d: nothing was written", name, read.GetModRevision())
	}
	if err != nil {
		return fmt.Errorf("server %q was changed by someone else since you read it at revision %d, and reading it again failed: %w", name, read.GetModRevision(), o.explain(err, name))
	}
	before, now := printer.ServerFromProto(read), printer.ServerFromProto(cur)
	var what []string
	for _, c := range printer.ServerChanges(&before, &now) {
		what = append(what, c.String())
	}
	summary := strings.Join(what, "; ")
	if summary == "" {
		summary = "only values that are not shown (secrets) changed"
	}
	return fmt.Errorf("server %q was changed by someone else since you read it at revision %d (it is now at revision %d): %s. Nothing was written: run the command again to apply your change to the new version, or add --force to overwrite theirs",
		name, read.GetModRevision(), cur.GetModRevision(), summary)
}

// applyUpdate changes s (as read, secrets "***") by the flags given; it is
// pure so that every flag is tested without a control plane. It returns
// the secret fields given a new value ("env.K", "headers.K").
func applyUpdate(s *mcpmeshv1.Server, command []string, f updateFlags, changed func(string) bool) ([]string, error) {
	stdio := s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO
	kind := "a URL server"
	if stdio {
		kind = "a stdio server"
	}
	onlyFor := func(want bool, flags ...string) error {
		for _, fl := range flags {
			if changed(fl) && !want {
				return fmt.Errorf("--%s does not apply: server %q is %s (remove and add it again to change its kind)", fl, s.GetName(), kind)
			}
		}
		return nil
	}
	if err := onlyFor(stdio, "env", "unset-env", "cwd", "secret-arg"); err != nil {
		return nil, err
	}
	if err := onlyFor(!stdio, "url", "transport", "header", "unset-header", "endpoint", "remove-endpoint"); err != nil {
		return nil, err
	}
	if len(command) > 0 && !stdio {
		return nil, fmt.Errorf("a command after -- does not apply: server %q is %s (remove and add it again to change its kind)", s.GetName(), kind)
	}
	if changed("secret-arg") && len(command) == 0 {
		return nil, errors.New("--secret-arg goes with a new command after --")
	}
	var renewed []string
	if stdio {
		if slices.ContainsFunc(oauthFlagNames, changed) {
			return nil, errors.New("the OAuth flags apply only to --url servers, not to a stdio command")
		}
		if s.Stdio == nil {
			s.Stdio = &mcpmeshv1.StdioConfig{}
		}
		if len(command) > 0 {
			s.Stdio.Command, s.Stdio.Args, s.Stdio.SecretArgs = command[0], command[1:], nil
			for _, n := range f.secretArgs {
				if n < 1 || int(n) >= len(command) {
					return nil, fmt.Errorf("--secret-arg %d: the command has %d args after %s (count from 1)", n, len(command)-1, command[0])
				}
				s.Stdio.SecretArgs = append(s.Stdio.SecretArgs, uint32(n-1))
			}
		}
		env, err := parseEnv(f.env)
		if err != nil {
			return nil, err
		}
		var r []string
		if s.Stdio.Env, r, err = editMap("--unset-env", "env.", s.Stdio.Env, env, f.unsetEnv); err != nil {
			return nil, err
		}
		renewed = append(renewed, r...)
		if changed("cwd") {
			s.Stdio.WorkingDir = f.cwd
		}
	} else {
		if s.Http == nil {
			s.Http = &mcpmeshv1.HttpConfig{}
		}
		if changed("url") {
			if err := checkFlagURL("--url", f.url); err != nil {
				return nil, err
			}
			s.Http.Url = f.url
		}
		if changed("transport") {
			switch f.transport {
			case "streamable-http", "http":
				s.Transport = mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP
			case "sse":
				s.Transport = mcpmeshv1.Transport_TRANSPORT_SSE
			default:
				return nil, fmt.Errorf("--transport %q is not supported: use streamable-http or sse", f.transport)
			}
		}
		if err := f.oauth.apply(s.Http, changed); err != nil {
			return nil, err
		}
		headers, err := parseHeaders(f.headers)
		if err != nil {
			return nil, err
		}
		var r []string
		if s.Http.Headers, r, err = editMap("--unset-header", "headers.", s.Http.Headers, headers, f.unsetHeaders); err != nil {
			return nil, err
		}
		renewed = append(renewed, r...)
		for _, e := range f.endpoints {
			if err := checkFlagURL("--endpoint", e); err != nil {
				return nil, err
			}
		}
		var err2 error
		if s.Endpoints, err2 = editList("--remove-endpoint", "endpoint", s.Endpoints, f.endpoints, f.removeEndpoints); err2 != nil {
			return nil, err2
		}
	}
	for _, t := range f.tags {
		if strings.TrimSpace(t) == "" {
			return nil, errors.New("--tag must not be empty")
		}
	}
	var err error
	if s.Tags, err = editList("--untag", "tag", s.Tags, f.tags, f.untags); err != nil {
		return nil, err
	}
	if changed("timeout") {
		if f.timeout < 0 {
			return nil, fmt.Errorf("--timeout must not be negative, got %s", f.timeout)
		}
		s.Timeout = nil
		if f.timeout > 0 {
			s.Timeout = durationpb.New(f.timeout)
		}
	}
	if changed("backoff") {
		s.Backoff = nil
		if f.backoff != "" {
			if s.Backoff, err = parseBackoff(f.backoff); err != nil {
				return nil, err
			}
		}
	}
	if changed("description") {
		s.Description = f.description
	}
	if changed("prefix") {
		if err := names.ValidatePrefix(f.prefix); err != nil {
			return nil, fmt.Errorf("--prefix: %w", err)
		}
		s.Prefix = proto.String(f.prefix)
	}
	if f.defaultPrefix {
		s.Prefix = nil
	}
	if changed("session") {
		m, err := states.ParseSession(f.session)
		if err != nil {
			return nil, fmt.Errorf("--session: %w", err)
		}
		s.Session = m
	}
	return renewed, nil
}

// editMap sets set's entries in m and removes unset's keys; it returns the
// fields (prefix+key) of existing entries that got a new value. A key both
// set and unset, or unset but absent, is an error.
func editMap(unsetFlag, prefix string, m, set map[string]string, unset []string) (map[string]string, []string, error) {
	if m == nil {
		m = map[string]string{}
	}
	var renewed []string
	for _, k := range unset {
		if _, both := set[k]; both {
			return nil, nil, fmt.Errorf("%s %s: the same key is also set", unsetFlag, k)
		}
		if _, ok := m[k]; !ok {
			return nil, nil, fmt.Errorf("%s %s: the server has no such key", unsetFlag, k)
		}
		delete(m, k)
	}
	for _, k := range sortedKeys(set) {
		if _, ok := m[k]; ok {
			renewed = append(renewed, prefix+k)
		}
		m[k] = set[k]
	}
	if len(m) == 0 {
		m = nil
	}
	return m, renewed, nil
}

// editList appends add's items that are missing and removes remove's.
func editList(removeFlag, what string, list, add, remove []string) ([]string, error) {
	for _, r := range remove {
		if slices.Contains(add, r) {
			return nil, fmt.Errorf("%s %s: the same %s is also added", removeFlag, r, what)
		}
		i := slices.Index(list, r)
		if i < 0 {
			return nil, fmt.Errorf("%s %s: the server has no such %s", removeFlag, r, what)
		}
		list = slices.Delete(list, i, i+1)
	}
	for _, a := range add {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
