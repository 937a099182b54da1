package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
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
				if err := writeFileAtomic(file, data); err != nil {
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

// writeFileAtomic writes data to path through a synced temporary file in
// the same directory renamed over it, mode 0600.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		_ = tmp.Close()
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(name, path); err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
