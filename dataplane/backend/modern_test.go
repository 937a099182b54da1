package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpmesh/mcpmesh/dataplane/catalog"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// legacyOnly makes an mcp-go test server advertise only the session-era
// revisions (it serves 2026-07-28 too by default), for the tests of
// initialize, upstream sessions and GET streams.
var legacyOnly = server.WithStreamableHTTPProtocolVersions(
	mcp.ProtocolVersion20251125, "2025-06-18", "2025-03-26", "2024-11-05")

// modernBackend is an mcp-go server of its default configuration (both
// eras) on 127.0.0.1, recording every POST it gets.
type modernBackend struct {
	ts   *httptest.Server
	mu   sync.Mutex
	seen []seenPost
}

type seenPost struct {
	method  string
	header  http.Header
	meta    map[string]json.RawMessage
	rawBody []byte
}

func startModernBackend(t *testing.T, h http.Handler) *modernBackend {
	t.Helper()
	mb := &modernBackend{}
	mb.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Method string `json:"method"`
				Params struct {
					Meta map[string]json.RawMessage `json:"_meta"`
				} `json:"params"`
			}
			_ = json.Unmarshal(body, &m)
			mb.mu.Lock()
			mb.seen = append(mb.seen, seenPost{m.Method, r.Header.Clone(), m.Params.Meta, body})
			mb.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		// Listen streams hold requests open: Close alone would wait for them.
		mb.ts.CloseClientConnections()
		mb.ts.Close()
	})
	return mb
}

func (mb *modernBackend) posts() []seenPost {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]seenPost(nil), mb.seen...)
}

// last returns the last POST of method.
func (mb *modernBackend) last(t *testing.T, method string) seenPost {
	t.Helper()
	ps := mb.posts()
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].method == method {
			return ps[i]
		}
	}
	t.Fatalf("no %s POST among %d", method, len(ps))
	return seenPost{}
}

func (mb *modernBackend) server(name string) *mcpmeshv1.Server {
	return &mcpmeshv1.Server{
		Name:      name,
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: mb.ts.URL + "/mcp"},
	}
}

func TestModernBackend(t *testing.T) {
	e := newEnv(t)
	s := newMCPServer("m", 0)
	mb := startModernBackend(t, server.NewStreamableHTTPServer(s))
	b := e.readyBackend(mb.server("m"))

	for _, p := range mb.posts() {
		if p.method == "initialize" {
			t.Fatalf("a 2026-07-28 backend got initialize")
		}
		if sid := p.header.Get("Mcp-Session-Id"); sid != "" {
			t.Errorf("%s carried Mcp-Session-Id %q", p.method, sid)
		}
	}
	if first := mb.posts()[0].method; first != "server/discover" {
		t.Errorf("first POST %s, want server/discover", first)
	}
	if v := b.eps[0].version.Load(); v == nil || *v != mcp.ProtocolVersion20260728 {
		t.Errorf("endpoint version %v, want 2026-07-28", v)
	}
	cat, ok := b.Catalog()
	if !ok || len(cat.Lists[catalog.Tools]) != 4 {
		t.Fatalf("catalog %v %v, want 4 tools", ok, cat.Lists[catalog.Tools])
	}

	// No upstream session per client: per-client state travels per request.
	cs := clientSession("a")
	up, err := b.OpenSession(context.Background(), cs.Init)
	if err != nil || !up.IsZero() {
		t.Fatalf("OpenSession = %+v, %v; want no session", up, err)
	}
	res, err := b.Request(context.Background(), Request{
		Method: "tools/call", Params: json.RawMessage(`{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":"p1"}}`),
		Client: cs, Caller: &Caller{Capabilities: json.RawMessage(`{"sampling":{}}`), Name: "alice", Version: "9", LogLevel: "warning"},
	})
	if err != nil || !strings.Contains(string(res), "m:hi") {
		t.Fatalf("tools/call = %s, %v", res, err)
	}
	call := mb.last(t, "tools/call")
	for h, want := range map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo", "Mcp-Protocol-Version": "2026-07-28"} {
		if got := call.header.Get(h); got != want {
			t.Errorf("tools/call header %s = %q, want %q", h, got, want)
		}
	}
	for k, want := range map[string]string{
		mcp.MetaKeyProtocolVersion:    `"2026-07-28"`,
		mcp.MetaKeyClientInfo:         `{"name":"alice","version":"9"}`,
		mcp.MetaKeyClientCapabilities: `{"sampling":{}}`,
		mcp.MetaKeyLogLevel:           `"warning"`,
		"progressToken":               `"p1"`,
	} {
		if got := string(call.meta[k]); got != want {
			t.Errorf("tools/call _meta %s = %s, want %s", k, got, want)
		}
	}
	// The gateway's own requests carry its identity and capabilities.
	list := mb.last(t, "tools/list")
	if got := string(list.meta[mcp.MetaKeyClientCapabilities]); got != string(defaultClientCapabilities) {
		t.Errorf("tools/list capabilities %s, want the gateway's", got)
	}
	if !strings.Contains(string(list.meta[mcp.MetaKeyClientInfo]), `"mcpmesh"`) {
		t.Errorf("tools/list clientInfo %s, want mcpmesh", list.meta[mcp.MetaKeyClientInfo])
	}
	// logging/setLevel has no method in 2026-07-28: answered here.
	n := len(mb.posts())
	if res, err := b.Request(context.Background(), Request{Method: "logging/setLevel", Params: json.RawMessage(`{"level":"info"}`), Client: cs}); err != nil || string(res) != "{}" {
		t.Errorf("logging/setLevel = %s, %v", res, err)
	}
	if len(mb.posts()) != n {
		t.Errorf("logging/setLevel reached the backend")
	}
	// A method the backend lacks is its -32601 (HTTP 404), not a lost connection.
	if _, err := b.Request(context.Background(), Request{Method: "no/such"}); !isMethodNotFound(err) {
		t.Errorf("unknown method: %v, want -32601", err)
	}
	if !b.Connected() {
		t.Errorf("an unknown method cost the connection")
	}

	// list_changed comes over subscriptions/listen and refreshes the lists.
	s.AddTool(mcp.NewTool("added"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	})
	e.waitFor("the added tool in the catalog", func() bool {
		c, _ := b.Catalog()
		return len(c.Lists[catalog.Tools]) == 5
	})
}

