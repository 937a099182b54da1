//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rpcResult is a JSON-RPC answer, from a JSON body or an SSE event.
type rpcResult struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// rawPost sends one JSON-RPC request to url with sid as Mcp-Session-Id
// ("" for none) and returns the HTTP status, the session id header and the
// answer.
func rawPost(url, sid, body string) (int, string, rpcResult, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", rpcResult{}, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	}
	resp, err := (&http.Client{Timeout: rpcTimeout}).Do(req)
	if err != nil {
		return 0, "", rpcResult{}, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	raw := b
	if i := bytes.Index(b, []byte("data: ")); i >= 0 {
		raw = b[i+len("data: "):]
		if j := bytes.IndexByte(raw, '\n'); j >= 0 {
			raw = raw[:j]
		}
	}
	var r rpcResult
	_ = json.Unmarshal(raw, &r)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), r, string(b), nil
}

// TestSecretRotation: a session id and a list cursor issued before
// `mcpctl secret rotate --grace 1m` keep working through the rotation, also
// on a data plane started after it, and are refused with a clear error once
// the grace has ended.
func TestSecretRotation(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	_, u := startHTTPBackend(t, "web", "--tools", "30")
	mustCtl(t, cp, "server", "add", "web", "--url", u)
	mustCtl(t, cp, "config", "set", "pagination.enabled", "true")
	mustCtl(t, cp, "config", "set", "pagination.page_size", "5")
	dp1 := startDataPlane(t, cp, "dp-1")
	dp1.waitReady(t)

	url1 := "http://" + dp1.listen + "/mcp"
	code, sid, _, body, err := rawPost(url1, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"rot","version":"1"}}}`)
	if err != nil || code != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %v %s", code, err, body)
	}
	_, _, _, _, _ = rawPost(url1, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	list := func(url, cursor string) (int, rpcResult, string) {
		t.Helper()
		params := "{}"
		if cursor != "" {
			params = fmt.Sprintf(`{"cursor":%q}`, cursor)
		}
		code, _, r, body, err := rawPost(url, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":`+params+`}`)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		return code, r, body
	}
	code, first, body := list(url1, "")
	var page struct {
		NextCursor string `json:"nextCursor"`
	}
	if code != http.StatusOK || json.Unmarshal(first.Result, &page) != nil || page.NextCursor == "" {
		t.Fatalf("first page: %d %s", code, body)
	}
	cursor := page.NextCursor

	h, err := dp1.health()
	if err != nil {
		t.Fatal(err)
	}
	before := h.ConfigRevision
	mustCtl(t, cp, "secret", "rotate", "--grace", "1m")
	rotatedAt := time.Now()
	eventually(t, waitTimeout, "dp-1 at the rotated revision", func() error {
		h, err := dp1.health()
		if err != nil {
			return err
		}
		if h.ConfigRevision <= before {
			return fmt.Errorf("revision %d", h.ConfigRevision)
		}
		return nil
	})
	dp2 := startDataPlane(t, cp, "dp-2") // started after the rotation
	dp2.waitReady(t)
	url2 := "http://" + dp2.listen + "/mcp"

	for _, u := range []string{url1, url2} {
		if code, r, body := list(u, cursor); code != http.StatusOK || r.Error != nil || r.Result == nil {
			t.Fatalf("%s: the old session id and cursor within the grace: %d %s", u, code, body)
		}
	}
	if time.Since(rotatedAt) > time.Minute {
		t.Fatal("the grace ended before the checks within it were done (a very slow machine)")
	}

	// After the grace: refused, saying why. Polled: the deadline is the
	// control plane's clock plus one minute.
	for _, u := range []string{url1, url2} {
		eventually(t, 3*time.Minute, "the old session id refused after the grace on "+u, func() error {
			code, r, body := list(u, cursor)
			if code == http.StatusOK && r.Error == nil {
				return fmt.Errorf("still accepted")
			}
			if !strings.Contains(body, "grace period ended") && !strings.Contains(body, "secret rotation") {
				return fmt.Errorf("refused without saying why: %d %s", code, body)
			}
			return nil
		})
	}
	// A new session is fine, but the old cursor is refused: the list starts again.
	code, sid, _, body, err = rawPost(url2, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"rot","version":"1"}}}`)
	if err != nil || code != http.StatusOK || sid == "" {
		t.Fatalf("initialize after the grace: %d %v %s", code, err, body)
	}
	if _, r, body := list(url2, cursor); r.Error == nil || r.Error.Code != -32602 || !strings.Contains(r.Error.Message, "rotated out") {
		t.Fatalf("the old cursor after the grace: %s; want -32602 naming the rotation", body)
	}
	if code, r, body := list(url2, ""); code != http.StatusOK || r.Error != nil {
		t.Fatalf("a new list after the grace: %d %s", code, body)
	}
}
