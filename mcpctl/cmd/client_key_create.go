package cmd

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newClientKeyCreateCommand(o *options) *cobra.Command {
	var (
		tags                    []string
		description, secretFile string
		ttl                     time.Duration
		dryRun                  bool
	)
	c := &cobra.Command{
		Use:   "create [--tag T]...",
		Short: "Issue an API key for MCP clients; its secret is shown only once",
		Long: `Issue an API key MCP clients send to data planes started with --client-keys
(Authorization: Bearer mcpk_...). With --tag the client sees and calls only
the servers carrying at least one of the tags. The secret is shown only now
(or written to --secret-file, mode 0600).`,
		Example: "  mcpctl client-key create --tag team-a --ttl 720h --description 'team A laptops'\n  mcpctl client-key create --tag ci --secret-file ci.key",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			if ttl < 0 {
				return fmt.Errorf("--ttl must not be negative, got %s", ttl)
			}
			req := &mcpmeshv1.CreateClientKeyRequest{Tags: tags, Description: description}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			if dryRun {
				changes := []printer.Change{{Field: "tags", Op: printer.OpAdd, New: tagsCell(tags)}}
				d, err := createDryRun("client-key", "(new)", secretFile, ttl, description, changes)
				if err != nil {
					return err
				}
				return o.print(d)
			}
			var f *os.File
			var err error
			if secretFile != "" {
				// Created before the call, so a bad path costs no orphan key.
				if f, err = os.OpenFile(secretFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return fmt.Errorf("--secret-file: %w (it must not exist yet)", err)
				}
				defer f.Close()
			}
			return o.withClientKeyClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.ClientKeyServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.CreateClientKey(ctx, req)
				if err != nil {
					if f != nil {
						_ = os.Remove(secretFile)
					}
					return err
				}
				out := printer.CreatedClientKey{ClientKey: printer.ClientKeyFromProto(resp.GetKey(), time.Now())}
				if f == nil {
					out.Secret = resp.GetSecret()
					return o.print(out)
				}
				if _, err := f.WriteString(resp.GetSecret() + "\n"); err != nil {
					return fmt.Errorf("write --secret-file %s: %w (revoke client key %s)", secretFile, err, resp.GetKey().GetId())
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("write --secret-file %s: %w (revoke client key %s)", secretFile, err, resp.GetKey().GetId())
				}
				out.SecretFile = secretFile
				return o.print(out)
			})
		},
	}
	c.Flags().StringArrayVar(&tags, "tag", nil, "limit the key to servers with this tag (repeatable; none: every server)")
	c.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h; 0 means it never expires")
	c.Flags().StringVar(&description, "description", "", "what the key is for (shown by client-key list)")
	c.Flags().StringVar(&secretFile, "secret-file", "", "write the secret to this new file (mode 0600) instead of printing it")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check the flags (and that --secret-file does not exist) and print what would be issued; nothing is sent")
	return c
}
