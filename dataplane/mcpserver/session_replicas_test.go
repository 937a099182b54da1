package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// observation is what a replica's handler saw of the session of one request.
type observation struct {
	replica  int
	method   mcp.MCPMethod
	version  string // server.RequestProtocolVersion
	client   string
	caps     mcp.ClientCapabilities
	modern   bool
	hasSess  bool
	sessions string
}

type replica struct {
	srv  *Server
	h    *HTTP
	host string
}

// cluster is n data plane replicas (each its own Server and HTTP on a real
// HTTP server) over the same real backends and the same cluster secret.
type cluster struct {
	replicas []*replica
	src      *liveSource
	clock    *testClock

	mu  sync.Mutex
	obs []observation
}

func startCluster(t *testing.T, n int, src *liveSource, secret []byte) *cluster {
	t.Helper()
	c := &cluster{src: src, clock: newTestClock()}
	for i := range n {
		hooks := &server.Hooks{}
		hooks.AddBeforeAny(func(ctx context.Context, _ any, method mcp.MCPMethod, _ any) {
			o := observation{replica: i, method: method, version: server.RequestProtocolVersion(ctx), modern: server.IsModernRequest(ctx)}
			if sess := server.ClientSessionFromContext(ctx); sess != nil {
				o.hasSess, o.sessions = true, sess.SessionID()
				if ci, ok := sess.(server.SessionWithClientInfo); ok {
					o.client, o.caps = ci.GetClientInfo().Name, ci.GetClientCapabilities()
				}
			}
			c.mu.Lock()
			c.obs = append(c.obs, o)
			c.mu.Unlock()
		})
		s, err := New(Options{Source: Adapt[*liveBackend](src), Logger: quietLogger(), Hooks: hooks})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		s.Refresh()
		h := NewHTTP(s, HTTPOptions{Logger: quietLogger(), Now: c.clock.Now})
		if secret != nil {
			h.SetSessionSecret(secret)
		}
		mux := http.NewServeMux()
		h.Register(mux)
		ts := httptest.NewServer(mux)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := h.Close(ctx); err != nil {
				t.Errorf("close transports of replica %d: %v", i, err)
			}
			ts.Close()
		})
		u, _ := url.Parse(ts.URL)
		c.replicas = append(c.replicas, &replica{srv: s, h: h, host: u.Host})
	}
	return c
}

func (c *cluster) observations(method mcp.MCPMethod) []observation {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []observation
	for _, o := range c.obs {
		if o.method == method {
			out = append(out, o)
		}
	}
	return out
}

// hop is one HTTP request the balancer forwarded.
type hop struct {
	replica   int
	method    string // HTTP method
	mcpMethod string // Mcp-Method header (2026-07-28 requests only)
	session   string
	status    int
}

// balancer is a round-robin load balancer in the client: every request goes
// to the next replica. GETs (the listening stream) can be pinned to one.
type balancer struct {
	c      *cluster
	tr     *http.Transport
	next   atomic.Uint64
	pinGET int // -1: GETs are balanced like the rest

	mu   sync.Mutex
	hops []hop
	// streams receives the replica of every GET stream or
	// subscriptions/listen POST the moment the replica accepted it.
	streams chan int
}

func newBalancer(t *testing.T, c *cluster) *balancer {
	b := &balancer{c: c, tr: &http.Transport{}, pinGET: -1, streams: make(chan int, 16)}
	t.Cleanup(b.tr.CloseIdleConnections)
	return b
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var i int
	if req.Method == http.MethodGet && b.pinGET >= 0 {
		i = b.pinGET
	} else {
		i = int((b.next.Add(1) - 1) % uint64(len(b.c.replicas)))
	}
	out := req.Clone(req.Context())
	out.URL.Host = b.c.replicas[i].host
	out.Host = out.URL.Host
	h := hop{replica: i, method: req.Method, mcpMethod: req.Header.Get(mcp.HeaderMethod), session: req.Header.Get(server.HeaderKeySessionID)}
	resp, err := b.tr.RoundTrip(out)
	if err == nil {
		h.status = resp.StatusCode
		if resp.StatusCode == http.StatusOK && (req.Method == http.MethodGet || h.mcpMethod == string(mcp.MethodSubscriptionsListen)) {
			b.streams <- i
		}
	}
	b.mu.Lock()
	b.hops = append(b.hops, h)
	b.mu.Unlock()
	return resp, err
}

