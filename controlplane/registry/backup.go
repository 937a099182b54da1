package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/discovery"
	"github.com/mcpmesh/mcpmesh/controlplane/internal/settings"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BackupFormatVersion is the Backup.format_version this binary writes and
// the newest it restores.
const BackupFormatVersion = 1

// Backup is the BackupService implementation. A restore is a config write:
// it takes the registry's write lock and passes the same checks as
// CreateServer for every server, so that a backup cannot smuggle in what
// the registry refuses.
type Backup struct {
	mcpmeshv1.UnimplementedBackupServiceServer
	reg       *Service
	storeName string
}

// Backup returns the BackupService over the registry's store; storeName
// ("bolt", "etcd", "memory") is recorded in every backup.
func (s *Service) Backup(storeName string) *Backup {
	return &Backup{reg: s, storeName: storeName}
}

// Backup implements BackupService.
func (b *Backup) Backup(ctx context.Context, _ *mcpmeshv1.BackupRequest) (*mcpmeshv1.BackupResponse, error) {
	d, err := b.reg.st.Dump(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	out := ToBackup(d)
	out.CreatedAt = timestamppb.Now()
	out.SourceStore, out.SourceVersion = b.storeName, version.Version
	c := d.Counts()
	b.reg.log.Info("backup taken", "revision", d.Revision, "servers", c.Servers, "tokens", c.Tokens, "client_keys", c.ClientKeys)
	return &mcpmeshv1.BackupResponse{Backup: out}, nil
}

// Restore implements BackupService.
func (b *Backup) Restore(ctx context.Context, req *mcpmeshv1.RestoreRequest) (*mcpmeshv1.RestoreResponse, error) {
	d, ferr := b.check(req.GetBackup())
	if ferr != nil {
		return nil, ferr.status()
	}
	s := b.reg
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur, err := s.st.Dump(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	resp := &mcpmeshv1.RestoreResponse{Revision: cur.Revision, Replaced: counts(cur.Counts()), Restored: counts(d.Counts())}
	if !req.GetForce() && !cur.Empty() {
		return nil, notEmpty(cur.Counts())
	}
	if req.GetValidateOnly() {
		return resp, nil
	}
	rev, err := s.st.Restore(ctx, d, req.GetForce())
	if errors.Is(err, store.ErrNotEmpty) { // written to meanwhile, by another replica
		return nil, status.Errorf(codes.FailedPrecondition, "restore: %v", err)
	}
	if err != nil {
		return nil, storeError("", err)
	}
	resp.Revision = rev
	c := d.Counts()
	s.log.Info("backup restored", "revision", rev, "backup_revision", d.Revision, "backup_store", req.GetBackup().GetSourceStore(),
		"backup_taken", req.GetBackup().GetCreatedAt().AsTime().Format(time.RFC3339), "servers", c.Servers, "tokens", c.Tokens, "client_keys", c.ClientKeys, "forced", req.GetForce())
	return resp, nil
}

func notEmpty(c store.Counts) error {
	return status.Errorf(codes.FailedPrecondition,
		"the control plane's store is not empty (%d servers, %d tokens, %d client keys, %d previous cluster secrets, or settings): restoring would replace all of it; use --force to do that",
		c.Servers, c.Tokens, c.ClientKeys, c.PreviousSecrets)
}

func counts(c store.Counts) *mcpmeshv1.RestoreCounts {
	return &mcpmeshv1.RestoreCounts{Servers: uint32(c.Servers), Tokens: uint32(c.Tokens), ClientKeys: uint32(c.ClientKeys), PreviousSecrets: uint32(c.PreviousSecrets)}
}

// check turns a Backup into the dump to restore, refusing, with the field
// named, anything CreateServer, SetSetting or the store would refuse and a
// config snapshot that would not fit in a gRPC message.
func (b *Backup) check(in *mcpmeshv1.Backup) (*store.Dump, *fieldError) {
	switch v := in.GetFormatVersion(); {
	case in == nil:
		return nil, invalid("backup", "is required")
	case v == 0:
		return nil, invalid("backup.format_version", "is missing: not an mcpmesh backup")
	case v > BackupFormatVersion:
		return nil, invalid("backup.format_version", "is %d, written by a newer mcpmesh (this control plane reads up to %d): restore it with a control plane at least as new", v, BackupFormatVersion)
	}
	for i, srv := range in.GetServers() {
		field := fmt.Sprintf("backup.servers[%d]", i)
		if srv.GetRedacted() {
			return nil, invalid(field, "server %q has its secrets redacted (a listing, not a backup)", srv.GetName())
		}
		if err := b.reg.checkServer(cleanInput(srv)); err != nil {
			return nil, invalid(field+"."+err.field, "%s", err.msg)
		}
	}
	if err := checkSettings(in.GetSettings()); err != nil {
		return nil, invalid("backup.settings", "%v", err)
	}
	d := FromBackup(in)
	if err := d.Check(); err != nil {
		return nil, invalid("backup", "%v", err)
	}
	size := proto.Size(discovery.BuildSnapshot(&d.State))
	if limit := limits.MaxSnapshotSize(b.reg.maxMessage); size > limit {
		return nil, invalid("backup.servers", "the config snapshot sent to data planes would be %d bytes, over its limit of %d bytes: start the control plane with a larger --grpc-max-message-size (up to 16 MiB), or remove servers from the backup", size, limit)
	}
	return d, nil
}

// checkSettings accepts settings that SetSetting could have made: every
// value, set again from its text, gives the same effective settings.
func checkSettings(in *mcpmeshv1.Settings) error {
	want := settings.Values(in)
	next := &mcpmeshv1.Settings{}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		var err error
		if next, err = settings.Set(next, k, want[k]); err != nil {
			return err
		}
	}
	if got := settings.Values(next); !maps.Equal(got, want) {
		return fmt.Errorf("out of range: %v", want)
	}
	return nil
}

// ToBackup is the store-neutral form of d (without the fields the service
// adds: created_at and the source).
func ToBackup(d *store.Dump) *mcpmeshv1.Backup {
	out := &mcpmeshv1.Backup{
		FormatVersion: BackupFormatVersion,
		Revision:      d.Revision,
		Servers:       d.Servers,
		Settings:      d.Settings,
		Tokens:        d.Tokens,
		ClientKeys:    d.ClientKeys,
		ClusterSecret: d.ClusterSecret,
		OauthGrants:   d.OAuthGrants,
	}
	for _, p := range d.PreviousSecrets {
		out.PreviousSecrets = append(out.PreviousSecrets, &mcpmeshv1.PreviousSecret{Secret: p.Secret, ExpiresAt: timestamppb.New(p.ExpiresAt)})
	}
	return out
}

// FromBackup is the dump a Backup carries.
func FromBackup(in *mcpmeshv1.Backup) *store.Dump {
	d := &store.Dump{
		State: store.State{
			Revision:      in.GetRevision(),
			Servers:       in.GetServers(),
			Settings:      in.GetSettings(),
			ClusterSecret: in.GetClusterSecret(),
			ClientKeys:    in.GetClientKeys(),
			OAuthGrants:   in.GetOauthGrants(),
		},
		Tokens: in.GetTokens(),
	}
	if d.Settings == nil {
		d.Settings = &mcpmeshv1.Settings{}
	}
	for _, p := range in.GetPreviousSecrets() {
		d.PreviousSecrets = append(d.PreviousSecrets, store.PreviousSecret{Secret: p.GetSecret(), ExpiresAt: p.GetExpiresAt().AsTime()})
	}
	return d
}
