package front_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
	"github.com/mcpmesh/mcpmesh/dataplane/jsonrpc"
	"github.com/mcpmesh/mcpmesh/dataplane/keys"
)

const echoCall = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}`

func TestHTTPChecks(t *testing.T) {
	r := start(t, secretA, front.Options{MaxBody: 1024})
	sid := initRaw(t, r.url, initBody)
	big := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"x":"` + strings.Repeat("a", 2000) + `"}}}`
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   string
		status int
		want   string
	}{
		{"accept json only", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "application/json"}, echoCall, 406, "does not allow text/event-stream"},
		{"accept sse only", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "text/event-stream"}, echoCall, 406, "does not allow application/json"},
		{"accept refused by q=0", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "application/json;q=0, text/event-stream"}, echoCall, 406, "application/json"},
		{"accept html", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "text/html"}, echoCall, 406, "application/json or text/event-stream"},
		{"accept wildcard", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "*/*"}, echoCall, 200, ""},
		{"accept ranges", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "application/*, text/*;q=0.5"}, echoCall, 200, ""},
		{"content type", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Content-Type": "text/plain"}, echoCall, 415, `not "text/plain"`},
		{"content type with charset", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Content-Type": "application/json; charset=utf-8"}, echoCall, 200, ""},
		{"body too large", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid}, big, 413, "exceeds the limit of 1024 bytes"},
		{"protocol header", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "1999-01-01"}, echoCall, 400, `"1999-01-01"`},
		{"known protocol header", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"}, echoCall, 200, ""},
		{"no session", "POST", "/mcp", nil, echoCall, 400, "missing Mcp-Session-Id"},
		{"not json", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid}, `{"jsonrpc":`, 400, "parse error"},
		{"not json-rpc", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid}, `{"id":1,"method":"x"}`, 400, `"jsonrpc" must be "2.0"`},
		{"empty body", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid}, ``, 400, "parse error"},
		{"origin", "POST", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Origin": "https://evil.example"}, echoCall, 403, `origin "https://evil.example" is not allowed`},
		{"origin on sse", "GET", "/sse", map[string]string{"Origin": "https://evil.example"}, "", 403, "not allowed"},
		{"method", "PUT", "/mcp", nil, echoCall, 405, "method PUT is not allowed on /mcp"},
		{"get accept", "GET", "/mcp", map[string]string{"Mcp-Session-Id": sid, "Accept": "application/json"}, "", 406, "text/event-stream"},
		{"get without session", "GET", "/mcp", map[string]string{"Accept": "text/event-stream"}, "", 400, "missing Mcp-Session-Id"},
		{"delete without session", "DELETE", "/mcp", nil, "", 400, "missing Mcp-Session-Id"},
		{"sse post", "POST", "/sse", nil, "", 405, "not allowed on /sse"},
		{"message get", "GET", "/message", nil, "", 405, "not allowed on /message"},
		{"message without id", "POST", "/message", nil, echoCall, 400, "missing sessionId"},
		{"message content type", "POST", "/message?sessionId=x", map[string]string{"Content-Type": "text/plain"}, echoCall, 415, "application/json"},
		{"message bad id", "POST", "/message?sessionId=hello", nil, echoCall, 404, "not base64url"},
		{"message, streamable session", "POST", "/message?sessionId=" + sid, nil, echoCall, 404, "no open /sse stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, r.url+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, body := do(t, req)
			if tt.status == 200 {
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				return
			}
			expectError(t, resp, body, tt.status, tt.want)
		})
	}
	t.Run("chunked body too large", func(t *testing.T) {
		pr := strings.NewReader(big)
		req, _ := http.NewRequestWithContext(t.Context(), "POST", r.url+"/mcp", struct{ *strings.Reader }{pr})
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		resp, body := do(t, req)
		expectError(t, resp, body, 413, "exceeds the limit of 1024 bytes")
	})
}

