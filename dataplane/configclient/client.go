package configclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/limits"
)

// Options configure a Client.
type Options struct {
	Addr        string // control plane gRPC address host:port
	Token       string // admin bearer token
	DataPlaneID string
	Version     string
	ListenAddr  string
	// PublicURL is the data plane's public base URL (Hello.public_url).
	PublicURL string
	Logger    *slog.Logger
	// Apply is called with each new snapshot; a nil error ACKs, an error NACKs
	// (and the client keeps its last good snapshot/revision).
	Apply func(ctx context.Context, snap *mcpmeshv1.ConfigSnapshot) error
	// Health returns the current full health of this data plane's backends.
	Health func() []*mcpmeshv1.BackendHealth
	// HealthInterval is the period of health reports; 0 means 5s.
	HealthInterval time.Duration

	// MinBackoff and MaxBackoff bound the reconnect backoff, which doubles
	// from min to max; 0 means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// NoJitter turns off the jitter of reconnect waits (on by default so a
	// restarted control plane is not hit by every data plane at once).
	NoJitter bool
	// Clock drives backoff waits and the health ticker; nil means the wall clock.
	Clock resilience.Clock
	// KeepaliveTime is how long the connection may stay silent before the
	// client pings the control plane; KeepaliveTimeout how long it then waits
	// for any answer before it drops the connection and redials. They bound
	// how long a silently dead network (no FIN, no RST) goes unnoticed.
	// 0 means DefaultKeepaliveTime and DefaultKeepaliveTimeout; gRPC raises a
	// time below 10 s to 10 s. The control plane's enforcement policy must
	// allow pings this often (its MinTime <= KeepaliveTime).
	KeepaliveTime, KeepaliveTimeout time.Duration
	// TransportCredentials secure the connection (TLS, from
	// internal/tlsconfig); nil means plaintext, which the caller allows only
	// to a loopback control plane unless told otherwise.
	TransportCredentials credentials.TransportCredentials
	// DialOptions are appended to the defaults (transport credentials,
	// bearer token, keepalive).
	DialOptions []grpc.DialOption
}

// Keepalive defaults: a dead control plane connection is noticed within
// about 15 s of its last byte.
const (
	DefaultKeepaliveTime    = 10 * time.Second
	DefaultKeepaliveTimeout = 5 * time.Second
)

// sendQueue bounds the messages waiting for the stream's sender goroutine.
const sendQueue = 16

// Client is the data plane's side of DiscoveryService.StreamConfig.
type Client struct {
	opts    Options
	logger  *slog.Logger
	clock   resilience.Clock
	backoff resilience.Exponential

	connected atomic.Bool
	healthNow chan struct{} // buffered 1: coalesces NotifyHealth

	mu       sync.RWMutex
	snapshot *mcpmeshv1.ConfigSnapshot // last good (ACKed)

	// Goodbye: leave carries the reason to the open stream (buffered 1);
	// left is closed once the goodbye went out; gone stops reconnects.
	leave     chan string
	leaveOnce sync.Once
	left      chan struct{}
	leftOnce  sync.Once
	gone      atomic.Bool
}

// New returns a Client; Run starts it.
func New(opts Options) *Client {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.HealthInterval <= 0 {
		opts.HealthInterval = 5 * time.Second
	}
	if opts.KeepaliveTime <= 0 {
		opts.KeepaliveTime = DefaultKeepaliveTime
	}
	if opts.KeepaliveTimeout <= 0 {
		opts.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	minB, maxB := opts.MinBackoff, opts.MaxBackoff
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 5 * time.Second
	}
	return &Client{
		opts:      opts,
		logger:    logger.With("control_plane", opts.Addr),
		clock:     resilience.OrReal(opts.Clock),
		backoff:   resilience.Exponential{Min: minB, Max: maxB, Jitter: !opts.NoJitter},
		healthNow: make(chan struct{}, 1),
		leave:     make(chan string, 1),
		left:      make(chan struct{}),
	}
}

// Goodbye tells the control plane this data plane is leaving (a graceful
// shutdown), so it shows it departed at once, and stops the client from
// reconnecting. It waits until the goodbye was sent or ctx ends and reports
// whether it was sent; with no stream open there is nobody to tell.
func (c *Client) Goodbye(ctx context.Context, reason string) bool {
	c.leaveOnce.Do(func() {
		c.gone.Store(true)
		c.leave <- reason
	})
	if !c.Connected() {
		return false
	}
	select {
	case <-c.left:
		return true
	case <-ctx.Done():
		return false
	}
}

// Connected reports whether a config stream is open.
func (c *Client) Connected() bool { return c.connected.Load() }

