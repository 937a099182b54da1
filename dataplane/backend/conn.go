package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/internal/version"
)

// cancelNotifyTimeout bounds how long a cancelled request waits for its
// notifications/cancelled to go out before it is abandoned anyway.
const cancelNotifyTimeout = 2 * time.Second

// conn is one live mcp-go transport that we started and initialized. A conn
// is never re-initialized: when it dies a new one is built and swapped in.
type conn struct {
	tr transport.Interface
	// ctx is the context the transport was started with: it owns the stdio
	// child and the SSE / GET streams, and bounds our notifications/cancelled.
	ctx    context.Context
	cancel context.CancelFunc
	logger *slog.Logger
	ids    atomic.Int64 // our upstream request ids, unique on this connection

	dead     chan struct{}
	deadOnce sync.Once
	deadErr  error // written before dead is closed

	watchers sync.WaitGroup // the stderr reader of a stdio child
	active   atomic.Int64   // requests in flight on it
	version  string         // negotiated at the handshake
	// mod is set on a connection that speaks MCP 2026-07-28 (modern.go):
	// no session, per-request _meta and headers, subscriptions/listen.
	mod *modernConn
	// post is set on a streamable HTTP connection: it sends the requests
	// mcp-go's transport does not have to (post.go).
	post *poster
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

// close shuts the transport down (which reaps a stdio child), then ends the
// start context and waits for the stderr reader.
func (c *conn) close() error {
	if c.post != nil {
		c.post.close() // as mcp-go's Close aborts its requests in flight
	}
	err := c.tr.Close()
	c.cancel()
	if c.mod != nil {
		c.mod.shutdown()
	}
	c.watchers.Wait()
	return err
}

// request sends one request with the next id of this connection and returns
// its raw result. params go out as they are; an upstream JSON-RPC error is a
// *jsonrpc.Error; a failure of the transport is wrapped in *transport.Error
// (see isConnErr); an ended ctx is returned as ctx's error.
func (c *conn) request(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	var header http.Header
	if c.mod != nil {
		var err error
		if params, header, err = c.mod.prepare(method, params, nil); err != nil {
			return nil, err
		}
		return c.mod.send(ctx, method, params, header)
	}
	return c.send(ctx, method, params, header)
}

// send is request with params as they are and header on the HTTP request
// (nil: none of its own).
func (c *conn) send(ctx context.Context, method string, params json.RawMessage, header http.Header) (json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // not sent: nothing to cancel
	}
	id := c.ids.Add(1)
	var res json.RawMessage
	var answerErr, err error
	exchange := func(sctx context.Context) { res, answerErr, err = c.exchange(sctx, id, method, params, header) }
	switch {
	case ctx.Done() == nil:
		exchange(ctx)
	case c.mod != nil && c.post != nil && postable(method):
		// 2026-07-28 over our poster: closing the request's POST is its
		// cancellation (sendCancelled sends nothing), so the exchange may
		// end with ctx itself; sendCancellable would only add a context and
		// a callback per request. An answer that comes as ctx ends is not
		// the outcome, as there.
		exchange(ctx)
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
	case c.sendCancellable(ctx, id, exchange):
		// Whatever the backend answered after hearing of the cancel
		// (mcp-go servers answer "context canceled") is not the outcome.
		return nil, ctx.Err()
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if errors.Is(err, transport.ErrTransportClosed) && c.isDead() {
			// Say why it closed (a stdio child's message past the bound…).
			err = fmt.Errorf("%w: %w", c.deadErr, err)
		}
		return nil, transport.NewError(err)
	}
	return res, answerErr
}

