package cmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// The --dry-run of the writes whose RPC has no validate_only (remove,
// enable, disable, revoke) reads the object and the revision it was read at
// and prints what the write would change; the writes whose RPC has one
// (add, update, import, config set) ask the control plane to validate.

const dryRunHelp = "print what would change, without changing it"

func addDryRunFlag(c *cobra.Command, dst *bool) {
	c.Flags().BoolVar(dst, "dry-run", false, dryRunHelp)
}

// findServer reads one server and the config revision in one call.
func findServer(ctx context.Context, o *options, cl mcpmeshv1.RegistryServiceClient, name string) (*mcpmeshv1.Server, uint64, error) {
	ctx, cancel := o.callCtx(ctx)
	defer cancel()
	resp, err := cl.ListServers(ctx, &mcpmeshv1.ListServersRequest{})
	if err != nil {
		return nil, 0, err
	}
	for _, s := range resp.GetServers() {
		if s.GetName() == name {
			return s, resp.GetRevision(), nil
		}
	}
	return nil, 0, status.Errorf(codes.NotFound, "server %q not found", name)
}

// dryRunServer prints what action would do to server name; change edits
// the read copy (nil: remove).
func dryRunServer(ctx context.Context, o *options, cl mcpmeshv1.RegistryServiceClient, action, name string, change func(*mcpmeshv1.Server)) error {
	s, rev, err := findServer(ctx, o, cl, name)
	if err != nil {
		return err
	}
	before := printer.ServerFromProto(s)
	var after *printer.Server
	if change != nil {
		change(s)
		v := printer.ServerFromProto(s)
		after = &v
	}
	return o.print(printer.DryRun{DryRun: true, Action: action, Kind: "server", Name: name, Revision: rev,
		Changes: printer.ServerChanges(&before, after), Server: after})
}

// revokeChanges is what revoking a credential in state changes.
func revokeChanges(state string, now time.Time) []printer.Change {
	if state == "revoked" {
		return []printer.Change{}
	}
	return []printer.Change{
		{Field: "state", Op: printer.OpChange, Old: state, New: "revoked"},
		{Field: "revoked_at", Op: printer.OpAdd, New: now.UTC().Format(time.RFC3339)},
	}
}

// createDryRun is the --dry-run of issuing a credential. The token and
// client-key services have no validate-only call, so it checks what can be
// checked here and sends nothing.
func createDryRun(kind, name, secretFile string, ttl time.Duration, description string, changes []printer.Change) (printer.DryRun, error) {
	if secretFile != "" {
		if _, err := os.Lstat(secretFile); err == nil {
			return printer.DryRun{}, fmt.Errorf("--secret-file %s already exists (it must not exist yet)", secretFile)
		}
		if st, err := os.Stat(filepath.Dir(secretFile)); err != nil || !st.IsDir() {
			return printer.DryRun{}, fmt.Errorf("--secret-file %s: its directory does not exist", secretFile)
		}
	}
	if ttl > 0 {
		changes = append(changes, printer.Change{Field: "ttl", Op: printer.OpAdd, New: ttl.String()})
	}
	if description != "" {
		changes = append(changes, printer.Change{Field: "description", Op: printer.OpAdd, New: description})
	}
	where := "printed once"
	if secretFile != "" {
		where = secretFile
	}
	changes = append(changes, printer.Change{Field: "secret", Op: printer.OpAdd, New: where})
	return printer.DryRun{DryRun: true, Action: "create", Kind: kind, Name: name, Changes: changes}, nil
}

func tagsCell(tags []string) string {
	if len(tags) == 0 {
		return "(none: every server)"
	}
	return strings.Join(tags, ", ")
}
