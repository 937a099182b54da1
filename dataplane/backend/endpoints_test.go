package backend

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/mcpmesh/mcpmesh/dataplane/resilience"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// replica is one replica of a server for the load-balancing tests: tools
// whoami (read-only), put (idempotent) and post (neither), each answering
// the replica's name, counting calls, and hanging while hang is set.
type replica struct {
	name          string
	whoami, posts atomic.Int64
	hang          atomic.Bool
	work          atomic.Int64 // ns each call takes, as a real tool would
}

func newReplica(name string) (*replica, *server.MCPServer) {
	r := &replica{name: name}
	s := server.NewMCPServer(name, "1.0.0", server.WithToolCapabilities(true))
	handler := func(n *atomic.Int64) server.ToolHandlerFunc {
		return func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if r.hang.Load() {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			if d := time.Duration(r.work.Load()); d > 0 {
				time.Sleep(d)
			}
			if n != nil {
				n.Add(1)
			}
			return mcp.NewToolResultText(name), nil
		}
	}
	s.AddTools(
		server.ServerTool{Tool: mcp.NewTool("whoami", mcp.WithReadOnlyHintAnnotation(true)), Handler: handler(&r.whoami)},
		server.ServerTool{Tool: mcp.NewTool("put", mcp.WithIdempotentHintAnnotation(true)), Handler: handler(nil)},
		server.ServerTool{Tool: mcp.NewTool("post"), Handler: handler(&r.posts)},
	)
	return r, s
}

func (e *env) waitEndpoints(b *Backend, want ...mcpmeshv1.BackendState) {
	e.t.Helper()
	e.waitFor("endpoint states", func() bool {
		eps := b.Endpoints()
		for i, s := range want {
			if eps[i].State != s {
				return false
			}
		}
		return true
	})
}

