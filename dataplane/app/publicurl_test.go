package app

import (
	"net"
	"strings"
	"testing"
)

func TestPublicURL(t *testing.T) {
	tcp := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ok := []struct {
		raw, listen string
		tls         bool
		want        string
	}{
		{"", "127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"", "0.0.0.0:8080", false, "http://127.0.0.1:8080"},
		{"", "[::]:8080", false, "http://127.0.0.1:8080"},
		{"", "[::1]:9", true, "https://[::1]:9"},
		{"https://mcp.example.com/", "127.0.0.1:1", false, "https://mcp.example.com"},
		{"https://mcp.example.com/gw", "127.0.0.1:1", false, "https://mcp.example.com/gw"},
		{"http://10.0.0.1:8080", "127.0.0.1:1", false, "http://10.0.0.1:8080"},
	}
	for _, c := range ok {
		got, err := PublicURL(c.raw, tcp(c.listen), c.tls)
		if err != nil || got != c.want {
			t.Errorf("PublicURL(%q, %s) = %q, %v; want %q", c.raw, c.listen, got, err, c.want)
		}
	}
	bad := map[string]string{
		"mcp.example.com":             "scheme",
		"ftp://mcp.example.com":       "scheme",
		"https://":                    "host",
		"https://u:p@mcp.example.com": "credentials",
		"https://mcp.example.com/?a":  "query",
		"https://mcp.example.com/#x":  "fragment",
		"http://[::1":                 "not a URL",
	}
	for raw, want := range bad {
		_, err := PublicURL(raw, tcp("127.0.0.1:1"), false)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--public-url") {
			t.Errorf("PublicURL(%q): err = %v, want one naming --public-url and %q", raw, err, want)
		}
	}
}
