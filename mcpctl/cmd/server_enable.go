package cmd

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/names"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// enableAttempts bounds the read-modify-write loop: a concurrent change makes
// the update fail with Aborted, and re-reading is always safe here.
const enableAttempts = 3

func newServerEnableCommand(o *options, enable bool) *cobra.Command {
	verb, short := "enable", "Serve a disabled server again"
	if !enable {
		verb, short = "disable", "Stop serving a server but keep its registration"
	}
	var dryRun bool
	c := &cobra.Command{
		Use:               verb + " NAME",
		Short:             short,
		Args:              exactArgs(1, "one NAME"),
		ValidArgsFunction: completeServerNames(o),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := names.ValidateServer(name); err != nil {
				return err
			}
			return o.withClient(c.Context(), name, func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				if dryRun {
					return dryRunServer(ctx, o, cl, verb, name, func(s *mcpmeshv1.Server) { s.Enabled = proto.Bool(enable) })
				}
				var err error
				for range enableAttempts {
					var rev uint64
					rev, err = setEnabled(ctx, o, cl, name, enable)
					if status.Code(err) == codes.Aborted {
						continue
					}
					if err != nil {
						return err
					}
					return o.print(printer.Result{Action: verb + "d", Name: name, Revision: rev})
				}
				return err
			})
		},
	}
	addDryRunFlag(c, &dryRun)
	return c
}

// setEnabled reads the server and writes it back with the flag changed, based
// on the revision it read. The server comes back redacted (secret values are
// "***" and Redacted is set); the control plane keeps the stored secrets for
// redacted values.
func setEnabled(ctx context.Context, o *options, cl mcpmeshv1.RegistryServiceClient, name string, enable bool) (uint64, error) {
	gctx, cancel := o.callCtx(ctx)
	defer cancel()
	got, err := cl.GetServer(gctx, &mcpmeshv1.GetServerRequest{Name: name})
	if err != nil {
		return 0, err
	}
	s := got.GetServer()
	if s == nil {
		return 0, status.Errorf(codes.Internal, "control plane returned no server for %q", name)
	}
	if (s.Enabled == nil || *s.Enabled) == enable {
		return s.GetModRevision(), nil // already in that state: nothing to write
	}
	s.Enabled = proto.Bool(enable)
	uctx, cancel := o.callCtx(ctx)
	defer cancel()
	resp, err := cl.UpdateServer(uctx, &mcpmeshv1.UpdateServerRequest{Server: s, ExpectedRevision: s.GetModRevision()})
	if err != nil {
		return 0, err
	}
	return resp.GetRevision(), nil
}