// TestEndpointsSpreadAndFailover: two replicas share calls evenly; when one
// breaks, read-only and idempotent calls are retried on the other and never
// fail, a plain call is not retried (one attempt, its error returned), and the
// broken replica's breaker opens and it gets no requests.
func TestEndpointsSpreadAndFailover(t *testing.T) {
	e := newEnv(t)
	ra, sa := newReplica("rep-a")
	rb, sb := newReplica("rep-b")
	la, lb := startLiveServer(t, sa), startLiveServer(t, sb)
	srv := la.server("rep")
	srv.Endpoints = []string{lb.url()}
	e.apply(srv)
	b := e.backend("rep")
	e.waitEndpoints(b, stateHealthy, stateHealthy)
	if eps := b.Endpoints(); eps[0].URL != la.url() || eps[1].URL != lb.url() {
		t.Fatalf("endpoints = %+v, want config order", eps)
	}

	// Sequential calls alternate exactly.
	for i := 0; i < 100; i++ {
		if _, err := callTool(context.Background(), b, "whoami"); err != nil {
			t.Fatalf("whoami: %v", err)
		}
	}
	if a, bb := ra.whoami.Load(), rb.whoami.Load(); a != 50 || bb != 50 {
		t.Fatalf("sequential spread = %d / %d, want 50 / 50", a, bb)
	}
	ra.whoami.Store(0)
	rb.whoami.Store(0)
	reqA0, reqB0 := b.Endpoints()[0].Requests, b.Endpoints()[1].Requests

	// Spread: concurrent callers of a tool that takes a millisecond, as real
	// tools do (so scheduler noise on a loaded test machine does not make one
	// replica look slower). Least in-flight with ties rotated gives equal
	// replicas equal shares.
	ra.work.Store(int64(time.Millisecond))
	rb.work.Store(int64(time.Millisecond))
	const workers, per = 4, 100
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := callTool(context.Background(), b, "whoami"); err != nil {
					t.Errorf("whoami: %v", err)
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, "concurrent whoami callers")
	a, bb := ra.whoami.Load(), rb.whoami.Load()
	total := int64(workers * per)
	t.Logf("spread over two healthy endpoints: %d / %d", a, bb)
	if a+bb != total || a < total/2*9/10 || bb < total/2*9/10 {
		t.Fatalf("spread = %d / %d, want %d each ±10%%", a, bb, total/2)
	}
	ra.work.Store(0)
	rb.work.Store(0)
	if eps := b.Endpoints(); eps[0].Requests-reqA0 != uint64(a) || eps[1].Requests-reqB0 != uint64(bb) || eps[0].InFlight != 0 {
		t.Errorf("endpoint counters = %+v", eps)
	}

	// B breaks (503 to everything): read-only calls keep succeeding; the one
	// that hit B was retried on A.
	lb.down.Store(true)
	reqB := b.Endpoints()[1].Requests
	aBefore := ra.whoami.Load()
	for i := 0; i < 10; i++ {
		if got, err := callTool(context.Background(), b, "whoami"); err != nil || got != "rep-a" {
			t.Fatalf("whoami %d with B broken = %q, %v; want rep-a", i, got, err)
		}
	}
	if d := b.Endpoints()[1].Requests - reqB; d != 1 {
		t.Fatalf("requests sent to the broken endpoint = %d, want 1 (then it is skipped)", d)
	}
	if d := ra.whoami.Load() - aBefore; d != 10 {
		t.Fatalf("calls served by A = %d, want 10", d)
	}
	if !strings.Contains(e.logs.String(), "retrying request") {
		t.Error("no retry logged")
	}
	if _, err := callTool(context.Background(), b, "put"); err != nil {
		t.Fatalf("idempotent call with B broken: %v", err)
	}

	// B recovers; its supervisor reconnects on schedule.
	lb.down.Store(false)
	e.clock.Advance(e.waitTimer())
	e.waitEndpoints(b, stateHealthy, stateHealthy)

	// B breaks again, after it stayed up for a last step (so its schedule
	// starts over): a plain (non-idempotent) call that lands on B fails
	// after exactly one attempt; it is not repeated on A.
	e.clock.Advance(8 * time.Second)
	// B's event stream must be open before B breaks: a stream that B
	// refuses would tell the data plane at once, and no call would land on
	// B (right, but not what this part tests).
	e.waitFor("B's event stream open", func() bool { return lb.gets.Load() > 0 })
	lb.down.Store(true)
	reqB = b.Endpoints()[1].Requests
	postsA := ra.posts.Load()
	var failed error
	successes := int64(0)
	for i := 0; i < 4 && failed == nil; i++ {
		if _, err := callTool(context.Background(), b, "post"); err != nil {
			failed = err
		} else {
			successes++
		}
	}
	if failed == nil {
		t.Fatal("no post call reached the broken endpoint")
	}
	if !strings.Contains(failed.Error(), `backend "rep"`) || errors.Is(failed, ErrNotReady) {
		t.Errorf("post error = %v, want the transport error naming the backend", failed)
	}
	if d := b.Endpoints()[1].Requests - reqB; d != 1 {
		t.Errorf("attempts on the broken endpoint = %d, want 1", d)
	}
	if d := ra.posts.Load() - postsA; d != successes {
		t.Errorf("posts served by A = %d, want %d (the failed one must not be repeated)", d, successes)
	}

	// The broken endpoint's failures (the request, its immediate reconnect
	// after losing a stable connection, then its scheduled connects) open its
	// breaker after 5 (the default) while it is still retrying; the server
	// stays healthy on A and shows the open breaker.
	for i := 0; ; i++ {
		d := e.waitTimer() // B waits: its last attempt has resolved
		if b.Endpoints()[1].Breaker == mcpmeshv1.BreakerState_BREAKER_STATE_OPEN {
			if want := resilience.DefaultConsecutiveFailures - 2; i != want {
				t.Errorf("breaker opened after the request, the immediate reconnect and %d scheduled connects, want %d", i, want)
			}
			break
		}
		if i == resilience.DefaultConsecutiveFailures {
			t.Fatalf("B's breaker still %v after %d failed connects", b.Endpoints()[1].Breaker, i)
		}
		e.clock.Advance(d) // B's next connect attempt, which fails
	}
	h := b.Health()
	if h.GetState() != stateHealthy || h.GetBreaker() != mcpmeshv1.BreakerState_BREAKER_STATE_OPEN ||
		!strings.Contains(h.GetLastError(), "endpoint "+lb.url()) {
		t.Fatalf("health with one broken endpoint = %v", h)
	}
	reqB = b.Endpoints()[1].Requests
	for i := 0; i < 10; i++ {
		if _, err := callTool(context.Background(), b, "post"); err != nil {
			t.Fatalf("post with B's breaker open: %v", err)
		}
	}
	if d := b.Endpoints()[1].Requests - reqB; d != 0 {
		t.Errorf("requests to the endpoint with an open breaker = %d, want 0", d)
	}
}