func (b *balancer) snapshot() []hop {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.hops)
}

// connectVia starts an mcp-go streamable HTTP client whose every request
// goes through b, initializes it and returns it with its notifications.
func connectVia(t *testing.T, b *balancer, topts []transport.StreamableHTTPCOption, copts ...client.ClientOption) (*client.Client, *mcp.InitializeResult, <-chan string) {
	t.Helper()
	topts = append(topts, transport.WithHTTPBasicClient(&http.Client{Transport: b}), transport.WithHTTPLogger(quietLogger()))
	tr, err := transport.NewStreamableHTTP("http://"+b.c.replicas[0].host+"/mcp", topts...)
	if err != nil {
		t.Fatalf("new transport: %v", err)
	}
	copts = append(copts, client.WithClientCapabilities(mcp.ClientCapabilities{
		Roots: &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: true},
		Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}},
	}))
	cli := client.NewClient(tr, copts...)
	notes := make(chan string, 1000)
	cli.OnNotification(func(n mcp.JSONRPCNotification) {
		select {
		case notes <- n.Method:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = cli.Close()
	})
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "rr-client", Version: "7"}
	res, err := cli.Initialize(ctx, init)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return cli, res, notes
}

// mixedCalls runs n requests of every kind and checks their results.
func mixedCalls(t *testing.T, cli *client.Client, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		switch i % 5 {
		case 0:
			res, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatalf("call %d tools/list: %v", i, err)
			}
			if len(res.Tools) != 4 {
				t.Fatalf("call %d tools/list: %d tools, want 4", i, len(res.Tools))
			}
		case 1, 2:
			srv := []string{"alpha", "beta"}[i%2]
			args := fmt.Sprintf(`{"n":%d}`, i)
			req := mcp.CallToolRequest{}
			req.Params.Name = srv + "__echo"
			req.Params.Arguments = json.RawMessage(args)
			res, err := cli.CallTool(ctx, req)
			if err != nil {
				t.Fatalf("call %d tools/call: %v", i, err)
			}
			if got, want := resultText(t, res), srv+":"+args; got != want {
				t.Fatalf("call %d tools/call = %q, want %q", i, got, want)
			}
		case 3:
			req := mcp.GetPromptRequest{}
			req.Params.Name = "beta__greet"
			req.Params.Arguments = map[string]string{"who": "you"}
			res, err := cli.GetPrompt(ctx, req)
			if err != nil {
				t.Fatalf("call %d prompts/get: %v", i, err)
			}
			if len(res.Messages) != 1 {
				t.Fatalf("call %d prompts/get: %d messages", i, len(res.Messages))
			}
		case 4:
			req := mcp.ReadResourceRequest{}
			req.Params.URI = "alpha://only"
			res, err := cli.ReadResource(ctx, req)
			if err != nil {
				t.Fatalf("call %d resources/read: %v", i, err)
			}
			if len(res.Contents) != 1 {
				t.Fatalf("call %d resources/read: %d contents", i, len(res.Contents))
			}
		}
	}
}

