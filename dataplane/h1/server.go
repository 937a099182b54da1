package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves an http.Handler over HTTP/1.x, each request on its
// connection's goroutine, with net/http's parser (http.ReadRequest) and
// net/http's response semantics for what the data plane's handlers use.
//
// net/http's server starts a goroutine for every request (it reads the
// connection in the background to notice a client that goes away) and
// wakes it again when the handler returns: on a 2-core VM those wake-ups of
// idle OS threads were about 40 us of CPU per call, a fifth of the data
// plane's (bench/README.md). Server starts that watch only for a request
// still running after WatchAfter; a call answered sooner costs no goroutine
// at all, and a longer one (a slow tool call, an event stream) still has its
// context cancelled when the client disconnects.
//
// It supports keep-alive and pipelining, chunked and known-length request
// bodies, Expect: 100-continue, HTTP/1.0 clients, a header size limit (431),
// header and idle timeouts, TLS connections (handed in by the listener),
// http.Flusher and http.ResponseController's Flush and SetWriteDeadline, and
// a graceful Shutdown. It does not do HTTP/2, Hijack or response trailers.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the reading of a request's head (default 10 s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request for this
	// long (default 2 min).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's head (default http.DefaultMaxHeaderBytes).
	MaxHeaderBytes int
	// BodyTimeout bounds the reading of a request's body, from the end of
	// its head to its last byte (default 30 s; negative: no bound). A client
	// that sends it slower has the handler's read fail with a net.Error whose
	// Timeout is true, and its connection closed.
	BodyTimeout time.Duration
	// WatchAfter is how long a request runs before the server watches its
	// connection for the client going away (default 10 ms).
	WatchAfter time.Duration
	// Logger takes handler panics and connection errors worth a look
	// (default: discarded).
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	closing   atomic.Bool
	done      chan struct{} // closed by Shutdown and Close
	doneOnce  sync.Once
	dateNow   atomic.Pointer[dateLine] // the Date header of this second
	wake      chan struct{}            // wakes the watchdog
	asleep    atomic.Bool              // the watchdog waits for wake
	watching  bool                     // the watchdog runs
}

// Defaults of Server's settings.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultBodyTimeout       = 30 * time.Second
	DefaultWatchAfter        = 10 * time.Millisecond
)

// maxPostHandlerRead is how much of a request body the handler left unread
// the server reads to keep the connection (as net/http), rather than close it.
const maxPostHandlerRead = 256 << 10

// bufferBeforeChunking is how much of a response is held to send it with a
// Content-Length: a handler that writes more without declaring its length,
// or flushes, streams it chunked.
const bufferBeforeChunking = 4 << 10

// maxReusedHeader bounds the header map a connection keeps for its next
// response (a map keeps its size when cleared).
const maxReusedHeader = 16

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return DefaultReadHeaderTimeout
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) bodyTimeout() time.Duration {
	if s.BodyTimeout != 0 {
		return s.BodyTimeout
	}
	return DefaultBodyTimeout
}

