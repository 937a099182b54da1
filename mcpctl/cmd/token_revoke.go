package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newTokenRevokeCommand(o *options) *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once; its open streams end within a second",
		Args:  exactArgs(1, "one token ID (see 'mcpctl token list')"),
		RunE: func(c *cobra.Command, args []string) error {
			return o.withTokenClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.TokenServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				if dryRun {
					list, err := cl.ListTokens(ctx, &mcpmeshv1.ListTokensRequest{})
					if err != nil {
						return err
					}
					now := time.Now()
					for _, t := range list.GetTokens() {
						if t.GetId() == args[0] {
							v := printer.TokenFromProto(t, now)
							return o.print(printer.DryRun{DryRun: true, Action: "revoke", Kind: "token", Name: args[0], Changes: revokeChanges(v.State, now)})
						}
					}
					return status.Errorf(codes.NotFound, "token %q not found (see 'mcpctl token list')", args[0])
				}
				resp, err := cl.RevokeToken(ctx, &mcpmeshv1.RevokeTokenRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return o.print(printer.RevokedToken{Action: "revoked", Token: printer.TokenFromProto(resp.GetToken(), time.Now())})
			})
		},
	}
	addDryRunFlag(c, &dryRun)
	return c
}
