package cmd

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newContextUseCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:               "use NAME",
		Short:             "Make a context the current one",
		Args:              exactArgs(1, "one context NAME"),
		ValidArgsFunction: completeOneContext(o),
		RunE: func(_ *cobra.Command, args []string) error {
			name := args[0]
			path, cfg, err := o.loadConfig()
			if err != nil {
				return err
			}
			c, ok := cfg.Get(name)
			if !ok {
				return fmt.Errorf("context %q is not in %s: %w (see 'mcpctl context list', or create it with 'mcpctl context set %s --addr HOST:PORT')", name, path, errNoContext, name)
			}
			cfg.CurrentContext = name
			if err := ctlconfig.Save(path, cfg); err != nil {
				return err
			}
			v := contextView(c, name)
			return o.print(printer.ContextResult{Action: "now current", Name: name, File: path, Current: true, Context: &v})
		},
	}
}