func (s *Server) maxHeaderBytes() int64 {
	if s.MaxHeaderBytes > 0 {
		return int64(s.MaxHeaderBytes)
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) watchAfter() time.Duration {
	if s.WatchAfter > 0 {
		return s.WatchAfter
	}
	return DefaultWatchAfter
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

type dateLine struct {
	sec int64
	b   []byte
}

// date is the value of the Date header now, formatted once a second.
func (s *Server) date() []byte {
	now := time.Now()
	if d := s.dateNow.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &dateLine{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	s.dateNow.Store(d)
	return d.b
}

func (s *Server) doneChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
	}
	return s.done
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close, when it returns http.ErrServerClosed; ln is
// closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
	done := s.doneChan()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	if !s.watching {
		s.watching = true
		s.wake = make(chan struct{}, 1)
		s.asleep.Store(true)
		go s.watchdog()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-done:
				return http.ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-done:
					return http.ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		nc = wrapConn(nc)
		c := &serverConn{s: s, nc: nc, cr: newConnReader(nc)}
		if !s.track(c) {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// WrapListener returns ln whose TCP connections read and write their
// sockets as Server does its own (rawio_linux.go), for a listener that
// wraps them before Server sees them (tls.NewListener).
func WrapListener(ln net.Listener) net.Listener { return wrappedListener{ln} }

type wrappedListener struct{ net.Listener }

func (l wrappedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrapConn(nc), nil
}

// watchdog sweeps the connections every WatchAfter while requests run, and
// starts a watch for each request it finds running twice in a row (so after
// one to two WatchAfter). It sleeps while none runs: the first request after
// that wakes it, at most once a sweep.
func (s *Server) watchdog() {
	tick := time.NewTicker(s.watchAfter())
	defer tick.Stop()
	for {
		<-s.wake
		for busy := true; busy; {
			<-tick.C
			busy = false
			s.mu.Lock()
			for c := range s.conns {
				if c.cr.sweep() {
					busy = true
				}
			}
			last := s.closing.Load() && len(s.conns) == 0
			s.mu.Unlock()
			if last {
				// Stopped, and the last connection is gone.
				return
			}
			if !busy {
				s.asleep.Store(true)
				// A request armed between the sweep and now found the
				// watchdog awake: look once more.
				s.mu.Lock()
				for c := range s.conns {
					if c.cr.running() {
						busy = true
					}
				}
				if s.closing.Load() {
					busy = true // until the last connection is gone
				}
				s.mu.Unlock()
				if busy {
					s.asleep.Store(false)
				}
			}
		}
	}
}

// wakeWatchdog wakes the watchdog if it sleeps (a request just started).
func (s *Server) wakeWatchdog() {
	if s.asleep.Load() && s.asleep.CompareAndSwap(true, false) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) track(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*serverConn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *serverConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// stop closes the listeners and marks the server closing, once.
func (s *Server) stop() {
	done := s.doneChan()
	s.mu.Lock()
	s.closing.Store(true)
	s.doneOnce.Do(func() { close(done) })
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	// The watchdog ends once the last connection is gone.
	s.asleep.Store(true)
	s.wakeWatchdog()
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their request and close, until ctx ends (then it returns
// ctx's error and leaves them to Close).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// closeIdle closes the connections waiting for a request and says whether
// none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.nc.Close()
		c.cr.abort()
	}
	return nil
}

// A connection's state, for Shutdown.
const (
	stateIdle int32 = iota // waiting for a request (closed by Shutdown)
	stateActive
	stateClosed
)

type serverConn struct {
	s       *Server
	nc      net.Conn
	cr      *connReader
	br      *bufio.Reader
	bw      *bufio.Writer
	tls     *tls.ConnectionState
	state   atomic.Int32
	base    context.Context
	remote  string   // the client's address
	scratch [20]byte // for numbers in heads
	// held and header are the body buffer and the header map of the
	// connection's last response, for its next one: a ResponseWriter, its
	// header map included, is not used after ServeHTTP returns.
	held   []byte
	header http.Header
}

func (c *serverConn) serve() {
	defer c.s.untrack(c)
	defer c.nc.Close()
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.s.logger().Error("panic serving a request", "remote", c.nc.RemoteAddr().String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(c.s.readHeaderTimeout()))
		if err := tc.HandshakeContext(context.Background()); err != nil {
			c.s.logger().Debug("TLS handshake", "remote", c.nc.RemoteAddr().String(), "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.br = bufio.NewReaderSize(c.cr, 4<<10)
	c.bw = bufio.NewWriterSize(c.nc, 4<<10)
	c.base = context.WithValue(context.Background(), http.LocalAddrContextKey, c.nc.LocalAddr())
	c.remote = c.nc.RemoteAddr().String()
	for {
		if !c.waitRequest() {
			return
		}
		if !c.serveOne() {
			return
		}
		if c.s.closing.Load() || !c.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
	}
}

// waitRequest waits (up to the idle timeout) for the first byte of the next
// request and marks the connection active; false: close it.
func (c *serverConn) waitRequest() bool {
	if c.br.Buffered() == 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.idleTimeout()))
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	return c.state.CompareAndSwap(stateIdle, stateActive)
}

// serveOne reads one request, runs the handler and finishes the response;
// false: the connection must close.
func (c *serverConn) serveOne() (keep bool) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout()))
	// As net/http: the head limit plus room for the request line, counting
	// what the reader holds already.
	c.cr.setLimit(c.s.maxHeaderBytes() + 4096 - int64(c.br.Buffered()))
	req := c.fastRequest()
	if req == nil {
		var err error
		if req, err = http.ReadRequest(c.br); err != nil || c.cr.hitLimit() {
			c.refuse(err)
			return false
		}
	}
	c.cr.setLimit(math.MaxInt64)
	_ = c.nc.SetReadDeadline(time.Time{})
	if code, msg := check(req); code != 0 {
		c.reply(code, msg)
		return false
	}
	ctx, cancel := context.WithCancelCause(c.base)
	defer cancel(errors.New("the request ended"))
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	h := c.header
	if h == nil {
		h = http.Header{}
	} else {
		c.header = nil // until this response is finished
		clear(h)
	}
	w := &response{c: c, req: req, header: h, contentLength: -1, buf: c.held[:0]}
	c.held = nil
	b := &requestBody{rc: req.Body, w: w}
	w.body = b
	if req.ContentLength == 0 && req.TransferEncoding == nil {
		b.eof = true
	} else {
		if hasToken(req.Header.Get("Expect"), "100-continue") && req.ProtoAtLeast(1, 1) {
			b.expect = true
		}
		if d := c.s.bodyTimeout(); d > 0 {
			// Cleared when the body is read to its end (requestBody.Read);
			// else it bounds the drain after the handler too.
			_ = c.nc.SetReadDeadline(time.Now().Add(d))
			b.deadline = true
		}
	}
	req.Body = b
	c.cr.arm(b, cancel)
	c.s.wakeWatchdog()
	c.s.Handler.ServeHTTP(w, req)
	c.cr.endWatch()
	w.finish()
	if len(w.header) <= maxReusedHeader {
		c.header = w.header
	}
	if w.failed {
		return false
	}
	if w.closeAfter && !b.atEOF() {
		c.closeWriteAndWait()
		return false
	}
	return !w.closeAfter && !req.Close && c.cr.readErr() == nil
}

// fastRequest reads a request whose whole head is buffered already and
// within the head limit on the fast path (fasthead.go); nil: net/http's to
// read.
func (c *serverConn) fastRequest() *http.Request {
	n := c.br.Buffered()
	if n == 0 {
		return nil
	}
	buf, _ := c.br.Peek(n)
	end := headEnd(buf)
	if end < 0 || int64(end) > c.s.maxHeaderBytes()+4096 {
		return nil
	}
	req := fastRequest(buf[:end], c.br)
	if req != nil {
		_, _ = c.br.Discard(end)
	}
	return req
}

// rstAvoidanceDelay is how long a connection closed with a request body
// unread waits after its last answer, so that the client reads that answer
// before the reset that closing a socket with unread data sends (net/http
// does the same).
const rstAvoidanceDelay = 500 * time.Millisecond

func (c *serverConn) closeWriteAndWait() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}

var errClientGone = errors.New("the client closed the connection")

// check is net/http's validation of a request it parsed.
func check(req *http.Request) (int, string) {
	switch {
	case req.ProtoMajor != 1:
		return http.StatusHTTPVersionNotSupported, "unsupported protocol version"
	case req.ProtoAtLeast(1, 1) && len(req.Header["Host"]) == 0 && req.Host == "":
		return http.StatusBadRequest, "missing required Host header"
	case len(req.Header["Host"]) > 1:
		return http.StatusBadRequest, "too many Host headers"
	}
	if e := req.Header.Get("Expect"); e != "" && !hasToken(e, "100-continue") {
		return http.StatusExpectationFailed, "unsupported Expect header"
	}
	return 0, ""
}

// refuse answers a request that could not be read, when it is worth an
// answer at all (a closed or timed-out connection is not).
func (c *serverConn) refuse(err error) {
	var ne net.Error
	switch {
	case c.cr.hitLimit():
		c.reply(http.StatusRequestHeaderFieldsTooLarge, "request header too large")
		c.closeWriteAndWait() // the rest of the head is unread
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.As(err, &ne) && ne.Timeout():
		return
	default:
		c.reply(http.StatusBadRequest, err.Error())
	}
}

// reply sends a plain-text error and marks the connection to be closed.
func (c *serverConn) reply(code int, msg string) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.readHeaderTimeout()))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
	_ = c.bw.Flush()
}

