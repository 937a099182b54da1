package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// Bounds of --grace; the control plane checks them too.
const (
	minGrace     = time.Minute
	maxGrace     = 7 * 24 * time.Hour
	defaultGrace = time.Hour
)

func newSecretRotateCommand(o *options) *cobra.Command {
	var (
		grace  time.Duration
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the cluster secret; session ids and cursors made with the old one verify for --grace",
		Long: "Replace the cluster secret with a new random one. Data planes sign and seal with the new one at once\n" +
			"and keep accepting session ids and cursors made with the old one until the grace ends; then the control\n" +
			"plane drops it, and clients holding old ones must start a new session or list again.",
		Example: "  mcpctl secret rotate\n  mcpctl secret rotate --grace 24h",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if grace < minGrace || grace > maxGrace {
				return fmt.Errorf("--grace %s is out of range: use 1m to 168h (7 days)", grace)
			}
			if dryRun {
				return o.print(printer.DryRun{DryRun: true, Action: "rotate", Kind: "cluster-secret", Name: "cluster secret", Changes: []printer.Change{
					{Field: "cluster secret", Op: printer.OpChange, Old: "current", New: "new random one"},
					{Field: "previous secret", Op: printer.OpAdd, New: "the current one, accepted for " + grace.String() + " more"},
				}})
			}
			cl, err := o.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := o.callCtx(c.Context())
			defer cancel()
			resp, err := cl.secret.RotateClusterSecret(ctx, &mcpmeshv1.RotateClusterSecretRequest{Grace: durationpb.New(grace)})
			if err != nil {
				return o.explain(err, "")
			}
			return o.print(printer.SecretRotated{
				Revision:          resp.GetRevision(),
				PreviousExpiresAt: resp.GetPreviousExpiresAt().AsTime().UTC().Format(time.RFC3339),
				PreviousSecrets:   resp.GetPreviousSecrets(),
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", defaultGrace, "how long session ids and cursors made with the old secret stay valid (1m to 168h)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check --grace and print what would change; nothing is sent")
	return cmd
}
