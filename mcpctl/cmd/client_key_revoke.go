package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newClientKeyRevokeCommand(o *options) *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a client API key; data planes refuse it once they have the next config snapshot",
		Args:  exactArgs(1, "one client key ID (see 'mcpctl client-key list')"),
		RunE: func(c *cobra.Command, args []string) error {
			return o.withClientKeyClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.ClientKeyServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				if dryRun {
					list, err := cl.ListClientKeys(ctx, &mcpmeshv1.ListClientKeysRequest{})
					if err != nil {
						return err
					}
					now := time.Now()
					for _, t := range list.GetKeys() {
						if t.GetId() == args[0] {
							v := printer.ClientKeyFromProto(t, now)
							return o.print(printer.DryRun{DryRun: true, Action: "revoke", Kind: "client-key", Name: args[0], Changes: revokeChanges(v.State, now)})
						}
					}
					return status.Errorf(codes.NotFound, "client key %q not found (see 'mcpctl client-key list')", args[0])
				}
				resp, err := cl.RevokeClientKey(ctx, &mcpmeshv1.RevokeClientKeyRequest{Id: args[0]})
				if err != nil {
					return err
				}
				return o.print(printer.RevokedClientKey{Action: "revoked", ClientKey: printer.ClientKeyFromProto(resp.GetKey(), time.Now())})
			})
		},
	}
	addDryRunFlag(c, &dryRun)
	return c
}