// Revision returns the last applied (ACKed) revision, 0 if none.
func (c *Client) Revision() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.snapshot.GetRevision()
}

// Snapshot returns the last good snapshot, nil if none. It must not be modified.
func (c *Client) Snapshot() *mcpmeshv1.ConfigSnapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.snapshot
}

// NotifyHealth asks for a health report soon; calls coalesce.
func (c *Client) NotifyHealth() {
	select {
	case c.healthNow <- struct{}{}:
	default:
	}
}

// Run keeps a config stream open until ctx is done, reconnecting forever.
func (c *Client) Run(ctx context.Context) error {
	addrs, err := Targets(c.opts.Addr)
	if err != nil {
		return fmt.Errorf("config client: %w", err)
	}
	if c.opts.Apply == nil {
		return errors.New("config client: Apply is nil")
	}
	conn, err := dial(addrs, c.opts.TransportCredentials, c.opts.KeepaliveTime, c.opts.KeepaliveTimeout,
		append([]grpc.DialOption{grpc.WithPerRPCCredentials(authtoken.Credentials(c.opts.Token))}, c.opts.DialOptions...))
	if err != nil {
		return fmt.Errorf("config client: dial control plane %s: %w", c.opts.Addr, err)
	}
	defer conn.Close()
	disco := mcpmeshv1.NewDiscoveryServiceClient(conn)

	attempt := 0
	for {
		received, err := c.stream(ctx, disco)
		c.connected.Store(false)
		if ctx.Err() != nil || c.gone.Load() {
			return nil
		}
		// Reset only after a message arrived: a control plane that accepts
		// the stream and drops it at once must not be hammered.
		if received {
			attempt = 0
		}
		wait := c.backoff.Delay(attempt)
		attempt++
		if code := status.Code(err); code == codes.Unauthenticated || code == codes.PermissionDenied {
			wait = c.backoff.Max
			c.logger.Error("control plane rejected the token; check the token file (a data plane needs a dataplane token: mcpctl token create --role dataplane)", "err", err, "retry_in", wait)
		} else if c.opts.TransportCredentials == nil && status.Code(err) == codes.Unavailable {
			// A TLS control plane hangs up on a plaintext client before
			// the HTTP/2 preface, which reads like a network problem.
			c.logger.Warn("config stream ended", "err", err, "retry_in", wait, "revision", c.Revision(),
				"hint", "if the control plane serves TLS, set --ca (and --client-cert/--client-key for mutual TLS)")
		} else {
			c.logger.Warn("config stream ended", "err", err, "retry_in", wait, "revision", c.Revision())
		}
		if resilience.Sleep(ctx, c.clock, wait) != nil {
			return nil
		}
	}
}

// Dial opens a connection to the control plane at addr (as --control-plane
// spells it) the way the config stream does (same targets, TLS, message
// limits and keepalive) but with no credential of its own: each call brings
// its own (grpc.PerRPCCredentials), so that one connection serves the data
// plane's token and those of operators signed in at /oauth.
func Dial(addr string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	addrs, err := Targets(addr)
	if err != nil {
		return nil, err
	}
	conn, err := dial(addrs, creds, DefaultKeepaliveTime, DefaultKeepaliveTimeout, extra)
	if err != nil {
		return nil, fmt.Errorf("dial control plane %s: %w", addr, err)
	}
	return conn, nil
}

func dial(addrs []string, creds credentials.TransportCredentials, kaTime, kaTimeout time.Duration, extra []grpc.DialOption) (*grpc.ClientConn, error) {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		limits.CallOptions(), // snapshots past gRPC's 4 MiB default
		// Without pings a stream over a network that silently drops packets
		// looks open forever, and the data plane never learns of new config.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                kaTime,
			Timeout:             kaTimeout,
			PermitWithoutStream: true,
		}),
	}, extra...)
	target, targetOpts := dialTarget(addrs)
	return grpc.NewClient(target, append(targetOpts, dialOpts...)...)
}