func isMethodNotFound(err error) bool {
	var je *jsonrpc.Error
	return errors.As(err, &je) && je.Code == jsonrpc.CodeMethodNotFound
}

func TestModernListCacheHints(t *testing.T) {
	e := newEnv(t)
	mb := startModernBackend(t, server.NewStreamableHTTPServer(
		server.NewMCPServer("c", "1", server.WithToolCapabilities(true), server.WithCacheHints(60_000, mcp.CacheScopePublic))))
	b := e.readyBackend(mb.server("c"))
	cat, _ := b.Catalog()
	if got := cat.Cache[catalog.Tools]; got != (catalog.Cache{TTLms: 60_000, Public: true}) {
		t.Errorf("tools hint %+v, want 60000 public", got)
	}
}

func TestEraPinnedByHeader(t *testing.T) {
	for _, tc := range []struct {
		version, want string
	}{
		{"2025-11-25", "initialize"},
		{"2026-07-28", "server/discover"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			e := newEnv(t)
			mb := startModernBackend(t, server.NewStreamableHTTPServer(newMCPServer("p", 0)))
			cfg := mb.server("p")
			cfg.Http.Headers = map[string]string{"mcp-protocol-version": tc.version}
			b := e.readyBackend(cfg)
			if first := mb.posts()[0].method; first != tc.want {
				t.Errorf("first POST %s, want %s", first, tc.want)
			}
			if v := b.eps[0].version.Load(); v == nil || *v != tc.version {
				t.Errorf("version %v, want %s", v, tc.version)
			}
		})
	}
}

