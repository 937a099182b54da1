package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/mcpmesh/mcpmesh/controlplane/internal/settings"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Redacted replaces every secret value in admin responses.
const Redacted = redact.Mask

// DataPlanes is what the registry needs from the discovery component.
type DataPlanes interface {
	ListDataPlanes() []*mcpmeshv1.DataPlane
	// Subscribe signals whenever the data-plane list changes.
	Subscribe() (<-chan struct{}, func())
}

// Health is what the registry needs from the health component.
type Health interface {
	Statuses(ctx context.Context, servers []*mcpmeshv1.Server) ([]*mcpmeshv1.ServerStatus, error)
	// Subscribe signals whenever a health report was recorded.
	Subscribe() (<-chan struct{}, func())
}

// Service is the RegistryService implementation.
type Service struct {
	mcpmeshv1.UnimplementedRegistryServiceServer

	st     store.Store
	dps    DataPlanes
	health Health
	log    *slog.Logger

	maxMessage int // gRPC message limit the config snapshot must fit in
	// writeMu serialises config writes, so that the snapshot size checked
	// before a write is the one the write commits (all config writes come
	// through this service).
	writeMu sync.Mutex

	policy Policy
}

// Option configures a Service.
type Option func(*Service)

// WithMaxMessageSize sets the gRPC message limit of the config streams
// (default limits.MaxMessageSize): a write whose snapshot would exceed
// limits.MaxSnapshotSize(n) is refused with InvalidArgument.
func WithMaxMessageSize(n int) Option { return func(s *Service) { s.maxMessage = n } }

// New returns the admin service.
func New(st store.Store, dps DataPlanes, health Health, logger *slog.Logger, opts ...Option) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, dps: dps, health: health, log: logger, maxMessage: limits.MaxMessageSize}
	for _, o := range opts {
		o(s)
	}
	return s
}

// storeUnavailable starts the message of an Unavailable that the store,
// not the connection, caused (mcpctl tells the two apart by it).
const storeUnavailable = "the control plane's store is unavailable"

// storeError maps store errors to gRPC statuses with messages mcpctl prints.
func storeError(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Errorf(codes.NotFound, "server %q not found", name)
	case errors.Is(err, store.ErrExists):
		return status.Errorf(codes.AlreadyExists, "server %q already exists", name)
	case errors.Is(err, store.ErrConflict):
		return status.Errorf(codes.Aborted, "server %q was changed by someone else since you read it: get it again and retry", name)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, store.ErrUnavailable):
		return status.Errorf(codes.Unavailable, "%s: %v", storeUnavailable, err)
	}
	return status.Errorf(codes.Internal, "store: %v", err)
}

// redactServer returns a copy of s with secret values replaced.
func redactServer(s *mcpmeshv1.Server) *mcpmeshv1.Server {
	out := proto.Clone(s).(*mcpmeshv1.Server)
	out.Redacted = true
	for k := range out.GetStdio().GetEnv() {
		out.Stdio.Env[k] = Redacted
	}
	for k := range out.GetHttp().GetHeaders() {
		out.Http.Headers[k] = Redacted
	}
	if o := out.GetHttp().GetOauth(); o.GetClientSecret() != "" {
		o.ClientSecret = Redacted
	}
	if sc := out.GetStdio(); sc != nil {
		sc.Args = redact.Args(sc.GetArgs(), sc.GetSecretArgs())
	}
	return out
}

// keepSecrets lets a client send back a server it read (with "***" values)
// without wiping the stored secrets: "***" means "keep the current value".
func keepSecrets(in, cur *mcpmeshv1.Server) {
	for k, v := range in.GetStdio().GetEnv() {
		if old, ok := cur.GetStdio().GetEnv()[k]; ok && v == Redacted {
			in.Stdio.Env[k] = old
		}
	}
	for k, v := range in.GetHttp().GetHeaders() {
		if old, ok := cur.GetHttp().GetHeaders()[k]; ok && v == Redacted {
			in.Http.Headers[k] = old
		}
	}
	// The secret of the same pre-registered client; a new client id needs its own.
	if o, co := in.GetHttp().GetOauth(), cur.GetHttp().GetOauth(); o.GetClientSecret() == Redacted &&
		co.GetClientSecret() != "" && o.GetClientId() == co.GetClientId() {
		o.ClientSecret = co.GetClientSecret()
	}
	args, curArgs := in.GetStdio().GetArgs(), cur.GetStdio().GetArgs()
	for _, i := range in.GetStdio().GetSecretArgs() {
		if int(i) < len(args) && int(i) < len(curArgs) && args[i] == Redacted && slices.Contains(cur.GetStdio().GetSecretArgs(), i) {
			args[i] = curArgs[i]
		}
	}
}

