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
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// maxListPages bounds how many pages of one list we follow, so a backend that
// hands out endless fresh cursors cannot keep a connect attempt busy forever.
const maxListPages = 1000

// conn is one live mcp-go client. A conn is never re-initialized: when it
// dies a new one is built and swapped in (mcp-go refuses a second Initialize).
type conn struct {
	cli *client.Client
	// cancel ends the context the transport was started with: it owns the
	// stdio child and the SSE / GET streams.
	cancel context.CancelFunc

	dead     chan struct{}
	deadOnce sync.Once
	deadErr  error // written before dead is closed

	watchers sync.WaitGroup // the stderr reader of a stdio child
	active   atomic.Int64   // requests in flight on it
}

// markDead records why the connection is unusable and wakes the supervisor.
func (c *conn) markDead(err error) {
	c.deadOnce.Do(func() {
		c.deadErr = err
		close(c.dead)
	})
}

// isDead reports whether the connection was found broken.
func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// close shuts the client down (which reaps a stdio child), then ends the
// start context and waits for the stderr reader.
func (c *conn) close() error {
	err := c.cli.Close()
	c.cancel()
	c.watchers.Wait()
	return err
}

// lists is what a backend offers, fetched after initialize and on list_changed.
type lists struct {
	// known is set once the lists were fetched. An endpoint keeps its last
	// known lists through an outage while it is retrying, so clients keep
	// seeing (and calling, held until it is back) its items; they leave when
	// it becomes unavailable.
	known        bool
	caps         mcp.ServerCapabilities
	instructions string
	tools        []mcp.Tool
	prompts      []mcp.Prompt
	resources    []mcp.Resource
	templates    []mcp.ResourceTemplate
	paged        pagedSet // lists the backend paginates (pages.go)
}

// listKind is a bit set of the lists a backend announced a change of.
type listKind uint8

const (
	kindTools listKind = 1 << iota
	kindPrompts
	kindResources // resources and resource templates
)

// newHTTPClient returns an endpoint's own keep-alive client. mcp-go's default
// &http.Client{} keeps 2 idle connections per host, so under load it dials a
// new TCP connection for most calls. No Client.Timeout: it would cut the
// long-lived SSE streams; every request carries a context deadline instead.
//
// streamLost is told when a GET (the event stream of streamable HTTP and
// SSE) fails or ends while its caller still wants it: mcp-go's streamable
// HTTP client only logs that and retries, so without this a killed backend
// would look healthy until the next request.
func newHTTPClient(streamLost func(error)) (*http.Client, *http.Transport) {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: &watchTransport{base: tr, lost: streamLost}}, tr
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

// newClient builds an unstarted mcp-go client for the endpoint's transport.
func (e *endpoint) newClient(timeout time.Duration) (*client.Client, error) {
	b := e.b
	// Backends are pinned to the newest handshake revision: it is the cheaper
	// proxy hop (MCP-GO-NOTES) and keeps list_changed on the transport's own
	// stream, with no subscriptions/listen to manage.
	pin := client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION)
	switch b.cfg.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		sc := b.cfg.GetStdio()
		tr := transport.NewStdioWithOptions(sc.GetCommand(), envList(sc.GetEnv()), sc.GetArgs(),
			transport.WithCommandFunc(commandFunc(sc.GetWorkingDir())),
			transport.WithCommandLogger(e.logger))
		return client.NewClient(tr, pin), nil
	case mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP:
		hc := b.cfg.GetHttp()
		tr, err := transport.NewStreamableHTTP(e.url,
			transport.WithHTTPHeaders(hc.GetHeaders()),
			transport.WithHTTPBasicClient(e.hc),
			// The GET stream is where a legacy-revision server sends list_changed.
			transport.WithContinuousListening(),
			transport.WithHTTPLogger(e.logger))
		if err != nil {
			return nil, fmt.Errorf("create streamable HTTP transport: %w", err)
		}
		return client.NewClient(tr, pin), nil
	case mcpmeshv1.Transport_TRANSPORT_SSE:
		hc := b.cfg.GetHttp()
		tr, err := transport.NewSSE(e.url,
			transport.WithHeaders(hc.GetHeaders()),
			transport.WithHTTPClient(e.hc),
			transport.WithEndpointTimeout(timeout),
			transport.WithSSELogger(e.logger))
		if err != nil {
			return nil, fmt.Errorf("create SSE transport: %w", err)
		}
		return client.NewClient(tr, pin), nil
	default:
		return nil, fmt.Errorf("unsupported transport %s", b.cfg.GetTransport())
	}
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

// commandFunc builds the child like mcp-go's default (configured env on top
// of ours, killed with the start context) but also sets the working dir,
// which mcp-go's constructor cannot.
func commandFunc(dir string) transport.CommandFunc {
	return func(ctx context.Context, command string, env []string, args []string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, command, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Dir = dir
		return cmd, nil
	}
}

