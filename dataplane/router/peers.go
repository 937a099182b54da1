package router

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

// Answers that reach another replica. A client answers a relayed request
// (sampling, elicitation, roots) with a POST of its own, which a round-robin
// balancer may send to any replica; only the one that relayed the request
// holds the backend waiting for the answer. So the ids of relayed requests
// name their replica: mcpmesh.<address>.<mac>.<n>, the address being the
// replica's advertised one and mac an HMAC of it under a key derived from the
// cluster secret. A replica that gets an answer for another one forwards it
// there as the client's POST; the MAC keeps a client from making a replica
// post to an address of its choosing.

// relayLabel names the key that signs replica addresses in request ids.
const relayLabel = "mcpmesh relay v1"

// relayIDPrefix starts the ids of requests relayed to clients.
const relayIDPrefix = "mcpmesh."

// forwardTimeout bounds the forwarding of one answer.
const forwardTimeout = 10 * time.Second

var b64 = base64.RawURLEncoding

// relayID makes the id of the n-th request this replica relays to a client.
func (r *Router) relayID(n uint64) string {
	addr := r.advertise
	return relayIDPrefix + b64.EncodeToString([]byte(addr)) + "." + r.addrMAC(addr) + "." + strconv.FormatUint(n, 10)
}

func (r *Router) addrMAC(addr string) string {
	key := r.relayKey()
	m := hmac.New(sha256.New, key)
	m.Write([]byte(addr))
	return b64.EncodeToString(m.Sum(nil)[:12])
}

// relayOwner returns the replica address an answer's id names, when it is
// another replica's and its MAC holds.
func (r *Router) relayOwner(id string) (string, bool) {
	if !strings.HasPrefix(id, relayIDPrefix) {
		return "", false
	}
	parts := strings.Split(id[len(relayIDPrefix):], ".")
	if len(parts) != 3 {
		return "", false
	}
	raw, err := b64.DecodeString(parts[0])
	if err != nil {
		return "", false
	}
	addr := string(raw)
	if addr == r.advertise || addr == "" {
		return "", false
	}
	if !hmac.Equal([]byte(parts[1]), []byte(r.addrMAC(addr))) {
		return "", false
	}
	return addr, true
}

// forward hands a client's answer to the replica that relayed the request.
func (r *Router) forwardAnswer(ctx context.Context, addr string, s *front.Session, resp *jsonrpc.Message) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/mcp", bytes.NewReader(resp.Marshal()))
	if err != nil {
		r.log.Warn("forward a client's answer", "replica", addr, "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.ID != "" {
		req.Header.Set("Mcp-Session-Id", s.ID)
	}
	if s.Protocol != "" {
		req.Header.Set("MCP-Protocol-Version", s.Protocol)
	}
	res, err := r.peers.Do(req)
	if err != nil {
		r.log.Warn("forward a client's answer", "replica", addr, "err", err)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		r.log.Warn("forward a client's answer", "replica", addr, "err", fmt.Errorf("HTTP %s", res.Status))
	}
}