// hasToken says whether a comma-separated header value holds token (case
// insensitive).
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// connReader reads the connection for the request parser, bounded while it
// reads a head, and watches it for the client going away while a handler
// runs (net/http's background read, started late).
type connReader struct {
	nc     net.Conn
	remain int64 // bytes the parser may still read (the head limit)
	limit  bool  // remain ran out

	mu           sync.Mutex
	cond         *sync.Cond
	gen          uint64 // which request a watch is for
	armed        bool   // a request is running
	seen         bool   // the watchdog saw it running
	fired        bool   // its watch started (or waits for the end of the body)
	body         *requestBody
	inRead       bool // a watch is blocked in a read
	aborted      bool // endWatch ended that read
	hasByte      bool // the watch read the first byte of the next request
	byteBuf      [1]byte
	err          error // what the watch's read failed with
	onDisconnect context.CancelCauseFunc
}

func newConnReader(nc net.Conn) *connReader {
	cr := &connReader{nc: nc, remain: math.MaxInt64}
	cr.cond = sync.NewCond(&cr.mu)
	return cr
}

// abort cancels the running request, if any (Close).
func (cr *connReader) abort() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if cr.armed && cr.onDisconnect != nil {
		cr.onDisconnect(http.ErrServerClosed)
	}
}

func (cr *connReader) setLimit(n int64) { cr.remain, cr.limit = n, false }
func (cr *connReader) hitLimit() bool   { return cr.limit }

