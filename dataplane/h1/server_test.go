package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startServer serves h on a loopback port and returns its address; the
// server is shut down (gracefully, then closed) at the end of the test.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
			s.Close()
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// rawConn dials addr and returns the connection with a reader on it; every
// read and write has a generous deadline, so a broken server fails the test
// instead of hanging it.
func rawConn(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc, bufio.NewReader(nc)
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
}

// TestServerKeepAlive: net/http's own client reuses one connection for many
// requests, and every answer is whole, with a Content-Length.
func TestServerKeepAlive(t *testing.T) {
	var conns atomic.Int32
	addr := startServer(t, &Server{Handler: http.HandlerFunc(echoHandler)})
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		conns.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for i := range 50 {
		body := strings.Repeat("x", i*100)
		res, err := hc.Post("http://"+addr+"/p", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := "POST /p " + body; string(b) != want {
			t.Fatalf("request %d: body %q, want %q", i, b, want)
		}
		if len(b) <= bufferBeforeChunking && res.ContentLength != int64(len(b)) {
			t.Fatalf("request %d: Content-Length %d for %d bytes", i, res.ContentLength, len(b))
		}
		if res.Header.Get("Date") == "" {
			t.Fatalf("request %d: no Date header", i)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 50 requests, want 1", n)
	}
}

// TestServerPipelined: two requests in one write get two answers in order.
func TestServerPipelined(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(echoHandler)})
	nc, br := rawConn(t, addr)
	_, err := io.WriteString(nc, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POST /a abc", "GET /b "} {
		if _, got := readResponse(t, br, "GET"); got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	}
}

// TestServerStream: a handler that flushes streams chunked, and the client
// reads the first part while the handler is still running.
func TestServerStream(t *testing.T) {
	release := make(chan struct{})
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		<-release
		io.WriteString(w, "data: two\n\n")
	})})
	res, err := http.Get("http://" + addr + "/s")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if len(res.TransferEncoding) == 0 || res.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %v, want chunked", res.TransferEncoding)
	}
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}

// TestServerLargeResponse: an answer larger than the buffer goes chunked and
// arrives whole.
func TestServerLargeResponse(t *testing.T) {
	big := strings.Repeat("0123456789", 10_000)
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(big); i += 1000 {
			io.WriteString(w, big[i:i+1000])
		}
	})})
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(b) != big {
		t.Fatalf("%d bytes, %v; want %d", len(b), err, len(big))
	}
}

// TestServerClientGone: a request that outlives WatchAfter has its context
// cancelled when the client closes the connection; one answered sooner
// starts no watch.
func TestServerClientGone(t *testing.T) {
	started := make(chan struct{})
	cause := make(chan error, 1)
	addr := startServer(t, &Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		close(started)
		select {
		case <-r.Context().Done():
			cause <- context.Cause(r.Context())
		case <-time.After(20 * time.Second):
			cause <- errors.New("the handler's context was not cancelled in 20 s")
		}
	})})
	nc, _ := rawConn(t, addr)
	io.WriteString(nc, "POST /long HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
	<-started
	nc.Close()
	if err := <-cause; !errors.Is(err, errClientGone) {
		t.Fatalf("cause %v, want %v", err, errClientGone)
	}
}

// TestServerWatchKeepsPipelinedRequest: a watch that reads the first byte of
// the next request (the client pipelined it) leaves it to the parser.
func TestServerWatchKeepsPipelinedRequest(t *testing.T) {
	var n atomic.Int32
	addr := startServer(t, &Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			time.Sleep(50 * time.Millisecond) // long enough for the watch to read
			if err := r.Context().Err(); err != nil {
				t.Errorf("first request cancelled: %v", err)
			}
		}
		echoHandler(w, r)
	})})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /slow ", "GET /next "} {
		if _, got := readResponse(t, br, "GET"); got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	}
}