func TestInitialize(t *testing.T) {
	r := start(t, secretA, front.Options{})
	caps := `{"x":"` + strings.Repeat("c", front.MaxCapabilities) + `"}`
	tests := []struct {
		name    string
		body    string
		session bool
		code    int
		want    string
	}{
		{"ok", initBody, true, 0, `"protocolVersion":"2025-11-25"`},
		{"old version negotiated", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}`, true, 0, `"protocolVersion":"2025-03-26"`},
		{"unknown version answered with the latest", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2030-01-01"}}`, true, 0, `"protocolVersion":"2025-11-25"`},
		{"no params", `{"jsonrpc":"2.0","id":1,"method":"initialize"}`, true, 0, `"protocolVersion":"2025-03-26"`},
		{"capabilities too large", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":` + caps + `}}`, false, jsonrpc.CodeInvalidParams, "at most 2048"},
		{"capabilities not an object", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":[]}}`, false, jsonrpc.CodeInvalidParams, "must be an object"},
		{"router refuses", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"refuse-me"}}}`, false, jsonrpc.CodeInvalidParams, "refused"},
		{"upstream too large", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"huge-upstream"}}}`, false, jsonrpc.CodeInternalError, "more than the 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, r.url+"/mcp", nil, tt.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Mcp-Session-Id") != ""; got != tt.session {
				t.Fatalf("session id given = %v, want %v", got, tt.session)
			}
			m, err := jsonrpc.Parse(body)
			if err != nil || string(m.ID) != "1" {
				t.Fatalf("answer %s: %v", body, err)
			}
			if tt.code != 0 {
				if m.Error == nil || m.Error.Code != tt.code || !strings.Contains(m.Error.Message, tt.want) {
					t.Fatalf("answer %s, want error %d saying %q", body, tt.code, tt.want)
				}
				return
			}
			if !strings.Contains(string(m.Result), tt.want) {
				t.Fatalf("result %s does not contain %s", m.Result, tt.want)
			}
		})
	}
	t.Run("long client info is cut at a rune boundary", func(t *testing.T) {
		name := "x" + strings.Repeat("é", 40)
		sid := initRaw(t, r.url, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"`+name+`","version":"1"}}}`)
		_, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall)
		if want := "client=x" + strings.Repeat("é", 31) + "/1 "; !strings.Contains(string(body), want) {
			t.Fatalf("echo %s does not contain %q", body, want)
		}
	})
}

// sessionIDCases are ids a replica must refuse with 404, and why.
func TestSessionIDRejected(t *testing.T) {
	c := newClock()
	r := start(t, secretA, front.Options{Now: c.Now, SessionMaxAge: time.Hour})
	foreign := start(t, secretB, front.Options{Now: c.Now})
	sid := initRaw(t, r.url, initBody)
	raw, err := base64.RawURLEncoding.DecodeString(sid)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return enc(b)
	}
	sseID := openSSE(t, r.url+"/sse").id

	tests := []struct{ name, id, want string }{
		{"garbage", "hello", "not base64url"},
		{"mcp-go default id", "mcp-session-0b5e8c2e-9a3b-4a0e-8f7e-0c4f5e6d7a8b", "unknown session id version"},
		{"too long", strings.Repeat("A", 9000), "too long"},
		{"unknown version", flip(0), "unknown session id version 3"},
		{"too short", sid[:20], "too short"},
		{"truncated", enc(raw[:len(raw)-3]), "does not decrypt"},
		{"tampered nonce", flip(8), "does not decrypt"},
		{"tampered ciphertext", flip(30), "does not decrypt"},
		{"tampered tag", flip(len(raw) - 1), "does not decrypt"},
		{"tampered key id", flip(2), "key this data plane does not hold"},
		{"foreign cluster", initRaw(t, foreign.url, initBody), "key this data plane does not hold"},
		{"sse session on /mcp", sseID, "legacy SSE transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": tt.id}, echoCall)
			expectError(t, resp, body, http.StatusNotFound, tt.want)
		})
	}
	if resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall); resp.StatusCode != 200 {
		t.Fatalf("the untouched id is refused: %s", body)
	}
	t.Run("expired", func(t *testing.T) {
		c.Advance(time.Hour - time.Second)
		if resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall); resp.StatusCode != 200 {
			t.Fatalf("refused a second before its max age: %s", body)
		}
		c.Advance(time.Second)
		resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall)
		expectError(t, resp, body, http.StatusNotFound, "expired: issued 1h0m0s ago, the maximum session age is 1h0m0s")
		if s := receive(t, r.router.ended, "Ended"); s.ID != sid {
			t.Fatalf("Ended(%q)", s.ID)
		}
	})
	t.Run("issued in the future", func(t *testing.T) {
		ahead := newClock()
		ahead.Advance(2 * time.Hour)
		k := keys.New()
		k.SetSecret(secretA)
		other := start(t, nil, front.Options{Now: ahead.Now, Keys: k})
		resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": initRaw(t, other.url, initBody)}, echoCall)
		expectError(t, resp, body, http.StatusNotFound, "issued in the future")
	})
}

// Replicas of a cluster share the secret: any of them serves any session.
func TestReplicas(t *testing.T) {
	a, b := start(t, secretA, front.Options{}), start(t, secretA, front.Options{})
	sid := initRaw(t, a.url, initBody)
	resp, body := post(t, b.url+"/mcp?pagination=true", map[string]string{"Mcp-Session-Id": sid}, echoCall)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "client=raw/9 up=up:raw proto=2025-11-25 paginate=true") {
		t.Fatalf("replica b: %d %s", resp.StatusCode, body)
	}
	// DELETE deny-lists the id on the replica that received it only.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, a.url+"/mcp", nil)
	req.Header.Set("Mcp-Session-Id", sid)
	if resp, body := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	receive(t, a.router.ended, "Ended")
	resp, body = post(t, a.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall)
	expectError(t, resp, body, 404, "terminated (DELETE) on this data plane")
	if resp, body := post(t, b.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall); resp.StatusCode != 200 {
		t.Fatalf("replica b after DELETE on a: %d %s", resp.StatusCode, body)
	}
}

func TestSecretRotation(t *testing.T) {
	c := newClock()
	k := keys.NewWithOptions(keys.Options{Grace: 10 * time.Minute, Now: c.Now})
	r := start(t, secretA, front.Options{Now: c.Now, Keys: k, SecretGrace: 5 * time.Minute})
	boot := keys.NewWithOptions(keys.Options{Grace: 10 * time.Minute, Now: c.Now})
	lagging := start(t, secretA, front.Options{Now: c.Now, Keys: boot})
	old := initRaw(t, r.url, initBody)
	k.SetSecret(secretB)
	cur := initRaw(t, r.url, initBody)
	ok := func(url, id string) {
		t.Helper()
		if resp, body := post(t, url+"/mcp", map[string]string{"Mcp-Session-Id": id}, echoCall); resp.StatusCode != 200 {
			t.Fatalf("refused: %s", body)
		}
	}
	ok(r.url, old)
	ok(r.url, cur)
	// A replica that has not seen the new secret yet refuses the new ids.
	resp, body := post(t, lagging.url+"/mcp", map[string]string{"Mcp-Session-Id": cur}, echoCall)
	expectError(t, resp, body, 404, "does not hold")
	ok(lagging.url, old)

	c.Advance(5*time.Minute - time.Second)
	ok(r.url, old)
	c.Advance(time.Second)
	resp, body = post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": old}, echoCall)
	expectError(t, resp, body, 404, "previous cluster secret, whose grace period ended")
	c.Advance(time.Hour)
	resp, body = post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": old}, echoCall)
	expectError(t, resp, body, 404, "grace period ended")
	ok(r.url, cur)
}

func TestStatelessAndNotifications(t *testing.T) {
	r := start(t, secretA, front.Options{})
	tests := []struct {
		name     string
		hdr      map[string]string
		body     string
		status   int
		protocol string
	}{
		// Requests of the stateless revision: modern_test.go.
		{"server/discover", nil, `{"jsonrpc":"2.0","id":1,"method":"server/discover"}`, 200, ""},
		{"old _meta version", nil, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(r.router.handledMethods())
			resp, body := post(t, r.url+"/mcp", tt.hdr, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tt.status != 200 {
				expectError(t, resp, body, tt.status, "missing Mcp-Session-Id")
				return
			}
			h := r.router.handledMethods()
			if len(h) != before+1 || h[before].s.ID != "" || h[before].s.Protocol != tt.protocol {
				t.Fatalf("router saw %+v", h[before:])
			}
		})
	}

	sid := initRaw(t, r.url, initBody)
	resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp.StatusCode != http.StatusAccepted || len(body) != 0 {
		t.Fatalf("notification: %d %s", resp.StatusCode, body)
	}
	if n := r.router.notifications(); len(n) != 1 || n[0] != "notifications/initialized" {
		t.Fatalf("notified %v", n)
	}
	resp, body = post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, `{"jsonrpc":"2.0","id":"srv-9","result":{"roots":[]}}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("response: %d %s", resp.StatusCode, body)
	}
	if m := receive(t, r.router.responses, "Respond"); string(m.ID) != `"srv-9"` {
		t.Fatalf("Respond(%s)", m.ID)
	}
	resp, body = post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"fail"}}`)
	if m, _ := jsonrpc.Parse(body); resp.StatusCode != 200 || m.Error == nil || m.Error.Code != jsonrpc.CodeInternalError || m.Error.Message != "backend exploded" {
		t.Fatalf("failing call: %d %s", resp.StatusCode, body)
	}
}

// events reads an SSE body into its events' data.
func events(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for block := range strings.SplitSeq(strings.TrimSpace(string(body)), "\n\n") {
		lines := strings.Split(block, "\n")
		if lines[0] != "event: message" {
			t.Fatalf("event %q", block)
		}
		var data []string
		for _, l := range lines[1:] {
			data = append(data, strings.TrimPrefix(l, "data: "))
		}
		out = append(out, strings.Join(data, "\n"))
	}
	return out
}

func TestPostAnswers(t *testing.T) {
	r := start(t, secretA, front.Options{})
	sid := initRaw(t, r.url, initBody)
	old := initRaw(t, r.url, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}`)

	t.Run("json fast path", func(t *testing.T) {
		resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid}, echoCall)
		if resp.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
			t.Fatalf("%s: %s", resp.Header.Get("Content-Type"), body)
		}
	})
	t.Run("event stream once the router sent", func(t *testing.T) {
		resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": sid},
			`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"progress","_meta":{"progressToken":"p"}}}`)
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("Content-Type %s", resp.Header.Get("Content-Type"))
		}
		ev := events(t, body)
		if len(ev) != 4 || !strings.Contains(ev[0], `"progress":1`) || !strings.HasPrefix(ev[3], `{"jsonrpc":"2.0","id":5,"result":`) {
			t.Fatalf("events %q", ev)
		}
	})
	tests := []struct {
		name   string
		sid    string
		body   string
		status int
		want   []string // ids of the answers, in order
	}{
		{"batch", old, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},` + echoCall + `,{"jsonrpc":"2.0","id":3,"method":"initialize"},{"x":1}]`, 200, []string{"1", "2", "3", "null"}},
		{"batch of notifications", old, `[{"jsonrpc":"2.0","method":"notifications/initialized"}]`, 202, nil},
		{"empty batch", old, `[]`, 400, nil},
		{"batch on 2025-11-25", sid, `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, 400, nil},
		{"batch without session", "", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": tt.sid}, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tt.status != 200 {
				return
			}
			var answers []struct{ ID json.RawMessage }
			if err := json.Unmarshal(body, &answers); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			var ids []string
			for _, a := range answers {
				ids = append(ids, string(a.ID))
			}
			if strings.Join(ids, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("answer ids %v, want %v (%s)", ids, tt.want, body)
			}
		})
	}
	t.Run("batch turned into a stream", func(t *testing.T) {
		resp, body := post(t, r.url+"/mcp", map[string]string{"Mcp-Session-Id": old},
			`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"progress"}}]`)
		ev := events(t, body)
		if resp.Header.Get("Content-Type") != "text/event-stream" || len(ev) != 5 ||
			!strings.HasPrefix(ev[0], `{"jsonrpc":"2.0","id":1,`) || !strings.HasPrefix(ev[4], `{"jsonrpc":"2.0","id":2,`) {
			t.Fatalf("events %q", ev)
		}
	})
	t.Run("client disconnect cancels the request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/mcp",
			strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow"}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
		time.Sleep(50 * time.Millisecond)
		cancel()
		if err := receive(t, r.router.cancelled, "cancellation"); !errors.Is(err, context.Canceled) {
			t.Fatalf("ctx ended with %v", err)
		}
		<-done
	})
}