// TestModernResourceSubscriptions drives a hand-written 2026-07-28 server
// (mcp-go's offers no way to send resources/updated on a listen stream):
// a client's resources/subscribe becomes a subscriptions/listen with its
// resourceSubscriptions, and the updates come back tagged with the client.
func TestModernResourceSubscriptions(t *testing.T) {
	type note struct {
		client string
		m      *jsonrpc.Message
	}
	notes := make(chan note, 16)
	e := newEnv(t, func(o *ManagerOptions) {
		o.OnNotification = func(_, client string, m *jsonrpc.Message) { notes <- note{client, m} }
		o.MaxSessions = 1 // as many subscription streams as client sessions
	})
	listens := make(chan []string, 16)
	fake := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m, err := jsonrpc.Parse(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply := func(res string) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(jsonrpc.Response(m.ID, json.RawMessage(res)))
		}
		switch m.Method {
		case "server/discover":
			reply(`{"supportedVersions":["2026-07-28"],"capabilities":{"resources":{"subscribe":true}},"resultType":"complete","ttlMs":0,"cacheScope":"private"}`)
		case "resources/list":
			reply(`{"resources":[{"uri":"x://a","name":"a"}],"resultType":"complete"}`)
		case "resources/templates/list":
			reply(`{"resourceTemplates":[],"resultType":"complete"}`)
		case "subscriptions/listen":
			var p struct {
				Notifications mcp.SubscriptionFilter `json:"notifications"`
			}
			_ = json.Unmarshal(m.Params, &p)
			uris := p.Notifications.ResourceSubscriptions
			if len(uris) > 0 { // not the connection's list_changed stream
				listens <- uris
			}
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			send := func(method string, params any) {
				b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
				fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
				w.(http.Flusher).Flush()
			}
			granted := []string{}
			for _, u := range uris {
				if u != "x://refused" {
					granted = append(granted, u)
				}
			}
			if slices.Contains(uris, "x://b") && !slices.Contains(uris, "x://c") {
				// A slow acknowledgement: a concurrent subscribe of the same
				// client must wait for it, not end this stream.
				time.Sleep(500 * time.Millisecond)
			}
			send("notifications/subscriptions/acknowledged", map[string]any{"notifications": map[string]any{"resourceSubscriptions": granted}})
			for _, u := range granted {
				send("notifications/resources/updated", map[string]any{"uri": u})
			}
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(jsonrpc.ErrorResponse(m.ID, jsonrpc.Errorf(jsonrpc.CodeMethodNotFound, "no %s", m.Method)))
		}
	})
	mb := startModernBackend(t, fake)
	b := e.readyBackend(mb.server("r"))
	cs := clientSession("a")
	sub := func(method, uri string) error {
		_, err := b.Request(context.Background(), Request{Method: method, Params: json.RawMessage(`{"uri":"` + uri + `"}`), Client: cs})
		return err
	}
	if err := sub("resources/subscribe", "x://a"); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if got := recvWithin(t, listens, "the subscriptions/listen"); len(got) != 1 || got[0] != "x://a" {
		t.Errorf("listen asked for %v, want [x://a]", got)
	}
	n := recvWithin(t, notes, "resources/updated")
	if n.client != "a" || n.m.Method != "notifications/resources/updated" || !strings.Contains(string(n.m.Params), "x://a") {
		t.Errorf("got %s %s for %q, want x://a's update for client a", n.m.Method, n.m.Params, n.client)
	}
	// Two subscribes of one client at once both succeed: each replaces the
	// client's stream, one after the other.
	errs := make(chan error, 2)
	go func() { errs <- sub("resources/subscribe", "x://b") }()
	recvWithin(t, listens, "x://b's subscriptions/listen") // b's stream is waiting for its slow acknowledgement
	go func() { errs <- sub("resources/subscribe", "x://c") }()
	for range 2 {
		if err := recvWithin(t, errs, "a concurrent subscribe"); err != nil {
			t.Errorf("concurrent subscribe: %v", err)
		}
	}
	// A second client's stream would pass the bound: refused, saying why.
	_, err := b.Request(context.Background(), Request{Method: "resources/subscribe", Params: json.RawMessage(`{"uri":"x://a"}`), Client: clientSession("b")})
	if err == nil || !strings.Contains(err.Error(), "subscription streams") {
		t.Errorf("subscribe beyond the bound: %v, want an error naming it", err)
	}
	err = sub("resources/subscribe", "x://refused")
	if err == nil || !strings.Contains(err.Error(), "did not grant") {
		t.Errorf("refused subscribe: %v, want an error saying it was not granted", err)
	}
	if err := sub("resources/unsubscribe", "x://a"); err != nil {
		t.Errorf("unsubscribe: %v", err)
	}
	if err := b.CloseSession(context.Background(), cs); err != nil {
		t.Errorf("CloseSession: %v", err)
	}
}
