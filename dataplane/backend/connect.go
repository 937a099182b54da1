package backend

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"

	"github.com/mcpmesh/mcpmesh/dataplane/h1"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// maxListPages bounds how many pages of one list we follow, so a backend that
// hands out endless fresh cursors cannot keep a connect attempt busy forever.
const maxListPages = 1000

// newHTTPClient returns an endpoint's own keep-alive client. mcp-go's default
// &http.Client{} keeps 2 idle connections per host, so under load it dials a
// new TCP connection for most calls. No Client.Timeout: it would cut the
// long-lived SSE streams; every request carries a context deadline instead.
//
// streamLost is told when a GET (the event stream of streamable HTTP and
// SSE) fails or ends while its caller still wants it: mcp-go's streamable
// HTTP client only logs that and retries, so without this a killed backend
// would look healthy until the next request.
//
// Plain-HTTP requests go through h1.Transport, which reads each
// response on the caller's goroutine; https and proxied requests go through
// net/http's Transport, configured here. Both dial through one net.Dialer
// whose Control (the egress check, nil when private egress is allowed) sees
// every address after name resolution, so a name that resolves to a
// metadata address is refused too. Through a proxy of the environment, it
// sees the proxy's address: the proxy decides.
//
// auth, for an OAuth server, adds its bearer token to every request (oauth.go).
func newHTTPClient(streamLost func(error), control func(network, address string, c syscall.RawConn) error, auth *authHolder) (*http.Client, *h1.Transport) {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
			Control:   control,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	ht := h1.New(tr)
	return &http.Client{Transport: &watchTransport{base: withAuth(boundedTransport(ht), auth), lost: streamLost}}, ht
}

// boundedTransport bounds every answer read through base to one message of
// jsonrpc.MaxMessage (limit.go).
func boundedTransport(base http.RoundTripper) http.RoundTripper {
	return &boundTransport{base: base, max: jsonrpc.MaxMessage}
}

// watchTransport reports the failure or end of GET streams.
type watchTransport struct {
	base http.RoundTripper
	lost func(error)
}

func (w *watchTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.base.RoundTrip(req)
	if req.Method != http.MethodGet {
		return resp, err
	}
	if err != nil {
		if req.Context().Err() == nil {
			w.lost(err)
		}
		return resp, err
	}
	if resp.StatusCode == http.StatusNotFound {
		// The server forgot our session (it restarted), or it offers no
		// stream: the endpoint's liveness check tells which.
		w.lost(fmt.Errorf("event stream: %s", resp.Status))
	}
	resp.Body = &watchBody{ReadCloser: resp.Body, ctx: req.Context(), lost: w.lost}
	return resp, nil
}

// watchBody reports the first read error (io.EOF included: the server ended
// the stream) unless the reader itself gave up on the stream.
type watchBody struct {
	io.ReadCloser
	ctx  context.Context
	lost func(error)
	once sync.Once
}

func (b *watchBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.ctx.Err() == nil {
		b.once.Do(func() { b.lost(err) })
	}
	return n, err
}

// transportUse says whose transport newTransport builds.
type transportUse struct {
	// client: a client's own upstream session. Its requests go through pc
	// (its streams say nothing about the shared connection) and mcp-go opens
	// no GET stream for it (Listen reads that).
	client bool
	// session, on streamable HTTP, continues that session (maybe opened on
	// another replica) instead of initializing one.
	session string
	// modern: the shared connection of a 2026-07-28 endpoint (modern.go),
	// which has no GET stream.
	modern bool
}

// newTransport builds an unstarted mcp-go transport for the endpoint: the
// shared connection's, or (use.client) one of a client's own session. A
// client's session is never on stdio (the registry refuses per-client stdio
// servers).
func (e *endpoint) newTransport(timeout time.Duration, use transportUse) (transport.Interface, error) {
	b := e.b
	hcl := e.hc
	if use.client {
		hcl = e.pc
	}
	switch b.cfg.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		sc := b.cfg.GetStdio()
		tr, err := newStdioTransport(b.name, sc.GetCommand(), sc.GetArgs(), b.params().childEnv, envList(sc.GetEnv()),
			sc.GetWorkingDir(), jsonrpc.MaxMessage, e.logger)
		if err != nil {
			return nil, err
		}
		return tr, nil
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		opts := []transport.StreamableHTTPCOption{
			transport.WithHTTPHeaders(b.cfg.GetHttp().GetHeaders()),
			transport.WithHTTPBasicClient(hcl),
			transport.WithHTTPLogger(e.logger),
		}
		if use.session != "" {
			opts = append(opts, transport.WithSession(use.session))
		}
		if !use.client && !use.modern {
			// The GET stream is where a legacy-revision server sends list_changed.
			opts = append(opts, transport.WithContinuousListening())
		}
		tr, err := transport.NewStreamableHTTP(e.url, opts...)
		if err != nil {
			return nil, fmt.Errorf("create streamable HTTP transport: %w", err)
		}
		return tr, nil
	case mcpmeshv1.Transport_TRANSPORT_SSE:
		tr, err := transport.NewSSE(e.url,
			transport.WithHeaders(b.cfg.GetHttp().GetHeaders()),
			transport.WithHTTPClient(hcl),
			transport.WithEndpointTimeout(timeout),
			// Our request context bounds every wait; mcp-go's own 60 s
			// default would cut servers configured with a longer timeout.
			transport.WithResponseTimeout(24*time.Hour),
			transport.WithSSELogger(e.logger))
		if err != nil {
			return nil, fmt.Errorf("create SSE transport: %w", err)
		}
		return tr, nil
	default:
		return nil, fmt.Errorf("unsupported transport %s", b.cfg.GetTransport())
	}
}

