package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// configFile is the config file's path, or an error saying how to name one.
func (o *options) configFile() (string, error) {
	path := ctlconfig.Path(o.configPath, o.getenv)
	if path == "" {
		return "", fmt.Errorf("no config file: set --config or %s (or HOME)", ctlconfig.EnvConfig)
	}
	return path, nil
}

// loadConfig loads the config file for the context commands.
func (o *options) loadConfig() (string, *ctlconfig.Config, error) {
	path, err := o.configFile()
	if err != nil {
		return "", nil, err
	}
	cfg, err := ctlconfig.Load(path)
	if err != nil {
		return "", nil, err
	}
	return path, cfg, nil
}

func contextView(c ctlconfig.Context, current string) printer.Context {
	return printer.Context{Name: c.Name, Current: c.Name == current, Addr: c.Addr, CA: c.CA, ClientCert: c.ClientCert,
		ClientKey: c.ClientKey, TLSServerName: c.TLSServerName, TokenFile: c.TokenFile, TokenEnv: c.TokenEnv, Insecure: c.Insecure}
}

func newContextListCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the contexts of the config file; * marks the current one",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			path, cfg, err := o.loadConfig()
			if err != nil {
				return err
			}
			out := printer.ContextList{File: path, CurrentContext: cfg.CurrentContext, Contexts: []printer.Context{}}
			for _, c := range cfg.Contexts {
				out.Contexts = append(out.Contexts, contextView(c, cfg.CurrentContext))
			}
			return o.print(out)
		},
	}
}

// completeContexts completes the names of the config file's contexts.
func (o *options) completeContexts(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	path := ctlconfig.Path(o.configPath, o.getenv)
	if path == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := ctlconfig.Load(path)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return cfg.Names(), cobra.ShellCompDirectiveNoFileComp
}

func completeOneContext(o *options) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return o.completeContexts(c, args, toComplete)
	}
}

var errNoContext = errors.New("no such context")