// cleanInput drops output-only fields a client may have echoed back.
func cleanInput(s *mcpmeshv1.Server) *mcpmeshv1.Server {
	out := proto.Clone(s).(*mcpmeshv1.Server)
	out.CreateRevision, out.ModRevision, out.CreatedAt, out.UpdatedAt, out.Redacted = 0, 0, nil, nil, false
	return out
}

// checkServer is what every write of a server passes: its fields
// (validateServer), then the registration policy.
func (s *Service) checkServer(srv *mcpmeshv1.Server) *fieldError {
	if err := validateServer(srv); err != nil {
		return err
	}
	return s.policy.check(srv)
}

// CreateServer implements RegistryService.
func (s *Service) CreateServer(ctx context.Context, req *mcpmeshv1.CreateServerRequest) (*mcpmeshv1.CreateServerResponse, error) {
	if err := s.checkServer(req.GetServer()); err != nil {
		return nil, err.status()
	}
	in := cleanInput(req.GetServer())
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if req.GetValidateOnly() {
		cur, err := s.st.GetServer(ctx, in.GetName())
		if err == nil && cur != nil {
			return nil, storeError(in.GetName(), store.ErrExists)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, storeError(in.GetName(), err)
		}
	}
	rev, err := s.checkSnapshot(ctx, "server", func(st *store.State) { putServer(st, stamped(in, nil, st.Revision+1)) })
	if err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		return &mcpmeshv1.CreateServerResponse{Server: redactServer(in), Revision: rev}, nil
	}
	out, err := s.st.CreateServer(ctx, in)
	if err != nil {
		return nil, storeError(in.GetName(), err)
	}
	s.log.Info("server created", "server", out.GetName(), "revision", out.GetModRevision(), "transport", transportName(out.GetTransport()))
	return &mcpmeshv1.CreateServerResponse{Server: redactServer(out), Revision: out.GetModRevision()}, nil
}

// MaxCreateServers bounds one CreateServers call; more servers than this
// are more than one import should carry.
const MaxCreateServers = 1000

