package secrets

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Bounds of a rotation's grace: shorter would cut off clients that are
// between two requests; longer keeps a secret that was rotated away (maybe
// because it leaked) working for too long. DefaultGrace is mcpctl's default.
const (
	MinGrace     = time.Minute
	MaxGrace     = 7 * 24 * time.Hour
	DefaultGrace = time.Hour
)

// CheckGrace refuses a grace outside MinGrace..MaxGrace.
func CheckGrace(d time.Duration) error {
	if d < MinGrace || d > MaxGrace {
		return fmt.Errorf("grace %s is out of range: use 1m to 168h (7 days)", d)
	}
	return nil
}

// Clock is the time the service reads and waits on; tests inject one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// retryAfter is how long Run waits after the store failed.
const retryAfter = 5 * time.Second

// Service implements SecretService and expires replaced secrets (Run).
type Service struct {
	mcpmeshv1.UnimplementedSecretServiceServer

	st    store.Store
	log   *slog.Logger
	clock Clock
	// rotated wakes Run after a rotation, to wait for the new expiry.
	rotated chan struct{}
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces the real clock (tests).
func WithClock(c Clock) Option { return func(s *Service) { s.clock = c } }

// New returns the service over st.
func New(st store.Store, logger *slog.Logger, opts ...Option) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, log: logger, clock: realClock{}, rotated: make(chan struct{}, 1)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RotateClusterSecret implements SecretService. The grace is required, so
// that an empty request changes nothing.
func (s *Service) RotateClusterSecret(ctx context.Context, req *mcpmeshv1.RotateClusterSecretRequest) (*mcpmeshv1.RotateClusterSecretResponse, error) {
	if req.GetGrace() == nil {
		return nil, status.Error(codes.InvalidArgument, "grace: required, 1m to 168h (mcpctl secret rotate --grace; default 1h)")
	}
	grace := req.GetGrace().AsDuration()
	if err := CheckGrace(grace); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	now := s.clock.Now()
	until := now.Add(grace)
	rev, err := s.st.RotateClusterSecret(ctx, now, until)
	if err != nil {
		s.log.ErrorContext(ctx, "cannot rotate the cluster secret", "err", err)
		return nil, status.Errorf(codes.Unavailable, "rotate the cluster secret: %v", err)
	}
	select {
	case s.rotated <- struct{}{}:
	default: // Run has a wake-up pending already
	}
	resp := &mcpmeshv1.RotateClusterSecretResponse{Revision: rev, PreviousExpiresAt: timestamppb.New(until)}
	if st, err := s.st.State(ctx); err == nil {
		resp.PreviousSecrets = uint32(len(st.PreviousSecrets))
	}
	s.log.InfoContext(ctx, "cluster secret rotated", "revision", rev, "grace", grace,
		"previous_expires_at", until.UTC().Format(time.RFC3339), "previous_secrets", resp.GetPreviousSecrets())
	return resp, nil
}

// Run drops every replaced secret from the store at its expiry (a new
// revision, so data planes forget it too) until ctx ends. It also drops
// those that expired while the control plane was down.
func (s *Service) Run(ctx context.Context) {
	for {
		var wait <-chan time.Time
		next, err := s.expire(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Error("cannot drop expired cluster secrets; retrying", "err", err, "retry_in", retryAfter)
			wait = s.clock.After(retryAfter)
		case !next.IsZero():
			wait = s.clock.After(next.Sub(s.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-s.rotated:
		}
	}
}

// expire drops the expired secrets and returns when the next one expires
// (zero: none left).
func (s *Service) expire(ctx context.Context) (time.Time, error) {
	now := s.clock.Now()
	rev, err := s.st.DropExpiredSecrets(ctx, now)
	if err != nil {
		return time.Time{}, err
	}
	if rev != 0 {
		s.log.Info("previous cluster secret expired: dropped from the config", "revision", rev)
	}
	st, err := s.st.State(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, p := range st.PreviousSecrets {
		if next.IsZero() || p.ExpiresAt.Before(next) {
			next = p.ExpiresAt
		}
	}
	return next, nil
}
