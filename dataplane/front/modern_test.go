package front_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
)

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{}},` +
	`"io.modelcontextprotocol/clientInfo":{"name":"modern","version":"7"},"io.modelcontextprotocol/logLevel":"info"}`

// modernCall is a tools/call of the stateless revision with meta as _meta.
func modernCall(name, meta string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":"m1","method":"tools/call","params":{"name":%q,%s}}`, name, meta)
}

func modernHeaders(method, name string) map[string]string {
	h := map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": method}
	if name != "" {
		h["Mcp-Name"] = name
	}
	return h
}

// The checks of a stateless request, in mcp-go's order: each case breaks
// only the check it names and everything after it, so a wrong order shows
// as a wrong code.
func TestModernValidation(t *testing.T) {
	r := start(t, secretA, front.Options{})
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range h {
			out[a] = b
		}
		out[k] = v
		return out
	}
	good := modernHeaders("tools/call", "echo")
	tests := []struct {
		name   string
		hdr    map[string]string
		body   string
		status int
		code   int
		want   string
	}{
		{"Last-Event-ID first", with(with(good, "Last-Event-ID", "7"), "Mcp-Method", ""), modernCall("echo", `"_meta":{}`),
			400, front.CodeHeaderMismatch, "Last-Event-ID"},
		{"_meta modern, no header", with(good, "Mcp-Protocol-Version", ""), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "header is required"},
		{"header modern, no _meta", good, `{"jsonrpc":"2.0","id":"m1","method":"tools/call","params":{"name":"echo"}}`,
			400, jsonrpc.CodeInvalidParams, "protocolVersion"},
		{"header modern, _meta without version", good, modernCall("echo", `"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}`),
			400, jsonrpc.CodeInvalidParams, "protocolVersion"},
		{"header and _meta differ", good, modernCall("echo", `"_meta":{"io.modelcontextprotocol/protocolVersion":"v999.0.0"}`),
			400, front.CodeHeaderMismatch, "does not match"},
		{"_meta modern, header legacy", with(good, "Mcp-Protocol-Version", "2025-11-25"), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "does not match"},
		{"version not served", with(with(good, "Mcp-Protocol-Version", "v999.0.0"), "Mcp-Method", ""), modernCall("echo", `"_meta":{"io.modelcontextprotocol/protocolVersion":"v999.0.0"}`),
			400, front.CodeUnsupportedProtocol, "unsupported protocol version"},
		{"no clientCapabilities", with(good, "Mcp-Method", ""), modernCall("echo", `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`),
			400, jsonrpc.CodeInvalidParams, "clientCapabilities"},
		{"clientCapabilities not an object", with(good, "Mcp-Method", ""), modernCall("echo", `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}`),
			400, jsonrpc.CodeInvalidParams, "clientCapabilities"},
		{"no Mcp-Method", with(good, "Mcp-Method", ""), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "Mcp-Method header is required"},
		{"Mcp-Method differs", with(good, "Mcp-Method", "prompts/list"), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "does not match the request's method"},
		{"Mcp-Method is case-sensitive", with(good, "Mcp-Method", "TOOLS/CALL"), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "does not match the request's method"},
		{"no Mcp-Name", with(good, "Mcp-Name", ""), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "Mcp-Name header is required"},
		{"Mcp-Name differs", with(good, "Mcp-Name", "wrong_tool_name"), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, `"wrong_tool_name" does not match params.name "echo"`},
		{"bad base64 Mcp-Name", with(good, "Mcp-Name", "=?base64?!!!?="), modernCall("echo", modernMeta),
			400, front.CodeHeaderMismatch, "base64"},
		{"method not found is 404", modernHeaders("nope/nope", ""), `{"jsonrpc":"2.0","id":"m1","method":"nope/nope","params":{` + modernMeta + `}}`,
			404, jsonrpc.CodeMethodNotFound, "method not found"},
		{"a POSTed response", good, `{"jsonrpc":"2.0","id":"srv-1","result":{}}`,
			400, jsonrpc.CodeInvalidRequest, "does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, r.url+"/mcp", tt.hdr, tt.body)
			expectError(t, resp, body, tt.status, tt.want)
			m, _ := jsonrpc.Parse(body)
			if m.Error.Code != tt.code {
				t.Fatalf("code %d, want %d: %s", m.Error.Code, tt.code, body)
			}
			if tt.code != jsonrpc.CodeInvalidRequest && string(m.ID) != `"m1"` {
				t.Fatalf("the error does not echo the id: %s", body)
			}
			if resp.Header.Get("Mcp-Session-Id") != "" {
				t.Fatal("a stateless answer carries a session id")
			}
		})
	}

	t.Run("-32022 lists what is served", func(t *testing.T) {
		resp, body := post(t, r.url+"/mcp", with(modernHeaders("server/discover", ""), "Mcp-Protocol-Version", "v999.0.0"),
			`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"v999.0.0","io.modelcontextprotocol/clientCapabilities":{}}}}`)
		if resp.StatusCode != 400 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		m, _ := jsonrpc.Parse(body)
		var data struct {
			Supported []string
			Requested string
		}
		if err := json.Unmarshal(m.Error.Data, &data); err != nil || data.Requested != "v999.0.0" || strings.Join(data.Supported, ",") != strings.Join(front.SupportedVersions, ",") {
			t.Fatalf("data %s (%v)", m.Error.Data, err)
		}
	})
}