// TestBreakerOnHungEndpoint: an endpoint that accepts requests but never
// answers times out, and after N timeouts its breaker opens: with another
// replica it is skipped; alone it fails fast naming the endpoint; after
// OpenFor one probe request closes the breaker again.
func TestBreakerOnHungEndpoint(t *testing.T) {
	const trip = 3
	e := newEnv(t, func(o *ManagerOptions) { o.Breaker = resilience.BreakerConfig{ConsecutiveFailures: trip} })
	ra, sa := newReplica("hung-a")
	rb, sb := newReplica("hung-b")
	la, lb := startLiveServer(t, sa), startLiveServer(t, sb)
	// The deadline bounds connects too: the servers connect under a generous
	// one, and the short one that times out the hung calls is applied live
	// (no reconnect) only for them, so a loaded machine fails nothing else.
	pair := la.server("pair")
	pair.Endpoints = []string{lb.url()}
	pair.Timeout = durationpb.New(10 * time.Second)
	solo := lb.server("solo")
	solo.Timeout = durationpb.New(10 * time.Second)
	e.apply(pair, solo)
	bp, bs := e.backend("pair"), e.backend("solo")
	e.waitEndpoints(bp, stateHealthy, stateHealthy)
	e.waitState(bs, stateHealthy)
	pair.Timeout = durationpb.New(100 * time.Millisecond)
	solo.Timeout = durationpb.New(100 * time.Millisecond)
	e.apply(pair, solo)

	// Timeouts are counted as the requests B received, all of which hang: a
	// call to A may time out too on a loaded machine, which is not B's.
	rb.hang.Store(true)
	reqB := bp.Endpoints()[1].Requests
	for i := 0; i < 4*trip && bp.Endpoints()[1].Breaker != mcpmeshv1.BreakerState_BREAKER_STATE_OPEN; i++ {
		if _, err := callTool(context.Background(), bp, "whoami"); err != nil && !strings.Contains(err.Error(), "no answer within 100ms") {
			t.Fatalf("hung call error = %v, want a timeout", err)
		}
	}
	if got, n := bp.Endpoints()[1].Breaker, bp.Endpoints()[1].Requests-reqB; got != mcpmeshv1.BreakerState_BREAKER_STATE_OPEN || n != trip {
		t.Fatalf("after %d timed-out requests to B its breaker is %v, want OPEN after %d", n, got, trip)
	}
	// From here on calls to the pair must succeed.
	pair.Timeout = durationpb.New(10 * time.Second)
	e.apply(pair, solo)
	if bp.State() != stateHealthy || !bp.Ready() {
		t.Error("a hung endpoint made the server unready")
	}
	reqB = bp.Endpoints()[1].Requests
	start := time.Now()
	for i := 0; i < 20; i++ {
		if got, err := callTool(context.Background(), bp, "whoami"); err != nil || got != "hung-a" {
			t.Fatalf("call with B's breaker open = %q, %v", got, err)
		}
	}
	if d := bp.Endpoints()[1].Requests - reqB; d != 0 {
		t.Errorf("requests to the open endpoint = %d, want 0", d)
	}
	t.Logf("20 calls with one endpoint's breaker open took %v", time.Since(start))

	// Alone, the hung endpoint trips too, and then fails fast.
	for i := 0; i < trip; i++ {
		if _, err := callTool(context.Background(), bs, "post"); err == nil {
			t.Fatal("hung call succeeded")
		}
	}
	start = time.Now()
	_, err := callTool(context.Background(), bs, "post")
	if !errors.Is(err, resilience.ErrOpen) || !strings.Contains(err.Error(), `backend "solo" endpoint `+lb.url()+": circuit breaker open until") {
		t.Fatalf("call with the breaker open = %v", err)
	}
	// ErrOpen proves no request was sent; the time is a sanity bound only.
	if d := time.Since(start); d > time.Second {
		t.Errorf("open breaker took %v to fail, want fast", d)
	}
	if h := bs.Health(); h.GetBreaker() != mcpmeshv1.BreakerState_BREAKER_STATE_OPEN {
		t.Errorf("health breaker = %v", h.GetBreaker())
	}

	// After OpenFor the breaker is half-open: one probe request goes through
	// and its success closes it.
	rb.hang.Store(false)
	solo.Timeout = durationpb.New(10 * time.Second) // the probe call must succeed
	e.apply(pair, solo)
	e.clock.Advance(resilience.DefaultOpenFor)
	if got := bs.Endpoints()[0].Breaker; got != mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN {
		t.Fatalf("breaker after OpenFor = %v, want HALF_OPEN", got)
	}
	if got, err := callTool(context.Background(), bs, "whoami"); err != nil || got != "hung-b" {
		t.Fatalf("probe call = %q, %v", got, err)
	}
	if got := bs.Endpoints()[0].Breaker; got != mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED {
		t.Fatalf("breaker after a good probe = %v, want CLOSED", got)
	}
	_ = ra
}

