package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// ErrNotReady is wrapped by every error of a request made while the backend
// has no live connection; test for it with errors.Is.
var ErrNotReady = errors.New("not connected")

// params are the tunables that can change without reconnecting.
type params struct {
	schedule resilience.Schedule
	timeout  time.Duration
}

// Backend is one supervised, shared connection to a backend MCP server. All
// clients of the data plane share it; a supervisor goroutine connects it,
// notices when it dies and reconnects it under the backoff schedule.
type Backend struct {
	name   string
	cfg    *mcpmeshv1.Server // immutable
	logger *slog.Logger
	clock  resilience.Clock
	notify func() // non-blocking, coalesced by the manager

	hc  *http.Client // shared by every connection of this backend; nil for stdio
	htr *http.Transport

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when the supervisor has exited
	first     chan struct{} // closed once the first connect attempt resolved
	firstOnce sync.Once
	refetch   chan struct{} // buffered 1: a list_changed arrived
	closeOnce sync.Once

	mu       sync.RWMutex
	p        params
	state    mcpmeshv1.BackendState
	since    time.Time
	lastErr  error
	failures uint32
	latency  time.Duration
	cur      *conn
	lists    lists
	dirty    listKind
}

func newBackend(cfg *mcpmeshv1.Server, p params, logger *slog.Logger, clock resilience.Clock, notify func()) *Backend {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		name:    cfg.GetName(),
		cfg:     cfg,
		logger:  logger.With("server", cfg.GetName()),
		clock:   clock,
		notify:  notify,
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		first:   make(chan struct{}),
		refetch: make(chan struct{}, 1),
		p:       p,
		state:   mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING,
		since:   clock.Now(),
	}
	if t := cfg.GetTransport(); t == mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP || t == mcpmeshv1.Transport_TRANSPORT_SSE {
		b.hc, b.htr = newHTTPClient()
	}
	return b
}

// start launches the supervisor; its owner is the Backend, stopped by Close.
func (b *Backend) start() { go b.run() }

// Name returns the server name.
func (b *Backend) Name() string { return b.name }

// Config returns the server registration this backend was built from. It
// must not be modified.
func (b *Backend) Config() *mcpmeshv1.Server { return b.cfg }

// State returns the current state.
func (b *Backend) State() mcpmeshv1.BackendState {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.state
}

// Ready reports whether the backend is connected and its lists are fetched.
func (b *Backend) Ready() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.readyLocked()
}

func (b *Backend) readyLocked() bool {
	return b.cur != nil && b.state == mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
}

// Tools returns the backend's complete tool list with upstream names; nil
// when not ready. The slice is shared: do not modify it.
func (b *Backend) Tools() []mcp.Tool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.readyLocked() {
		return nil
	}
	return b.lists.tools
}

// Prompts returns the complete prompt list; nil when not ready.
func (b *Backend) Prompts() []mcp.Prompt {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.readyLocked() {
		return nil
	}
	return b.lists.prompts
}

// Resources returns the complete resource list; nil when not ready.
func (b *Backend) Resources() []mcp.Resource {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.readyLocked() {
		return nil
	}
	return b.lists.resources
}

// ResourceTemplates returns the complete resource template list; nil when not ready.
func (b *Backend) ResourceTemplates() []mcp.ResourceTemplate {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.readyLocked() {
		return nil
	}
	return b.lists.templates
}

// Capabilities returns what the backend announced at initialize; zero when not ready.
func (b *Backend) Capabilities() mcp.ServerCapabilities {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.readyLocked() {
		return mcp.ServerCapabilities{}
	}
	return b.lists.caps
}

// Instructions returns the backend's initialize instructions; "" when not ready.
func (b *Backend) Instructions() string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.readyLocked() {
		return ""
	}
	return b.lists.instructions
}

// CallTool calls a tool by its upstream name.
func (b *Backend) CallTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return do(ctx, b, fmt.Sprintf("call tool %q", req.Params.Name), func(ctx context.Context, cli *client.Client) (*mcp.CallToolResult, error) {
		return cli.CallTool(ctx, req)
	})
}

