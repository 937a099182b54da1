package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newConfigGetCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "get [KEY]",
		Short: "Show cluster settings (all, or one KEY)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
				if err != nil {
					return err
				}
				values := printer.Config(resp.GetValues())
				if values == nil {
					values = printer.Config{}
				}
				if len(args) == 1 {
					v, ok := values[args[0]]
					if !ok {
						return fmt.Errorf("unknown setting %q (run 'mcpctl config get' to list them)", args[0])
					}
					values = printer.Config{args[0]: v}
				}
				return o.print(values)
			})
		},
	}
}
