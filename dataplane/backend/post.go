package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// The requests of a streamable HTTP connection, posted by us rather than by
// mcp-go's StreamableHTTP.SendRequest, which per call JSON-encodes the
// request by reflection, starts a goroutine to watch the transport's close
// (each start and end of one woke an idle OS thread: the largest cost of a
// proxied call on a small machine), and decodes the answer by reflection
// again. Here the request is appended as bytes, sent with the client mcp-go's
// transport was given (h1: written and read on the calling goroutine), and
// its answer, a JSON body or an event stream, is read on the calling goroutine
// with the jsonrpc scanner.
//
// The wire stays mcp-go's (client/transport/streamable_http.go of v1.2.1,
// SendRequest, sendHTTP, handleSSEResponse): the same headers in the same
// order of precedence, the same errors for 404 (ErrSessionTerminated, and a
// session that answered 404 refuses later requests), 401
// (AuthorizationRequiredError) and other statuses, the same handling of
// what comes on a response stream (notifications, server-to-client requests
// answered by a POST of their own, resumption with Last-Event-ID), and
// closing the transport aborts the requests in flight.
//
// mcp-go still sends: initialize (it stores the session id and opens the
// GET stream after it) and server/discover (it opens the transport's
// initialization gate on success), both rare; notifications; the GET
// stream; and everything on stdio and legacy SSE.

// serverRequestTimeout bounds the answer to a server-to-client request that
// came on a response stream, as mcp-go does (handleIncomingRequest).
const serverRequestTimeout = 30 * time.Second

// maxErrorBody bounds what we read of a response that is no answer (a
// status other than 200 or 202); maxErrorSnippet, what of it an error quotes.
const (
	maxErrorBody    = 64 << 10
	maxErrorSnippet = 512
)

// SSE reconnection delays of a response stream the server ended before the
// answer (mcp-go's defaultSSEReconnectDelay and minSSEReconnectDelay).
const (
	defaultResumeDelay = time.Second
	minResumeDelay     = 10 * time.Millisecond
)

// errNoResponse: a response stream ended without our answer.
var errNoResponse = errors.New("unexpected nil response")

// poster posts the requests of one streamable HTTP connection (a conn).
type poster struct {
	tr     *transport.StreamableHTTP // its session id is the connection's
	hc     *http.Client              // the one tr was built with
	url    string
	header map[string]string // configured, set last as mcp-go does
	e      *endpoint
	// client is whose session this is: "" for the shared connection. What
	// comes on a response stream goes to e with it, as to mcp-go's handlers.
	client string

	// Made once per connection (newPoster): the request every request is a
	// copy of (its URL parsed once; nil when url does not parse, and then
	// http.NewRequest reports why per request), the configured headers
	// canonicalized, and the values of the constant ones.
	tmpl       *http.Request
	configured []headerValue
	// rt is hc's RoundTripper, which do calls itself when hc would add
	// nothing to what it does (no cookie jar, no timeout, no credentials in
	// the URL): Client.Do copies the headers for redirects and wraps the
	// request in deadline handling per call. A response that redirects
	// makes the poster go through hc from then on, which follows it.
	rt        http.RoundTripper
	urlStr    string // the URL as Client.Do's errors give it
	redirects atomic.Bool

	// hadSession is set once a request went out with a session id; a
	// session id gone since (mcp-go ended the session after a 404 of its
	// own, or the transport was closed) ends the session for us too.
	hadSession atomic.Bool
	// ended: the server answered 404 to a POST with our session id. As
	// mcp-go does, later requests fail with ErrSessionTerminated unsent.
	ended atomic.Bool
	// closed ends with the transport: requests in flight (the cancels of
	// inflight, by request id) are aborted.
	closed   context.Context
	close    context.CancelFunc
	mu       sync.Mutex
	inflight map[int64]context.CancelFunc
	// Header values shared by every request (never modified once made).
	version    atomic.Pointer[headerValue] // the last protocol version sent
	sessionVal atomic.Pointer[headerValue] // the last session id sent
}

// headerValue is a canonical header key and its values.
type headerValue struct {
	key string
	val []string
}

var (
	contentTypeJSON = []string{"application/json"}
	acceptPost      = []string{"application/json, text/event-stream"}
	acceptGet       = []string{"text/event-stream"}
)

