package tlsconfig

import (
	"net"
	"net/netip"
	"strings"
)

// IsLoopbackAddr reports whether a listener's address is on loopback only
// (127.0.0.0/8, ::1). 0.0.0.0 and :: are every interface, so not.
func IsLoopbackAddr(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// IsLoopbackTarget reports whether a gRPC dial target (host:port, with or
// without a dns:/// or passthrough:/// scheme, or a unix socket) stays on
// this machine: a loopback IP, "localhost", an empty host or a unix socket.
// Names other than localhost are not resolved: what they point at may
// change, so they count as remote.
func IsLoopbackTarget(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	for _, scheme := range []string{"dns:///", "passthrough:///", "dns:"} {
		if rest, ok := strings.CutPrefix(target, scheme); ok {
			target = rest
			break
		}
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
