package cmd

import (
	"context"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newDataplaneListCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the data planes the control plane knows",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.ListDataPlanes(ctx, &mcpmeshv1.ListDataPlanesRequest{})
				if err != nil {
					return err
				}
				list := printer.DataPlaneList{}
				for _, d := range resp.GetDataplanes() {
					list = append(list, printer.DataPlaneFromProto(d))
				}
				return o.print(list)
			})
		},
	}
}
