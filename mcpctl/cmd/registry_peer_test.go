package cmd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// registryPeer is a small in-memory RegistryService: the real gRPC peer the
// command tests talk to (the control plane's own service is tested in its
// package). It keeps secrets, redacts them on the way out like the control
// plane, and returns the same status codes.
type registryPeer struct {
	mcpmeshv1.UnimplementedRegistryServiceServer

	mu       sync.Mutex
	revision uint64
	servers  map[string]*mcpmeshv1.Server
	settings map[string]string
	changed  chan struct{} // closed and replaced on every change (WatchStatus)
}

func newRegistryPeer() *registryPeer {
	return &registryPeer{
		servers:  map[string]*mcpmeshv1.Server{},
		settings: map[string]string{"pagination.enabled": "false", "pagination.page_size": "100"},
		changed:  make(chan struct{}),
	}
}

func (p *registryPeer) bumpLocked() uint64 {
	p.revision++
	close(p.changed)
	p.changed = make(chan struct{})
	return p.revision
}

func redacted(s *mcpmeshv1.Server) *mcpmeshv1.Server {
	c := proto.Clone(s).(*mcpmeshv1.Server)
	for k := range c.GetStdio().GetEnv() {
		c.Stdio.Env[k] = "***"
		c.Redacted = true
	}
	for k := range c.GetHttp().GetHeaders() {
		c.Http.Headers[k] = "***"
		c.Redacted = true
	}
	return c
}

func (p *registryPeer) CreateServer(_ context.Context, req *mcpmeshv1.CreateServerRequest) (*mcpmeshv1.CreateServerResponse, error) {
	s := req.GetServer()
	if s.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "server.name: required")
	}
	if s.GetTransport() == mcpmeshv1.Transport_TRANSPORT_STDIO && s.GetStdio().GetCommand() == "false" {
		return nil, status.Error(codes.InvalidArgument, `server.stdio.command: "false" is not allowed here`)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.servers[s.GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "server %q exists", s.GetName())
	}
	c := proto.Clone(s).(*mcpmeshv1.Server)
	c.CreateRevision, c.ModRevision = p.revision+1, p.revision+1
	if req.GetValidateOnly() {
		return &mcpmeshv1.CreateServerResponse{Server: redacted(c), Revision: p.revision}, nil
	}
	p.servers[c.Name] = c
	rev := p.bumpLocked()
	return &mcpmeshv1.CreateServerResponse{Server: redacted(c), Revision: rev}, nil
}

func (p *registryPeer) UpdateServer(_ context.Context, req *mcpmeshv1.UpdateServerRequest) (*mcpmeshv1.UpdateServerResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.servers[req.GetServer().GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "server %q not found", req.GetServer().GetName())
	}
	if req.GetExpectedRevision() != 0 && req.GetExpectedRevision() != old.ModRevision {
		return nil, status.Errorf(codes.Aborted, "expected revision %d, server is at %d", req.GetExpectedRevision(), old.ModRevision)
	}
	c := proto.Clone(req.GetServer()).(*mcpmeshv1.Server)
	// A redacted value means "keep what is stored".
	for k, v := range c.GetStdio().GetEnv() {
		if v == "***" {
			c.Stdio.Env[k] = old.GetStdio().GetEnv()[k]
		}
	}
	c.Redacted = false
	c.CreateRevision = old.CreateRevision
	c.ModRevision = p.revision + 1
	p.servers[c.Name] = c
	rev := p.bumpLocked()
	return &mcpmeshv1.UpdateServerResponse{Server: redacted(c), Revision: rev}, nil
}

func (p *registryPeer) DeleteServer(_ context.Context, req *mcpmeshv1.DeleteServerRequest) (*mcpmeshv1.DeleteServerResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.servers[req.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "server %q not found", req.GetName())
	}
	delete(p.servers, req.GetName())
	return &mcpmeshv1.DeleteServerResponse{Revision: p.bumpLocked()}, nil
}