// TestServerWatchEndsBeforeNextRequest: requests that each outlive the watch
// delay, one after another on a connection, all succeed: every watch is
// ended before the parser reads again.
func TestServerWatchEndsBeforeNextRequest(t *testing.T) {
	addr := startServer(t, &Server{WatchAfter: time.Microsecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Microsecond)
		echoHandler(w, r)
	})})
	nc, br := rawConn(t, addr)
	for i := range 200 {
		fmt.Fprintf(nc, "POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz", i)
		if _, got := readResponse(t, br, "POST"); got != fmt.Sprintf("POST /%d z", i) {
			t.Fatalf("request %d: body %q", i, got)
		}
	}
}

// TestServerExpectContinue: a client that waits for 100 Continue gets it
// when the handler reads the body, and not otherwise.
func TestServerExpectContinue(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		echoHandler(w, r)
	})})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "POST /ok HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100 Continue: %q", l)
	}
	io.WriteString(nc, "body")
	if _, got := readResponse(t, br, "POST"); got != "POST /ok body" {
		t.Errorf("body %q", got)
	}

	nc2, br2 := rawConn(t, addr)
	io.WriteString(nc2, "POST /refuse HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	res, _ := readResponse(t, br2, "POST")
	if res.StatusCode != http.StatusForbidden || !res.Close {
		t.Errorf("status %d close %v, want 403 and the connection closed (no body was sent)", res.StatusCode, res.Close)
	}
}

// TestServerBadRequests: what cannot be served is answered with the status
// that names why, and the connection is closed.
func TestServerBadRequests(t *testing.T) {
	addr := startServer(t, &Server{MaxHeaderBytes: 1024, Handler: http.HandlerFunc(echoHandler)})
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"garbage", "hello\r\n\r\n", http.StatusBadRequest},
		{"no host", "GET / HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http.StatusBadRequest},
		{"huge header", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("y", 8000) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"bad expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: tea\r\n\r\n", http.StatusExpectationFailed},
		{"bad length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n", http.StatusBadRequest},
		{"http2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", http.StatusHTTPVersionNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawConn(t, addr)
			io.WriteString(nc, tc.req)
			res, _ := readResponse(t, br, "GET")
			if res.StatusCode != tc.code {
				t.Errorf("status %d, want %d", res.StatusCode, tc.code)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after the answer: %v, want the connection closed", err)
			}
		})
	}
}

// TestServerHTTP10: an HTTP/1.0 client gets a Content-Length or, for a
// stream, the end of the connection; never chunks.
func TestServerHTTP10(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part one,")
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "part two")
	})})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "GET /small HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if body != "part one,part two" || res.ContentLength != int64(len(body)) || res.Close {
		t.Errorf("small: %q length %d close %v", body, res.ContentLength, res.Close)
	}
	io.WriteString(nc, "GET /stream HTTP/1.0\r\n\r\n")
	res, body = readResponse(t, br, "GET")
	if body != "part one,part two" || len(res.TransferEncoding) != 0 {
		t.Errorf("stream: %q transfer-encoding %v", body, res.TransferEncoding)
	}
}

// TestServerHead: HEAD gets the head only, with the length GET would have.
func TestServerHead(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(echoHandler)})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
	res, body := readResponse(t, br, "HEAD")
	if body != "" || res.ContentLength != int64(len("HEAD /h ")) {
		t.Errorf("HEAD: body %q length %d", body, res.ContentLength)
	}
	if _, body = readResponse(t, br, "GET"); body != "GET /g " {
		t.Errorf("GET after HEAD: %q", body)
	}
}

