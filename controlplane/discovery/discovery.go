package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpmesh/mcpmesh/controlplane/access"
	"github.com/mcpmesh/mcpmesh/controlplane/internal/notify"
	"github.com/mcpmesh/mcpmesh/controlplane/store"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/limits"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// HealthSink receives the health reports data planes send.
type HealthSink interface {
	Report(ctx context.Context, dataplaneID string, r *mcpmeshv1.HealthReport) error
}

// Server is the DiscoveryService implementation.
type Server struct {
	mcpmeshv1.UnimplementedDiscoveryServiceServer

	st          store.Store
	health      HealthSink
	log         *slog.Logger
	now         func() time.Time
	sendTimeout time.Duration

	mu  sync.Mutex
	dps map[string]*dataplane

	changes notify.Broadcaster

	snapMu   sync.Mutex
	snap     *mcpmeshv1.ConfigSnapshot // newest built snapshot, shared read-only by all streams
	snapSize int                       // proto.Size(snap)
	masked   *mcpmeshv1.ConfigSnapshot // Masked(snap), built when a stream first needs it

	maxMessage int // gRPC message limit of the streams

	noncePrefix string
	nonceSeq    atomic.Uint64
	sent        atomic.Uint64

	wg sync.WaitGroup // receive and send goroutines of open streams

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed by Shutdown: open streams end
}

type dataplane struct {
	info    *mcpmeshv1.DataPlane
	streams int // open streams with this id; connected while > 0
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock stamping connected_at and last_seen and deciding
// when a disconnected data plane is forgotten (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// DefaultSendTimeout is how long one snapshot may take to enter a stream
// before its data plane is disconnected as too slow.
const DefaultSendTimeout = 10 * time.Second

// WithSendTimeout replaces DefaultSendTimeout (tests use a short one).
func WithSendTimeout(d time.Duration) Option { return func(s *Server) { s.sendTimeout = d } }

// WithMaxMessageSize sets the gRPC message limit of the config streams
// (default limits.MaxMessageSize). A snapshot over
// limits.MaxSnapshotSize(n) is not sent: data planes keep the config they
// have, and the stream stays up. The registry refuses writes that would
// build one, so only data stored before that check can.
func WithMaxMessageSize(n int) Option { return func(s *Server) { s.maxMessage = n } }

// MaxDataPlaneID bounds hello.dataplane_id (a host name is at most 253
// bytes); longer version and listen_addr texts are cut to maxHelloText.
const (
	MaxDataPlaneID = 256
	maxHelloText   = 256
)

// ForgetAfter is how long a disconnected data plane stays in ListDataPlanes.
// Data planes come and go (autoscaling, rolling restarts, new ids), so the
// list would otherwise grow forever; their stored health reports are kept.
const ForgetAfter = time.Hour

// New returns a discovery server reading config from st and passing health
// reports to health (which may be nil to drop them).
func New(st store.Store, health HealthSink, logger *slog.Logger, opts ...Option) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b) // a prefix that differs per process keeps nonces unique across restarts
	s := &Server{
		st: st, health: health, log: logger, now: time.Now, sendTimeout: DefaultSendTimeout,
		maxMessage:  limits.MaxMessageSize,
		dps:         make(map[string]*dataplane),
		noncePrefix: hex.EncodeToString(b),
		shutdown:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Shutdown ends every open config stream with Unavailable so that a graceful
// stop of the gRPC server does not wait for data planes that never hang up;
// they reconnect (to this or the next control plane) on their own.
func (s *Server) Shutdown() { s.shutdownOnce.Do(func() { close(s.shutdown) }) }

// Close waits for the receive goroutines of finished streams; call it after
// the gRPC server has stopped.
func (s *Server) Close() { s.wg.Wait() }

// Subscribe signals whenever a data plane connects, disconnects, ACKs, NACKs
// or reports.
func (s *Server) Subscribe() (<-chan struct{}, func()) { return s.changes.Subscribe() }

// SnapshotsSent returns how many snapshots were sent since start.
func (s *Server) SnapshotsSent() uint64 { return s.sent.Load() }

// ListDataPlanes returns the data planes seen since start, sorted by id;
// disconnected ones stay listed with connected=false for ForgetAfter.
func (s *Server) ListDataPlanes() []*mcpmeshv1.DataPlane {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsafeForget()
	out := make([]*mcpmeshv1.DataPlane, 0, len(s.dps))
	for _, dp := range s.dps {
		out = append(out, proto.Clone(dp.info).(*mcpmeshv1.DataPlane))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// ConnectedIDs returns the ids of the data planes with an open stream.
func (s *Server) ConnectedIDs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.dps))
	for id, dp := range s.dps {
		if dp.streams > 0 {
			out[id] = true
		}
	}
	return out
}