// CreateServers implements RegistryService: every server is checked as
// CreateServer checks one, then all are stored in one revision, or none.
func (s *Service) CreateServers(ctx context.Context, req *mcpmeshv1.CreateServersRequest) (*mcpmeshv1.CreateServersResponse, error) {
	srvs := req.GetServers()
	if len(srvs) == 0 {
		return nil, invalid("servers", "is empty: give at least one server").status()
	}
	if len(srvs) > MaxCreateServers {
		return nil, invalid("servers", "%d servers is too many for one call: at most %d", len(srvs), MaxCreateServers).status()
	}
	ins := make([]*mcpmeshv1.Server, len(srvs))
	seen := make(map[string]int, len(srvs))
	for i, srv := range srvs {
		if err := s.checkServer(srv); err != nil {
			return nil, inList(i, srv, err).status()
		}
		if j, dup := seen[srv.GetName()]; dup {
			return nil, status.Errorf(codes.AlreadyExists, "server %q is given twice (servers[%d] and servers[%d])", srv.GetName(), j, i)
		}
		seen[srv.GetName()] = i
		ins[i] = cleanInput(srv)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Checked here too (the store checks again in its transaction) so that a
	// dry run reports a taken name, and a real call names it before writing.
	cur, rev, err := s.st.ListServers(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	for _, c := range cur {
		if _, taken := seen[c.GetName()]; taken {
			return nil, storeError(c.GetName(), store.ErrExists)
		}
	}
	rev, err = s.checkSnapshot(ctx, "servers", func(st *store.State) {
		for _, in := range ins {
			putServer(st, stamped(in, nil, st.Revision+1))
		}
	})
	if err != nil {
		return nil, err
	}
	resp := &mcpmeshv1.CreateServersResponse{Revision: rev, Servers: make([]*mcpmeshv1.Server, len(ins))}
	if req.GetValidateOnly() {
		for i, in := range ins {
			resp.Servers[i] = redactServer(in)
		}
		return resp, nil
	}
	out, rev, err := s.st.CreateServers(ctx, ins)
	if err != nil {
		var name string
		if errors.Is(err, store.ErrExists) {
			name = takenName(ctx, s.st, ins)
		}
		return nil, storeError(name, err)
	}
	for i, o := range out {
		resp.Servers[i] = redactServer(o)
	}
	resp.Revision = rev
	s.log.Info("servers created", "count", len(out), "revision", rev)
	return resp, nil
}

// inList names the position and the server of a validation failure in a
// CreateServers request: "servers[2].http.url: ... (server "x")".
func inList(i int, srv *mcpmeshv1.Server, e *fieldError) *fieldError {
	field := fmt.Sprintf("servers[%d]", i) + strings.TrimPrefix(e.field, "server")
	msg := e.msg
	if n := srv.GetName(); n != "" {
		msg += fmt.Sprintf(" (server %q)", n)
	}
	return &fieldError{field: field, msg: msg}
}

// takenName finds which of ins a racing writer created first, for the error.
func takenName(ctx context.Context, st store.Store, ins []*mcpmeshv1.Server) string {
	for _, in := range ins {
		if _, err := st.GetServer(ctx, in.GetName()); err == nil {
			return in.GetName()
		}
	}
	return ""
}

// GetVersion implements RegistryService.
func (s *Service) GetVersion(context.Context, *mcpmeshv1.GetVersionRequest) (*mcpmeshv1.GetVersionResponse, error) {
	return &mcpmeshv1.GetVersionResponse{Version: version.Version}, nil
}

// UpdateServer implements RegistryService.
func (s *Service) UpdateServer(ctx context.Context, req *mcpmeshv1.UpdateServerRequest) (*mcpmeshv1.UpdateServerResponse, error) {
	if err := s.checkServer(req.GetServer()); err != nil {
		return nil, err.status()
	}
	in := cleanInput(req.GetServer())
	cur, err := s.st.GetServer(ctx, in.GetName())
	if err != nil {
		return nil, storeError(in.GetName(), err)
	}
	if req.GetExpectedRevision() != 0 && req.GetExpectedRevision() != cur.GetModRevision() {
		return nil, storeError(in.GetName(), store.ErrConflict)
	}
	keepSecrets(in, cur)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	rev, err := s.checkSnapshot(ctx, "server", func(st *store.State) { putServer(st, stamped(in, cur, st.Revision+1)) })
	if err != nil {
		return nil, err
	}
	if req.GetValidateOnly() {
		in.CreateRevision, in.ModRevision, in.CreatedAt, in.UpdatedAt = cur.GetCreateRevision(), cur.GetModRevision(), cur.GetCreatedAt(), cur.GetUpdatedAt()
		return &mcpmeshv1.UpdateServerResponse{Server: redactServer(in), Revision: rev}, nil
	}
	// The store re-checks the revision inside its transaction, so a write
	// racing between our read and this call still fails with Aborted. When the
	// caller gave none we pin the one we merged secrets from, for the same reason.
	expected := req.GetExpectedRevision()
	if expected == 0 {
		expected = cur.GetModRevision()
	}
	out, err := s.st.UpdateServer(ctx, in, expected)
	if err != nil {
		return nil, storeError(in.GetName(), err)
	}
	s.log.Info("server updated", "server", out.GetName(), "revision", out.GetModRevision())
	rev = out.GetModRevision()
	if r, err := s.dropStaleGrant(ctx, cur, out); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	} else if r != 0 {
		rev = r
	}
	return &mcpmeshv1.UpdateServerResponse{Server: redactServer(out), Revision: rev}, nil
}

// DeleteServer implements RegistryService.
func (s *Service) DeleteServer(ctx context.Context, req *mcpmeshv1.DeleteServerRequest) (*mcpmeshv1.DeleteServerResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("name", "is required").status()
	}
	rev, err := s.st.DeleteServer(ctx, req.GetName(), req.GetExpectedRevision())
	if err != nil {
		return nil, storeError(req.GetName(), err)
	}
	s.log.Info("server deleted", "server", req.GetName(), "revision", rev)
	return &mcpmeshv1.DeleteServerResponse{Revision: rev}, nil
}

// GetServer implements RegistryService.
func (s *Service) GetServer(ctx context.Context, req *mcpmeshv1.GetServerRequest) (*mcpmeshv1.GetServerResponse, error) {
	if req.GetName() == "" {
		return nil, invalid("name", "is required").status()
	}
	srv, err := s.st.GetServer(ctx, req.GetName())
	if err != nil {
		return nil, storeError(req.GetName(), err)
	}
	sts, err := s.health.Statuses(ctx, []*mcpmeshv1.Server{srv})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "health of server %q: %v", req.GetName(), err)
	}
	return &mcpmeshv1.GetServerResponse{Server: redactServer(srv), Status: sts[0]}, nil
}

