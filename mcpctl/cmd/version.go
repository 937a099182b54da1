package cmd

import (
	"context"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newVersionCommand(o *options) *cobra.Command {
	var clientOnly bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print mcpctl's version and the control plane's",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			v := printer.Version{Client: version.Version}
			if clientOnly {
				return o.print(v)
			}
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.GetVersion(ctx, &mcpmeshv1.GetVersionRequest{})
				if err != nil {
					return err
				}
				v.Server, v.Addr = resp.GetVersion(), o.addr
				if v.Server == "" {
					v.Server = "unknown"
				}
				return o.print(v)
			})
		},
	}
	c.Flags().BoolVar(&clientOnly, "client", false, "print mcpctl's version only, without asking the control plane")
	return c
}
