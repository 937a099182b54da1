package cmd

import (
	"context"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newServerListCommand(o *options) *cobra.Command {
	var tags []string
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List registered servers",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.ListServers(ctx, &mcpmeshv1.ListServersRequest{Tags: tags})
				if err != nil {
					return err
				}
				list := printer.ServerList{} // [] rather than null when empty
				for _, s := range resp.GetServers() {
					list = append(list, printer.ServerFromProto(s))
				}
				return o.print(list)
			})
		},
	}
	c.Flags().StringArrayVar(&tags, "tag", nil, "only servers carrying this tag (repeatable: all must match)")
	return c
}
