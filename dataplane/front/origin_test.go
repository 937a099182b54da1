package front_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
)

var (
	loopAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	lanAddr  = &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080}
)

func browserReq(local net.Addr, host, origin string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://x/mcp", nil)
	if local != nil {
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
	}
	r.Host = host
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}

func TestBrowserPolicy(t *testing.T) {
	def, err := front.NewBrowserPolicy(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	listed, err := front.NewBrowserPolicy([]string{"https://App.example.com:443/", "null", "http://tool.example:3000"}, []string{"mcp.example.com", "proxy.example:8443"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name         string
		p            *front.BrowserPolicy
		local        net.Addr
		host, origin string
		want         string // "" accepted; else a part of the refusal
	}{
		{"no origin", def, loopAddr, "127.0.0.1:8080", "", ""},
		{"localhost", def, loopAddr, "localhost:8080", "http://localhost:3000", ""},
		{"localhost https", def, loopAddr, "localhost", "https://LOCALHOST", ""},
		{"loopback /8", def, loopAddr, "127.0.0.2:8080", "http://127.5.6.7:6274", ""},
		{"v6 loopback", def, loopAddr, "[::1]:8080", "http://[::1]", ""},
		{"rebinding host", def, loopAddr, "evil.example.com:8080", "", `host "evil.example.com:8080" is not a loopback name`},
		{"rebinding host names the flag", def, loopAddr, "evil.example.com", "", "--allowed-hosts"},
		{"lookalike host", def, loopAddr, "localhost.evil.example.com", "", "not a loopback name"},
		{"lan ip host on loopback", def, loopAddr, "10.0.0.5:8080", "", "not a loopback name"},
		{"empty host", def, loopAddr, "", "", "not a loopback name"},
		{"bad port", def, loopAddr, "localhost:http", "", "not a loopback name"},
		{"foreign origin", def, loopAddr, "127.0.0.1:8080", "http://evil.example", `origin "http://evil.example" is not allowed`},
		{"foreign origin names the flag", def, loopAddr, "127.0.0.1:8080", "https://evil.example", "--allowed-origins (none)"},
		{"lookalike origin", def, loopAddr, "127.0.0.1:8080", "http://localhost.evil.example", "not allowed"},
		{"origin with userinfo trick", def, loopAddr, "127.0.0.1:8080", "http://localhost@evil.example", "not allowed"},
		{"null origin", def, loopAddr, "127.0.0.1:8080", "null", `origin "null" is not allowed`},
		{"file origin", def, loopAddr, "127.0.0.1:8080", "file://", "not allowed"},
		{"foreign origin on lan", def, lanAddr, "10.0.0.5:8080", "http://evil.example", "not allowed"},
		{"same origin on lan is no exception", def, lanAddr, "gw.example.com", "http://gw.example.com", "not allowed"},
		{"any host on lan by default", def, lanAddr, "gw.example.com", "", ""},
		{"no local address", def, nil, "example.com", "", ""},
		{"listed origin", listed, loopAddr, "127.0.0.1:8080", "https://app.example.com", ""},
		{"listed origin other port", listed, loopAddr, "127.0.0.1:8080", "http://tool.example:3001", "not allowed"},
		{"listed origin other scheme", listed, loopAddr, "127.0.0.1:8080", "http://app.example.com", "not allowed"},
		{"listed null", listed, loopAddr, "127.0.0.1:8080", "null", ""},
		{"listed host on loopback", listed, loopAddr, "MCP.example.com", "", ""},
		{"listed host any port", listed, loopAddr, "mcp.example.com:9000", "", ""},
		{"listed host and port", listed, loopAddr, "proxy.example:8443", "", ""},
		{"listed host other port", listed, loopAddr, "proxy.example:8444", "", "not a loopback name"},
		{"lan host listed", listed, lanAddr, "mcp.example.com", "", ""},
		{"lan ip host", listed, lanAddr, "10.0.0.5:8080", "", ""},
		{"lan loopback host", listed, lanAddr, "localhost:8080", "", ""},
		{"lan unlisted host", listed, lanAddr, "evil.example.com", "", `host "evil.example.com" is not allowed: this data plane serves only the names given with --allowed-hosts (mcp.example.com, proxy.example:8443)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Check(browserReq(tt.local, tt.host, tt.origin))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("accepted, want a refusal with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("refusal %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewBrowserPolicyRefuses(t *testing.T) {
	for _, tt := range []struct {
		origins, hosts []string
		want           string
	}{
		{[]string{"*"}, nil, "--allowed-origins: origin \"*\": wildcards are not supported"},
		{[]string{"https://*.example.com"}, nil, "wildcards"},
		{[]string{"https://app.example.com/path"}, nil, "want scheme://host[:port]"},
		{[]string{"app.example.com"}, nil, "want scheme://host[:port]"},
		{[]string{""}, nil, "empty origin"},
		{nil, []string{"*"}, "--allowed-hosts: host \"*\": wildcards"},
		{nil, []string{"https://mcp.example.com"}, "not a URL"},
		{nil, []string{"mcp.example.com:port"}, "want name, name:port"},
		{nil, []string{" "}, "empty host"},
	} {
		if _, err := front.NewBrowserPolicy(tt.origins, tt.hosts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewBrowserPolicy(%q, %q) = %v, want an error with %q", tt.origins, tt.hosts, err, tt.want)
		}
	}
}

// TestBrowserPolicyNoAllocs: the common request (no Origin, a loopback
// Host) costs no allocation, nor does a loopback origin.
func TestBrowserPolicyNoAllocs(t *testing.T) {
	p, _ := front.NewBrowserPolicy([]string{"https://app.example.com"}, []string{"mcp.example.com"})
	for _, r := range []*http.Request{
		browserReq(loopAddr, "127.0.0.1:8080", ""),
		browserReq(loopAddr, "[::1]:8080", ""),
		browserReq(loopAddr, "mcp.example.com", ""),
		browserReq(loopAddr, "localhost:8080", "http://localhost:6274"),
		browserReq(loopAddr, "localhost:8080", "https://app.example.com"),
		browserReq(lanAddr, "10.0.0.5:8080", ""),
	} {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := p.Check(r); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("Check(host %q, origin %q) allocates %v times", r.Host, r.Header.Get("Origin"), n)
		}
	}
}

// FuzzBrowserPolicy: whatever Host and Origin a request carries, the
// default policy accepts it on loopback only when both name loopback hosts
// as net/url and net/netip read them.
func FuzzBrowserPolicy(f *testing.F) {
	for _, s := range [][2]string{
		{"127.0.0.1:8080", ""}, {"localhost", "http://localhost:3000"}, {"[::1]:80", "http://[::1]"},
		{"evil.example.com", "http://evil.example.com"}, {"127.0.0.1", "http://127.0.0.1@evil"},
		{"[::ffff:127.0.0.1]:1", "https://[::ffff:7f00:1]:2"}, {"localhost.:1", "http://localhost.:1"},
	} {
		f.Add(s[0], s[1])
	}
	p, _ := front.NewBrowserPolicy(nil, nil)
	f.Fuzz(func(t *testing.T, host, origin string) {
		r := browserReq(loopAddr, "x", "")
		r.Host = host
		if origin != "" {
			r.Header["Origin"] = []string{origin}
		}
		got, err := p.Check(r)
		if err != nil {
			return
		}
		if got != origin {
			t.Fatalf("Check returned origin %q for %q", got, origin)
		}
		if !loopbackName(host) {
			t.Fatalf("host %q accepted", host)
		}
		if origin != "" {
			u, perr := url.Parse(origin)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Path != "" || !loopbackName(u.Host) {
				t.Fatalf("origin %q accepted (%v)", origin, perr)
			}
		}
	})
}

func loopbackName(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	} else if strings.Contains(hostport, ":") && !strings.HasPrefix(hostport, "[") {
		return false
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// TestCORS, on a real listener: answers carry Access-Control-Allow-Origin
// only for an allowed origin (echoed, never "*"); a preflight of an allowed
// origin is answered 204, one of another origin 403.
func TestCORS(t *testing.T) {
	p, err := front.NewBrowserPolicy([]string{"https://app.example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, secretA, front.Options{Browsers: p})
	sid := initRaw(t, r.url, initBody)
	send := func(method, path, origin string, hdr map[string]string, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, r.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return do(t, req)
	}
	for _, tt := range []struct {
		name, method, path, origin string
		hdr                        map[string]string
		status                     int
		acao                       string
	}{
		{"no origin", "POST", "/mcp", "", map[string]string{"Mcp-Session-Id": sid}, 200, ""},
		{"loopback origin", "POST", "/mcp", "http://localhost:6274", map[string]string{"Mcp-Session-Id": sid}, 200, "http://localhost:6274"},
		{"listed origin", "POST", "/mcp", "https://app.example.com", map[string]string{"Mcp-Session-Id": sid}, 200, "https://app.example.com"},
		{"foreign origin", "POST", "/mcp", "https://evil.example", map[string]string{"Mcp-Session-Id": sid}, 403, ""},
		{"preflight", "OPTIONS", "/mcp", "https://app.example.com", map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, mcp-session-id"}, 204, "https://app.example.com"},
		{"preflight of sse", "OPTIONS", "/sse", "http://127.0.0.1:3000", map[string]string{"Access-Control-Request-Method": "GET"}, 204, "http://127.0.0.1:3000"},
		{"foreign preflight", "OPTIONS", "/message", "https://evil.example", map[string]string{"Access-Control-Request-Method": "POST"}, 403, ""},
		{"options without origin", "OPTIONS", "/mcp", "", nil, 405, ""},
		{"message as text/plain", "POST", "/message?sessionId=x", "http://localhost", map[string]string{"Content-Type": "text/plain"}, 415, "http://localhost"},
		{"message as form", "POST", "/message?sessionId=x", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, ""},
		{"foreign text/plain message", "POST", "/message?sessionId=x", "https://evil.example", map[string]string{"Content-Type": "text/plain"}, 403, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(tt.method, tt.path, tt.origin, tt.hdr, echoCall)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if got := resp.Header.Values("Access-Control-Allow-Origin"); (tt.acao == "" && len(got) > 0) || (tt.acao != "" && (len(got) != 1 || got[0] != tt.acao)) {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.acao)
			}
			if tt.acao != "" && resp.Header.Get("Vary") != "Origin" {
				t.Errorf("Vary %q, want Origin", resp.Header.Get("Vary"))
			}
			if tt.status == 403 && !strings.Contains(string(body), tt.origin) || tt.status == 403 && !strings.Contains(string(body), "--allowed-origins") {
				t.Errorf("refusal %s does not name the origin and the flag", body)
			}
			if tt.status == 204 {
				if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, tt.hdr["Access-Control-Request-Method"]) {
					t.Errorf("Access-Control-Allow-Methods %q", m)
				}
				if h := tt.hdr["Access-Control-Request-Headers"]; h != "" && resp.Header.Get("Access-Control-Allow-Headers") != h {
					t.Errorf("Access-Control-Allow-Headers %q, want %q", resp.Header.Get("Access-Control-Allow-Headers"), h)
				}
			}
		})
	}
}