// connect starts a new client, initializes it and fetches every list the
// server announces, all within timeout. On error nothing is left running.
func (e *endpoint) connect(ctx context.Context) (*conn, *lists, error) {
	timeout := e.b.params().timeout
	cli, err := e.newClient(timeout)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &conn{cli: cli, cancel: cancel, dead: make(chan struct{})}
	fail := func(what string, err error) (*conn, *lists, error) {
		_ = c.close()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	cli.OnNotification(e.onNotification)
	if sse, ok := cli.GetTransport().(*transport.SSE); ok {
		// Only the legacy SSE transport reports a dropped stream.
		sse.SetConnectionLostHandler(func(err error) { c.markDead(fmt.Errorf("SSE stream lost: %w", err)) })
	}

	// Start gets the long-lived context: it owns the stdio child and streams.
	if err := cli.Start(cctx); err != nil {
		return fail("start transport", err)
	}
	if r, ok := client.GetStderr(cli); ok && r != nil {
		c.watchers.Add(1)
		go func() {
			defer c.watchers.Done()
			e.readStderr(r)
			// stderr reaches EOF when the child exits (or when we close it):
			// the only prompt signal of a dead stdio child in mcp-go.
			c.markDead(errors.New("stdio process exited"))
		}()
	}

	tctx, tcancel := context.WithTimeout(cctx, timeout)
	defer tcancel()
	var req mcp.InitializeRequest
	req.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	req.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh", Version: version.Version}
	res, err := cli.Initialize(tctx, req)
	if err != nil {
		return fail("initialize", err)
	}
	l := &lists{known: true, caps: res.Capabilities, instructions: res.Instructions}
	if err := fetchLists(tctx, cli, l, kindTools|kindPrompts|kindResources); err != nil {
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

// fetchLists fills the lists named by kinds that the server's capabilities
// announce, following every nextCursor.
func fetchLists(ctx context.Context, cli *client.Client, l *lists, kinds listKind) error {
	caps := l.caps
	if kinds&kindTools != 0 && caps.Tools != nil {
		v, err := collect(ctx, "tools", func(cur mcp.Cursor) ([]mcp.Tool, mcp.Cursor, error) {
			var r mcp.ListToolsRequest
			r.Params.Cursor = cur
			res, err := cli.ListToolsByPage(ctx, r)
			if err != nil {
				return nil, "", err
			}
			l.notePage(mcp.MethodToolsList, cur, res.NextCursor)
			return res.Tools, res.NextCursor, nil
		})
		if err != nil {
			return err
		}
		l.tools = v
	}
	if kinds&kindPrompts != 0 && caps.Prompts != nil {
		v, err := collect(ctx, "prompts", func(cur mcp.Cursor) ([]mcp.Prompt, mcp.Cursor, error) {
			var r mcp.ListPromptsRequest
			r.Params.Cursor = cur
			res, err := cli.ListPromptsByPage(ctx, r)
			if err != nil {
				return nil, "", err
			}
			l.notePage(mcp.MethodPromptsList, cur, res.NextCursor)
			return res.Prompts, res.NextCursor, nil
		})
		if err != nil {
			return err
		}
		l.prompts = v
	}
	if kinds&kindResources != 0 && caps.Resources != nil {
		v, err := collect(ctx, "resources", func(cur mcp.Cursor) ([]mcp.Resource, mcp.Cursor, error) {
			var r mcp.ListResourcesRequest
			r.Params.Cursor = cur
			res, err := cli.ListResourcesByPage(ctx, r)
			if err != nil {
				return nil, "", err
			}
			l.notePage(mcp.MethodResourcesList, cur, res.NextCursor)
			return res.Resources, res.NextCursor, nil
		})
		if err != nil {
			return err
		}
		t, err := collect(ctx, "resource templates", func(cur mcp.Cursor) ([]mcp.ResourceTemplate, mcp.Cursor, error) {
			var r mcp.ListResourceTemplatesRequest
			r.Params.Cursor = cur
			res, err := cli.ListResourceTemplatesByPage(ctx, r)
			if err != nil {
				return nil, "", err
			}
			l.notePage(mcp.MethodResourcesTemplatesList, cur, res.NextCursor)
			return res.ResourceTemplates, res.NextCursor, nil
		})
		if err != nil {
			return err
		}
		l.resources, l.templates = v, t
	}
	return nil
}

// errCursorLoop is returned when a backend's pagination does not end.
var errCursorLoop = errors.New("backend pagination does not end")

// collect follows page cursors until the backend returns none.
func collect[T any](ctx context.Context, what string, page func(mcp.Cursor) ([]T, mcp.Cursor, error)) ([]T, error) {
	var all []T
	seen := map[mcp.Cursor]bool{}
	var cur mcp.Cursor
	for n := 0; ; n++ {
		if n >= maxListPages {
			return nil, fmt.Errorf("list %s: %w: more than %d pages", what, errCursorLoop, maxListPages)
		}
		items, next, err := page(cur)
		if err != nil {
			return nil, fmt.Errorf("list %s (page %d): %w", what, n+1, err)
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("list %s: %w: cursor %q repeated", what, errCursorLoop, next)
		}
		seen[next] = true
		cur = next
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
	}
}

// isConnErr reports whether err from a request made with ctx means the
// connection itself is broken (as opposed to an upstream JSON-RPC error or
// the request's own deadline). mcp-go wraps every transport failure in
// *transport.Error; JSON-RPC errors are returned unwrapped.
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