// stream is a raw open event stream.
type stream struct {
	resp *http.Response
	rd   *bufio.Reader
	id   string // SSE: the session id of the endpoint event
	data string // SSE: the endpoint event's data
}

func (s *stream) next(t *testing.T) (event, data string) {
	t.Helper()
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && (event != "" || data != ""):
			return event, data
		case strings.HasPrefix(line, ": "):
			return "comment", line[2:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if data != "" {
				data += "\n"
			}
			data += line[6:]
		}
	}
}

func (s *stream) ended(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := s.rd.ReadString('\n'); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("stream did not end")
	}
}

func openStream(t *testing.T, url string, hdr map[string]string) *stream {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &stream{resp: resp, rd: bufio.NewReader(resp.Body)}
}

func openSSE(t *testing.T, url string) *stream {
	t.Helper()
	s := openStream(t, url, nil)
	ev, data := s.next(t)
	if ev != "endpoint" || !strings.HasPrefix(data, "/message?") {
		t.Fatalf("first event %q %q", ev, data)
	}
	s.data = data
	_, q, _ := strings.Cut(data, "?")
	for kv := range strings.SplitSeq(q, "&") {
		if v, ok := strings.CutPrefix(kv, "sessionId="); ok {
			s.id = v
		}
	}
	return s
}

