package cmd

import (
	"context"
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
