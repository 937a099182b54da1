package cmd

import (
	"context"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/atomicfile"
	"github.com/mcpmesh/mcpmesh/mcpctl/mcpservers"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newServerExportCommand(o *options) *cobra.Command {
	var (
		file string
		tags []string
	)
	c := &cobra.Command{
		Use:   "export [-f FILE]",
		Short: "Write the registered servers as a Claude Desktop mcpServers file",
		Long: `Write the registered servers in Claude Desktop's format ({"mcpServers": ...}),
which Cursor, Windsurf and Claude Code read too, to stdout or to -f FILE
(written atomically, mode 0600).

Secrets are not exported: the control plane never answers them back. Every
env and header value and every secret arg is written as "***", so the file
shows which keys need a value; URL credentials are masked. Settings the format
has no place for (tags, timeouts, prefixes, session modes, extra endpoints,
descriptions) are left out; with -f, the output lists them as warnings.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.ListServers(ctx, &mcpmeshv1.ListServersRequest{Tags: tags})
				if err != nil {
					return err
				}
				data, warnings, err := mcpservers.Export(resp.GetServers())
				if err != nil {
					return err
				}
				if file == "" || file == "-" {
					// The file itself is the output; -o does not apply.
					_, err := o.stdout.Write(data)
					return err
				}
				if err := atomicfile.Write(file, data, 0o600); err != nil {
					return err
				}
				if warnings == nil {
					warnings = []string{}
				}
				return o.print(printer.Exported{File: file, Servers: len(resp.GetServers()), Warnings: warnings})
			})
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "write to FILE instead of stdout")
	c.Flags().StringArrayVar(&tags, "tag", nil, "only servers carrying this tag (repeatable: all must match)")
	return c
}