// A valid stateless request reaches the router with a session made of its
// _meta, whatever Mcp-Session-Id it carries; errors get their HTTP status
// from the code.
func TestModernRequests(t *testing.T) {
	r := start(t, secretA, front.Options{})
	hdr := modernHeaders("tools/call", "echo")
	hdr["Mcp-Session-Id"] = "not-a-session"
	resp, body := post(t, r.url+"/mcp?pagination=true", hdr, modernCall("echo", modernMeta))
	if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") != "" || !strings.Contains(string(body), `client=modern/7 up= proto=2026-07-28 paginate=true transport=streamable-http caps={\"roots\":{}}`) {
		t.Fatalf("echo: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	h := r.router.handledMethods()
	if s := h[len(h)-1].s; s.ID != "" || s.LogLevel != "info" || !s.Stateless() {
		t.Fatalf("session %+v", s)
	}

	// Header values are trimmed (net/http does it), and base64 decoded.
	for _, name := range []string{"  echo  ", "=?base64?ZWNobw==?="} {
		resp, body = post(t, r.url+"/mcp", modernHeaders("tools/call", name), modernCall("echo", modernMeta))
		if resp.StatusCode != 200 {
			t.Fatalf("Mcp-Name %q: %d %s", name, resp.StatusCode, body)
		}
	}

	// Errors of the router: -32602 is 400, an internal error 200.
	resp, body = post(t, r.url+"/mcp", modernHeaders("tools/call", "nope"), modernCall("nope", modernMeta))
	expectError(t, resp, body, 400, "unknown tool")
	resp, body = post(t, r.url+"/mcp", modernHeaders("tools/call", "fail"), modernCall("fail", modernMeta))
	expectError(t, resp, body, 200, "backend exploded")

	// Progress turns the answer into an event stream, status 200.
	resp, body = post(t, r.url+"/mcp", modernHeaders("tools/call", "progress"), modernCall("progress", modernMeta))
	if ev := events(t, body); resp.StatusCode != 200 || len(ev) != 4 || !strings.Contains(ev[3], `"id":"m1"`) {
		t.Fatalf("progress: %d %q", resp.StatusCode, ev)
	}

	// A notification needs no capabilities.
	resp, body = post(t, r.url+"/mcp", modernHeaders("notifications/cancelled", ""),
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notification: %d %s", resp.StatusCode, body)
	}

	// GET and DELETE do not exist in the stateless revision.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequestWithContext(t.Context(), m, r.url+"/mcp", nil)
		req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
		req.Header.Set("Accept", "text/event-stream")
		resp, body := do(t, req)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("%s: %d %v %s", m, resp.StatusCode, resp.Header, body)
		}
	}
}

// A subscriptions/listen request lasts until Close.
func TestModernListenEndsAtClose(t *testing.T) {
	router := newFakeRouter()
	f := front.New(front.Options{Router: router, Logger: quiet()})
	srv := httptestServer(t, f)
	done := make(chan []byte, 1)
	go func() {
		_, body := post(t, srv+"/mcp", modernHeaders("subscriptions/listen", ""),
			`{"jsonrpc":"2.0","id":"L1","method":"subscriptions/listen","params":{`+modernMeta+`,"notifications":{"toolsListChanged":true}}}`)
		done <- body
	}()
	receive(t, router.listening, "listen")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if body := receive(t, done, "the listen answer"); !strings.Contains(string(body), `"id":"L1","result"`) {
		t.Fatalf("listen answer %s", body)
	}
}

// mcp-go's default client goes stateless when server/discover succeeds.
func TestModernMCPGoClient(t *testing.T) {
	router := newFakeRouter()
	router.discover = true
	f := front.New(front.Options{Router: router, Logger: quiet()})
	t.Cleanup(func() { _ = f.Close() })
	srv := httptestServer(t, f)
	c, err := client.NewStreamableHttpClient(srv + "/mcp")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "go", Version: "2"}
	if _, err := c.Initialize(t.Context(), init); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	req := mcp.CallToolRequest{}
	req.Params.Name = "echo"
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(mcp.TextContent).Text; !strings.Contains(got, "client=go/2 up= proto=2026-07-28") {
		t.Fatalf("echo = %q", got)
	}
	for _, h := range router.handledMethods() {
		if h.s.ID != "" || h.s.Protocol != "2026-07-28" {
			t.Fatalf("%s reached the router as %+v", h.method, h.s)
		}
	}
}

// httptestServer serves f until the test ends (after the test's own Close).
func httptestServer(t *testing.T, f *front.Front) string {
	ts := httptest.NewServer(f.Handler())
	t.Cleanup(func() {
		_ = f.Close()
		ts.Close()
	})
	return ts.URL
}