// TestHungToolDoesNotBlockOthers: calls stuck in a tool that never answers
// get a deadline error naming the backend, while calls to another backend
// answer at once.
func TestHungToolDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t)
	const hung = 4
	ms := newMCPServer("slowpoke", 0)
	started := make(chan struct{}, hung)
	ms.AddTool(mcp.NewTool("hang"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	slow := startHTTPBackend(t, ms, false)
	quick := startHTTPBackend(t, newMCPServer("quick", 0), false)
	ss := slow.server("slowpoke")
	ss.Timeout = durationpb.New(time.Second)
	e.apply(ss, quick.server("quick"))
	bs, bq := e.backend("slowpoke"), e.backend("quick")
	e.waitState(bs, stateHealthy)
	e.waitState(bq, stateHealthy)

	errs := make(chan error, hung)
	for i := 0; i < hung; i++ {
		go func() {
			_, err := callTool(context.Background(), bs, "hang")
			errs <- err
		}()
	}
	for i := 0; i < hung; i++ {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the hanging calls did not reach the backend")
		}
	}
	start := time.Now()
	var worst time.Duration
	for i := 0; i < 20; i++ {
		s := time.Now()
		if got := callText(t, bq, "echo", map[string]any{"text": "hi"}); got != "quick:hi" {
			t.Fatalf("echo = %q", got)
		}
		worst = max(worst, time.Since(s))
	}
	t.Logf("20 calls to another backend while %d hang: %v total, worst %v", hung, time.Since(start), worst)
	if inflight := bs.Endpoints()[0].InFlight; inflight != hung {
		t.Errorf("hung calls in flight after the quick calls = %d, want %d (the quick calls must not wait)", inflight, hung)
	}
	for i := 0; i < hung; i++ {
		err := recvWithin(t, errs, "a hung call to end")
		if err == nil || !strings.Contains(err.Error(), `backend "slowpoke"`) || !strings.Contains(err.Error(), "no answer within 1s") {
			t.Errorf("hung call error = %v, want a deadline error naming the backend", err)
		}
	}
}

// TestCancellationReachesUpstream: cancelling the caller's context cancels
// the upstream request, and is not held against the endpoint.
func TestCancellationReachesUpstream(t *testing.T) {
	e := newEnv(t)
	s := newMCPServer("cancel", 0)
	started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	s.AddTool(mcp.NewTool("block"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		return nil, ctx.Err()
	})
	hb := startHTTPBackend(t, s, false)
	e.apply(hb.server("cancel"))
	b := e.backend("cancel")
	e.waitFor("the block tool", func() bool {
		return slices.Contains(toolNames(b), "block")
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := callTool(ctx, b, "block")
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the tool never started")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled call did not return")
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream handler was not cancelled")
	}
	if n := b.eps[0].breaker.ConsecutiveFailures(); n != 0 || !b.Ready() {
		t.Errorf("after a cancel: breaker failures %d, ready %v; want 0, true", n, b.Ready())
	}
}