// ListServers implements RegistryService.
func (s *Service) ListServers(ctx context.Context, req *mcpmeshv1.ListServersRequest) (*mcpmeshv1.ListServersResponse, error) {
	servers, rev, err := s.st.ListServers(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	resp := &mcpmeshv1.ListServersResponse{Revision: rev, Servers: []*mcpmeshv1.Server{}}
	for _, srv := range servers {
		if hasTags(srv, req.GetTags()) {
			resp.Servers = append(resp.Servers, redactServer(srv))
		}
	}
	return resp, nil
}

func hasTags(s *mcpmeshv1.Server, want []string) bool {
	for _, t := range want {
		if !slices.Contains(s.GetTags(), t) {
			return false
		}
	}
	return true
}

// GetSettings implements RegistryService.
func (s *Service) GetSettings(ctx context.Context, _ *mcpmeshv1.GetSettingsRequest) (*mcpmeshv1.GetSettingsResponse, error) {
	st, rev, err := s.st.GetSettings(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	return &mcpmeshv1.GetSettingsResponse{Settings: settings.Effective(st), Values: settings.Values(st), Revision: rev}, nil
}

// SetSetting implements RegistryService.
func (s *Service) SetSetting(ctx context.Context, req *mcpmeshv1.SetSettingRequest) (*mcpmeshv1.SetSettingResponse, error) {
	cur, rev, err := s.st.GetSettings(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	next, err := settings.Set(cur, req.GetKey(), req.GetValue())
	if err != nil {
		var unk *settings.ErrUnknownKey
		if errors.As(err, &unk) {
			return nil, (&fieldError{field: "key", msg: err.Error()}).status()
		}
		return nil, (&fieldError{field: "value", msg: err.Error()}).status()
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if _, err := s.checkSnapshot(ctx, "value", func(st *store.State) { st.Settings = next }); err != nil {
		return nil, err
	}
	if !req.GetValidateOnly() {
		// Settings are a single document: last writer wins, which is what
		// `config set KEY VALUE` means.
		if rev, err = s.st.PutSettings(ctx, next); err != nil {
			return nil, storeError("", err)
		}
		s.log.Info("setting changed", "key", req.GetKey(), "value", req.GetValue(), "revision", rev)
	}
	return &mcpmeshv1.SetSettingResponse{Settings: settings.Effective(next), Values: settings.Values(next), Revision: rev}, nil
}

// ListDataPlanes implements RegistryService.
func (s *Service) ListDataPlanes(context.Context, *mcpmeshv1.ListDataPlanesRequest) (*mcpmeshv1.ListDataPlanesResponse, error) {
	return &mcpmeshv1.ListDataPlanesResponse{Dataplanes: s.dps.ListDataPlanes()}, nil
}

// GetStatus implements RegistryService.
func (s *Service) GetStatus(ctx context.Context, _ *mcpmeshv1.GetStatusRequest) (*mcpmeshv1.GetStatusResponse, error) {
	return s.status(ctx)
}

func (s *Service) status(ctx context.Context) (*mcpmeshv1.GetStatusResponse, error) {
	servers, rev, err := s.st.ListServers(ctx)
	if err != nil {
		return nil, storeError("", err)
	}
	sts, err := s.health.Statuses(ctx, servers)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "aggregate health: %v", err)
	}
	return &mcpmeshv1.GetStatusResponse{Revision: rev, Dataplanes: s.dps.ListDataPlanes(), Servers: sts}, nil
}

// WatchStatus implements RegistryService: the status now, then again after
// every change of config, data planes or health (identical statuses are not
// repeated).
func (s *Service) WatchStatus(_ *mcpmeshv1.WatchStatusRequest, stream grpc.ServerStreamingServer[mcpmeshv1.WatchStatusResponse]) error {
	ctx := stream.Context()
	cfg := s.st.Watch(ctx)
	dpCh, stopDP := s.dps.Subscribe()
	defer stopDP()
	hCh, stopH := s.health.Subscribe()
	defer stopH()
	var last *mcpmeshv1.GetStatusResponse
	for {
		cur, err := s.status(ctx)
		if err != nil {
			return err
		}
		if last == nil || !proto.Equal(cur, last) {
			if err := stream.Send(&mcpmeshv1.WatchStatusResponse{Status: cur}); err != nil {
				return err
			}
			last = cur
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case _, ok := <-cfg:
			if !ok && ctx.Err() == nil {
				return status.Error(codes.Unavailable, "control plane is shutting down")
			}
		case <-dpCh:
		case <-hCh:
		}
	}
}
