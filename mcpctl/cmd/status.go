package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newStatusCommand(o *options) *cobra.Command {
	var watch bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the config revision, data planes and server health",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			return o.withClient(c.Context(), "", func(ctx context.Context, cl mcpmeshv1.RegistryServiceClient) error {
				if watch {
					return watchStatus(ctx, o, cl)
				}
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.GetStatus(ctx, &mcpmeshv1.GetStatusRequest{})
				if err != nil {
					return err
				}
				return o.print(printer.StatusFromProto(resp))
			})
		},
	}
	c.Flags().BoolVarP(&watch, "watch", "w", false, "print the status again on every change until interrupted")
	return c
}

// watchStatus prints every status the control plane streams until ctx ends
// (Ctrl-C), which is a normal exit. The stream has no deadline, but the first
// message must arrive within --request-timeout so a dead address still fails fast.
func watchStatus(parent context.Context, o *options, cl mcpmeshv1.RegistryServiceClient) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var timedOut atomic.Bool
	first := time.AfterFunc(o.requestTimeout, func() { timedOut.Store(true); cancel() })
	defer first.Stop()

	fail := func(err error) error {
		switch {
		case parent.Err() != nil:
			return nil // interrupted by the user: a normal end of --watch
		case timedOut.Load():
			return status.Error(codes.DeadlineExceeded, "no status within the request timeout")
		default:
			return err
		}
	}
	stream, err := cl.WatchStatus(ctx, &mcpmeshv1.WatchStatusRequest{})
	if err != nil {
		return fail(err)
	}
	for n := 0; ; n++ {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("control plane closed the status stream (run the command again)")
		}
		if err != nil {
			return fail(err)
		}
		if n == 0 && !first.Stop() {
			return fail(context.DeadlineExceeded) // fired as the message arrived
		}
		if n > 0 && o.format == printer.Table {
			fmt.Fprintf(o.stdout, "\n--- %s\n", time.Now().Format(time.TimeOnly))
		}
		if err := o.print(printer.StatusFromProto(msg.GetStatus())); err != nil {
			return err
		}
	}
}