// newPoster returns the poster of a connection over tr, which was built
// with hc, for client's session ("" for the shared connection); nil when tr
// is no streamable HTTP transport.
func (e *endpoint) newPoster(tr transport.Interface, hc *http.Client, client string) *poster {
	st, ok := tr.(*transport.StreamableHTTP)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &poster{tr: st, hc: hc, url: e.url, header: e.b.cfg.GetHttp().GetHeaders(), e: e, client: client,
		closed: ctx, close: cancel, inflight: map[int64]context.CancelFunc{}}
	context.AfterFunc(ctx, p.abort)
	for k, v := range p.header {
		p.configured = append(p.configured, headerValue{http.CanonicalHeaderKey(k), []string{v}})
	}
	if req, err := http.NewRequest(http.MethodPost, p.url, nil); err == nil {
		p.tmpl = req
		if hc.Jar == nil && hc.Timeout == 0 && req.URL.User == nil {
			p.rt = hc.Transport
			if p.rt == nil {
				p.rt = http.DefaultTransport
			}
			p.urlStr = req.URL.String()
		}
	}
	return p
}

// abort ends the requests in flight, once the transport is closed.
func (p *poster) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cancel := range p.inflight {
		cancel()
	}
}

// track makes closing the transport end ctx (a request's, of id): the
// context returned, to be untracked with the function returned.
func (p *poster) track(ctx context.Context, id int64) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	p.mu.Lock()
	if p.closed.Err() != nil {
		cancel() // closed already: abort has run, or is waiting for mu
	} else {
		p.inflight[id] = cancel
	}
	p.mu.Unlock()
	return ctx, func() {
		p.mu.Lock()
		delete(p.inflight, id)
		p.mu.Unlock()
		cancel()
	}
}