func (cr *connReader) readErr() error {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.err
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.remain <= 0 {
		cr.limit = true
		return 0, io.EOF
	}
	if int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	cr.mu.Lock()
	if cr.err != nil {
		err := cr.err
		cr.mu.Unlock()
		return 0, err
	}
	if cr.hasByte && len(p) > 0 {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.mu.Unlock()
		cr.remain--
		return 1, nil
	}
	cr.mu.Unlock()
	n, err := cr.nc.Read(p)
	cr.remain -= int64(n)
	return n, err
}

// arm marks a request whose body is b as running: the server's watchdog
// starts a watch of the connection for it (fire) once it has been running
// for a sweep or two. onDisconnect cancels the request.
func (cr *connReader) arm(b *requestBody, onDisconnect context.CancelCauseFunc) {
	cr.mu.Lock()
	cr.armed, cr.fired, cr.seen = true, false, false
	cr.body, cr.onDisconnect = b, onDisconnect
	cr.mu.Unlock()
}

// sweep is the watchdog's look at the connection: a request it finds running
// at two sweeps in a row gets its watch. It says whether a request is running.
func (cr *connReader) running() bool {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return cr.armed
}

func (cr *connReader) sweep() bool {
	cr.mu.Lock()
	if !cr.armed {
		cr.mu.Unlock()
		return false
	}
	if !cr.seen || cr.fired {
		cr.seen = true
		cr.mu.Unlock()
		return true
	}
	cr.fired = true
	b, gen := cr.body, cr.gen
	cr.mu.Unlock()
	// Not before the body is read to its end: reading the connection would
	// take the body's bytes.
	b.onEOF(func() { go cr.backgroundRead(gen) })
	return true
}