func TestSessionsAcrossReplicas(t *testing.T) {
	src := newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil))
	tests := []struct {
		name    string
		copts   []client.ClientOption
		version string
	}{
		{name: "pinned 2025-11-25", copts: []client.ClientOption{client.WithProtocolVersion(mcp.ProtocolVersion20251125)}, version: mcp.ProtocolVersion20251125},
		{name: "legacy only (2025-11-25 via initialize)", copts: []client.ClientOption{client.WithLegacyProtocolOnly()}, version: mcp.ProtocolVersion20251125},
		{name: "default (2026-07-28)", version: mcp.ProtocolVersion20260728},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, 3, src, secretA)
			b := newBalancer(t, c)
			cli, res, _ := connectVia(t, b, nil, tt.copts...)
			if res.ProtocolVersion != tt.version {
				t.Fatalf("negotiated %q, want %q", res.ProtocolVersion, tt.version)
			}
			const calls = 50
			mixedCalls(t, cli, calls)

			hops := b.snapshot()
			perReplica := make([]int, len(c.replicas))
			sessions := map[string]bool{}
			for _, h := range hops {
				if h.status >= 400 {
					t.Errorf("%s on replica %d answered %d", h.method, h.replica, h.status)
				}
				perReplica[h.replica]++
				if h.session != "" {
					sessions[h.session] = true
				}
			}
			for i, n := range perReplica {
				if n < calls/len(c.replicas) {
					t.Errorf("replica %d served %d requests, want >= %d (round robin)", i, n, calls/len(c.replicas))
				}
			}
			legacy := !mcp.IsModernProtocol(tt.version)
			if legacy && len(sessions) != 1 {
				t.Errorf("client used %d session ids, want 1", len(sessions))
			}
			if !legacy && len(sessions) != 0 {
				t.Errorf("2026-07-28 client sent session ids %v", sessions)
			}

			// Every replica's handlers saw the session as initialized:
			// protocol version, client info and capabilities, though only
			// one replica ran initialize.
			seen := make([]bool, len(c.replicas))
			for _, o := range c.observations(mcp.MethodToolsCall) {
				seen[o.replica] = true
				if o.version != tt.version || o.modern != !legacy {
					t.Errorf("replica %d: request version %q (modern %v), want %q", o.replica, o.version, o.modern, tt.version)
				}
				if !legacy {
					continue
				}
				if o.client != "rr-client" || o.caps.Roots == nil || !o.caps.Roots.ListChanged ||
					o.caps.Elicitation == nil || o.caps.Elicitation.Form == nil || o.caps.Sampling != nil {
					t.Errorf("replica %d: session client %q caps %+v, want rr-client with roots(listChanged) and elicitation(form)", o.replica, o.client, o.caps)
				}
			}
			if !slices.Equal(seen, []bool{true, true, true}) {
				t.Errorf("tools/call reached replicas %v, want all", seen)
			}
		})
	}
}

// rawPost sends one JSON-RPC message to a replica as a 2025-11-25 client
// would and returns the status and body.
func rawPost(t *testing.T, host, session, body string) (int, string) {
	t.Helper()
	return rawRequest(t, http.MethodPost, host, session, body)
}

