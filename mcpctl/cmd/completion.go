package cmd

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// completionTimeout bounds the ListServers call behind a TAB: a shell that
// hangs is worse than one that completes nothing.
const completionTimeout = 2 * time.Second

// completeServerNames completes the first argument with the names of the
// registered servers, asking the control plane the command line points at
// (flags, environment, context). Any failure completes nothing, silently:
// a completion must never print an error into the user's prompt.
func completeServerNames(o *options) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cn, err := o.dial()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer cn.Close()
		ctx, cancel := context.WithTimeout(c.Context(), completionTimeout)
		defer cancel()
		resp, err := cn.client.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, s := range resp.GetServers() {
			if strings.HasPrefix(s.GetName(), toComplete) {
				d := s.GetDescription()
				if d == "" {
					d = printer.TransportName(s.GetTransport())
				}
				out = append(out, s.GetName()+"\t"+strings.ReplaceAll(d, "\n", " "))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
