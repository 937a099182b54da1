package faultproxy_test

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/internal/faultproxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer is a real TCP echo server on loopback that records what it saw.
type echoServer struct {
	ln       net.Listener
	accepted atomic.Int64
	received atomic.Int64
	eofs     chan struct{} // one value per connection whose client side ended
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, eofs: make(chan struct{}, 16)}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.accepted.Add(1)
			e.mu.Lock()
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					e.received.Add(int64(n))
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						e.eofs <- struct{}{}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.mu.Lock()
		for _, c := range e.conns {
			c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within 5 s.
func roundTrip(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

func mustRoundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := roundTrip(c, msg); err != nil {
		t.Fatalf("round trip %q: %v", msg, err)
	}
}

// silentFor asserts that nothing arrives on c for d: the read times out,
// rather than returning data, EOF or a reset.
func silentFor(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(make([]byte, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during blackhole: %d bytes, err %v; want nothing until the deadline", n, err)
	}
}

// resetSoon asserts that c is reset (or closed) within 5 s.
func resetSoon(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 64))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: err %v; want the connection reset", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v; want connection reset or EOF", err)
	}
}

// dialReset asserts that a new connection to addr is reset, at the dial (the
// reset can come that fast) or on the first read.
func dialReset(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial %s: %v; want success or connection reset", addr, err)
		}
		return
	}
	defer c.Close()
	resetSoon(t, c)
}

func TestPassForwardsBothWaysAndHalfClose(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	if p.Mode() != faultproxy.Pass {
		t.Fatalf("new proxy mode = %v, want pass", p.Mode())
	}
	c := dial(t, p.Addr())
	mustRoundTrip(t, c, "hello")
	mustRoundTrip(t, c, "again")
	// A half-close reaches the target, whose close comes back as EOF.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.eofs:
	case <-time.After(5 * time.Second):
		t.Fatal("target did not see the client's half-close")
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 8)); !errors.Is(err, io.EOF) {
		t.Fatalf("after half-close read %d, %v; want EOF", n, err)
	}
	if got := p.Accepted(); got != 1 {
		t.Errorf("Accepted = %d, want 1", got)
	}
}

func TestDelayHoldsEveryChunk(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c := dial(t, p.Addr())
	mustRoundTrip(t, c, "warm")
	const d = 150 * time.Millisecond
	p.Delay(d)
	start := time.Now()
	mustRoundTrip(t, c, "slow")
	// Both directions are delayed, so a round trip takes at least 2d.
	if took := time.Since(start); took < 2*d {
		t.Fatalf("round trip through Delay(%v) took %v, want >= %v", d, took, 2*d)
	}
	p.Pass()
	mustRoundTrip(t, c, "fast") // the connection survives the switch
}

func TestBlackholeDropsSilentlyThenPassResetsBrokenLinks(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	busy := dial(t, p.Addr()) // will lose bytes
	idle := dial(t, p.Addr()) // sends nothing during the blackhole
	mustRoundTrip(t, busy, "before")
	mustRoundTrip(t, idle, "before")
	gotBefore := e.received.Load()

	p.Blackhole()
	if _, err := busy.Write([]byte("lost")); err != nil {
		t.Fatalf("write into blackhole: %v (the network must look alive)", err)
	}
	silentFor(t, busy, 300*time.Millisecond)
	// New connections are accepted but never reach the target.
	fresh := dial(t, p.Addr())
	if _, err := fresh.Write([]byte("also lost")); err != nil {
		t.Fatalf("write on a connection accepted in blackhole: %v", err)
	}
	silentFor(t, fresh, 300*time.Millisecond)
	if got := e.received.Load(); got != gotBefore {
		t.Fatalf("target received %d bytes during the blackhole", got-gotBefore)
	}
	if got := e.accepted.Load(); got != 2 {
		t.Fatalf("target accepted %d connections, want 2 (none during the blackhole)", got)
	}
	if p.Dropped() < int64(len("lost")+len("also lost")) {
		t.Fatalf("Dropped = %d, want at least %d", p.Dropped(), len("lost")+len("also lost"))
	}

	p.Pass()
	resetSoon(t, busy)
	resetSoon(t, fresh)
	mustRoundTrip(t, idle, "after") // lost nothing, so it carries on
	mustRoundTrip(t, dial(t, p.Addr()), "new")
}

func TestBlackholeHidesAClientsClose(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	mustRoundTrip(t, c, "hi")
	p.Blackhole()
	c.Close()
	select {
	case <-e.eofs:
		t.Fatal("the target learned of a close sent into a blackhole")
	case <-time.After(300 * time.Millisecond):
	}
	p.Pass() // the link lost its FIN: reset it
	select {
	case <-e.eofs:
	case <-time.After(5 * time.Second):
		t.Fatal("the target's connection was not reset when the blackhole lifted")
	}
}

func TestCutResetsOpenConnections(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	mustRoundTrip(t, a, "a")
	mustRoundTrip(t, b, "b")
	p.Cut()
	resetSoon(t, a)
	resetSoon(t, b)
	mustRoundTrip(t, dial(t, p.Addr()), "c") // new connections still pass
}

func TestRefuseResetsNewConnectionsOnly(t *testing.T) {
	e := startEcho(t)
	p := newProxy(t, e.ln.Addr().String())
	open := dial(t, p.Addr())
	mustRoundTrip(t, open, "x")
	p.Refuse()
	dialReset(t, p.Addr())
	mustRoundTrip(t, open, "still")
	p.Pass()
	mustRoundTrip(t, dial(t, p.Addr()), "back")
}

func TestUnreachableTargetResets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newProxy(t, addr)
	dialReset(t, p.Addr())
}

func TestCloseEndsEverything(t *testing.T) {
	e := startEcho(t)
	p, err := faultproxy.New(e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	mustRoundTrip(t, c, "x")
	p.Blackhole()
	held := dial(t, p.Addr())
	if _, err := held.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return with a blackholed connection open")
	}
	resetSoon(t, c)
	resetSoon(t, held)
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
}