func rawRequest(t *testing.T, method, host, session, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+host+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(mcp.HeaderProtocolVersion, mcp.ProtocolVersion20251125)
	if session != "" {
		req.Header.Set(server.HeaderKeySessionID, session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, host, err)
	}
	defer resp.Body.Close()
	if method == http.MethodGet && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "" // a listening stream: do not wait for its end
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const listTools = `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

func TestSessionIDCheckedOnEveryReplica(t *testing.T) {
	src := newLiveSource(newAlpha(t, "alpha", nil, nil))
	c := startCluster(t, 3, src, secretA)
	foreign := startCluster(t, 1, src, secretB)
	unsnapshotted := startCluster(t, 2, src, nil)
	r0, r1, r2 := c.replicas[0].host, c.replicas[1].host, c.replicas[2].host

	// A real initialize on replica 0.
	status, body := rawPost(t, r0, "", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","clientInfo":{"name":"raw","version":"1"},"capabilities":{"sampling":{}}}}`)
	if status != http.StatusOK {
		t.Fatalf("initialize: %d %s", status, body)
	}
	valid := c.replicas[0].h.ids.Issue(SessionFacts{ProtocolVersion: mcp.ProtocolVersion20251125})
	raw, _ := sessionEncoding.DecodeString(valid)
	raw[len(raw)-1] ^= 1
	tampered := sessionEncoding.EncodeToString(raw)

	tests := []struct {
		name    string
		method  string
		host    string
		session string
		body    string
		status  int
		want    string
	}{
		{"valid id on another replica", http.MethodPost, r1, valid, listTools, http.StatusOK, "alpha__echo"},
		{"valid id on a third replica", http.MethodPost, r2, valid, listTools, http.StatusOK, "alpha__echo"},
		{"tampered", http.MethodPost, r1, tampered, listTools, http.StatusNotFound, "signature does not match (tampered or forged id)"},
		{"foreign cluster", http.MethodPost, r1, foreign.replicas[0].h.ids.Issue(SessionFacts{}), listTools, http.StatusNotFound, "signed with an unknown key"},
		{"garbage", http.MethodPost, r1, "not a session", listTools, http.StatusBadRequest, "session id rejected: malformed"},
		{"mcp-go default id", http.MethodPost, r1, "mcp-session-0b5e8c2e-9a3b-4a0e-8f7e-0c4f5e6d7a8b", listTools, http.StatusBadRequest, "malformed: too short"},
		{"missing id", http.MethodPost, r1, "", listTools, http.StatusBadRequest, "missing Mcp-Session-Id header: send initialize first"},
		{"garbage on GET", http.MethodGet, r1, "garbage", "", http.StatusBadRequest, "malformed"},
		{"tampered on DELETE", http.MethodDelete, r1, tampered, "", http.StatusNotFound, "signature does not match"},
		{"DELETE without id", http.MethodDelete, r1, "", "", http.StatusBadRequest, "missing Mcp-Session-Id header"},
		{"not JSON, no id", http.MethodPost, r1, "", "{", http.StatusBadRequest, "not valid json"},
		// Before its first snapshot a replica signs with a random key that
		// no other replica knows.
		{"id minted before the first snapshot, on another replica", http.MethodPost, unsnapshotted.replicas[1].host,
			unsnapshotted.replicas[0].h.ids.Issue(SessionFacts{}), listTools, http.StatusNotFound, "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawRequest(t, tt.method, tt.host, tt.session, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%s = %d %q, want %d containing %q", tt.method, status, body, tt.status, tt.want)
			}
		})
	}

	t.Run("DELETE ends the session on the replica that got it", func(t *testing.T) {
		id := c.replicas[0].h.ids.Issue(SessionFacts{ProtocolVersion: mcp.ProtocolVersion20251125})
		if status, body := rawRequest(t, http.MethodDelete, r1, id, ""); status != http.StatusOK {
			t.Fatalf("DELETE = %d %q", status, body)
		}
		if status, body := rawPost(t, r1, id, listTools); status != http.StatusNotFound || !strings.Contains(body, "terminated (DELETE) on this data plane") {
			t.Fatalf("after DELETE, same replica = %d %q, want 404 terminated", status, body)
		}
		// Documented limit of stateless ids: the others still accept it.
		if status, body := rawPost(t, r2, id, listTools); status != http.StatusOK {
			t.Fatalf("after DELETE, other replica = %d %q, want 200", status, body)
		}
	})

	t.Run("expired", func(t *testing.T) {
		id := c.replicas[0].h.ids.Issue(SessionFacts{})
		c.clock.Advance(DefaultSessionMaxAge)
		status, body := rawPost(t, r1, id, listTools)
		if status != http.StatusNotFound || !strings.Contains(body, "expired") {
			t.Fatalf("expired id = %d %q, want 404 expired", status, body)
		}
	})
}

func TestListChangedReachesGETStreamOnAnotherReplica(t *testing.T) {
	src := newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil))
	c := startCluster(t, 3, src, secretA)
	b := newBalancer(t, c)
	b.pinGET = 2
	cli, res, notes := connectVia(t, b, []transport.StreamableHTTPCOption{transport.WithContinuousListening()})
	if res.ProtocolVersion != mcp.ProtocolVersion20251125 {
		t.Fatalf("negotiated %q, want %q (continuous listening needs the GET stream)", res.ProtocolVersion, mcp.ProtocolVersion20251125)
	}
	select {
	case r := <-b.streams:
		if r != 2 {
			t.Fatalf("GET stream on replica %d, want 2", r)
		}
	case <-time.After(wait):
		t.Fatal("no GET stream opened")
	}
	if h := b.snapshot()[0]; h.replica != 0 || h.method != http.MethodPost {
		t.Fatalf("initialize went to replica %d (%s), want a POST to 0", h.replica, h.method)
	}

	// A backend appears. Replica 2, which never saw initialize, refreshes
	// first and tells the client over the stream it holds.
	src.add(newAlpha(t, "gamma", nil, nil))
	c.replicas[2].srv.Refresh()
	expectNote(t, notes, string(mcp.MethodNotificationToolsListChanged))
	for _, r := range c.replicas[:2] {
		r.srv.Refresh()
	}
	for range len(c.replicas) {
		if got := len(toolsVia(t, cli)); got != 6 {
			t.Fatalf("tools/list after the change: %d tools, want 6", got)
		}
	}
}