// exchange sends request id and returns the backend's answer, a result or
// a *jsonrpc.Error (answerErr), or why none came (err). Streamable HTTP
// requests go through the connection's poster, the rest through mcp-go.
func (c *conn) exchange(ctx context.Context, id int64, method string, params json.RawMessage, header http.Header) (res json.RawMessage, answerErr, err error) {
	if c.post != nil && postable(method) {
		m, err := c.post.do(ctx, c.version, id, method, params, header)
		switch {
		case err != nil:
			return nil, nil, err
		case m.Error != nil:
			return nil, m.Error, nil
		}
		return m.Result, nil, nil
	}
	req := transport.JSONRPCRequest{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Method: method, Header: header}
	if len(params) > 0 {
		req.Params = params // json.RawMessage: marshalled as is (encoding/json only compacts it)
	}
	resp, err := c.tr.SendRequest(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	res, answerErr = responseResult(resp)
	return res, answerErr, nil
}

// sendCancellable runs exchange so that ending ctx first tells the backend,
// with notifications/cancelled on this connection, and only then abandons
// the request, reporting it abandoned. exchange gets a context of its own
// that keeps ctx's values (streamable HTTP hands them to OnRequest) but
// ends only after the notification went out: ending it with ctx would abort
// an HTTP POST before the backend learns why, and over stdio leave it
// working for nobody.
func (c *conn) sendCancellable(ctx context.Context, id int64, exchange func(context.Context)) (abandoned bool) {
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	defer scancel()
	var fired sync.WaitGroup
	fired.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer fired.Done()
		c.sendCancelled(ctx, id)
		scancel()
	})
	exchange(sctx)
	if stop() {
		fired.Done() // never ran
		return false
	}
	fired.Wait() // a notification racing the answer is finished, not leaked
	return true
}

// sendCancelled tells the backend that request id is abandoned, giving ctx's
// cause as the reason.
func (c *conn) sendCancelled(ctx context.Context, id int64) {
	if c.mod != nil {
		return // 2026-07-28: closing the request's POST is the cancellation
	}
	reason := "request cancelled"
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, context.DeadlineExceeded):
		reason = "request timed out"
	case cause != nil && !errors.Is(cause, context.Canceled):
		reason = cause.Error()
	}
	n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{
		Method: string(mcp.MethodNotificationCancelled),
		Params: mcp.NotificationParams{AdditionalFields: map[string]any{"requestId": id, "reason": reason}},
	}}
	nctx, cancel := context.WithTimeout(c.ctx, cancelNotifyTimeout)
	defer cancel()
	if err := c.tr.SendNotification(nctx, n); err != nil {
		c.logger.Debug("send notifications/cancelled", "request_id", id, "err", err)
	}
}

// responseResult turns a transport response into a raw result or a
// *jsonrpc.Error.
func responseResult(resp *transport.JSONRPCResponse) (json.RawMessage, error) {
	if resp == nil {
		return nil, transport.NewError(errors.New("no response"))
	}
	if e := resp.Error; e != nil {
		je := &jsonrpc.Error{Code: e.Code, Message: e.Message}
		if e.Data != nil {
			// mcp-go decoded data into an any; it was JSON, so it encodes.
			je.Data, _ = json.Marshal(e.Data)
		}
		return nil, je
	}
	if len(resp.Result) == 0 {
		return nil, errors.New("invalid response: neither result nor error")
	}
	return resp.Result, nil
}

// initParams builds the params of our initialize request.
func initParams(caps json.RawMessage) (json.RawMessage, error) {
	if caps == nil {
		caps = defaultClientCapabilities
	}
	return initParamsFor(mcp.Implementation{Name: "mcpmesh", Version: version.Version}, caps)
}

// initParamsFor builds initialize params with that client info and
// capabilities (raw).
func initParamsFor(info mcp.Implementation, caps json.RawMessage) (json.RawMessage, error) {
	return json.Marshal(struct {
		ProtocolVersion string             `json:"protocolVersion"`
		ClientInfo      mcp.Implementation `json:"clientInfo"`
		Capabilities    json.RawMessage    `json:"capabilities"`
	}{
		// Backends are pinned to the newest handshake revision: it is the
		// cheaper proxy hop (MCP-GO-NOTES) and keeps list_changed on the
		// transport's own stream, with no subscriptions/listen to manage.
		ProtocolVersion: mcp.LATEST_LEGACY_PROTOCOL_VERSION,
		ClientInfo:      info,
		Capabilities:    caps,
	})
}

