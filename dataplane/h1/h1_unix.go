//go:build unix && !linux

package h1

import (
	"errors"
	"net"
	"syscall"
)

// alive says whether an idle connection is still open: a read that does not
// wait finds nothing to read (EAGAIN). End of stream, an error or bytes the
// server should not have sent all mean it must not be reused.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	open := false
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && open
}
