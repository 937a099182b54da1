package front

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Browsers. A web page the user visits can make the user's browser send
// requests to a data plane the page's own site cannot reach (one on
// loopback or on the user's network): a cross-site POST, or, with DNS
// rebinding, a "same-origin" one to a name of the attacker's that resolves
// to the data plane. The MCP spec requires servers to validate Origin, and
// local servers to check Host. BrowserPolicy does both on every request of
// /mcp, /sse and /message, and answers CORS for the origins it allows only
// (never "*").
//
//   - Origin: a request without one (every non-browser client) is served;
//     one with an Origin is served when it is a loopback origin
//     (http(s)://localhost, 127.0.0.0/8 or [::1], any port) or listed in
//     --allowed-origins. "null" (sandboxed frames, file: pages) is refused
//     unless listed.
//   - Host: a request that arrived on a loopback address must name a
//     loopback host (localhost, 127.0.0.0/8, [::1]) or one listed in
//     --allowed-hosts (a proxy on the same machine that keeps the public
//     name). A rebinding page's requests carry the attacker's name, so they
//     are refused even when they carry no Origin (a same-origin GET). On
//     other addresses, when --allowed-hosts is given, Host must be listed,
//     a loopback name or an IP address; without it any Host is served.
//
// The checks allocate nothing for a request without Origin.

// Flag names, as the refusals name them.
const (
	FlagAllowedOrigins = "--allowed-origins"
	FlagAllowedHosts   = "--allowed-hosts"
)

// BrowserPolicy is the Origin and Host check of a Front. The zero value is
// not usable: use NewBrowserPolicy.
type BrowserPolicy struct {
	origins []string // normalized scheme://host[:port], or "null"
	hosts   []string // lower case host or host:port
}

// NewBrowserPolicy returns the policy that allows, besides requests without
// Origin and loopback origins, the listed origins (scheme://host[:port], or
// "null") and Host names (host or host:port; a host without a port matches
// any port). Wildcards are refused: a list says exactly who is trusted.
func NewBrowserPolicy(origins, hosts []string) (*BrowserPolicy, error) {
	p := &BrowserPolicy{}
	for _, o := range origins {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", FlagAllowedOrigins, err)
		}
		p.origins = append(p.origins, n)
	}
	for _, h := range hosts {
		n, err := normalizeHost(h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", FlagAllowedHosts, err)
		}
		p.hosts = append(p.hosts, n)
	}
	return p, nil
}

