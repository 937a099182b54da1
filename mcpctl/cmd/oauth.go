package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// oauthFlags are the OAuth flags of `server add` and `server update`.
type oauthFlags struct {
	enabled      bool
	disable      bool
	clientID     string
	clientSecret string
	secretFile   string
	scopes       []string
}

// oauthFlagNames are the flags that change the OAuth config.
var oauthFlagNames = []string{"oauth", "no-oauth", "oauth-client-id", "oauth-client-secret", "oauth-client-secret-file", "oauth-scopes"}

func (f *oauthFlags) register(c *cobra.Command, update bool) {
	fl := c.Flags()
	fl.BoolVar(&f.enabled, "oauth", false, "authorize to the backend with OAuth 2.1 (an operator authorizes it once at a data plane's /oauth page)")
	fl.StringVar(&f.clientID, "oauth-client-id", "", "pre-registered OAuth client id (default: register a client dynamically)")
	fl.StringVar(&f.clientSecret, "oauth-client-secret", "", "secret of the pre-registered client (prefer --oauth-client-secret-file: argv is visible to other users)")
	fl.StringVar(&f.secretFile, "oauth-client-secret-file", "", "file holding the secret of the pre-registered client")
	fl.StringSliceVar(&f.scopes, "oauth-scopes", nil, "scopes to ask for, comma-separated (default: those the backend advertises)")
	c.MarkFlagsMutuallyExclusive("oauth-client-secret", "oauth-client-secret-file")
	if update {
		fl.BoolVar(&f.disable, "no-oauth", false, "stop using OAuth (the grant is dropped)")
		c.MarkFlagsMutuallyExclusive("oauth", "no-oauth")
	}
}

// secret returns the client secret from the flag or the file.
func (f *oauthFlags) secret() (string, error) {
	if f.secretFile == "" {
		return f.clientSecret, nil
	}
	b, err := os.ReadFile(f.secretFile)
	if err != nil {
		return "", fmt.Errorf("--oauth-client-secret-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("--oauth-client-secret-file %s is empty", f.secretFile)
	}
	return s, nil
}

// apply edits h as the flags say; changed reports which were given.
func (f *oauthFlags) apply(h *mcpmeshv1.HttpConfig, changed func(string) bool) error {
	if changed("no-oauth") && f.disable {
		h.Oauth = nil
		for _, n := range oauthFlagNames[2:] {
			if changed(n) {
				return fmt.Errorf("--%s and --no-oauth contradict each other", n)
			}
		}
		return nil
	}
	any := false
	for _, n := range oauthFlagNames {
		any = any || changed(n)
	}
	if !any {
		return nil
	}
	if changed("oauth") && !f.enabled {
		h.Oauth = nil
		return nil
	}
	if h.Oauth == nil {
		if !changed("oauth") {
			return errors.New("--oauth-client-id, --oauth-client-secret and --oauth-scopes need --oauth")
		}
		h.Oauth = &mcpmeshv1.OAuthConfig{}
	}
	h.Oauth.Enabled = true
	if changed("oauth-client-id") {
		if h.Oauth.ClientId != f.clientID {
			h.Oauth.ClientSecret = "" // another client's secret is of no use
		}
		h.Oauth.ClientId = f.clientID
	}
	if changed("oauth-client-secret") || changed("oauth-client-secret-file") {
		s, err := f.secret()
		if err != nil {
			return err
		}
		h.Oauth.ClientSecret = s
	}
	if changed("oauth-scopes") {
		h.Oauth.Scopes = nil
		for _, s := range f.scopes {
			if s = strings.TrimSpace(s); s != "" {
				h.Oauth.Scopes = append(h.Oauth.Scopes, s)
			}
		}
	}
	return nil
}

// withOAuthClient is withClient for the OAuth service.
func (o *options) withOAuthClient(ctx context.Context, server string, fn func(ctx context.Context, c mcpmeshv1.OAuthServiceClient) error) error {
	c, err := o.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return o.explain(fn(ctx, mcpmeshv1.NewOAuthServiceClient(c.cc)), server)
}

func newOAuthCommand(o *options) *cobra.Command {
	c := &cobra.Command{Use: "oauth", Short: "Inspect and revoke the OAuth grants of OAuth-protected backends (authorize them at a data plane's /oauth page)"}
	c.AddCommand(newOAuthListCommand(o), newOAuthRevokeCommand(o))
	return c
}

func newOAuthListCommand(o *options) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the servers that use OAuth and where their grants stand (never a token)",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withOAuthClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.OAuthServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.ListAuthorizations(ctx, &mcpmeshv1.ListAuthorizationsRequest{IncludeAll: all})
				if err != nil {
					return err
				}
				list := printer.AuthorizationList{}
				for _, a := range resp.GetAuthorizations() {
					list = append(list, printer.AuthorizationFromProto(a))
				}
				return o.print(list)
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "also list the servers that do not use OAuth")
	return c
}

func newOAuthRevokeCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke SERVER",
		Short: "Revoke a server's OAuth grant (at the authorization server too, when it offers revocation)",
		Args:  exactArgs(1, "the server name"),
		RunE: func(c *cobra.Command, args []string) error {
			return o.withOAuthClient(c.Context(), args[0], func(ctx context.Context, cl mcpmeshv1.OAuthServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.RevokeAuthorization(ctx, &mcpmeshv1.RevokeAuthorizationRequest{Server: args[0]})
				if err != nil {
					return err
				}
				return o.print(printer.RevokedAuthorization{Action: "revoked", Server: args[0], Revision: resp.GetRevision(),
					Warning: resp.GetAuthorization().GetLastError()})
			})
		},
	}
}
