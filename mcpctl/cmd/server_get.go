package cmd

import (
	"context"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newServerGetCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show a server's configuration and its state on each data plane",
		Args:              exactArgs(1, "one NAME"),
		ValidArgsFunction: completeServerNames(o),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := names.ValidateServer(name); err != nil {
				return err
			}
			return o.withClient(c.Context(), name, func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.GetServer(ctx, &mcpmeshv1.GetServerRequest{Name: name})
				if err != nil {
					return err
				}
				st := resp.GetStatus()
				if st == nil {
					st = &mcpmeshv1.ServerStatus{Name: name}
				}
				return o.print(printer.ServerDetail{
					Server: printer.ServerFromProto(resp.GetServer()),
					Status: printer.ServerStatusFromProto(st),
				})
			})
		},
	}
}
