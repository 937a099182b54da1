package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newTokenRevokeCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once; its open streams end within a second",
		Args:  exactArgs(1, "one token ID (see 'mcpctl token list')"),
		RunE: func(c *cobra.Command, args []string) error {
			return o.withTokenClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.TokenServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.RevokeToken(ctx, &mcpmeshv1.RevokeTokenRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return o.print(printer.RevokedToken{Action: "revoked", Token: printer.TokenFromProto(resp.GetToken(), time.Now())})
			})
		},
	}
}