func (cr *connReader) backgroundRead(gen uint64) {
	cr.mu.Lock()
	if cr.gen != gen || cr.hasByte || cr.err != nil || cr.inRead {
		cr.mu.Unlock()
		return
	}
	cr.inRead = true
	cr.mu.Unlock()
	// The read deadline is clear (serveOne cleared it after the head); it
	// is endWatch's to set from now on.
	n, err := cr.nc.Read(cr.byteBuf[:])
	cr.mu.Lock()
	if n == 1 {
		cr.hasByte = true // a pipelined request: the client is there
	}
	var ne net.Error
	if err != nil && !(cr.aborted && errors.As(err, &ne) && ne.Timeout()) {
		cr.err = err
		if cr.onDisconnect != nil {
			cr.onDisconnect(errClientGone)
		}
	}
	cr.aborted = false
	cr.inRead = false
	cr.mu.Unlock()
	cr.cond.Broadcast()
}

// endWatch ends the watch of the request that just ended, waiting for a
// read in progress to end, so that the connection is the parser's again.
func (cr *connReader) endWatch() {
	cr.mu.Lock()
	cr.gen++
	cr.armed, cr.body, cr.onDisconnect = false, nil, nil
	if cr.inRead {
		cr.aborted = true
		_ = cr.nc.SetReadDeadline(aLongTimeAgo)
		for cr.inRead {
			cr.cond.Wait()
		}
		_ = cr.nc.SetReadDeadline(time.Time{})
	}
	cr.mu.Unlock()
}

// requestBody is a request's body as the handler sees it: it sends 100
// Continue before the first read when the client asked for it, and notes
// when it was read to its end.
type requestBody struct {
	rc     io.ReadCloser
	w      *response
	expect bool

	mu       sync.Mutex
	eof      bool
	closed   bool
	deadline bool   // the body's read deadline is set on the connection
	then     func() // run once at the end of the body (a watch waiting for it)
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.eof {
		b.mu.Unlock()
		return 0, io.EOF
	}
	if b.closed {
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expect {
		b.expect = false
		if !b.w.wroteHeader {
			c := b.w.c
			_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := c.bw.Flush(); err != nil {
				b.w.failed = true
			}
		}
	}
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.mu.Lock()
		b.eof = true
		then := b.then
		b.then = nil
		if b.deadline {
			b.deadline = false
			_ = b.w.c.nc.SetReadDeadline(time.Time{})
		}
		b.mu.Unlock()
		if then != nil {
			then()
		}
	}
	return n, err
}

func (b *requestBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

func (b *requestBody) atEOF() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

// onEOF runs f when the body reaches its end, or now if it has.
func (b *requestBody) onEOF(f func()) {
	b.mu.Lock()
	if !b.eof {
		b.then = f
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	f()
}

// drain reads what the handler left of the body, up to maxPostHandlerRead,
// before the answer goes out (as RFC 9112 asks), and says whether the whole
// body was read, so that the connection can serve another request. A client
// still waiting for 100 Continue has sent no body: nothing is read and the
// connection is to close.
func (b *requestBody) drain() bool {
	b.mu.Lock()
	if b.eof {
		b.mu.Unlock()
		return true
	}
	expect := b.expect
	b.mu.Unlock()
	if expect {
		return false
	}
	n, err := io.Copy(io.Discard, io.LimitReader(b, maxPostHandlerRead+1))
	return err == nil && n <= maxPostHandlerRead && b.atEOF()
}

// response is the http.ResponseWriter of one request. The head is written
// with the first bytes that leave: a handler that returns having written at
// most bufferBeforeChunking bytes gets a Content-Length, one that writes
// more or flushes streams chunked (close-delimited to an HTTP/1.0 client).
type response struct {
	c             *serverConn
	req           *http.Request
	header        http.Header
	status        int
	wroteHeader   bool // the handler set the status
	sentHeader    bool // the head left
	contentLength int64
	written       int64
	chunked       bool
	closeAfter    bool
	failed        bool // a write failed: close the connection
	buf           []byte
	body          *requestBody
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

// informational sends a 1xx head at once (103 Early Hints and the like).
func (w *response) informational(code int) {
	bw := w.c.bw
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = w.header.Write(bw)
	_, _ = bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		w.failed = true
	}
}

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified)
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.failed {
		return 0, errWriteFailed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if !w.sentHeader {
		if len(w.buf)+len(p) <= bufferBeforeChunking {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.sendHeader(false)
	}
	return w.writeBody(p)
}

var errWriteFailed = errors.New("h1: the connection failed")

func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.failed = true
		return n, err
	}
	return len(p), nil
}

