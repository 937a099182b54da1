package front

import (
	"net"
	"net/http"
	"sync"

	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// DefaultMaxConcurrent is how many POSTs one client may have in flight at
// once (Options.MaxConcurrent).
const DefaultMaxConcurrent = 64

// inflight counts the POSTs in flight per client. A client is its session
// id when it sends one (clients behind one proxy share an address), else
// its address. A POST another replica relays carries its client's session
// id, so it counts for that client (the header that marks it is not
// trusted: a client could send it).
type inflight struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// clientKey names the client of r for the limit.
func clientKey(r *http.Request) string {
	if v := r.Header[headerSession]; len(v) > 0 && v[0] != "" {
		return v[0] // sealed ids look nothing like addresses
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// acquire counts a POST of r's client in, or answers 429 and returns false
// when the client has max in flight already. A true return must be
// followed by release(key).
func (l *inflight) acquire(w http.ResponseWriter, r *http.Request) (string, bool) {
	if l.max <= 0 {
		return "", true
	}
	key := clientKey(r)
	l.mu.Lock()
	if l.n[key] >= l.max {
		l.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusTooManyRequests, jsonrpc.CodeInvalidRequest,
			"too many concurrent requests from this client: at most %d may be in flight at once (data plane --max-concurrent-per-client)", l.max)
		return "", false
	}
	l.n[key]++
	l.mu.Unlock()
	return key, true
}

func (l *inflight) release(key string) {
	if key == "" {
		return
	}
	l.mu.Lock()
	if l.n[key]--; l.n[key] <= 0 {
		delete(l.n, key)
	}
	l.mu.Unlock()
}
