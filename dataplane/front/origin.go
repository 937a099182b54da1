package front

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// LoopbackOnly is the Host and Origin check of a data plane that listens on
// loopback (the default): a web page on another site cannot reach it through
// the browser of a local user (DNS rebinding, cross-site requests). The Host
// must name a loopback address or localhost; an Origin, when sent, must too.
func LoopbackOnly(r *http.Request) error {
	if !loopbackHost(r.Host) {
		return fmt.Errorf("host %q is not a loopback name: this data plane listens on loopback and serves local clients only", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !loopbackHost(u.Host) {
			return fmt.Errorf("origin %q is not a local origin: this data plane listens on loopback and serves local clients only", o)
		}
	}
	return nil
}

// SameOrigin is the check of a data plane listening on other addresses: a
// browser's Origin, when sent, must match the Host it talks to.
func SameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("origin %q does not match host %q: cross-origin requests are refused", o, r.Host)
	}
	return nil
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultCheck is the check used when Options.CheckOrigin is nil: LoopbackOnly
// for a request that arrived on a loopback address, SameOrigin otherwise.
func DefaultCheck(r *http.Request) error {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
			return LoopbackOnly(r)
		}
	}
	return SameOrigin(r)
}