// unsafeForget drops data planes disconnected for longer than ForgetAfter;
// s.mu must be held. Their last_seen is the moment they disconnected, since
// nothing updates it without an open stream.
func (s *Server) unsafeForget() {
	cutoff := s.now().Add(-ForgetAfter)
	for id, dp := range s.dps {
		if dp.streams == 0 && dp.info.GetLastSeen().AsTime().Before(cutoff) {
			delete(s.dps, id)
		}
	}
}

func (s *Server) update(id string, fn func(dp *dataplane)) {
	s.mu.Lock()
	if dp, ok := s.dps[id]; ok {
		fn(dp)
		dp.info.LastSeen = timestamppb.New(s.now())
	}
	s.mu.Unlock()
	s.changes.Notify()
}

func (s *Server) connect(h *mcpmeshv1.Hello, peerAddr string) {
	now := timestamppb.New(s.now())
	s.mu.Lock()
	s.unsafeForget() // bounds the map even if nobody lists it
	dp, ok := s.dps[h.GetDataplaneId()]
	if !ok {
		dp = &dataplane{info: &mcpmeshv1.DataPlane{Id: h.GetDataplaneId()}}
		s.dps[h.GetDataplaneId()] = dp
	}
	dp.streams++
	dp.info.Version, dp.info.ListenAddr = textlimit.Truncate(h.GetVersion(), maxHelloText), textlimit.Truncate(h.GetListenAddr(), maxHelloText)
	dp.info.PublicUrl = publicURL(h.GetPublicUrl())
	dp.info.Peer = peerAddr
	dp.info.Connected, dp.info.ConnectedAt, dp.info.LastSeen = true, now, now
	dp.info.Departed = ""
	if h.GetLastRevision() != 0 {
		dp.info.Revision = h.GetLastRevision()
	}
	s.mu.Unlock()
	s.changes.Notify()
}

// disconnect ends one stream of id. gone is the stream's own flag, so that
// a goodbye and the end of the stream after it count once.
func (s *Server) disconnect(id string, gone *atomic.Bool, departed string) {
	if !gone.CompareAndSwap(false, true) {
		return
	}
	s.update(id, func(dp *dataplane) {
		dp.streams--
		dp.info.Connected = dp.streams > 0
		if departed != "" && !dp.info.Connected {
			dp.info.Departed = departed
		}
	})
}

// maxGoodbyeText bounds the reason of a goodbye kept in ListDataPlanes.
const maxGoodbyeText = 256

func (s *Server) nackedRevision(id string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dp, ok := s.dps[id]; ok {
		return dp.info.GetNackedRevision()
	}
	return 0
}

// snapshot returns the snapshot for the store's current revision, building it
// once per revision however many streams ask.
func (s *Server) snapshot(ctx context.Context) (*mcpmeshv1.ConfigSnapshot, error) {
	rev, err := s.st.Revision(ctx)
	if err != nil {
		return nil, fmt.Errorf("build snapshot: %w", err)
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if s.snap != nil && s.snap.GetRevision() == rev {
		return s.snap, nil
	}
	state, err := s.st.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("build snapshot: %w", err)
	}
	snap := BuildSnapshot(state)
	if s.snap == nil || snap.GetRevision() >= s.snap.GetRevision() {
		s.snap, s.snapSize, s.masked = snap, proto.Size(snap), nil
	}
	return snap, nil
}

// maskedSnapshot returns Masked(snap), built once per snapshot.
func (s *Server) maskedSnapshot(snap *mcpmeshv1.ConfigSnapshot) *mcpmeshv1.ConfigSnapshot {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if snap != s.snap {
		return Masked(snap)
	}
	if s.masked == nil {
		s.masked = Masked(snap)
	}
	return s.masked
}

