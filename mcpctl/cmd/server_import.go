package cmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/mcpctl/mcpservers"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// The values of --on-conflict.
const (
	conflictFail   = "fail"
	conflictSkip   = "skip"
	conflictRename = "rename"
)

func newServerImportCommand(o *options) *cobra.Command {
	var (
		onConflict string
		dryRun     bool
		tags       []string
	)
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Register the servers of a Claude Desktop, Cursor, Windsurf or VS Code config file, in one revision",
		Long: `Register every server of an MCP client's config file: "mcpServers" (Claude
Desktop, Cursor, Windsurf, Claude Code) or "servers" (VS Code's mcp.json, or
"mcp" → "servers" in its settings.json); comments and trailing commas are fine.
Entry names become server names (lower case, other characters as '-').

import prints its plan, then creates all the servers in one revision, or none
of them if any is invalid. A name that is already registered (or comes twice
from the file) fails the import (--on-conflict fail, the default), is left
out (skip) or gets a -2, -3, ... suffix (rename). --dry-run validates the
whole plan with the control plane and creates nothing.

Env and header values are stored as secrets. ${...} placeholders are not
expanded, and values "***" (what server export writes for secrets) are
imported as they are: both are warned about.`,
		Example: `  mcpctl server import ~/Library/Application\ Support/Claude/claude_desktop_config.json --dry-run
  mcpctl server import .vscode/mcp.json --on-conflict rename --tag from-vscode`,
		Args: exactArgs(1, "one FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			switch onConflict {
			case conflictFail, conflictSkip, conflictRename:
			default:
				return fmt.Errorf("--on-conflict %q is not supported: use fail, skip or rename", onConflict)
			}
			for _, t := range tags {
				if strings.TrimSpace(t) == "" {
					return fmt.Errorf("--tag must not be empty")
				}
			}
			path := args[0]
			file, err := readImportFile(path)
			if err != nil {
				return err
			}
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				lctx, cancel := o.callCtx(ctx)
				defer cancel()
				list, err := cl.ListServers(lctx, &mcpmeshv1.ListServersRequest{})
				if err != nil {
					return err
				}
				taken := map[string]string{}
				for _, s := range list.GetServers() {
					taken[s.GetName()] = "already registered"
				}
				plan, create, err := planImport(path, file, taken, onConflict, tags)
				if err != nil {
					return err
				}
				plan.DryRun, plan.Revision, plan.Created = dryRun, list.GetRevision(), len(create)
				if len(create) == 0 {
					return o.print(plan)
				}
				cctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.CreateServers(cctx, &mcpmeshv1.CreateServersRequest{Servers: create, ValidateOnly: dryRun})
				if err != nil {
					return err
				}
				plan.Revision = resp.GetRevision()
				return o.print(plan)
			})
		},
	}
	c.Flags().StringVar(&onConflict, "on-conflict", conflictFail, "when a name is taken: fail (create nothing), skip (leave that entry out) or rename (add -2, -3, ...)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "validate the whole plan with the control plane and print it, creating nothing")
	c.Flags().StringArrayVar(&tags, "tag", nil, "tag every imported server (repeatable)")
	_ = c.RegisterFlagCompletionFunc("on-conflict", cobra.FixedCompletions([]string{conflictFail, conflictSkip, conflictRename}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func readImportFile(path string) (*mcpservers.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("server import: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, mcpservers.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("server import: read %s: %w", path, err)
	}
	file, err := mcpservers.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("server import: %s: %w", path, err)
	}
	if len(file.Entries) == 0 {
		return nil, fmt.Errorf("server import: %s lists no servers under %q", path, file.Format)
	}
	return file, nil
}

// planImport decides what happens to each entry: taken maps the names
// already registered to why they are taken. It returns the plan and the
// servers to create, in file order.
func planImport(path string, file *mcpservers.File, taken map[string]string, onConflict string, tags []string) (printer.ImportPlan, []*mcpmeshv1.Server, error) {
	plan := printer.ImportPlan{File: path, Format: file.Format, Servers: []printer.ImportItem{}, Warnings: []string{}}
	var create []*mcpmeshv1.Server
	var conflicts []string
	for _, e := range file.Entries {
		s := e.Server
		plan.Warnings = append(plan.Warnings, e.Warnings...)
		for _, t := range tags {
			if !containsString(s.Tags, t) {
				s.Tags = append(s.Tags, t)
			}
		}
		view := printer.ServerFromProto(s)
		item := printer.ImportItem{Action: "create", Name: s.GetName(), Source: e.Key, Transport: view.Transport, Target: view.Target()}
		if why, ok := taken[s.GetName()]; ok {
			switch onConflict {
			case conflictFail:
				conflicts = append(conflicts, fmt.Sprintf("%q (%s)", s.GetName(), why))
				continue
			case conflictSkip:
				item.Action, item.Reason = "skip", why
				plan.Servers = append(plan.Servers, item)
				continue
			case conflictRename:
				n, err := freeName(s.GetName(), taken)
				if err != nil {
					return plan, nil, err
				}
				item.Action, item.Reason = "rename", fmt.Sprintf("%s is %s", s.GetName(), why)
				s.Name, item.Name = n, n
			}
		}
		taken[s.GetName()] = fmt.Sprintf("given earlier in %s (as %q)", path, e.Key)
		plan.Servers = append(plan.Servers, item)
		create = append(create, s)
	}
	if len(conflicts) > 0 {
		return plan, nil, fmt.Errorf("server import: nothing was created: %d name(s) are taken: %s (use --on-conflict skip or rename)", len(conflicts), strings.Join(conflicts, ", "))
	}
	return plan, create, nil
}

// freeName is name with the smallest suffix -2, -3, ... that is not taken,
// cut so that it stays a valid server name.
func freeName(name string, taken map[string]string) (string, error) {
	for i := 2; i < 10000; i++ {
		suffix := "-" + strconv.Itoa(i)
		base := name
		if len(base)+len(suffix) > names.MaxServerName {
			base = strings.TrimRight(base[:names.MaxServerName-len(suffix)], "-")
		}
		if _, ok := taken[base+suffix]; !ok {
			return base + suffix, nil
		}
	}
	return "", fmt.Errorf("server import: no free name for %q", name)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