func (p *registryPeer) GetServer(_ context.Context, req *mcpmeshv1.GetServerRequest) (*mcpmeshv1.GetServerResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.servers[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "server %q not found", req.GetName())
	}
	return &mcpmeshv1.GetServerResponse{Server: redacted(s), Status: p.serverStatusLocked(s)}, nil
}

func (p *registryPeer) serverStatusLocked(s *mcpmeshv1.Server) *mcpmeshv1.ServerStatus {
	if s.Enabled != nil && !*s.Enabled {
		return &mcpmeshv1.ServerStatus{Name: s.Name, State: "disabled", TotalDataplanes: 1}
	}
	return &mcpmeshv1.ServerStatus{Name: s.Name, State: "healthy", HealthyDataplanes: 1, TotalDataplanes: 1,
		Backends: []*mcpmeshv1.BackendHealth{{Server: s.Name, DataplaneId: "dp-1", State: mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY, Breaker: mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED, Tools: 3}}}
}

func (p *registryPeer) ListServers(_ context.Context, req *mcpmeshv1.ListServersRequest) (*mcpmeshv1.ListServersResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &mcpmeshv1.ListServersResponse{Revision: p.revision}
	for _, name := range slices.Sorted(maps.Keys(p.servers)) {
		s := p.servers[name]
		if !hasAll(s.GetTags(), req.GetTags()) {
			continue
		}
		resp.Servers = append(resp.Servers, redacted(s))
	}
	return resp, nil
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (p *registryPeer) GetSettings(context.Context, *mcpmeshv1.GetSettingsRequest) (*mcpmeshv1.GetSettingsResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return &mcpmeshv1.GetSettingsResponse{Values: maps.Clone(p.settings), Revision: p.revision}, nil
}

func (p *registryPeer) SetSetting(_ context.Context, req *mcpmeshv1.SetSettingRequest) (*mcpmeshv1.SetSettingResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.settings[req.GetKey()]; !ok {
		return nil, status.Errorf(codes.InvalidArgument, "key: unknown setting %q", req.GetKey())
	}
	if req.GetKey() == "pagination.enabled" {
		b, err := strconv.ParseBool(req.GetValue())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "value: pagination.enabled wants true or false, got %q", req.GetValue())
		}
		p.settings[req.GetKey()] = strconv.FormatBool(b) // normalised, as the control plane does
	} else {
		p.settings[req.GetKey()] = req.GetValue()
	}
	return &mcpmeshv1.SetSettingResponse{Values: maps.Clone(p.settings), Revision: p.bumpLocked()}, nil
}

func (p *registryPeer) ListDataPlanes(context.Context, *mcpmeshv1.ListDataPlanesRequest) (*mcpmeshv1.ListDataPlanesResponse, error) {
	return &mcpmeshv1.ListDataPlanesResponse{Dataplanes: []*mcpmeshv1.DataPlane{{Id: "dp-1", Version: "test", Connected: true, Revision: p.rev()}}}, nil
}

func (p *registryPeer) rev() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revision
}

func (p *registryPeer) statusLocked() *mcpmeshv1.GetStatusResponse {
	st := &mcpmeshv1.GetStatusResponse{Revision: p.revision,
		Dataplanes: []*mcpmeshv1.DataPlane{{Id: "dp-1", Version: "test", Connected: true, Revision: p.revision}}}
	for _, name := range slices.Sorted(maps.Keys(p.servers)) {
		st.Servers = append(st.Servers, p.serverStatusLocked(p.servers[name]))
	}
	return st
}

func (p *registryPeer) GetStatus(context.Context, *mcpmeshv1.GetStatusRequest) (*mcpmeshv1.GetStatusResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statusLocked(), nil
}

func (p *registryPeer) WatchStatus(_ *mcpmeshv1.WatchStatusRequest, stream grpc.ServerStreamingServer[mcpmeshv1.WatchStatusResponse]) error {
	for {
		p.mu.Lock()
		st, changed := p.statusLocked(), p.changed
		p.mu.Unlock()
		if err := stream.Send(&mcpmeshv1.WatchStatusResponse{Status: st}); err != nil {
			return fmt.Errorf("send status: %w", err)
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}
