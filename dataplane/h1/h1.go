// Package h1 is the data plane's HTTP/1.1: a client transport that serves a
// request on the calling goroutine, for its hops to backends and to other
// replicas, and the server its clients reach. On Linux both read and write
// their TCP sockets with raw system calls that leave the runtime's monitor
// thread asleep (rawio_linux.go).
package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Transport is an HTTP/1.1 RoundTripper for plain-HTTP peers that writes
// a request and reads its response on the calling goroutine.
//
// net/http's Transport hands every request to a per-connection write
// goroutine and every response from a per-connection read goroutine: four
// goroutine wake-ups per call, each of which, on an otherwise idle machine,
// wakes a sleeping OS thread that spins looking for work and goes back to
// sleep. For a proxy hop that does little else, those wake-ups were the
// largest share of the data plane's CPU per call (bench/README.md). Here the
// caller writes, then blocks in the read itself: the only wake-up is the
// network poller's.
//
// It keeps idle connections per host for reuse, never hands out one the
// server has closed (see conn), never sends a request twice, ends a blocked
// read or write when the request's context ends, and hands everything it
// does not do (https, proxies from the environment, protocol upgrades) to
// next, the standard Transport. After Close, connections in use are closed
// when their response ends instead of kept.
type Transport struct {
	next    *http.Transport
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle int           // idle connections kept per host
	idleFor time.Duration // an idle connection older than this is closed, not reused

	mu     sync.Mutex
	idle   map[string][]*conn
	closed bool
}

type conn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // when it went idle
}

// aLongTimeAgo is a deadline that makes every blocked read or write return.
var aLongTimeAgo = time.Unix(1, 0)

// New returns a Transport that hands what it does not serve itself to next,
// whose dialer, proxy setting, idle limit per host and idle timeout it uses.
func New(next *http.Transport) *Transport {
	return &Transport{
		next:    next,
		dial:    next.DialContext,
		maxIdle: next.MaxIdleConnsPerHost,
		idleFor: next.IdleConnTimeout,
		idle:    map[string][]*conn{},
	}
}

// handles says whether req is one Transport serves itself.
func (t *Transport) handles(req *http.Request) bool {
	if req.URL.Scheme != "http" || t.dial == nil || req.Header.Get("Upgrade") != "" {
		return false
	}
	if t.next.Proxy != nil {
		if p, err := t.next.Proxy(req); err != nil || p != nil {
			return false
		}
	}
	return true
}

func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.handles(req) {
		return t.next.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	pc, err := t.conn(req.Context(), addr)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.exchange(req, pc, addr)
	if err != nil {
		pc.nc.Close()
		if cerr := req.Context().Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	return resp, nil
}

// maxBodyDrain is how much of a known-length body Close reads to keep the
// connection, rather than closing it.
const maxBodyDrain = 256 << 10

// exchange writes req on pc and reads the response head. The body it returns
// gives pc back to the pool when read to the end, and closes it otherwise.
func (t *Transport) exchange(req *http.Request, pc *conn, addr string) (*http.Response, error) {
	stop := context.AfterFunc(req.Context(), func() { pc.nc.SetDeadline(aLongTimeAgo) })
	resp, err := func() (*http.Response, error) {
		if err := writeRequest(pc.bw, req); err != nil {
			return nil, fmt.Errorf("write request: %w", err)
		}
		if err := pc.bw.Flush(); err != nil {
			return nil, fmt.Errorf("write request: %w", err)
		}
		return readResponseHead(pc.br, req)
	}()
	if err != nil {
		stop()
		return nil, err
	}
	resp.Body = &body{
		body:      resp.Body,
		pc:        pc,
		t:         t,
		stop:      stop,
		addr:      addr,
		reuse:     !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols,
		drainable: resp.ContentLength >= 0 && resp.ContentLength <= maxBodyDrain,
	}
	return resp, nil
}

// conn returns an idle connection to addr, or dials one.
//
// An idle connection is only reused while the server has not closed it: as
// net/http's read goroutine notices that on an idle connection, conn asks the
// socket (without blocking) before handing one out, so a request is never
// written to a connection already gone. A request that fails after it was
// written is not sent again (it may have been acted on), as in net/http.
func (t *Transport) conn(ctx context.Context, addr string) (*conn, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		var pc *conn
		if l := t.idle[addr]; len(l) > 0 {
			pc = l[len(l)-1]
			l[len(l)-1] = nil
			t.idle[addr] = l[:len(l)-1]
		}
		t.mu.Unlock()
		if pc == nil {
			break
		}
		if (t.idleFor > 0 && now.Sub(pc.since) > t.idleFor) || pc.br.Buffered() > 0 || !alive(pc.nc) {
			pc.nc.Close()
			continue
		}
		return pc, nil
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	nc = wrapConn(nc)
	// 4 KiB each way, as net/http's Transport and this package's Server: a
	// head and a typical MCP answer fit, a larger body is read past the
	// buffer into the caller's, and every backend holds at least two
	// connections (POSTs and its GET stream) for as long as it is registered.
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}, nil
}

// put keeps pc for reuse, or closes it when the pool is full or closed.
func (t *Transport) put(addr string, pc *conn) {
	if err := pc.nc.SetDeadline(time.Time{}); err != nil {
		pc.nc.Close()
		return
	}
	pc.since = time.Now()
	t.mu.Lock()
	if !t.closed && len(t.idle[addr]) < t.maxIdle {
		t.idle[addr] = append(t.idle[addr], pc)
		pc = nil
	}
	t.mu.Unlock()
	if pc != nil {
		pc.nc.Close()
	}
}

// Close closes the idle connections and keeps none from now on.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*conn{}
	t.mu.Unlock()
	for _, l := range idle {
		for _, pc := range l {
			pc.nc.Close()
		}
	}
	t.next.CloseIdleConnections()
}

// body is a response body on an conn.
type body struct {
	body  io.ReadCloser
	pc    *conn
	t     *Transport
	stop  func() bool
	addr  string
	reuse bool
	// drainable: the body has a known length of at most maxBodyDrain, so Close
	// reads what is left and keeps the connection. Its reads hold rmu,
	// being short; a stream's do not, so that Close can end one that blocks.
	drainable bool

	rmu  sync.Mutex
	mu   sync.Mutex
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.drainable {
		b.rmu.Lock()
		defer b.rmu.Unlock()
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *body) Close() error {
	eof := false
	if b.drainable && b.reuse {
		b.rmu.Lock()
		_, err := io.Copy(io.Discard, io.LimitReader(b.body, maxBodyDrain+1))
		eof = err == nil
		b.rmu.Unlock()
	}
	b.finish(eof)
	return nil
}

// finish releases the connection once: back to the pool after a body read to
// its end, closed otherwise (unread bytes would be taken for the next
// response).
func (b *body) finish(eof bool) {
	b.mu.Lock()
	done := b.done
	b.done = true
	b.mu.Unlock()
	if done {
		return
	}
	fired := !b.stop()
	if eof && b.reuse && !fired {
		b.t.put(b.addr, b.pc)
		return
	}
	b.pc.nc.Close()
}
