package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/backend"
	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/h1"
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

// forwardAnswer hands a client's answer to the replica that relayed the
// request (or a notification to the replica it concerns), as the client's POST.
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
	setSessionHeaders(req, s)
	if err := r.tell(req); err != nil {
		r.log.Warn("forward a client's answer", "replica", addr, "err", err)
	}
}

// Shared servers across replicas. A shared server (every stdio one) runs one
// upstream session per replica: a child process each. What a client leaves
// in it (a task, a subscription, a log level, a session resource) lives in
// that replica's child only, and a round-robin balancer sends the client's
// next request, and its GET stream, anywhere. So each session has a home,
// the replica that took its initialize (its advertised address is sealed
// into the session id, sessions.go): requests of the session that concern a
// shared server are served there, as the client's own POST that the
// receiving replica relays (its answer, and what comes before it on the
// POST's stream, go back to the client as they arrive); a GET stream of the
// session on another replica follows the home's stream for the session, so
// that what the home pushes (resource updates, log messages, list_changed of
// its child) reaches the client wherever its stream is. A home that does not
// answer is served around: the request is served where it landed.
//
// Task ids of shared servers also name, signed, the replica whose child owns
// the task (tasks.go): tasks/get, tasks/result and tasks/cancel go there,
// whoever asks (a 2026-07-28 client has no session, so no home).

// proxyIdle bounds the idle connections kept to one peer replica.
const proxyIdle = 32

// followBackoff bounds the wait between attempts to follow a home's stream.
const followBackoff = 10 * time.Second

// maxPeerMessage bounds one message read from a peer's answer.
const maxPeerMessage = 64 << 20

// peerDialTimeout bounds a dial to another replica: a replica that is gone
// (its address dropped by a restart) is served around after this long.
const peerDialTimeout = 2 * time.Second