// TestSingleEndpointRetryAfterReconnect: with one endpoint, a read or get
// that fails in transport is retried once after an inline reconnect; a plain
// tool call is not.
func TestSingleEndpointRetryAfterReconnect(t *testing.T) {
	e := newEnv(t)
	hb := startHTTPBackend(t, newMCPServer("one", 0), false)
	e.apply(hb.server("one"))
	b := e.backend("one")
	e.waitState(b, stateHealthy)

	inits := hb.inits.Load()
	hb.failNext.Store(1)
	if _, err := readResource(context.Background(), b, "mem://one/readme"); err != nil {
		t.Fatalf("read resource across a reconnect: %v", err)
	}
	if got := hb.inits.Load() - inits; got != 1 {
		t.Fatalf("reconnects for the retried read = %d, want 1", got)
	}

	e.clock.Advance(8 * time.Second) // the new connection is stable
	inits = hb.inits.Load()
	hb.failNext.Store(1)
	if _, err := getPrompt(context.Background(), b, "greet", nil); err != nil {
		t.Fatalf("get prompt across a reconnect: %v", err)
	}
	if got := hb.inits.Load() - inits; got != 1 {
		t.Fatalf("reconnects for the retried get = %d, want 1", got)
	}

	e.clock.Advance(8 * time.Second)
	inits = hb.inits.Load()
	hb.failNext.Store(1)
	_, err := callTool(context.Background(), b, "echo")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("plain tool call across a restart = %v, want its 503 (no retry)", err)
	}
	// The connection was stable, so its loss is a new outage: the supervisor
	// re-initializes at once, with no wait on the clock. That is the only
	// connect: the failed call was not retried.
	e.waitFor("the reconnect", func() bool { return hb.inits.Load() > inits && b.State() == stateHealthy })
	if got := hb.inits.Load() - inits; got != 1 {
		t.Fatalf("connects after a plain tool call failed = %d, want 1 (the supervisor's, no retry)", got)
	}
}

// TestKillOneOfTwoUnderLoad: one of two replicas is killed (listener and
// connections closed) while read-only calls stream in: no call fails, and
// afterwards every call goes to the survivor.
func TestKillOneOfTwoUnderLoad(t *testing.T) {
	e := newEnv(t)
	ra, sa := newReplica("kill-a")
	rb, sb := newReplica("kill-b")
	la, lb := startLiveServer(t, sa), startLiveServer(t, sb)
	srv := la.server("kill")
	srv.Endpoints = []string{lb.url()}
	e.apply(srv)
	b := e.backend("kill")
	e.waitEndpoints(b, stateHealthy, stateHealthy)

	const workers, per = 4, 100
	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	halfway := make(chan struct{})
	var once sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if calls.Add(1) == workers*per/2 {
					once.Do(func() { close(halfway) })
				}
				if _, err := callTool(context.Background(), b, "whoami"); err != nil {
					failures.Add(1)
					t.Errorf("whoami while a replica dies: %v", err)
				}
			}
		}()
	}
	recvWithin(t, halfway, "half of the calls")
	la.stop()
	waitGroup(t, &wg, "callers while a replica dies")
	t.Logf("failed calls while one of two endpoints was killed under load: %d of %d (served: A %d, B %d)",
		failures.Load(), calls.Load(), ra.whoami.Load(), rb.whoami.Load())
	e.waitEndpoints(b, stateRetrying, stateHealthy)
	before := rb.whoami.Load()
	for i := 0; i < 10; i++ {
		if got, err := callTool(context.Background(), b, "whoami"); err != nil || got != "kill-b" {
			t.Fatalf("call after the kill = %q, %v; want kill-b", got, err)
		}
	}
	if d := rb.whoami.Load() - before; d != 10 {
		t.Errorf("calls served by the survivor = %d, want 10", d)
	}
	if !b.Ready() || b.State() != stateHealthy {
		t.Error("the server is not healthy on its surviving replica")
	}
}
