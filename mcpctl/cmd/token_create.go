package cmd

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

func newTokenCreateCommand(o *options) *cobra.Command {
	var (
		role, description, secretFile string
		ttl                           time.Duration
		dryRun                        bool
	)
	c := &cobra.Command{
		Use:   "create --role admin|viewer|dataplane",
		Short: "Issue a control-plane token; its secret is shown only once",
		Long: `Issue a control-plane token. admin may do everything, viewer only the
read-only calls, dataplane only the config stream a data plane opens.
The secret is shown only now (or written to --secret-file, mode 0600).`,
		Example: "  mcpctl token create --role dataplane --secret-file /etc/mcpmesh/dataplane.token\n  mcpctl token create --role viewer --ttl 24h",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			r, err := authtoken.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl must not be negative, got %s", ttl)
			}
			req := &mcpmeshv1.CreateTokenRequest{Role: r, Description: description}
			if ttl > 0 {
				req.Ttl = durationpb.New(ttl)
			}
			if dryRun {
				d, err := createDryRun("token", authtoken.RoleName(r), secretFile, ttl, description, []printer.Change{
					{Field: "role", Op: printer.OpAdd, New: authtoken.RoleName(r)}})
				if err != nil {
					return err
				}
				return o.print(d)
			}
			var f *os.File
			if secretFile != "" {
				// Created before the call, so a bad path costs no orphan token.
				if f, err = os.OpenFile(secretFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return fmt.Errorf("--secret-file: %w (it must not exist yet)", err)
				}
				defer f.Close()
			}
			return o.withTokenClient(c.Context(), func(ctx context.Context, cl mcpmeshv1.TokenServiceClient) error {
				ctx, cancel := o.callCtx(ctx)
				defer cancel()
				resp, err := cl.CreateToken(ctx, req)
				if err != nil {
					if f != nil {
						_ = os.Remove(secretFile)
					}
					return err
				}
				out := printer.CreatedToken{Token: printer.TokenFromProto(resp.GetToken(), time.Now())}
				if f == nil {
					out.Secret = resp.GetSecret()
					return o.print(out)
				}
				if _, err := f.WriteString(resp.GetSecret() + "\n"); err != nil {
					return fmt.Errorf("write --secret-file %s: %w (revoke token %s)", secretFile, err, resp.GetToken().GetId())
				}
				if err := f.Close(); err != nil {
					return fmt.Errorf("write --secret-file %s: %w (revoke token %s)", secretFile, err, resp.GetToken().GetId())
				}
				out.SecretFile = secretFile
				return o.print(out)
			})
		},
	}
	c.Flags().StringVar(&role, "role", "", "admin, viewer or dataplane (required)")
	c.Flags().DurationVar(&ttl, "ttl", 0, "lifetime, e.g. 720h; 0 means it never expires")
	c.Flags().StringVar(&description, "description", "", "what the token is for (shown by token list)")
	c.Flags().StringVar(&secretFile, "secret-file", "", "write the secret to this new file (mode 0600) instead of printing it")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "check the flags (and that --secret-file does not exist) and print what would be issued; nothing is sent")
	_ = c.MarkFlagRequired("role")
	return c
}
