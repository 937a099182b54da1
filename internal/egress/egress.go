// Package egress classifies the addresses a backend URL may not reach unless
// the operator allows it: link-local ranges and cloud metadata services,
// where a registered URL would read the host's credentials (SSRF).
package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// Flag is the flag that allows such addresses, on the control plane and on
// the data plane alike.
const Flag = "--allow-private-egress"

var (
	awsIMDSv6 = netip.MustParseAddr("fd00:ec2::254")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
)

// metadataNames are names of metadata services that resolve to a refused
// address; refusing them at registration says so before any dial.
var metadataNames = []string{"metadata.google.internal", "metadata.goog", "instance-data.ec2.internal"}

// Refused reports why a is refused ("" when it is not): link-local
// (169.254.0.0/16, where 169.254.169.254 is the metadata service of AWS,
// GCP, Azure and others, and fe80::/10) or AWS's IPv6 metadata address
// fd00:ec2::254. IPv4 addresses written as IPv6 (mapped, NAT64) count as
// the IPv4 address.
func Refused(a netip.Addr) string {
	a = a.Unmap()
	if a.Is6() && nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case a == awsIMDSv6:
		return "a cloud metadata address"
	case a.Is4() && a.IsLinkLocalUnicast():
		return "a link-local address (169.254.0.0/16, cloud metadata services)"
	case a.IsLinkLocalUnicast():
		return "a link-local address (fe80::/10)"
	}
	return ""
}

// CheckHost refuses a URL host (no port; IPv6 without brackets) that is a
// refused address, also in the legacy IPv4 forms resolvers accept
// (2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518), or a
// metadata service name. Other names pass: the data plane checks what they
// resolve to when it dials (Control).
func CheckHost(host string) error {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), ".")
	for _, n := range metadataNames {
		if h == n {
			return fmt.Errorf("host %q is a cloud metadata service: refused unless the control plane runs with %s", host, Flag)
		}
	}
	a, err := netip.ParseAddr(h)
	if err != nil {
		var ok bool
		if a, ok = parseLegacyIPv4(h); !ok {
			return nil
		}
	}
	if why := Refused(a); why != "" {
		return fmt.Errorf("host %q is %s: refused unless the control plane runs with %s", host, why, Flag)
	}
	return nil
}

// parseLegacyIPv4 reads inet_aton's forms: one to four parts, each decimal,
// octal (leading 0) or hex (0x), the last filling the remaining bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 || s == "" {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		v, err := strconv.ParseUint(p, 0, 32)
		if err != nil || p == "" || strings.HasPrefix(p, "+") {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var ip uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		ip |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	ip |= last
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// Control is a net.Dialer Control function that refuses to connect to a
// refused address. It runs after name resolution, on the address actually
// dialed, so a name that resolves there is caught too.
func Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil // not an IP socket address: nothing to classify
	}
	if why := Refused(ap.Addr()); why != "" {
		return fmt.Errorf("connect to %s refused: it is %s, which backends may not reach unless the data plane runs with %s", address, why, Flag)
	}
	return nil
}