// fits reports whether snap, built by snapshot, is within the message limit,
// and its size.
func (s *Server) fits(snap *mcpmeshv1.ConfigSnapshot) (bool, int) {
	s.snapMu.Lock()
	size := s.snapSize
	if s.snap != snap {
		size = proto.Size(snap)
	}
	s.snapMu.Unlock()
	return size <= limits.MaxSnapshotSize(s.maxMessage), size
}

// StreamConfig implements DiscoveryService.
func (s *Server) StreamConfig(stream grpc.BidiStreamingServer[mcpmeshv1.StreamConfigRequest, mcpmeshv1.StreamConfigResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on the config stream must be hello")
	}
	id := hello.GetDataplaneId()
	if id == "" {
		return status.Error(codes.InvalidArgument, "hello.dataplane_id: must not be empty")
	}
	if len(id) > MaxDataPlaneID {
		return status.Errorf(codes.InvalidArgument, "hello.dataplane_id: is %d bytes long: at most %d are allowed", len(id), MaxDataPlaneID)
	}
	peerAddr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		peerAddr = p.Addr.String()
	}
	log := s.log.With("dataplane", id)
	// Secrets go to dataplane credentials only; any other role allowed on
	// the stream (admin) reads the config masked.
	secrets := access.ReceivesSecrets(ctx)
	// Subscribe before the first send so no revision committed in between is missed.
	watch := s.st.Watch(ctx)
	s.connect(hello, peerAddr)
	var gone atomic.Bool // set once this stream stopped counting as connected
	defer s.disconnect(id, &gone, "")
	log.Info("data plane connected", "version", hello.GetVersion(), "listen_addr", hello.GetListenAddr(),
		"peer", peerAddr, "last_revision", hello.GetLastRevision())
	defer log.Info("data plane disconnected")
	if !secrets {
		log.Warn("config stream opened with a credential that is not a dataplane token: its snapshots carry no secrets, which a data plane refuses; give data planes a dataplane token (mcpctl token create --role dataplane)")
	}

	recvErr := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		recvErr <- s.receive(ctx, id, stream, &gone, log)
	}()

	// The sender goroutine below is the stream's only caller of Send, fed by
	// a queue of one: this loop hands it a snapshot only when the previous
	// one has gone out. The store's watch channel holds at most the newest
	// revision, so bursts of writes coalesce into one snapshot and a slow
	// data plane costs at most one snapshot in flight, never a backlog.
	// A Send that has not completed within sendTimeout means the data plane
	// stopped reading (HTTP/2 flow control is full): the stream is ended,
	// which makes gRPC cancel the stream and so unblocks that Send.
	out := make(chan *mcpmeshv1.StreamConfigResponse, 1)
	sendDone := make(chan error, 1)
	stopSender := make(chan struct{})
	defer close(stopSender)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-stopSender:
				return
			case m := <-out:
				select {
				case <-stopSender: // the handler returned meanwhile: Send is no longer allowed
					return
				default:
				}
				err := stream.Send(m)
				sendDone <- err
				if err != nil {
					return
				}
			}
		}
	}()
	sendTimer := time.NewTimer(s.sendTimeout)
	sendTimer.Stop()
	defer sendTimer.Stop()

	var (
		have, sentOnce = hello.GetLastRevision(), false
		tooLarge       uint64 // revision last found over the limit (logged once)
		inFlight       bool   // a snapshot is with the sender
		flightRev      uint64 // its revision
		flightNonce    string
		flightStart    time.Time
	)
	for {
		if !inFlight {
			snap, err := s.snapshot(ctx)
			if err != nil {
				log.Error("cannot build config snapshot", "err", err)
				return status.Error(codes.Internal, "build config snapshot: store unavailable")
			}
			if !secrets {
				snap = s.maskedSnapshot(snap)
			}
			rev := snap.GetRevision()
			wantSend := rev != have || (have == 0 && !sentOnce)
			if wantSend && rev != 0 && rev == s.nackedRevision(id) {
				wantSend = false // it rejected this exact revision: wait for a newer one
			}
			if wantSend {
				if ok, size := s.fits(snap); !ok {
					// Sending it would end the stream with ResourceExhausted
					// and the data plane would reconnect into the same wall.
					if tooLarge != rev {
						log.Error("config snapshot is over the gRPC message limit: not sent, the data plane keeps its config; shrink or remove servers",
							"revision", rev, "size", size, "limit", limits.MaxSnapshotSize(s.maxMessage))
						tooLarge = rev
					}
					wantSend = false
				}
			}
			if wantSend {
				flightNonce = fmt.Sprintf("%s-%d", s.noncePrefix, s.nonceSeq.Add(1))
				flightRev, flightStart, inFlight = rev, time.Now(), true
				out <- &mcpmeshv1.StreamConfigResponse{Snapshot: snap, Nonce: flightNonce} // the sender is idle: never blocks
				sendTimer.Reset(s.sendTimeout)
			}
		}
		select {
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "control plane is shutting down")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case err := <-sendDone:
			sendTimer.Stop()
			inFlight = false
			if err != nil {
				return err
			}
			s.sent.Add(1)
			have, sentOnce = flightRev, true
			log.Debug("config snapshot sent", "revision", flightRev, "nonce", flightNonce, "duration", time.Since(flightStart))
		case <-sendTimer.C:
			log.Warn("data plane is not reading its config stream; disconnecting it",
				"revision", flightRev, "timeout", s.sendTimeout)
			return status.Errorf(codes.ResourceExhausted,
				"config snapshot %d was not taken by the stream within %s: the data plane is not reading; reconnect", flightRev, s.sendTimeout)
		case _, ok := <-watch:
			if !ok {
				if ctx.Err() != nil {
					return status.FromContextError(ctx.Err()).Err()
				}
				return status.Error(codes.Unavailable, "control plane is shutting down")
			}
			// With a snapshot in flight, the newest revision is picked up
			// when it completes.
		}
	}
}