// TestServerUnreadBody: a small body the handler ignored is read past and
// the connection kept; a large one closes it.
func TestServerUnreadBody(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})})
	nc, br := rawConn(t, addr)
	fmt.Fprintf(nc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", strings.Repeat("a", 1000))
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for range 2 {
		if res, body := readResponse(t, br, "GET"); body != "ok" || res.Close {
			t.Fatalf("body %q close %v", body, res.Close)
		}
	}
	nc2, br2 := rawConn(t, addr)
	go func() {
		fmt.Fprintf(nc2, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20)
		nc2.Write(make([]byte, 1<<20))
	}()
	if res, body := readResponse(t, br2, "GET"); body != "ok" || !res.Close {
		t.Errorf("1 MB unread body: %q close %v, want the answer with Connection: close", body, res.Close)
	}
	if _, err := br2.ReadByte(); err == nil {
		t.Error("after a 1 MB unread body: the connection is still open")
	}
}

// TestServerContentLength: a declared length is kept; writing past it fails
// and writing less closes the connection.
func TestServerContentLength(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		switch r.URL.Path {
		case "/over":
			if _, err := io.WriteString(w, "123456"); !errors.Is(err, http.ErrContentLength) {
				t.Errorf("write past the length: %v", err)
			}
			io.WriteString(w, "12345")
		case "/short":
			io.WriteString(w, "123")
		}
	})})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "GET /over HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := readResponse(t, br, "GET"); body != "12345" {
		t.Errorf("over: %q", body)
	}
	io.WriteString(nc, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v, want io.ErrUnexpectedEOF (closed early)", err)
	}
}

// TestServerPanic: a handler's panic closes its connection, not the server.
func TestServerPanic(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "fine")
	})})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after a panic: %v, want the connection closed", err)
	}
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "fine" {
		t.Errorf("after a panic: %q", b)
	}
}

// TestServerShutdown: Shutdown closes idle connections at once, lets a
// request in progress finish, and then Serve returns.
func TestServerShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	idle, ibr := rawConn(t, addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, ibr, "GET")
	busy, bbr := rawConn(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want closed by Shutdown", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in progress", err)
	default:
	}
	close(release)
	if res, body := readResponse(t, bbr, "GET"); body != "done" || !res.Close {
		t.Errorf("request in progress: %q close %v, want its answer and Connection: close", body, res.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

// TestServerShutdownDeadline: a request that does not finish leaves Shutdown
// with its context's error, and Close ends it.
func TestServerShutdownDeadline(t *testing.T) {
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	nc, _ := rawConn(t, ln.Addr().String())
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline", err)
	}
	s.Close()
	<-served
	// The handler's context ends once its client connection is gone; the
	// goroutine check of TestMain fails if it does not.
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left 20 s after Close", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestServerLocalAddr: handlers find the local address in the context, as
// under net/http (the front's Origin check reads it).
func TestServerLocalAddr(t *testing.T) {
	got := make(chan any, 1)
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Context().Value(http.LocalAddrContextKey)
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	})})
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if a, ok := (<-got).(net.Addr); !ok || a.String() != addr {
		t.Errorf("LocalAddrContextKey = %v, want %s", a, addr)
	}
}

// BenchmarkServer: serial requests on one connection; allocations per
// request are the server's and the raw client's.
func BenchmarkServer(b *testing.B) {
	addr := startServer(b, &Server{Handler: http.HandlerFunc(echoHandler)})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	req := []byte("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := nc.Write(req); err != nil {
			b.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// TestServerConnectionHeader: a handler's own Connection header is kept,
// unless the connection is to close, when the answer says close.
func TestServerConnectionHeader(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		io.WriteString(w, "x")
	})})
	nc, br := rawConn(t, addr)
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if res, _ := readResponse(t, br, "GET"); res.Close || len(res.Header["Connection"]) != 1 {
		t.Errorf("kept connection: close %v, Connection %q", res.Close, res.Header["Connection"])
	}
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if res, _ := readResponse(t, br, "GET"); !res.Close {
		t.Errorf("closing connection: close %v (net/http's reader takes Connection: close off)", res.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: %v, want the connection closed", err)
	}
}