func normalizeOrigin(o string) (string, error) {
	o = strings.TrimSpace(o)
	switch {
	case o == "":
		return "", errors.New("empty origin")
	case strings.Contains(o, "*"):
		return "", fmt.Errorf("origin %q: wildcards are not supported, list each origin (scheme://host[:port])", o)
	case strings.EqualFold(o, "null"):
		return "null", nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], as a browser sends it (e.g. https://app.example.com)", o)
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	// Browsers leave the default port out of an origin.
	if port := u.Port(); (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		host = strings.TrimSuffix(host, ":"+port)
	}
	return scheme + "://" + host, nil
}

func normalizeHost(h string) (string, error) {
	h = strings.TrimSpace(h)
	switch {
	case h == "":
		return "", errors.New("empty host")
	case strings.Contains(h, "*"):
		return "", fmt.Errorf("host %q: wildcards are not supported, list each name", h)
	case strings.ContainsAny(h, "/@?# "):
		return "", fmt.Errorf("host %q: want a name or name:port as clients send it in Host (e.g. mcp.example.com), not a URL", h)
	}
	if _, _, ok := splitHostPort(h); !ok {
		return "", fmt.Errorf("host %q: want name, name:port or [IPv6]:port", h)
	}
	return strings.TrimSuffix(strings.ToLower(h), "."), nil
}

// Check vets r's Host and Origin headers. It returns the Origin to answer
// CORS for ("" when r has none) or an error saying what was refused and
// which flag would allow it.
func (p *BrowserPolicy) Check(r *http.Request) (origin string, err error) {
	loop := arrivedOnLoopback(r)
	if !p.hostAllowed(r.Host, loop) {
		return "", p.hostError(r.Host, loop)
	}
	origin = r.Header.Get("Origin")
	if origin == "" || p.originAllowed(origin) {
		return origin, nil
	}
	return "", p.originError(origin)
}

func (p *BrowserPolicy) hostAllowed(host string, loop bool) bool {
	if !loop && len(p.hosts) == 0 {
		return true
	}
	name, _, ok := splitHostPort(host)
	if !ok {
		return false
	}
	if isLoopbackName(name) {
		return true
	}
	if !loop && maybeIP(name) {
		if _, err := netip.ParseAddr(name); err == nil {
			return true // an address is no name a rebinding page controls
		}
	}
	for _, h := range p.hosts {
		if strings.EqualFold(h, host) || strings.EqualFold(h, strings.TrimSuffix(name, ".")) {
			return true
		}
	}
	return false
}

func (p *BrowserPolicy) originAllowed(o string) bool {
	if isLoopbackOrigin(o) {
		return true
	}
	for _, a := range p.origins {
		if strings.EqualFold(a, o) {
			return true
		}
	}
	return false
}

func (p *BrowserPolicy) hostError(host string, loop bool) error {
	if loop {
		return fmt.Errorf("host %q is not a loopback name: this data plane is reached on loopback and serves local clients only "+
			"(Host localhost, 127.0.0.1 or [::1]; a request naming another host may come from a DNS rebinding web page); "+
			"behind a proxy that keeps the public name, add it with %s", clip(host), FlagAllowedHosts)
	}
	return fmt.Errorf("host %q is not allowed: this data plane serves only the names given with %s (%s), loopback names and IP addresses",
		clip(host), FlagAllowedHosts, strings.Join(p.hosts, ", "))
}

func (p *BrowserPolicy) originError(o string) error {
	listed := "none"
	if len(p.origins) > 0 {
		listed = strings.Join(p.origins, ", ")
	}
	return fmt.Errorf("origin %q is not allowed: this data plane serves browsers only from loopback origins "+
		"(http://localhost, http://127.0.0.1, http://[::1], any port) and from %s (%s); to allow a web app, add its origin with %s",
		clip(o), FlagAllowedOrigins, listed, FlagAllowedOrigins)
}

// clip bounds a header quoted in a refusal.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// arrivedOnLoopback reports whether r came in on a loopback address. A
// request without one (a handler called directly) is treated as not.
func arrivedOnLoopback(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// isLoopbackOrigin reports whether o is http(s)://<loopback host>[:port].
func isLoopbackOrigin(o string) bool {
	var rest string
	switch {
	case len(o) > 7 && strings.EqualFold(o[:7], "http://"):
		rest = o[7:]
	case len(o) > 8 && strings.EqualFold(o[:8], "https://"):
		rest = o[8:]
	default:
		return false
	}
	name, _, ok := splitHostPort(rest)
	return ok && isLoopbackName(name)
}

// isLoopbackName reports whether name (a host without port or brackets) is
// localhost or a loopback address. An address with a zone (::1%eth0) is
// not: no browser puts one in an Origin, and in a URL it must be escaped
// (%25), so "[::1%0]" is no origin at all (FuzzBrowserPolicy found it).
func isLoopbackName(name string) bool {
	if strings.EqualFold(name, "localhost") || strings.EqualFold(name, "localhost.") {
		return true
	}
	if !maybeIP(name) {
		return false
	}
	a, err := netip.ParseAddr(name)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// maybeIP reports whether name may be an IP address, so that a name is not
// parsed as one (a failed parse allocates its error).
func maybeIP(name string) bool {
	if strings.IndexByte(name, ':') >= 0 {
		return true
	}
	for i := 0; i < len(name); i++ {
		if (name[i] < '0' || name[i] > '9') && name[i] != '.' {
			return false
		}
	}
	return name != ""
}

// splitHostPort splits host[:port] or [v6][:port] as Host headers and
// origins carry them; the port, when present, must be digits. It does not
// allocate.
func splitHostPort(hp string) (host, port string, ok bool) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", false
		}
		host, rest := hp[1:end], hp[end+1:]
		if rest == "" {
			return host, "", host != ""
		}
		if rest[0] != ':' || !digits(rest[1:]) {
			return "", "", false
		}
		return host, rest[1:], host != ""
	}
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return hp, "", hp != ""
	}
	if strings.IndexByte(hp[:i], ':') >= 0 {
		return "", "", false // an IPv6 address must be in brackets
	}
	if !digits(hp[i+1:]) {
		return "", "", false
	}
	return hp[:i], hp[i+1:], i > 0
}

func digits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CORS. Answers carry Access-Control-Allow-Origin only for an allowed
// Origin, echoed; a preflight from one is answered here, before client
// authentication (browsers send no credentials in a preflight).
var (
	varyOrigin     = []string{"Origin"}
	corsExpose     = []string{"Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"}
	corsMethods    = []string{"GET, POST, DELETE"}
	corsMaxAge     = []string{"600"}
	corsPrivateNet = []string{"true"}
)

// allowCORS marks the answer to an allowed origin's request readable by it.
func allowCORS(h http.Header, origin string) {
	h["Access-Control-Allow-Origin"] = []string{origin}
	h["Vary"] = varyOrigin
	h["Access-Control-Expose-Headers"] = corsExpose
}

// preflight answers a CORS preflight of an allowed origin.
func preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	allowCORS(h, origin)
	h["Access-Control-Allow-Methods"] = corsMethods
	if req := r.Header.Values("Access-Control-Request-Headers"); len(req) > 0 {
		// The origin is trusted: whatever headers its client sends.
		h["Access-Control-Allow-Headers"] = []string{strings.Join(req, ", ")}
	}
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h["Access-Control-Allow-Private-Network"] = corsPrivateNet
	}
	h["Access-Control-Max-Age"] = corsMaxAge
	w.WriteHeader(http.StatusNoContent)
}

// isPreflight reports whether r is a CORS preflight request.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}
