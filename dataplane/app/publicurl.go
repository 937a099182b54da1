package app

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// PublicURL returns the data plane's public base URL: raw (--public-url)
// when set, which must be an absolute http(s) URL with a host and nothing
// after its path; else derived from the listener, http(s)://<listen
// address> with an unspecified address (0.0.0.0, [::]) replaced by
// 127.0.0.1. The result has no trailing slash.
func PublicURL(raw string, listen net.Addr, tls bool) (string, error) {
	if raw == "" {
		host, port, err := net.SplitHostPort(listen.String())
		if err != nil {
			return "", fmt.Errorf("public URL from listen address %q: %w", listen, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		scheme := "http"
		if tls {
			scheme = "https"
		}
		return scheme + "://" + net.JoinHostPort(host, port), nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", fmt.Errorf("--public-url %q is not a URL: %w", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("--public-url %q: the scheme must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("--public-url %q: a host is required (e.g. https://mcp.example.com)", raw)
	case u.User != nil:
		return "", fmt.Errorf("--public-url %q: must not carry credentials", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("--public-url %q: must not have a query or fragment", raw)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}