// GetPrompt gets a prompt by its upstream name.
func (b *Backend) GetPrompt(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return do(ctx, b, fmt.Sprintf("get prompt %q", req.Params.Name), func(ctx context.Context, cli *client.Client) (*mcp.GetPromptResult, error) {
		return cli.GetPrompt(ctx, req)
	})
}

// ReadResource reads a resource by its upstream URI.
func (b *Backend) ReadResource(ctx context.Context, req mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	return do(ctx, b, fmt.Sprintf("read resource %q", req.Params.URI), func(ctx context.Context, cli *client.Client) (*mcp.ReadResourceResult, error) {
		return cli.ReadResource(ctx, req)
	})
}

// do runs one upstream request on the current connection under the server's
// timeout, records its latency, and marks the connection dead when the
// failure was the transport's.
func do[T any](ctx context.Context, b *Backend, what string, f func(context.Context, *client.Client) (T, error)) (T, error) {
	var zero T
	b.mu.RLock()
	c, timeout := b.cur, b.p.timeout
	if !b.readyLocked() {
		err := b.notReadyLocked()
		b.mu.RUnlock()
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	b.mu.RUnlock()

	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := f(rctx, c.cli)
	if err == nil {
		b.mu.Lock()
		b.latency = time.Since(start)
		b.mu.Unlock()
		return res, nil
	}
	if isConnErr(rctx, err) {
		c.markDead(err)
	}
	if errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return zero, fmt.Errorf("backend %q: %s: no answer within %s: %w", b.name, what, timeout, err)
	}
	return zero, fmt.Errorf("backend %q: %s: %w", b.name, what, err)
}

// notReadyLocked is the error of a request that finds no live connection.
func (b *Backend) notReadyLocked() error {
	if b.lastErr == nil {
		return fmt.Errorf("backend %q is %s: %w", b.name, stateName(b.state), ErrNotReady)
	}
	return fmt.Errorf("backend %q is %s: %w", b.name, stateName(b.state), &notReadyError{b.lastErr})
}

// notReadyError carries the last connect error while matching ErrNotReady.
type notReadyError struct{ err error }

func (e *notReadyError) Error() string        { return e.err.Error() }
func (e *notReadyError) Unwrap() error        { return e.err }
func (e *notReadyError) Is(target error) bool { return target == ErrNotReady }

// stateName is the lower-case state used in messages and /health.
func stateName(s mcpmeshv1.BackendState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "BACKEND_STATE_"))
}

// Health returns this data plane's view of the backend.
func (b *Backend) Health() *mcpmeshv1.BackendHealth {
	b.mu.RLock()
	defer b.mu.RUnlock()
	h := &mcpmeshv1.BackendHealth{
		Server:              b.name,
		State:               b.state,
		Breaker:             mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED,
		Since:               timestamppb.New(b.since),
		ConsecutiveFailures: b.failures,
	}
	if b.lastErr != nil {
		h.LastError = b.lastErr.Error()
	}
	if b.latency > 0 {
		h.Latency = durationpb.New(b.latency)
	}
	if b.readyLocked() {
		h.Tools = uint32(len(b.lists.tools))
		h.Resources = uint32(len(b.lists.resources))
		h.Prompts = uint32(len(b.lists.prompts))
	}
	return h
}

// Close stops the supervisor and closes the connection (reaping a stdio
// child). It waits for every goroutine of the backend.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		<-b.done
		if b.htr != nil {
			b.htr.CloseIdleConnections()
		}
	})
	return nil
}

func (b *Backend) params() params {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.p
}

func (b *Backend) setParams(p params) {
	b.mu.Lock()
	b.p = p
	b.mu.Unlock()
}

// onNotification runs on the transport's reader goroutine, so it must not
// make requests (over stdio that would deadlock the reader): it only marks
// the list dirty and wakes the supervisor.
func (b *Backend) onNotification(n mcp.JSONRPCNotification) {
	var k listKind
	switch n.Method {
	case mcp.MethodNotificationToolsListChanged:
		k = kindTools
	case mcp.MethodNotificationPromptsListChanged:
		k = kindPrompts
	case mcp.MethodNotificationResourcesListChanged:
		k = kindResources
	default:
		return
	}
	b.mu.Lock()
	b.dirty |= k
	b.mu.Unlock()
	select {
	case b.refetch <- struct{}{}:
	default:
	}
}

