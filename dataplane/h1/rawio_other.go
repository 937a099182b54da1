//go:build !linux

package h1

import "net"

// wrapConn: raw socket I/O is done on Linux only (rawio_linux.go).
func wrapConn(nc net.Conn) net.Conn { return nc }