// mediaType is the media type of a Content-Type value, lower case, "" when
// it does not parse: mime.ParseMediaType's, without its allocations for the
// two types a backend answers with, written plainly.
func mediaType(ct string) string {
	switch ct {
	case "application/json", "text/event-stream":
		return ct
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// postable reports whether a request of method goes through the poster.
func postable(method string) bool {
	return method != string(mcp.MethodInitialize) && method != string(mcp.MethodServerDiscover)
}

// session returns the session id a request carries, or
// ErrSessionTerminated when the session ended.
func (p *poster) session(modern bool) (string, error) {
	if p.ended.Load() {
		return "", transport.ErrSessionTerminated
	}
	id := p.tr.GetSessionId()
	switch {
	case id != "":
		if !p.hadSession.Load() {
			p.hadSession.Store(true)
		}
	case p.hadSession.Load():
		return "", transport.ErrSessionTerminated
	}
	if modern { // 2026-07-28 has no session header
		return "", nil
	}
	return id, nil
}

// shared returns the header value v, from *cache when it holds the same.
func shared(cache *atomic.Pointer[headerValue], key, v string) []string {
	if hv := cache.Load(); hv != nil && hv.val[0] == v {
		return hv.val
	}
	hv := &headerValue{key, []string{v}}
	cache.Store(hv)
	return hv.val
}

// newRequest builds a POST (or, body nil, a GET) of ours with mcp-go's
// headers: the request's own (header, which it takes and adds to), then
// Content-Type, Accept, the session id, the protocol version, then the
// configured ones, which win. It is what http.NewRequestWithContext and
// Header.Set in that order give, with the URL parsed and the header values
// made once.
func (p *poster) newRequest(ctx context.Context, version, session string, body []byte, header http.Header) (*http.Request, error) {
	accept := acceptPost
	if body == nil {
		accept = acceptGet
	}
	if header == nil {
		header = make(http.Header, 4+len(p.configured))
	}
	header["Content-Type"] = contentTypeJSON
	header["Accept"] = accept
	if session != "" {
		header[transport.HeaderKeySessionID] = shared(&p.sessionVal, transport.HeaderKeySessionID, session)
	}
	if version != "" {
		header[transport.HeaderKeyProtocolVersion] = shared(&p.version, transport.HeaderKeyProtocolVersion, version)
	}
	if body != nil {
		if th := traceHeadersOf(ctx); th != nil {
			header["Traceparent"] = []string{th.parent}
			if th.state != "" {
				header["Tracestate"] = []string{th.state}
			}
		}
	}
	for _, hv := range p.configured {
		header[hv.key] = hv.val
	}
	if p.tmpl == nil {
		method := http.MethodPost
		var rd io.Reader
		if body == nil {
			method = http.MethodGet
		} else {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, p.url, rd)
		if err != nil {
			return nil, fmt.Errorf("failed to create request: %w", err)
		}
		req.Header = header
		return req, nil
	}
	req := p.tmpl.WithContext(ctx)
	req.Header = header
	if body == nil {
		req.Method = http.MethodGet
	} else {
		// As NewRequestWithContext makes them of a bytes.Reader. The body
		// must stay an io.NopCloser of a bytes.Reader: net/http writes the
		// head and such a body in one write, but flushes the head first
		// (an extra write syscall here and an extra read at the backend)
		// for a body type it does not know to be in memory.
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req, nil
}

// send sends req, made by newRequest, as hc.Do(req) would: on hc's
// RoundTripper directly when hc would do nothing more (see poster.rt), its
// errors wrapped in a *url.Error as Client.Do wraps them. A redirect is
// followed by hc, which is asked again: the server did not act on a request
// it redirected.
func (p *poster) send(req *http.Request, body []byte) (*http.Response, error) {
	if p.rt == nil || p.redirects.Load() {
		return p.hc.Do(req)
	}
	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		return nil, &url.Error{Op: urlErrorOp(req.Method), URL: p.urlStr, Err: err}
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if resp.Header.Get("Location") == "" {
			return resp, nil // not followed by hc either
		}
		discard(resp)
		p.redirects.Store(true)
		again := req.Clone(req.Context())
		if body != nil {
			again.Body = io.NopCloser(bytes.NewReader(body))
		}
		return p.hc.Do(again)
	}
	return resp, nil
}

// urlErrorOp is the Op of Client.Do's errors for a request of method.
func urlErrorOp(method string) string {
	if method == http.MethodGet {
		return "Get"
	}
	return "Post"
}

// do sends the request id of method with params (raw JSON, or empty for
// none) and header (which it takes), on a connection of that protocol
// version, and returns the backend's answer: a response with our id
// carrying a result or a *jsonrpc.Error. err is why no answer came: a
// failure of the transport, or an error the server gave instead (401,
// another status) as mcp-go reports them. An ended ctx, or closing the
// transport, aborts the request.
func (p *poster) do(ctx context.Context, version string, id int64, method string, params []byte, header http.Header) (jsonrpc.Message, error) {
	modern := mcp.IsModernProtocol(version)
	session, err := p.session(modern)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("failed to send request: %w", err)
	}
	ctx, untrack := p.track(ctx, id)
	defer untrack()

	rid := jsonrpc.IntID(id)
	var raw []byte
	if len(params) > 0 {
		raw = params
	}
	body := jsonrpc.Request(rid, method, raw)
	req, err := p.newRequest(ctx, version, session, body, header)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("failed to send request: %w", err)
	}
	resp, err := p.send(req, body)
	if err != nil {
		return jsonrpc.Message{}, fmt.Errorf("failed to send request: failed to send request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		p.endSession(session)
		return jsonrpc.Message{}, fmt.Errorf("failed to send request: %w", transport.ErrSessionTerminated)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return statusAnswer(resp)
	}
	switch mt := mediaType(resp.Header.Get("Content-Type")); mt {
	case "application/json":
		b, err := readBounded(resp.Body, resp.ContentLength, jsonrpc.MaxMessage)
		if err != nil {
			return jsonrpc.Message{}, fmt.Errorf("failed to decode response: %w", err)
		}
		m, err := jsonrpc.Parse(b)
		if err != nil {
			return jsonrpc.Message{}, fmt.Errorf("failed to decode response: %w", err)
		}
		if !m.IsResponse() || !bytes.Equal(m.ID, rid) {
			return jsonrpc.Message{}, fmt.Errorf("response should contain RPC id %s, got id %s", rid, nullIfNone(m.ID))
		}
		return m, nil
	case "text/event-stream":
		return p.readStream(ctx, version, rid, resp.Body)
	default:
		return jsonrpc.Message{}, fmt.Errorf("unexpected content type: %s", resp.Header.Get("Content-Type"))
	}
}

// endSession records a 404 to a request that carried session (none: the
// server keeps no sessions, nothing ends).
func (p *poster) endSession(session string) {
	if session != "" {
		p.ended.Store(true)
	}
}

// statusAnswer is mcp-go's reading of a response that is neither 200 nor
// 202 (nor 404): 401 asks for authorization; a body that is a JSON-RPC error
// is the answer; anything else is an error naming the status and quoting
// the start of the body.
func statusAnswer(resp *http.Response) (jsonrpc.Message, error) {
	if resp.StatusCode == http.StatusUnauthorized {
		return jsonrpc.Message{}, &transport.AuthorizationRequiredError{
			ResourceMetadataURL: resourceMetadataURL(resp.Header.Values("WWW-Authenticate")),
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if m, err := jsonrpc.Parse(b); err == nil && m.Error != nil {
		return m, nil
	}
	if len(b) > maxErrorSnippet {
		b = append(b[:maxErrorSnippet:maxErrorSnippet], "…"...)
	}
	return jsonrpc.Message{}, fmt.Errorf("request failed with status %d: %s", resp.StatusCode, b)
}

// readBounded reads r to its end, failing beyond max bytes. size is the
// length the response announced (-1: unknown): a buffer of that size, when
// within max, is read into without growing.
func readBounded(r io.Reader, size int64, max int) ([]byte, error) {
	n := 512
	if size >= 0 && size <= int64(max) {
		n = int(size) + 1 // room to see the end without growing
	}
	b := make([]byte, 0, n)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		k, err := r.Read(b[len(b):min(cap(b), max+1)])
		b = b[:len(b)+k]
		if len(b) > max {
			return nil, fmt.Errorf("response larger than %d bytes", max)
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func nullIfNone(id []byte) []byte {
	if id == nil {
		return []byte("null")
	}
	return id
}

// readStream reads the event stream of our request rid until our answer:
// notifications go to the endpoint, server-to-client requests are answered
// on goroutines of their own (awaited before it returns, their context
// ending with the request's answer, as in mcp-go), other responses are
// dropped. A stream the server ended before the answer, after sending an
// event id, is resumed with a GET carrying Last-Event-ID (2025-11-25; not on
// 2026-07-28), as mcp-go does.
func (p *poster) readStream(ctx context.Context, version string, rid []byte, body io.Reader) (jsonrpc.Message, error) {
	var (
		answer  jsonrpc.Message
		got     bool
		answers sync.WaitGroup
		hctx    context.Context // of the server's requests, made on the first
		hcancel context.CancelFunc
		cur     sseCursor
	)
	defer func() {
		if hcancel != nil {
			hcancel()
			answers.Wait()
		}
	}()
	handle := func(_ string, data []byte) bool {
		m, err := jsonrpc.Parse(data)
		switch {
		case err != nil:
			p.e.logger.Debug("response stream: drop malformed message", "err", err)
		case m.IsNotification():
			p.e.rawNotification(p.client, &m)
		case m.IsRequest():
			if hctx == nil {
				hctx, hcancel = context.WithCancel(ctx)
			}
			answers.Add(1)
			go func() {
				defer answers.Done()
				p.answerServer(hctx, version, &m)
			}()
		case bytes.Equal(m.ID, rid):
			answer, got = m, true
			return false
		default:
			p.e.logger.Debug("response stream: drop a response to another request", "id", string(nullIfNone(m.ID)))
		}
		return true
	}
	ended, err := scanEvents(body, jsonrpc.MaxMessage, &cur, handle)
	for !got && err == nil && ended && cur.lastID != "" && !mcp.IsModernProtocol(version) && ctx.Err() == nil {
		if ended, err = p.resume(ctx, version, &cur, handle); err != nil {
			err = fmt.Errorf("failed to resume the SSE stream for the response: %w", err)
		}
	}
	switch {
	case got:
		return answer, nil
	case ctx.Err() != nil:
		return jsonrpc.Message{}, ctx.Err()
	case err != nil:
		return jsonrpc.Message{}, err
	}
	return jsonrpc.Message{}, errNoResponse
}

// resume waits the reconnection time, reopens the response stream with a
// GET carrying Last-Event-ID and reads it with handle; ended reports that
// the server ended this one too.
func (p *poster) resume(ctx context.Context, version string, cur *sseCursor, handle func(string, []byte) bool) (ended bool, err error) {
	delay := defaultResumeDelay
	if cur.hasRetry {
		delay = max(cur.retry, minResumeDelay)
	}
	if !sleepCtx(ctx, delay) {
		return false, ctx.Err()
	}
	session, err := p.session(false)
	if err != nil {
		return false, err
	}
	req, err := p.newRequest(ctx, version, session, nil, http.Header{"Last-Event-Id": {cur.lastID}})
	if err != nil {
		return false, err
	}
	resp, err := p.send(req, nil)
	if err != nil {
		return false, fmt.Errorf("failed to send request: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound: // a GET's 404 does not end the session (mcp-go)
		return false, transport.ErrSessionTerminated
	default:
		return false, fmt.Errorf("unexpected status %d", resp.StatusCode)
	}
	if mt := mediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, fmt.Errorf("unexpected content type %q", resp.Header.Get("Content-Type"))
	}
	return scanEvents(resp.Body, jsonrpc.MaxMessage, cur, handle)
}

// answerServer answers a server-to-client request that came on a response
// stream and POSTs the answer back, as mcp-go's handleIncomingRequest does:
// under 30 s, with no request headers of its own, a panic of the handler
// answered as an internal error.
func (p *poster) answerServer(ctx context.Context, version string, m *jsonrpc.Message) {
	ctx, cancel := context.WithTimeout(ctx, serverRequestTimeout)
	defer cancel()
	var body []byte
	func() {
		defer func() {
			if r := recover(); r != nil {
				p.e.logger.Error("panic handling server request", "method", m.Method, "panic", r)
				body = jsonrpc.ErrorResponse(m.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "internal error: panic in request handler: %v", r))
			}
		}()
		if res, jerr := p.e.answer(ctx, p.client, m); jerr != nil {
			body = jsonrpc.ErrorResponse(m.ID, jerr)
		} else {
			body = jsonrpc.Response(m.ID, res)
		}
	}()
	session, err := p.session(mcp.IsModernProtocol(version))
	if err != nil {
		p.e.logger.Debug("response stream: post answer", "method", m.Method, "err", err)
		return
	}
	req, err := p.newRequest(ctx, version, session, body, nil)
	if err != nil {
		p.e.logger.Debug("response stream: post answer", "method", m.Method, "err", err)
		return
	}
	resp, err := p.send(req, body)
	if err != nil {
		p.e.logger.Debug("response stream: post answer", "method", m.Method, "err", redactURLError(err))
		return
	}
	discard(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted:
	case http.StatusNotFound:
		p.endSession(session)
		p.e.logger.Debug("response stream: answer refused: the session ended", "method", m.Method)
	default:
		p.e.logger.Debug("response stream: answer refused", "method", m.Method, "status", resp.Status)
	}
}

// resourceMetadataURL returns the first resource_metadata parameter (RFC
// 9728 §5.1) of WWW-Authenticate values, as mcp-go reports it in an
// AuthorizationRequiredError: names match case-insensitively, values are
// tokens or quoted strings (a malformed one is skipped).
func resourceMetadataURL(values []string) string {
	for _, h := range values {
		for i := 0; i < len(h); {
			for i < len(h) && !isTokenChar(h[i]) {
				i++
			}
			start := i
			for i < len(h) && isTokenChar(h[i]) {
				i++
			}
			name := h[start:i]
			for i < len(h) && (h[i] == ' ' || h[i] == '\t') {
				i++
			}
			if i >= len(h) || h[i] != '=' {
				continue // a scheme, not a parameter
			}
			i++
			for i < len(h) && (h[i] == ' ' || h[i] == '\t') {
				i++
			}
			var v string
			var ok bool
			v, i, ok = authParamValue(h, i)
			if ok && v != "" && strings.EqualFold(name, "resource_metadata") {
				return v
			}
		}
	}
	return ""
}

// authParamValue reads a token or a quoted string at h[i:], returning it
// unescaped, the index after it, and whether it was well formed.
func authParamValue(h string, i int) (string, int, bool) {
	if i < len(h) && h[i] == '"' {
		var b strings.Builder
		for i++; i < len(h); i++ {
			switch h[i] {
			case '\\':
				if i+1 >= len(h) {
					return "", len(h), false
				}
				i++
				b.WriteByte(h[i])
			case '"':
				return b.String(), i + 1, true
			default:
				b.WriteByte(h[i])
			}
		}
		return "", i, false
	}
	start := i
	for i < len(h) && isTokenChar(h[i]) {
		i++
	}
	return h[start:i], i, i > start
}

// isTokenChar reports whether c may appear in an RFC 9110 token.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