func TestStreams(t *testing.T) {
	r := start(t, secretA, front.Options{SSEKeepAlive: 20 * time.Millisecond})
	sid := initRaw(t, r.url, initBody)
	hdr := map[string]string{"Mcp-Session-Id": sid}

	first := openStream(t, r.url+"/mcp", hdr)
	l1 := receive(t, r.router.listening, "Listening")
	if ev, data := first.next(t); ev != "comment" || data != "keep-alive" {
		t.Fatalf("got %q %q, want a keep-alive", ev, data)
	}
	// A second GET of the session replaces the first.
	second := openStream(t, r.url+"/mcp", hdr)
	receive(t, r.router.listening, "second Listening")
	first.ended(t)
	<-l1.ctx.Done()
	msg := jsonrpc.Notification("notifications/resources/list_changed", json.RawMessage("{\n  \"a\": 1\n}"))
	if !r.f.Push(sid, msg) {
		t.Fatal("Push found no stream")
	}
	for {
		ev, data := second.next(t)
		if ev == "message" {
			if data != string(msg) {
				t.Fatalf("pushed %q", data)
			}
			break
		}
	}

	sse := openSSE(t, r.url+"/sse?pagination=true&x=1")
	if !strings.Contains(sse.data, "pagination=true") || !strings.Contains(sse.data, "x=1") {
		t.Fatalf("endpoint %q lost the /sse query", sse.data)
	}
	// /message is sticky: another replica cannot answer on this stream.
	other := start(t, secretA, front.Options{})
	resp, body := post(t, other.url+sse.data, nil, echoCall)
	expectError(t, resp, body, 404, "sticky sessions")
	resp, body = post(t, r.url+sse.data, nil, `{"jsonrpc":"2.0","id":4,"method":"ping"}`)
	if resp.StatusCode != http.StatusAccepted || len(body) != 0 {
		t.Fatalf("/message: %d %s", resp.StatusCode, body)
	}
	for {
		if ev, data := sse.next(t); ev == "message" {
			if data != `{"jsonrpc":"2.0","id":4,"result":{}}` {
				t.Fatalf("answer %q", data)
			}
			break
		}
	}

	// Close ends every stream, the SSE session with it.
	if err := r.f.Close(); err != nil {
		t.Fatal(err)
	}
	second.ended(t)
	sse.ended(t)
	if s := receive(t, r.router.ended, "Ended"); s.ID != sse.id {
		t.Fatalf("Ended(%q), want the SSE session", s.ID)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.url+"/mcp", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	resp, body = do(t, req)
	expectError(t, resp, body, http.StatusServiceUnavailable, "shutting down")
}

// A POST whose answer takes longer than the keep-alive interval becomes an
// event stream of keep-alive comments, so that idle timeouts of proxies do
// not cut it, and ends with the answer; a quick answer stays plain JSON.
func TestSlowPostKeepsAlive(t *testing.T) {
	r := start(t, secretA, front.Options{SSEKeepAlive: 20 * time.Millisecond})
	sid := initRaw(t, r.url, initBody)
	hdr := map[string]string{"Mcp-Session-Id": sid}
	ctx, cancel := context.WithTimeout(t.Context(), wait) // no keep-alive: Do would wait for the answer
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"hold"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	resp, err := http.DefaultClient.Do(req) // returns once the stream started
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("slow answer: %d %s, want an event stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{resp: resp, rd: bufio.NewReader(resp.Body)}
	for range 2 {
		if ev, data := s.next(t); ev != "comment" || data != "keep-alive" {
			t.Fatalf("got %q %q, want a keep-alive", ev, data)
		}
	}
	close(r.router.release)
	for {
		ev, data := s.next(t)
		if ev == "comment" {
			continue
		}
		if ev != "message" || !strings.Contains(data, `"id":7`) || !strings.Contains(data, "released") {
			t.Fatalf("got %q %q, want the answer", ev, data)
		}
		break
	}
	s.ended(t)

	resp, body := post(t, r.url+"/mcp", hdr, echoCall)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || len(body) == 0 {
		t.Fatalf("quick answer: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