func TestSubscriptionsListenOnAnyReplica(t *testing.T) {
	src := newLiveSource(newAlpha(t, "alpha", nil, nil))
	c := startCluster(t, 3, src, secretA)
	b := newBalancer(t, c)
	cli, res, notes := connectVia(t, b, nil)
	if res.ProtocolVersion != mcp.ProtocolVersion20260728 {
		t.Fatalf("negotiated %q, want %q", res.ProtocolVersion, mcp.ProtocolVersion20260728)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = cli.Listen(ctx, mcp.SubscriptionFilter{ToolsListChanged: true})
	}()
	var listening int
	select {
	case listening = <-b.streams:
	case <-time.After(wait):
		t.Fatal("no subscriptions/listen stream opened")
	}
	expectNote(t, notes, mcp.MethodNotificationSubscriptionsAcknowledged)
	if first := b.snapshot()[0]; first.replica == listening {
		t.Fatalf("discover and listen both on replica %d; the test needs them apart", listening)
	}
	mixedToolsCalls(t, cli, 6) // other requests keep going to every replica

	src.add(newAlpha(t, "gamma", nil, nil))
	c.replicas[listening].srv.Refresh()
	expectNote(t, notes, string(mcp.MethodNotificationToolsListChanged))
}

func TestSessionSecretRotationAcrossReplicas(t *testing.T) {
	src := newLiveSource(newAlpha(t, "alpha", nil, nil), newAlpha(t, "beta", nil, nil))
	c := startCluster(t, 3, src, secretA)
	b := newBalancer(t, c)
	legacy := client.WithProtocolVersion(mcp.ProtocolVersion20251125)
	before, _, _ := connectVia(t, b, nil, legacy)
	mixedToolsCalls(t, before, 6)

	for _, r := range c.replicas {
		r.h.SetSessionSecret(secretB)
	}
	// Within the grace the old session keeps working everywhere, and new
	// sessions get ids signed with the new secret.
	mixedToolsCalls(t, before, 6)
	after, _, _ := connectVia(t, b, nil, legacy)
	mixedToolsCalls(t, after, 6)

	c.clock.Advance(DefaultSessionSecretGrace)
	_, err := before.ListTools(context.Background(), mcp.ListToolsRequest{})
	if !errors.Is(err, transport.ErrSessionTerminated) {
		t.Fatalf("old session after the grace: err = %v, want %v", err, transport.ErrSessionTerminated)
	}
	mixedToolsCalls(t, after, 6)
}

func toolsVia(t *testing.T, cli *client.Client) []mcp.Tool {
	t.Helper()
	res, err := cli.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	return res.Tools
}

// mixedToolsCalls alternates tools/list and tools/call n times.
func mixedToolsCalls(t *testing.T, cli *client.Client, n int) {
	t.Helper()
	for i := range n {
		if i%2 == 0 {
			toolsVia(t, cli)
			continue
		}
		req := mcp.CallToolRequest{}
		req.Params.Name = "alpha__echo"
		req.Params.Arguments = json.RawMessage(`{"n":1}`)
		res, err := cli.CallTool(context.Background(), req)
		if err != nil {
			t.Fatalf("tools/call: %v", err)
		}
		if got := resultText(t, res); got != `alpha:{"n":1}` {
			t.Fatalf("tools/call = %q", got)
		}
	}
}