// sendHeader writes the head into the connection's buffer, then the body
// held so far; final: the handler has returned, so that held body is all.
func (w *response) sendHeader(final bool) {
	if w.sentHeader {
		return
	}
	w.sentHeader = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	h := w.header
	req := w.req
	body := bodyAllowed(w.status)
	// What the server adds goes straight to the connection, not through h.
	length := int64(-1)
	switch {
	case !body:
		h.Del("Content-Length")
		h.Del("Transfer-Encoding")
	case w.contentLength >= 0:
		h.Del("Transfer-Encoding")
	case final:
		length = int64(len(w.buf))
		if req.Method == http.MethodHead {
			length = w.written
		}
		h.Del("Transfer-Encoding")
	case req.ProtoAtLeast(1, 1):
		w.chunked = true
		h.Del("Transfer-Encoding")
		h.Del("Content-Length")
	default:
		w.closeAfter = true // HTTP/1.0: the end of the connection ends the body
		h.Del("Transfer-Encoding")
	}
	if body && len(w.buf) > 0 {
		if _, ok := h["Content-Type"]; !ok && !w.chunked {
			h.Set("Content-Type", http.DetectContentType(w.buf))
		}
	}
	connection, hasConnection := h["Connection"]
	saysClose := hasConnection && hasToken(strings.Join(connection, ","), "close")
	if saysClose || w.c.s.closing.Load() || !w.body.drain() || req.Close {
		w.closeAfter = true
	}
	if hasConnection && w.closeAfter && !saysClose {
		h.Del("Connection") // ours says close
		hasConnection = false
	}
	bw := w.c.bw
	if w.status == http.StatusOK {
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\n")
	} else {
		fmt.Fprintf(bw, "HTTP/1.1 %03d %s\r\n", w.status, http.StatusText(w.status))
	}
	if err := h.Write(bw); err != nil {
		w.failed = true
	}
	if _, ok := h["Date"]; !ok {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(w.c.s.date())
		_, _ = bw.WriteString("\r\n")
	}
	switch {
	case length >= 0:
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(strconv.AppendInt(w.c.scratch[:0], length, 10))
		_, _ = bw.WriteString("\r\n")
	case w.chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case hasConnection:
	case w.closeAfter && req.ProtoAtLeast(1, 1):
		_, _ = bw.WriteString("Connection: close\r\n")
	case !w.closeAfter && !req.ProtoAtLeast(1, 1):
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if len(w.buf) > 0 {
		buf := w.buf
		w.buf = nil
		if final {
			if _, err := bw.Write(buf); err != nil {
				w.failed = true
			}
		} else {
			_, _ = w.writeBody(buf)
		}
		if cap(buf) <= bufferBeforeChunking {
			w.c.held = buf[:0] // copied into bw: the next response's
		}
	}
}

// Flush sends what the handler wrote so far.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting a failed write (http.ResponseController).
func (w *response) FlushError() error {
	if w.failed {
		return errWriteFailed
	}
	w.sendHeader(false)
	if err := w.c.bw.Flush(); err != nil {
		w.failed = true
		return err
	}
	return nil
}

// SetWriteDeadline bounds the writes of the response (http.ResponseController).
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// finish completes the response after the handler returned.
func (w *response) finish() {
	if w.failed {
		return
	}
	w.sendHeader(true)
	bw := w.c.bw
	switch {
	case w.chunked:
		_, _ = bw.WriteString("0\r\n\r\n")
	case w.contentLength >= 0 && w.written < w.contentLength && bodyAllowed(w.status) && w.req.Method != http.MethodHead:
		// Fewer bytes than declared: the client can only tell by the close.
		w.closeAfter = true
	}
	if err := bw.Flush(); err != nil {
		w.failed = true
	}
}