// newPeerTransport is the transport of every request to another replica:
// never through a proxy of the environment (replica traffic, session ids
// included, stays between replicas), a short dial timeout, and h1, which
// never writes a request on a connection the replica has closed and never
// sends one twice: a relayed tools/call runs once.
func newPeerTransport() *h1.Transport {
	return h1.New(&http.Transport{
		DialContext:         (&net.Dialer{Timeout: peerDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: proxyIdle,
		IdleConnTimeout:     90 * time.Second,
	})
}

// CloseIdle closes the idle connections to other replicas.
func (r *Router) CloseIdle() {
	r.proxyClient.CloseIdleConnections()
	r.peers.CloseIdleConnections()
}

// homeOf is the home of s when it is another replica.
func (r *Router) homeOf(s *front.Session) (string, bool) {
	if s == nil || s.ID == "" || len(s.Upstream) == 0 || r.advertise == "" {
		return "", false
	}
	u, err := decodeUpstreams(s.Upstream)
	if err != nil || u.home == "" || u.home == r.advertise {
		return "", false
	}
	return u.home, true
}

// atHome serves a request of a session whose home is another replica
// there, when it concerns a shared server; ok is false when it is to be
// served here.
func (r *Router) atHome(ctx context.Context, s *front.Session, req *jsonrpc.Message, out front.Stream) (res json.RawMessage, served bool, err error) {
	if s != nil && s.Relayed {
		return nil, false, nil // relayed here to be served here
	}
	home, ok := r.homeOf(s)
	if !ok || !r.concernsShared(req) {
		return nil, false, nil
	}
	res, err = r.proxy(ctx, home, s, req, out)
	if errors.Is(err, errUnreached) {
		r.log.Info("shared server request served here: the session's home replica does not answer", "replica", home, "method", req.Method, "err", err)
		return nil, false, nil
	}
	return res, true, err
}

// errUnreached says a request for another replica was not sent: it could
// not be reached.
var errUnreached = errors.New("replica unreachable")

// concernsShared reports whether a request is served by (or, for those that
// go to every server, reaches) a shared server whose state is per replica.
func (r *Router) concernsShared(req *jsonrpc.Message) bool {
	shared := func(b Server) bool { return b != nil && !b.PerClient() }
	any := func(capability string) bool {
		for _, b := range r.servers.List() {
			if shared(b) && hasCapability(b.Capabilities(), capability) {
				return true
			}
		}
		return false
	}
	switch req.Method {
	case "tools/call":
		t, err := r.byName(nil, req.Method, req.Params, r.cat.Load().Tool, "tool")
		return err == nil && shared(t.srv)
	case "prompts/get":
		t, err := r.byName(nil, req.Method, req.Params, r.cat.Load().Prompt, "prompt")
		return err == nil && shared(t.srv)
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		t, _, err := r.byURI(nil, req.Method, req.Params)
		return err == nil && shared(t.srv)
	case "logging/setLevel":
		return any("logging")
	case "tasks/list":
		return any("tasks")
	}
	return false
}

// proxy sends a client's request to another replica as the client's POST and
// returns its answer; what the replica sends before it (progress, requests
// for the client) goes to out. The error wraps errUnreached when the replica
// could not be reached at all (the request was not sent).
func (r *Router) proxy(ctx context.Context, addr string, s *front.Session, req *jsonrpc.Message, out front.Stream) (json.RawMessage, error) {
	msg := *req
	var header http.Header
	if s.Protocol == front.ModernProtocol {
		// A stateless request carries its revision, capabilities and client
		// info itself: handleModern took them out of _meta, the replica
		// checks them again.
		var err error
		if msg.Params, header, err = backend.ModernRequest(req.Method, req.Params, *r.callerOf(s)); err != nil {
			return nil, err
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/mcp", bytes.NewReader(msg.Marshal()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnreached, err)
	}
	maps.Copy(hreq.Header, header)
	setSessionHeaders(hreq, s)
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json, text/event-stream")
	hres, err := r.proxyClient.Do(hreq)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("%w: %v", errUnreached, err)
		}
		return nil, peerErr(req.Method, addr, err)
	}
	defer hres.Body.Close()
	ct, _, _ := mime.ParseMediaType(hres.Header.Get("Content-Type"))
	switch {
	case ct == "text/event-stream" && hres.StatusCode == http.StatusOK:
		var answer *jsonrpc.Message
		err := readEvents(hres.Body, func(data []byte) bool {
			m, err := jsonrpc.Parse(data)
			if err == nil && m.IsResponse() && jsonrpc.IDKey(m.ID) == jsonrpc.IDKey(req.ID) {
				answer = &m
				return false
			}
			if out != nil {
				_ = out.Send(data) // a client gone is the request's context ending
			}
			return true
		})
		if answer == nil {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, peerErr(req.Method, addr, fmt.Errorf("its stream ended before the answer: %w", err))
		}
		return answerOf(answer)
	case ct == "application/json":
		body, err := io.ReadAll(io.LimitReader(hres.Body, maxPeerMessage))
		if err != nil {
			return nil, peerErr(req.Method, addr, err)
		}
		m, err := jsonrpc.Parse(body)
		if err != nil || !m.IsResponse() {
			return nil, peerErr(req.Method, addr, fmt.Errorf("HTTP %s: %s", hres.Status, oneLine(body)))
		}
		return answerOf(&m)
	}
	body, _ := io.ReadAll(io.LimitReader(hres.Body, 512))
	return nil, peerErr(req.Method, addr, fmt.Errorf("HTTP %s: %s", hres.Status, oneLine(body)))
}

func answerOf(m *jsonrpc.Message) (json.RawMessage, error) {
	if m.Error != nil {
		return nil, m.Error
	}
	if m.Result == nil {
		return json.RawMessage(`{}`), nil
	}
	return m.Result, nil
}

func peerErr(method, addr string, err error) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeUnavailable, Message: fmt.Sprintf("%s: relay to data plane %s: %v", method, addr, err)}
}