var defaultClientCapabilities = json.RawMessage(`{"sampling":{},"elicitation":{"form":{},"url":{}},"roots":{"listChanged":true},` +
	`"tasks":{"list":{},"cancel":{},"requests":{"sampling":{"createMessage":{}},"elicitation":{"create":{}}}}}`)

// initResult is what initialize told us about the server.
type initResult struct {
	caps         json.RawMessage
	instructions string
	offered      [4]bool // per catalog.Kind: the capability is announced
}

// handshake runs the initialize / notifications/initialized exchange. The
// initialize request is never cancelled (the spec forbids it): ctx's deadline
// just abandons it, and the connection with it.
func (c *conn) handshake(ctx context.Context, params json.RawMessage) (initResult, error) {
	id := c.ids.Add(1)
	resp, err := c.tr.SendRequest(ctx, transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Method: string(mcp.MethodInitialize), Params: params,
	})
	if err != nil {
		return initResult{}, transport.NewError(err)
	}
	res, err := responseResult(resp)
	if err != nil {
		return initResult{}, err
	}
	ir, version, err := parseInitResult(res)
	if err != nil {
		return initResult{}, err
	}
	c.version = version
	if hc, ok := c.tr.(transport.HTTPConnection); ok {
		// Before initialized, so that it carries the header too.
		hc.SetProtocolVersion(version)
	}
	n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: string(mcp.MethodNotificationInitialized)}}
	if err := c.tr.SendNotification(ctx, n); err != nil {
		return initResult{}, transport.NewError(fmt.Errorf("send notifications/initialized: %w", err))
	}
	return ir, nil
}

// parseInitResult validates an initialize result: a protocol version the
// initialize handshake can speak, and a capabilities object.
func parseInitResult(res json.RawMessage) (initResult, string, error) {
	var r struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		Instructions    string          `json:"instructions"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return initResult{}, "", fmt.Errorf("invalid initialize result: %w", err)
	}
	if !mcp.IsValidProtocolVersion(r.ProtocolVersion) || mcp.IsModernProtocol(r.ProtocolVersion) {
		return initResult{}, "", fmt.Errorf("invalid initialize result: %w", mcp.UnsupportedProtocolVersionError{Version: r.ProtocolVersion})
	}
	ir, err := parseCapabilities(r.Capabilities)
	if err != nil {
		return initResult{}, "", fmt.Errorf("invalid initialize result: %w", err)
	}
	ir.instructions = r.Instructions
	return ir, r.ProtocolVersion, nil
}

// parseCapabilities reads which list kinds a server capabilities object
// (of initialize or server/discover) announces.
func parseCapabilities(raw json.RawMessage) (initResult, error) {
	var caps struct {
		Tools, Prompts, Resources json.RawMessage
	}
	if len(raw) == 0 || raw[0] != '{' {
		return initResult{}, errors.New(`"capabilities" is not an object`)
	}
	if err := json.Unmarshal(raw, &caps); err != nil {
		return initResult{}, fmt.Errorf("capabilities: %w", err)
	}
	has := func(v json.RawMessage) bool { return len(v) > 0 && string(v) != "null" }
	ir := initResult{caps: raw}
	ir.offered[catalog.Tools] = has(caps.Tools)
	ir.offered[catalog.Prompts] = has(caps.Prompts)
	ir.offered[catalog.Resources] = has(caps.Resources)
	ir.offered[catalog.Templates] = has(caps.Resources)
	return ir, nil
}

// notificationParams re-encodes the params mcp-go decoded into maps. The
// decoded _meta is an empty map when the backend sent none: left out.
func notificationParams(p mcp.NotificationParams) (json.RawMessage, error) {
	if p.AdditionalFields == nil && p.Meta == nil {
		return nil, nil
	}
	m := make(map[string]any, len(p.AdditionalFields)+1)
	for k, v := range p.AdditionalFields {
		m[k] = v
	}
	if len(p.Meta) > 0 {
		m["_meta"] = p.Meta
	}
	return json.Marshal(m)
}