// stream runs one StreamConfig call until it fails or ctx ends. It reports
// whether any message was received.
func (c *Client) stream(ctx context.Context, disco mcpmeshv1.DiscoveryServiceClient) (received bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // ends the stream, so both goroutines below return
		wg.Wait()
	}()
	st, err := disco.StreamConfig(sctx)
	if err != nil {
		return false, fmt.Errorf("open config stream: %w", err)
	}
	errc := make(chan error, 2)
	sendq := make(chan *mcpmeshv1.StreamConfigRequest, sendQueue)
	recvq := make(chan *mcpmeshv1.StreamConfigResponse)

	// The only goroutine that calls Send: gRPC allows one sender at a time.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sctx.Done():
				return
			case m := <-sendq:
				if err := st.Send(m); err != nil {
					// io.EOF means the server ended the stream; Recv, below,
					// reports why (a rejected token must be told apart from
					// a transient failure: it waits the maximum backoff).
					if !errors.Is(err, io.EOF) {
						errc <- fmt.Errorf("send to control plane: %w", err)
					}
					return
				}
				if m.GetGoodbye() != nil {
					// The last message: half-close, and let the control
					// plane end the stream.
					_ = st.CloseSend()
					c.leftOnce.Do(func() { close(c.left) })
					return
				}
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			resp, err := st.Recv()
			if err != nil {
				errc <- fmt.Errorf("receive from control plane: %w", err)
				return
			}
			select {
			case recvq <- resp:
			case <-sctx.Done():
				return
			}
		}
	}()

	// enqueue blocks for messages that must not be lost (hello, ack, nack).
	enqueue := func(m *mcpmeshv1.StreamConfigRequest) error {
		select {
		case sendq <- m:
			return nil
		case err := <-errc:
			return err
		case <-sctx.Done():
			return sctx.Err()
		}
	}
	// health reports are replaced by the next one, so a full queue drops them.
	sendHealth := func() {
		if c.opts.Health == nil {
			return
		}
		m := &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Health{Health: &mcpmeshv1.HealthReport{
			Backends: c.opts.Health(),
			At:       timestamppb.New(c.clock.Now()),
		}}}
		select {
		case sendq <- m:
		default:
			c.logger.Debug("health report dropped: send queue full")
		}
	}

	hello := &mcpmeshv1.Hello{
		DataplaneId:  c.opts.DataPlaneID,
		Version:      c.opts.Version,
		LastRevision: c.Revision(),
		ListenAddr:   c.opts.ListenAddr,
		PublicUrl:    c.opts.PublicURL,
	}
	if err := enqueue(&mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Hello{Hello: hello}}); err != nil {
		return false, err
	}
	c.connected.Store(true)
	via := "unknown"
	if p, ok := peer.FromContext(st.Context()); ok && p.Addr != nil {
		via = p.Addr.String()
	}
	c.logger.Info("config stream open", "dataplane", c.opts.DataPlaneID, "last_revision", hello.LastRevision, "via", via)
	sendHealth()

	tick := c.clock.NewTimer(c.opts.HealthInterval)
	defer func() { tick.Stop() }()
	for {
		select {
		case <-sctx.Done():
			return received, sctx.Err()
		case err := <-errc:
			return received, err
		case <-tick.C():
			sendHealth()
			tick = c.clock.NewTimer(c.opts.HealthInterval)
		case <-c.healthNow:
			sendHealth()
		case reason := <-c.leave:
			m := &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Goodbye{Goodbye: &mcpmeshv1.Goodbye{Reason: reason}}}
			if err := enqueue(m); err != nil {
				return received, err
			}
			c.logger.Info("goodbye sent to the control plane", "reason", reason)
		case resp := <-recvq:
			received = true
			if err := enqueue(c.apply(sctx, resp)); err != nil {
				return received, err
			}
		}
	}
}

// apply hands a snapshot to the data plane and returns the ACK or NACK.
func (c *Client) apply(ctx context.Context, resp *mcpmeshv1.StreamConfigResponse) *mcpmeshv1.StreamConfigRequest {
	snap := resp.GetSnapshot()
	rev := snap.GetRevision()
	nack := func(err error) *mcpmeshv1.StreamConfigRequest {
		c.logger.Warn("config snapshot rejected", "revision", rev, "kept_revision", c.Revision(), "err", err)
		return &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Nack{Nack: &mcpmeshv1.Nack{
			Revision: rev, Nonce: resp.GetNonce(), Error: err.Error(),
		}}}
	}
	if snap == nil {
		return nack(errors.New("response carries no snapshot"))
	}
	start := time.Now()
	if err := c.opts.Apply(ctx, snap); err != nil {
		return nack(err)
	}
	c.mu.Lock()
	c.snapshot = proto.Clone(snap).(*mcpmeshv1.ConfigSnapshot)
	c.mu.Unlock()
	c.logger.Info("config snapshot applied", "revision", rev, "servers", len(snap.GetServers()), "duration", time.Since(start))
	return &mcpmeshv1.StreamConfigRequest{Msg: &mcpmeshv1.StreamConfigRequest_Ack{Ack: &mcpmeshv1.Ack{
		Revision: rev, Nonce: resp.GetNonce(),
	}}}
}
