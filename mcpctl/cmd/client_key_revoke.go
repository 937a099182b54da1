package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newClientKeyRevokeCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a client API key; data planes refuse it once they have the next config snapshot",
		Args:  exactArgs(1, "one client key ID (see 'mcpctl client-key list')"),
		RunE: func(c *cobra.Command, args []string) error {
			return o.withClientKeyClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.ClientKeyServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.RevokeClientKey(ctx, &mcpmeshv1.RevokeClientKeyRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return o.print(printer.RevokedClientKey{Action: "revoked", ClientKey: printer.ClientKeyFromProto(resp.GetKey(), time.Now())})
			})
		},
	}
}
