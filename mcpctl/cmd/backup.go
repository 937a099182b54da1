package cmd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/atomicfile"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// backupFormatVersion is the newest Backup.format_version this mcpctl reads.
const backupFormatVersion = 1

// maxBackupFile bounds what restore reads: the control plane accepts no
// larger request anyway.
const maxBackupFile = 4 * limits.MaxMessageSize

func newBackupCommand(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write the control plane's whole state to FILE (a store-neutral JSON dump; - for stdout)",
		Long: `Write everything the control plane stores (servers, settings, tokens, client keys, the cluster
secret and the previous ones still accepted) to FILE, read in one transaction while it keeps serving.
The dump is JSON that no store engine owns: 'mcpctl restore' puts it back into bbolt or etcd alike.
Health and events are not in it (data planes report them again).

The file holds every secret in clear (env values, headers, the cluster secret; tokens and keys only as
hashes): it is written with mode 0600, atomically, and an existing FILE is kept unless --force. Use -
to pipe it into an encryption tool instead.`,
		Example: "  mcpctl backup /var/backups/mcpmesh-$(date +%F).json\n  mcpctl backup - | age -r age1... > mcpmesh.json.age",
		Args:    exactArgs(1, "the file to write (or -)"),
		RunE: func(c *cobra.Command, args []string) error {
			file := args[0]
			if file != "-" && !force {
				if _, err := os.Lstat(file); err == nil {
					return fmt.Errorf("%s exists: choose another name, or --force to replace it", file)
				}
			}
			cl, err := o.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := o.callCtx(c.Context())
			defer cancel()
			resp, err := mcpmeshv1.NewBackupServiceClient(cl.cc).Backup(ctx, &mcpmeshv1.BackupRequest{})
			if err != nil {
				return o.explain(err, "")
			}
			b := resp.GetBackup()
			data, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(b)
			if err != nil {
				return fmt.Errorf("encode backup: %w", err)
			}
			data = append(data, '\n')
			if file == "-" {
				_, err := c.OutOrStdout().Write(data)
				return err
			}
			if err := atomicfile.Write(file, data, 0o600); err != nil {
				return fmt.Errorf("write backup: %w", err)
			}
			return o.print(printer.BackupWritten{
				File: file, Bytes: len(data), Revision: b.GetRevision(), SourceStore: b.GetSourceStore(),
				CreatedAt: b.GetCreatedAt().AsTime().UTC().Format(time.RFC3339),
				Contents: printer.Counts{Servers: uint32(len(b.GetServers())), Tokens: uint32(len(b.GetTokens())),
					ClientKeys: uint32(len(b.GetClientKeys())), PreviousSecrets: uint32(len(b.GetPreviousSecrets()))},
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	return cmd
}

func newRestoreCommand(o *options) *cobra.Command {
	var force, dryRun bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the control plane's whole state with a backup from 'mcpctl backup' (- for stdin)",
		Long: `Replace the servers, settings, tokens, client keys and cluster secrets of the control plane with those
of a backup, in one transaction. The backup may come from any store engine (bbolt or etcd) and any
control plane at least as old as this one's format. Every server is checked as 'server add' would
check it; nothing changes if anything is wrong.

A control plane that holds anything (a server, a token, a client key, a setting) is refused unless
--force: the restore replaces all of it. --dry-run checks everything and prints what would be replaced.
Data planes receive the restored config at once, at a revision past both the store's and the backup's.
Credentials issued after the backup was taken stop working.`,
		Example: "  mcpctl restore /var/backups/mcpmesh-2026-12-01.json\n  mcpctl restore --dry-run --force backup.json\n  age -d -i key.txt mcpmesh.json.age | mcpctl restore -",
		Args:    exactArgs(1, "the backup file to read (or -)"),
		RunE: func(c *cobra.Command, args []string) error {
			file := args[0]
			b, err := readBackup(c.InOrStdin(), file)
			if err != nil {
				return err
			}
			cl, err := o.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, cancel := o.callCtx(c.Context())
			defer cancel()
			resp, err := mcpmeshv1.NewBackupServiceClient(cl.cc).Restore(ctx, &mcpmeshv1.RestoreRequest{Backup: b, Force: force, ValidateOnly: dryRun})
			if err != nil {
				return o.explain(err, "")
			}
			return o.print(printer.Restored{
				File: file, DryRun: dryRun, Revision: resp.GetRevision(), BackupRevision: b.GetRevision(), BackupStore: b.GetSourceStore(),
				BackupTaken: b.GetCreatedAt().AsTime().UTC().Format(time.RFC3339),
				Replaced:    countsOf(resp.GetReplaced()), Restored: countsOf(resp.GetRestored()),
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace a control plane that is not empty")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "check the backup against the control plane and print what would be replaced; change nothing")
	return cmd
}

func countsOf(c *mcpmeshv1.RestoreCounts) printer.Counts {
	return printer.Counts{Servers: c.GetServers(), Tokens: c.GetTokens(), ClientKeys: c.GetClientKeys(), PreviousSecrets: c.GetPreviousSecrets()}
}

// readBackup reads and decodes a backup file (- is stdin), checking its
// format version before anything else so that a newer file gets a clear
// error instead of one about unknown fields.
func readBackup(stdin io.Reader, file string) (*mcpmeshv1.Backup, error) {
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("backup %s: no such file", file)
			}
			return nil, fmt.Errorf("backup: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBackupFile+1))
	if err != nil {
		return nil, fmt.Errorf("read backup %s: %w", file, err)
	}
	return parseBackup(file, data)
}

// parseBackup decodes what readBackup read.
func parseBackup(file string, data []byte) (*mcpmeshv1.Backup, error) {
	if len(data) > maxBackupFile {
		return nil, fmt.Errorf("backup %s is over %d bytes: not an mcpmesh backup", file, maxBackupFile)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("backup %s is empty", file)
	}
	var head struct {
		Snake *uint32 `json:"format_version"`
		Camel *uint32 `json:"formatVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("backup %s is not JSON from 'mcpctl backup': %v", file, err)
	}
	v := head.Snake
	if v == nil {
		v = head.Camel
	}
	switch {
	case v == nil || *v == 0:
		return nil, fmt.Errorf("backup %s has no format_version: not a file from 'mcpctl backup'", file)
	case *v > backupFormatVersion:
		return nil, fmt.Errorf("backup %s has format_version %d, newer than this mcpctl reads (%d): use a newer mcpctl", file, *v, backupFormatVersion)
	}
	b := &mcpmeshv1.Backup{}
	if err := protojson.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("backup %s: %v", file, err)
	}
	return b, nil
}
