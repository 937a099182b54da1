package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newContextDeleteCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm", "remove"},
		Short:             "Delete a context from the config file (if it was current, none is current after)",
		Args:              exactArgs(1, "one context NAME"),
		ValidArgsFunction: completeOneContext(o),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			path, cfg, err := o.loadConfig()
			if err != nil {
				return err
			}
			if !cfg.Delete(name) {
				return fmt.Errorf("context %q is not in %s: %w (see 'mcpctl context list')", name, path, errNoContext)
			}
			if err := ctlconfig.Save(path, cfg); err != nil {
				return err
			}
			return o.print(printer.ContextResult{Action: "deleted", Name: name, File: path})
		},
	}
}