func oneLine(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// setSessionHeaders names the client's session on a request to another
// replica, and marks it relayed: the replica serves it itself, never
// relaying it again (a misconfigured --advertise-addr that reaches a
// balancer would otherwise bounce it between replicas). A kept-alive
// connection the replica has closed (it restarted) is never written to
// (h1), so the first request after a restart reaches the new process, or,
// if the replica is gone, is served here; a request is never sent twice.
func setSessionHeaders(req *http.Request, s *front.Session) {
	req.Header.Set(front.HeaderRelayed, "1")
	if s.ID != "" {
		req.Header.Set("Mcp-Session-Id", s.ID)
	}
	if s.Protocol != "" {
		req.Header.Set("MCP-Protocol-Version", s.Protocol)
	}
	if s.Credential != "" {
		// The replica authenticates the client as this one did.
		req.Header.Set("Authorization", s.Credential)
	}
}

// readEvents calls f with the data of each server-sent event until f says
// stop, the stream ends or a read fails.
func readEvents(body io.Reader, f func(data []byte) bool) error {
	br := bufio.NewReaderSize(body, 16<<10)
	var data []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				if !f(data) {
					return nil
				}
				data = nil
			}
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if len(data) > 0 {
				data = append(data, '\n')
			}
			if len(data)+len(v) > maxPeerMessage {
				return fmt.Errorf("an event of more than %d bytes", maxPeerMessage)
			}
			data = append(data, v...)
		}
	}
}

// readLine reads one line without its end (LF or CRLF), of any length up
// to maxPeerMessage.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(line) > maxPeerMessage {
				return nil, fmt.Errorf("a line of more than %d bytes", maxPeerMessage)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
		return line, nil
	}
}

// peerMAC signs what a replica sends another for a session's sake (its
// stream, its end).
func (r *Router) peerMAC(sessionID string) string {
	m := hmac.New(sha256.New, r.relayKey())
	m.Write([]byte("peer\x00"))
	m.Write([]byte(sessionID))
	return b64.EncodeToString(m.Sum(nil)[:18])
}

// fromPeer reports whether s's GET or DELETE came from another replica.
func (r *Router) fromPeer(s *front.Session) bool {
	return s.Peer != "" && s.ID != "" && hmac.Equal([]byte(s.Peer), []byte(r.peerMAC(s.ID)))
}

// endAtHome tells the home of an ended session so (its shared servers'
// subscriptions of the session are there).
func (r *Router) endAtHome(home string, s *front.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+home+"/mcp", nil)
	if err != nil {
		return
	}
	setSessionHeaders(req, s)
	req.Header.Set(front.HeaderPeer, r.peerMAC(s.ID))
	if err := r.tell(req); err != nil {
		r.log.Debug("end a session at its home replica", "replica", home, "err", err)
	}
}

// tell sends another replica a request whose answer only says whether it
// was taken (a forwarded answer, a DELETE), and reads the answer off.
func (r *Router) tell(req *http.Request) error {
	res, err := r.peers.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", res.Status)
	}
	return nil
}

// hasShared reports whether any shared server is configured.
func (r *Router) hasShared() bool {
	for _, b := range r.servers.List() {
		if !b.PerClient() {
			return true
		}
	}
	return false
}

// followHome relays the home's stream of s to s's stream here until ctx
// ends, reopening it when it breaks.
func (r *Router) followHome(ctx context.Context, home string, s *front.Session) {
	wait := time.Second
	for {
		began := time.Now()
		err := r.followOnce(ctx, home, s)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > followBackoff {
			wait = time.Second
		}
		r.log.Debug("follow the home replica's stream of a session", "replica", home, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, followBackoff)
	}
}

func (r *Router) followOnce(ctx context.Context, home string, s *front.Session) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+home+"/mcp", nil)
	if err != nil {
		return err
	}
	setSessionHeaders(req, s)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(front.HeaderPeer, r.peerMAC(s.ID))
	res, err := r.proxyClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("HTTP %s: %s", res.Status, oneLine(body))
	}
	return readEvents(res.Body, func(data []byte) bool {
		r.push(s.ID, append([]byte(nil), data...))
		return true
	})
}
