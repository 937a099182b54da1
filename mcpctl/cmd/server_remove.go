package cmd

import (
	"context"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newServerRemoveCommand(o *options) *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:               "remove NAME",
		Aliases:           []string{"rm", "delete"},
		Short:             "Unregister a server",
		Args:              exactArgs(1, "one NAME"),
		ValidArgsFunction: completeServerNames(o),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := names.ValidateServer(name); err != nil {
				return err
			}
			return o.withClient(c.Context(), name, func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				if dryRun {
					return dryRunServer(ctx, o, cl, "remove", name, nil)
				}
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.DeleteServer(ctx, &mcpmeshv1.DeleteServerRequest{Name: name})
				if err != nil {
					return err
				}
				return o.print(printer.Result{Action: "removed", Name: name, Revision: resp.GetRevision()})
			})
		},
	}
	addDryRunFlag(c, &dryRun)
	return c
}