// newConn wraps an unstarted transport of the endpoint in a conn whose
// context (to start the transport with) ends with parent.
func (e *endpoint) newConn(parent context.Context, tr transport.Interface) *conn {
	cctx, cancel := context.WithCancel(parent)
	c := &conn{tr: tr, ctx: cctx, cancel: cancel, logger: e.logger, dead: make(chan struct{})}
	if sse, ok := tr.(*transport.SSE); ok {
		// Only the legacy SSE transport reports a dropped stream.
		sse.SetConnectionLostHandler(func(err error) { c.markDead(fmt.Errorf("SSE stream lost: %w", err)) })
	}
	return c
}

// envList turns the configured environment into sorted KEY=VALUE pairs.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// connect starts a new transport, initializes it and fetches every list the
// server announces, all within timeout. On error nothing is left running.
func (e *endpoint) connect(ctx context.Context) (*conn, *lists, error) {
	timeout := e.b.params().timeout
	if e.era() != eraLegacy {
		if c, l, legacy, err := e.connectModern(ctx, timeout); !legacy {
			return c, l, err
		}
	}
	tr, err := e.newTransport(timeout, transportUse{})
	if err != nil {
		return nil, nil, err
	}
	c := e.newConn(ctx, tr)
	c.post = e.newPoster(tr, e.hc, "")
	if st, ok := tr.(*stdioTransport); ok {
		st.onFail(c.markDead)
	}
	fail := func(what string, err error) (*conn, *lists, error) {
		if errors.Is(err, transport.ErrTransportClosed) && c.isDead() && !errors.Is(err, c.deadErr) {
			err = fmt.Errorf("%w: %w", c.deadErr, err) // why it closed
		}
		_ = c.close()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	// Handlers go in before Start: mcp-go drops what arrives without one.
	tr.SetNotificationHandler(e.onNotification)
	if bt, ok := tr.(transport.BidirectionalInterface); ok {
		bt.SetRequestHandler(e.onRequest)
	}

	// Start gets the long-lived context: it owns the stdio child and streams.
	if err := tr.Start(c.ctx); err != nil {
		return fail("start transport", err)
	}
	if s, ok := tr.(interface{ Stderr() io.Reader }); ok {
		if r := s.Stderr(); r != nil {
			c.watchers.Add(1)
			go func() {
				defer c.watchers.Done()
				e.readStderr(r)
				// stderr reaches EOF when the child exits (or when we close it):
				// the only prompt signal of a dead stdio child in mcp-go.
				c.markDead(errors.New("stdio process exited"))
			}()
		}
	}

	tctx, tcancel := context.WithTimeout(c.ctx, timeout)
	defer tcancel()
	ir, err := c.handshake(tctx, e.b.hooks.initParams)
	if err != nil {
		return fail("initialize", err)
	}
	v := c.version
	e.version.Store(&v)
	l := &lists{known: true, caps: ir.caps, instructions: ir.instructions, offered: ir.offered}
	if err := fetchLists(tctx, c, l, allKinds, e.b.params().lists); err != nil {
		return fail("fetch lists", err)
	}
	return c, l, nil
}

// readStderr logs the child's stderr line by line at debug level until EOF.
// Lines are capped at the reader's buffer so a child that never writes a
// newline cannot grow our memory.
func (e *endpoint) readStderr(r io.Reader) {
	br := bufio.NewReaderSize(r, 16*1024)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if l := bytes.TrimRight(line, "\r\n"); len(l) > 0 {
				e.logger.Debug("backend stderr", "line", string(l))
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// isConnErr reports whether err from a request made with ctx means the
// connection itself is broken (as opposed to an upstream JSON-RPC error or
// the request's own deadline). conn.request wraps every transport failure in
// *transport.Error; JSON-RPC errors are *jsonrpc.Error.
func isConnErr(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if errors.Is(err, transport.ErrTransportClosed) || errors.Is(err, transport.ErrSessionTerminated) {
		return true
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}