// receive handles everything the data plane sends after its hello.
func (s *Server) receive(ctx context.Context, id string, stream grpc.BidiStreamingServer[mcpmeshv1.StreamConfigRequest, mcpmeshv1.StreamConfigResponse], gone *atomic.Bool, log *slog.Logger) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.GetMsg().(type) {
		case *mcpmeshv1.StreamConfigRequest_Ack:
			rev := m.Ack.GetRevision()
			s.update(id, func(dp *dataplane) {
				dp.info.Revision = rev
				if rev > dp.info.GetNackedRevision() {
					dp.info.NackedRevision, dp.info.LastError = 0, ""
				}
			})
			log.Debug("config acked", "revision", rev, "nonce", m.Ack.GetNonce())
		case *mcpmeshv1.StreamConfigRequest_Nack:
			rev, msg := m.Nack.GetRevision(), textlimit.Truncate(redact.Text(m.Nack.GetError()), textlimit.ErrorText)
			s.update(id, func(dp *dataplane) { dp.info.NackedRevision, dp.info.LastError = rev, msg })
			log.Warn("config rejected by data plane", "revision", rev, "nonce", m.Nack.GetNonce(), "err", msg)
		case *mcpmeshv1.StreamConfigRequest_Health:
			if s.health != nil {
				if err := s.health.Report(ctx, id, m.Health); err != nil {
					log.Warn("health report dropped", "err", err)
				}
			}
			s.update(id, func(*dataplane) {})
		case *mcpmeshv1.StreamConfigRequest_Goodbye:
			// A data plane shutting down: it is gone now, not when its
			// stream fails; its last message, so the stream ends here.
			reason := textlimit.Truncate(redact.Text(m.Goodbye.GetReason()), maxGoodbyeText)
			if reason == "" {
				reason = "goodbye"
			}
			s.disconnect(id, gone, reason)
			log.Info("data plane departed", "reason", reason)
			return io.EOF
		case *mcpmeshv1.StreamConfigRequest_Hello:
			return status.Error(codes.InvalidArgument, "hello may only be sent once, as the first message")
		default:
			// An empty or newer message kind: ignore it, but note the data plane is alive.
			s.update(id, func(*dataplane) {})
		}
	}
}

// publicURL is the public base URL a data plane reported, if it is an
// absolute http(s) URL of bounded length (the status page links to it);
// anything else is dropped.
func publicURL(raw string) string {
	if raw == "" || len(raw) > maxHelloText {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return ""
	}
	return strings.TrimRight(u.String(), "/")
}
