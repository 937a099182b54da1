package cmd

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newConfigSetCommand(o *options) *cobra.Command {
	var dryRun bool
	c := &cobra.Command{
		Use:     "set KEY VALUE",
		Short:   "Change one cluster setting",
		Example: "  mcpctl config set pagination.enabled true",
		Args:    exactArgs(2, "KEY VALUE"),
		RunE: func(c *cobra.Command, args []string) error {
			key, value := args[0], args[1]
			if key == "" {
				return errors.New("config set: KEY is empty")
			}
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				var before map[string]string
				if dryRun {
					cur, err := cl.GetSettings(ctx, &mcpmeshv1.GetSettingsRequest{})
					if err != nil {
						return err
					}
					before = cur.GetValues()
				}
				resp, err := cl.SetSetting(ctx, &mcpmeshv1.SetSettingRequest{Key: key, Value: value, ValidateOnly: dryRun})
				if err != nil {
					return err
				}
				if dryRun {
					return o.print(printer.DryRun{DryRun: true, Action: "set", Kind: "setting", Name: key, Revision: resp.GetRevision(),
						Changes: printer.ValueChanges(before, resp.GetValues())})
				}
				out := printer.Config{key: value}
				if v, ok := resp.GetValues()[key]; ok {
					out[key] = v // the stored, normalised value
				}
				return o.print(out)
			})
		},
	}
	addDryRunFlag(c, &dryRun)
	return c
}
