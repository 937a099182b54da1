package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// exchange is one POSTed JSON-RPC request and mcp-go's HTTP answer to it.
type exchange struct {
	method      string
	status      int
	contentType string
	body        []byte
}

// recorder is an http.RoundTripper that keeps every POST exchange.
type recorder struct {
	tr *http.Transport

	mu  sync.Mutex
	log []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost {
		return r.tr.RoundTrip(req)
	}
	reqBody, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	var probe struct {
		Method string `json:"method"`
	}
	_ = json.Unmarshal(reqBody, &probe)
	resp, err := r.tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.log = append(r.log, exchange{method: probe.Method, status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body})
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) lists() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, e := range r.log {
		if _, ok := listKinds[mcp.MCPMethod(e.method)]; ok {
			out = append(out, e)
		}
	}
	return out
}

// dialRecorded is dial with every POST exchange recorded.
func (g *pagedGateway) dialRecorded(t *testing.T, kind clientKind) (*client.Client, *recorder) {
	t.Helper()
	rec := &recorder{tr: &http.Transport{}}
	t.Cleanup(rec.tr.CloseIdleConnections)
	tr, err := transport.NewStreamableHTTP(g.url+"/mcp",
		transport.WithHTTPBasicClient(&http.Client{Transport: rec}), transport.WithHTTPLogger(quietLogger()))
	if err != nil {
		t.Fatalf("new transport: %v", err)
	}
	cli := client.NewClient(tr)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = cli.Close()
	})
	if err := cli.Start(ctx); err != nil {
		t.Fatalf("start %s client: %v", kind, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
	if kind == streamableModern {
		init.Params.ProtocolVersion = mcp.ProtocolVersion20260728
	}
	init.Params.ClientInfo = mcp.Implementation{Name: "paging-test", Version: "0"}
	if _, err := cli.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize %s client: %v", kind, err)
	}
	return cli, rec
}

// servedBy records which mcp-go server ran each request, by method.
type servedBy struct {
	mu sync.Mutex
	m  map[mcp.MCPMethod]map[*server.MCPServer]int
}

func (sb *servedBy) hooks() *server.Hooks {
	sb.m = map[mcp.MCPMethod]map[*server.MCPServer]int{}
	h := &server.Hooks{}
	h.AddBeforeAny(func(ctx context.Context, _ any, method mcp.MCPMethod, _ any) {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		if sb.m[method] == nil {
			sb.m[method] = map[*server.MCPServer]int{}
		}
		sb.m[method][server.ServerFromContext(ctx)]++
	})
	return h
}

func (sb *servedBy) only(method mcp.MCPMethod) (*server.MCPServer, bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if len(sb.m[method]) != 1 {
		return nil, false
	}
	for s := range sb.m[method] {
		return s, true
	}
	return nil, false
}

// TestListsServedByTwin checks that the streamable guard serves list requests
// from the item-less twin server (so mcp-go never copies and sorts the whole
// list), other requests from the real one, and that a client cannot tell the
// difference: for both protocol revisions, every list answer (paged and
// whole, of every kind) has the same status, content type and bytes as the
// one mcp-go's own server gives through the hooks.
func TestListsServedByTwin(t *testing.T) {
	src := newLiveSource(newMixed(t, "a", 30, 3, 5, 2, 0), newMixed(t, "b", 25, 4, 6, 3, 0))
	var fastSeen, slowSeen servedBy
	fast := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 4, revision: 3, hooks: fastSeen.hooks()})
	slow := startPagedGateway(t, Adapt[*liveBackend](src), gatewayOpts{enabled: true, pageSize: 4, revision: 3, noGuards: true, hooks: slowSeen.hooks()})

	for _, kind := range []clientKind{streamableLegacy, streamableModern} {
		t.Run(string(kind), func(t *testing.T) {
			fastCli, fastRec := fast.dialRecorded(t, kind)
			slowCli, slowRec := slow.dialRecorded(t, kind)
			for _, g := range []*pagedGateway{fast, slow} {
				g.setPaging(true, 4, 3)
			}
			for lk := range listers {
				if got, want := walk(t, lk, 4, fastCli), walk(t, lk, 4, slowCli); len(got) == 0 || len(got) != len(want) {
					t.Fatalf("%s: twin walked %d items, mcp-go's server %d", lk, len(got), len(want))
				}
			}
			for _, g := range []*pagedGateway{fast, slow} {
				g.setPaging(false, 4, 3)
			}
			for lk := range listers {
				walk(t, lk, 0, fastCli)
				walk(t, lk, 0, slowCli)
			}
			callTool(t, fastCli, "a__t0001", "")

			got, want := fastRec.lists(), slowRec.lists()
			if len(got) == 0 || len(got) != len(want) {
				t.Fatalf("recorded %d list exchanges via the twin, %d via mcp-go's server", len(got), len(want))
			}
			for i := range got {
				g, w := got[i], want[i]
				if g.method != w.method || g.status != w.status || g.contentType != w.contentType || !bytes.Equal(g.body, w.body) {
					t.Fatalf("%s exchange %d differs:\ntwin:  %d %s %s\nmcp-go: %d %s %s",
						g.method, i, g.status, g.contentType, g.body, w.status, w.contentType, w.body)
				}
			}
			if kind == streamableModern && !bytes.Contains(got[0].body, []byte(`"ttlMs"`)) {
				t.Fatalf("2026-07-28 list result lacks its cache hints: %s", got[0].body)
			}
		})
	}

	for lk := range listers {
		method := mcp.MCPMethod(lk.String())
		if s, ok := fastSeen.only(method); !ok || s != fast.srv.lister {
			t.Errorf("guarded %s served by %p (alone: %v), want the twin %p", method, s, ok, fast.srv.lister)
		}
		if s, ok := slowSeen.only(method); !ok || s != slow.srv.mcp {
			t.Errorf("unguarded %s served by %p (alone: %v), want mcp-go's server %p", method, s, ok, slow.srv.mcp)
		}
	}
	if s, ok := fastSeen.only(mcp.MethodToolsCall); !ok || s != fast.srv.mcp {
		t.Errorf("tools/call served by %p (alone: %v), want the real server %p", s, ok, fast.srv.mcp)
	}
}
