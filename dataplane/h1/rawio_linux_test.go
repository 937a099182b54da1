package h1

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// wrapped returns a sockConn around a fresh connection's client end, and
// the plain server end.
func wrapped(t *testing.T) (*sockConn, *net.TCPConn) {
	t.Helper()
	c, s := tcpPair(t)
	sc := newSockConn(c)
	if sc == nil {
		t.Fatal("newSockConn: no file descriptor")
	}
	if got := wrapConn(c); rawIO && got == net.Conn(c) {
		t.Fatal("wrapConn left a TCP connection unwrapped")
	}
	return sc, s
}

func TestSockConnWrapsOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := wrapConn(a); got != a {
		t.Errorf("wrapConn(pipe) = %T, want the pipe itself", got)
	}
	sc, _ := wrapped(t)
	if sc.NetConn() != sc.TCPConn {
		t.Error("NetConn is not the TCP connection underneath")
	}
	if _, ok := net.Conn(sc).(syscall.Conn); !ok {
		t.Error("a wrapped connection lost SyscallConn")
	}
}

// Megabytes each way, the writer far ahead of a reader that reads in small
// pieces: writes fill the socket (EAGAIN, then the poller) and reads see
// partial buffers; every byte arrives, in order.
func TestSockConnCarriesEveryByte(t *testing.T) {
	sc, peer := wrapped(t)
	const size = 24 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + i>>11)
	}
	want := sha256.Sum256(payload)

	// wrapped -> plain
	got := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 1500)
		var n int64
		for n < size {
			k, err := peer.Read(buf)
			h.Write(buf[:k])
			n += int64(k)
			if err != nil {
				break
			}
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	if n, err := sc.Write(payload); n != size || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, size)
	}
	if sum := <-got; sum != want {
		t.Fatal("the peer read other bytes than were written")
	}

	// plain -> wrapped, read in odd sizes
	go func() { _, _ = peer.Write(payload) }()
	h := sha256.New()
	buf := make([]byte, 3001)
	for n := 0; n < size; {
		k, err := sc.Read(buf)
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", n, err)
		}
		h.Write(buf[:k])
		n += k
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("read other bytes than the peer wrote")
	}
}

// The errors are net.TCPConn's for the same failure: same type, same
// message shape, same errors.Is answers.
func TestSockConnErrorsAreTheNetPackages(t *testing.T) {
	check := func(t *testing.T, what string, got, want error) {
		t.Helper()
		if got == nil || want == nil {
			t.Fatalf("%s: got %v, net.TCPConn %v", what, got, want)
		}
		shape := func(err error) string {
			var oe *net.OpError
			if !errors.As(err, &oe) {
				return err.Error()
			}
			return strings.Join([]string{oe.Op, oe.Net, oe.Err.Error()}, " ")
		}
		if shape(got) != shape(want) {
			t.Errorf("%s: %q, net.TCPConn says %q", what, got, want)
		}
		for _, target := range []error{os.ErrDeadlineExceeded, net.ErrClosed, io.EOF, syscall.EPIPE, syscall.ECONNRESET} {
			if errors.Is(got, target) != errors.Is(want, target) {
				t.Errorf("%s: errors.Is(%v) = %v, net.TCPConn's %v", what, target, errors.Is(got, target), errors.Is(want, target))
			}
		}
		var ne net.Error
		if errors.As(got, &ne) != errors.As(want, &ne) {
			t.Errorf("%s: net.Error differs", what)
		}
	}
	both := func(t *testing.T, f func(c net.Conn, peer *net.TCPConn) error) (got, want error) {
		sc, p1 := wrapped(t)
		plain, p2 := tcpPair(t)
		return f(sc, p1), f(plain, p2)
	}

	t.Run("read deadline", func(t *testing.T) {
		got, want := both(t, func(c net.Conn, _ *net.TCPConn) error {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			_, err := c.Read(make([]byte, 8))
			return err
		})
		check(t, "read past its deadline", got, want)
		var ne net.Error
		if !errors.As(got, &ne) || !ne.Timeout() {
			t.Errorf("a deadline is not a timeout: %v", got)
		}
	})
	t.Run("end of stream", func(t *testing.T) {
		got, want := both(t, func(c net.Conn, peer *net.TCPConn) error {
			peer.Write([]byte("ab"))
			peer.Close()
			buf := make([]byte, 8)
			n, err := io.ReadFull(c, buf)
			if n != 2 {
				return errors.New("short")
			}
			_, err = c.Read(buf)
			return err
		})
		if got != io.EOF || want != io.EOF {
			t.Errorf("after the peer closed: %v, net.TCPConn %v; want io.EOF", got, want)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		got, want := both(t, func(c net.Conn, _ *net.TCPConn) error {
			errc := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 8))
				errc <- err
			}()
			time.Sleep(10 * time.Millisecond) // let it block; the result is the same either way
			c.Close()
			return <-errc
		})
		check(t, "read of a connection closed meanwhile", got, want)
	})
	t.Run("write deadline with the peer not reading", func(t *testing.T) {
		var gotN, wantN int
		got, want := both(t, func(c net.Conn, _ *net.TCPConn) error {
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := c.Write(make([]byte, 64<<20))
			if _, ok := c.(*sockConn); ok {
				gotN = n
			} else {
				wantN = n
			}
			return err
		})
		check(t, "write past its deadline", got, want)
		if gotN <= 0 || gotN >= 64<<20 || wantN <= 0 {
			t.Errorf("a write cut by its deadline reported %d bytes written (net.TCPConn %d)", gotN, wantN)
		}
	})
	t.Run("write to a reset connection", func(t *testing.T) {
		got, want := both(t, func(c net.Conn, peer *net.TCPConn) error {
			peer.SetLinger(0) // close with a reset
			peer.Close()
			var err error
			for range 100 {
				if _, err = c.Write([]byte("x")); err != nil {
					break
				}
				time.Sleep(time.Millisecond)
			}
			return err
		})
		check(t, "write after a reset", got, want)
	})
	t.Run("use after close", func(t *testing.T) {
		got, want := both(t, func(c net.Conn, _ *net.TCPConn) error {
			c.Close()
			_, err := c.Write([]byte("x"))
			return err
		})
		check(t, "write after Close", got, want)
	})
}

// alive tells an idle connection the server still holds from one it closed
// or that carries bytes nobody asked for.
func TestSockConnAlive(t *testing.T) {
	sc, peer := wrapped(t)
	if !alive(sc) {
		t.Fatal("an open idle connection reads as gone")
	}
	peer.Write([]byte("x"))
	waitFor(t, func() bool { return !alive(sc) }, "unsolicited bytes to make the connection unusable")
	sc2, peer2 := wrapped(t)
	peer2.Close()
	waitFor(t, func() bool { return !alive(sc2) }, "a closed connection to read as gone")
	sc3, _ := wrapped(t)
	sc3.Close()
	if alive(sc3) {
		t.Error("a connection closed here reads as alive")
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
