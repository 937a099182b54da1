package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newClientKeyListCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List client API keys (never their secrets)",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withClientKeyClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.ClientKeyServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.ListClientKeys(ctx, &mcpmeshv1.ListClientKeysRequest{})
				if err != nil {
					return err
				}
				now := time.Now()
				list := printer.ClientKeyList{}
				for _, k := range resp.GetKeys() {
					list = append(list, printer.ClientKeyFromProto(k, now))
				}
				return o.print(list)
			})
		},
	}
}
