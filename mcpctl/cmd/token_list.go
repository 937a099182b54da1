package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newTokenListCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List issued tokens (never their secrets); the bootstrap admin.token is not listed",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withTokenClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.TokenServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.ListTokens(ctx, &mcpmeshv1.ListTokensRequest{})
				if err != nil {
					return err
				}
				now := time.Now()
				list := printer.TokenList{}
				for _, t := range resp.GetTokens() {
					list = append(list, printer.TokenFromProto(t, now))
				}
				return o.print(list)
			})
		},
	}
}