// run is the supervisor: connect, serve until the connection dies, reconnect
// under the schedule. It owns every conn it creates.
func (b *Backend) run() {
	defer close(b.done)
	defer b.resolveFirst()
	failures := 0 // consecutive failures since the last stable connection
	for {
		c, l, err := b.connect(b.ctx)
		if err != nil {
			if b.ctx.Err() != nil {
				return
			}
			failures++
			b.fail(failures, fmt.Errorf("connect: %w", err))
			b.resolveFirst()
			if resilience.Sleep(b.ctx, b.clock, b.params().schedule.Delay(failures)) != nil {
				return
			}
			continue
		}
		connectedAt := b.clock.Now()
		b.up(c, l)
		b.resolveFirst()
		lost := b.serve(c)
		b.down(c)
		if err := c.close(); err != nil {
			b.logger.Debug("close backend connection", "err", err)
		}
		if b.ctx.Err() != nil {
			return
		}
		// A connection that stayed up a while resets the schedule; one that
		// dies right after connecting keeps climbing it, so a crashing stdio
		// command cannot spin.
		sched := b.params().schedule
		if b.clock.Now().Sub(connectedAt) >= sched.Last() {
			failures = 0
		}
		failures++
		b.fail(failures, fmt.Errorf("connection lost: %w", lost))
		if resilience.Sleep(b.ctx, b.clock, sched.Delay(failures)) != nil {
			return
		}
	}
}

func (b *Backend) resolveFirst() { b.firstOnce.Do(func() { close(b.first) }) }

// serve waits while the connection is healthy, refetching lists on
// list_changed. It returns why it stopped.
func (b *Backend) serve(c *conn) error {
	for {
		select {
		case <-b.ctx.Done():
			return b.ctx.Err()
		case <-c.dead:
			return c.deadErr
		case <-b.refetch:
			if err := b.refetchLists(c); err != nil {
				if isConnErr(b.ctx, err) {
					return err
				}
				b.logger.Warn("refetch backend lists", "err", err)
			}
		}
	}
}

// refetchLists refetches the lists marked dirty and reports a change.
func (b *Backend) refetchLists(c *conn) error {
	b.mu.Lock()
	kinds := b.dirty
	b.dirty = 0
	next := b.lists // copy: slices are replaced, never mutated
	b.mu.Unlock()
	if kinds == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.params().timeout)
	defer cancel()
	if err := fetchLists(ctx, c.cli, &next, kinds); err != nil {
		return err
	}
	b.mu.Lock()
	if b.cur != c {
		b.mu.Unlock()
		return nil
	}
	changed := !reflect.DeepEqual(b.lists, next)
	b.lists = next
	b.mu.Unlock()
	if changed {
		b.logger.Info("backend lists changed", "tools", len(next.tools), "prompts", len(next.prompts), "resources", len(next.resources))
		b.notify()
	}
	return nil
}

// up installs a freshly connected conn.
func (b *Backend) up(c *conn, l *lists) {
	b.mu.Lock()
	b.cur = c
	b.lists = *l
	b.state = mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY
	b.since = b.clock.Now()
	b.failures = 0
	b.lastErr = nil
	b.mu.Unlock()
	b.logger.Info("backend connected", "tools", len(l.tools), "prompts", len(l.prompts), "resources", len(l.resources))
	b.notify()
}

// down removes c, so requests fail fast instead of using a dead client.
func (b *Backend) down(c *conn) {
	b.mu.Lock()
	if b.cur == c {
		b.cur = nil
		b.lists = lists{}
	}
	b.mu.Unlock()
}

// fail records failure number n (1-based) and the resulting state.
func (b *Backend) fail(n int, err error) {
	state := mcpmeshv1.BackendState_BACKEND_STATE_RETRYING
	sched := b.params().schedule
	if sched.Exhausted(n) {
		state = mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE
	}
	b.mu.Lock()
	changed := b.state != state
	if changed {
		b.state = state
		b.since = b.clock.Now()
	}
	b.failures = uint32(n)
	b.lastErr = err
	b.mu.Unlock()
	b.logger.Warn("backend failed", "state", stateName(state), "failures", n, "retry_in", sched.Delay(n), "err", err)
	b.notify()
}
