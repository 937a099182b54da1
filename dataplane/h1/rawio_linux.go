package h1

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Reads and writes of TCP connections that do not wake the Go runtime's
// monitor thread (sysmon).
//
// Every blocking-capable system call the net package makes (read, write,
// recvfrom) enters the scheduler's syscall state, and entering it while
// sysmon sleeps deeply (it does whenever every P is idle: between two calls
// of a proxied request, on a data plane that waits for its backend) wakes
// sysmon, which then polls every 20 µs until it finds the process idle
// again. On a serial proxied call that happens twice per call and cost about
// a fifth of the data plane's CPU (the sysmon thread's own utime+stime, read
// from /proc per thread; bench/README.md). The sockets here are
// non-blocking, so their reads and writes return at once (EAGAIN when they
// would block, and then the network poller waits, as net does): they are
// made with RawSyscall, which skips the syscall state, on the same file
// descriptor through syscall.RawConn, so deadlines, Close and the poller
// behave exactly as for net.TCPConn. Every other method is the TCPConn's.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// One read and one write at a time, as net's own lock for each
	// direction; the state of the call in progress lives here, so that
	// the functions handed to rc are made once per connection, not per call.
	rmu            sync.Mutex
	rbuf           []byte
	rn             int
	rerrno         syscall.Errno
	readFn, peekFn func(fd uintptr) bool
	peekOpen       bool
	wmu            sync.Mutex
	wbuf           []byte
	wn             int
	werrno         syscall.Errno
	writeFn        func(fd uintptr) bool
}

// wrapConn returns nc with raw reads and writes when it is a TCP
// connection, and nc itself otherwise.
func wrapConn(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok || !rawIO {
		return nc
	}
	if c := newSockConn(tc); c != nil {
		return c
	}
	return nc
}

// newSockConn returns tc with raw reads and writes, or nil when its file
// descriptor is not to be had.
func newSockConn(tc *net.TCPConn) *sockConn {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &sockConn{TCPConn: tc, rc: rc}
	c.readFn, c.writeFn, c.peekFn = c.read, c.write, c.peek
	return c
}

// NetConn is the TCP connection underneath.
func (c *sockConn) NetConn() net.Conn { return c.TCPConn }

func (c *sockConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerrno = b, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil
	c.rmu.Unlock()
	if err := c.callError("read", err, errno); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// read is one read(2) of rbuf; false: it would block, wait for the poller.
func (c *sockConn) read(fd uintptr) bool {
	b := c.rbuf
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			c.rn = int(r)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.rerrno = e
			return true
		}
	}
}

func (c *sockConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werrno = b, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wbuf = nil
	c.wmu.Unlock()
	return n, c.callError("write", err, errno)
}

// write writes what is left of wbuf; false: the socket is full, wait for
// the poller (and be called again for the rest).
func (c *sockConn) write(fd uintptr) bool {
	b := c.wbuf
	for c.wn < len(b) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[c.wn])), uintptr(len(b)-c.wn))
		switch e {
		case 0:
			if r == 0 {
				c.werrno = syscall.EIO // a socket write that wrote nothing and says nothing
				return true
			}
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

// peek: see alive.
func (c *sockConn) peek(fd uintptr) bool {
	var buf [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.peekOpen = e == syscall.EAGAIN
	return true // never wait for readiness
}

// callError is the error of a raw op: the RawConn's own (closed, deadline),
// else the system call's errno, else nil.
func (c *sockConn) callError(op string, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		return c.opError(op, err)
	case errno != 0:
		return c.opError(op, os.NewSyscallError(op, errno))
	}
	return nil
}

// opError is the error net.TCPConn returns for the same failure: the
// RawConn's own error (closed, deadline) or the call's, under op.
func (c *sockConn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// alive says whether an idle connection is still open: a read that does not
// wait finds nothing to read (EAGAIN). End of stream, an error or bytes the
// server should not have sent all mean it must not be reused. (h1_unix.go
// is the same for the other Unixes, with the net package's recvfrom.)
func alive(nc net.Conn) bool {
	c, ok := nc.(*sockConn)
	if !ok {
		tc, isTCP := nc.(*net.TCPConn)
		if !isTCP {
			return true // not a TCP connection: a closed one fails the request
		}
		if c = newSockConn(tc); c == nil {
			return false
		}
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.peekOpen = false
	return c.rc.Read(c.peekFn) == nil && c.peekOpen
}