// FuzzServer: whatever a client sends, the server answers or closes the
// connection within the deadline, and never fails (a panic would end the
// test process). The handler reads the body and echoes its length.
func FuzzServer(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
		"HEAD / HTTP/1.0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n X: folded\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := &Server{MaxHeaderBytes: 4096, ReadHeaderTimeout: 2 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		fmt.Fprintf(w, "%d", n)
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush()
			io.WriteString(w, "more")
		}
	})}
	addr := startServer(f, s)
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(in); err != nil {
			return // the server may close before reading it all
		}
		nc.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, nc); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server neither answered nor closed in 10 s")
			}
		}
	})
}

// TestServerBodyTimeout: a body that does not arrive within BodyTimeout
// fails the handler's read with a timeout and closes the connection; a body
// that does arrive in time clears the deadline, so a slow handler after it
// and the next request on the connection are not cut.
func TestServerBodyTimeout(t *testing.T) {
	readErr := make(chan error, 1)
	s := &Server{BodyTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if r.URL.Path == "/slow-body" {
			readErr <- err
			if err != nil {
				http.Error(w, err.Error(), http.StatusRequestTimeout)
				return
			}
		}
		time.Sleep(500 * time.Millisecond) // longer than BodyTimeout, after the body
		fmt.Fprintf(w, "got %s", b)
	})}
	addr := startServer(t, s)

	nc, br := rawConn(t, addr)
	for i := 0; i < 2; i++ {
		fmt.Fprintf(nc, "POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
		if res, body := readResponse(t, br, "POST"); res.StatusCode != 200 || body != "got hi" {
			t.Fatalf("request %d in time: %d %q", i, res.StatusCode, body)
		}
	}

	nc, br = rawConn(t, addr)
	fmt.Fprintf(nc, "POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
	select {
	case err := <-readErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the handler's read of a stalled body = %v, want a timeout", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the handler's read of a stalled body did not end")
	}
	res, _ := readResponse(t, br, "POST")
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Errorf("answer to a stalled body: %d, close %v; want 408 and the connection closed", res.StatusCode, res.Close)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open after a stalled body")
	}
}

// TestServerReuseLeavesNothing: a connection reuses its last response's
// header map and held body for the next one; neither may show through. On
// one connection, long answers that set a header alternate with short ones
// that set none, and each answer is exactly its own.
func TestServerReuseLeavesNothing(t *testing.T) {
	addr := startServer(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "example.test" || r.Header.Get("Host") != "" {
			http.Error(w, fmt.Sprintf("Host %q, header %q", r.Host, r.Header.Get("Host")), http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("long") != "" {
			w.Header().Set("X-Once", "yes")
			_, _ = io.WriteString(w, strings.Repeat("L", 3000))
			return
		}
		_, _ = io.WriteString(w, "short")
	})})
	nc, br := rawConn(t, addr)
	for i := range 6 {
		target, want := "/s", "short"
		if i%2 == 0 {
			target, want = "/l?long=1", strings.Repeat("L", 3000)
		}
		// Eight fields besides Host, as a typical MCP client sends.
		if _, err := fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\nAccept: */*\r\n"+
			"Content-Type: application/json\r\nMcp-Method: tools/call\r\nMcp-Name: x\r\n"+
			"Mcp-Protocol-Version: 2026-07-28\r\nAccept-Encoding: gzip\r\nX-Extra: 1\r\n\r\n", target); err != nil {
			t.Fatal(err)
		}
		res, got := readResponse(t, br, "GET")
		if res.StatusCode != http.StatusOK || got != want {
			t.Fatalf("request %d: %d %.40q (%d bytes), want 200 %.40q (%d bytes)", i, res.StatusCode, got, len(got), want, len(want))
		}
		if once := res.Header.Get("X-Once"); (i%2 == 0) != (once == "yes") {
			t.Fatalf("request %d: X-Once %q", i, once)
		}
		if res.ContentLength != int64(len(want)) {
			t.Fatalf("request %d: Content-Length %d, want %d", i, res.ContentLength, len(want))
		}
	}
}
