//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowsersAndEgress, with the real binaries (issue 11 points 4 and 7): a
// foreign Origin and a rebinding Host are refused 403 naming the header and
// the flag; an origin of --allowed-origins gets CORS for itself (never "*");
// /message refuses text/plain; a URL backend at the metadata address is
// refused at registration, and a data plane without --allow-private-egress
// refuses to dial one the control plane was told to accept.
func TestBrowsersAndEgress(t *testing.T) {
	cp := startControlPlane(t, filepath.Join(t.TempDir(), "data"), "", "")
	_, good := startHTTPBackend(t, "good")
	mustCtl(t, cp, "server", "add", "good", "--url", good)
	dp := startDataPlaneVia(t, cp, "dp", cp.grpcAddr, "--allowed-origins", "https://app.example.com")
	dp.waitState(t, "good", "healthy")
	hc := &http.Client{Timeout: 10 * time.Second}
	send := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+dp.listen+path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp, string(b)
	}
	for _, tt := range []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		acao, body         string
	}{
		{"no origin", "POST", "/mcp", nil, 200, "", ""},
		{"foreign origin", "POST", "/mcp", map[string]string{"Origin": "http://evil.example"}, 403, "", `origin \"http://evil.example\" is not allowed`},
		{"foreign origin on sse", "GET", "/sse", map[string]string{"Origin": "http://evil.example", "Accept": "text/event-stream"}, 403, "", "--allowed-origins (https://app.example.com)"},
		{"rebinding", "POST", "/mcp", map[string]string{"Host": "evil.example.com", "Origin": "http://evil.example.com"}, 403, "", "--allowed-hosts"},
		{"rebinding without origin", "GET", "/sse", map[string]string{"Host": "evil.example.com:80", "Accept": "text/event-stream"}, 403, "", "not a loopback name"},
		{"allowed origin", "POST", "/mcp", map[string]string{"Origin": "https://app.example.com"}, 200, "https://app.example.com", ""},
		{"preflight", "OPTIONS", "/mcp", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, 204, "https://app.example.com", ""},
		{"text/plain message", "POST", "/message?sessionId=x", map[string]string{"Content-Type": "text/plain"}, 415, "", "application/json"},
	} {
		resp, body := send(tt.method, tt.path, tt.hdr)
		if resp.StatusCode != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("%s: %d %.300s, want %d with %q", tt.name, resp.StatusCode, body, tt.status, tt.body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.acao {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", tt.name, got, tt.acao)
		}
	}

	r := mcpctl(t, cp, "server", "add", "meta", "--url", "http://169.254.169.254/latest/meta-data/")
	if r.code != 1 || !strings.Contains(r.stderr, "server.http.url") || !strings.Contains(r.stderr, "--allow-private-egress") {
		t.Errorf("registering the metadata address: exit %d %q, want a refusal naming the flag", r.code, r.stderr)
	}

	open := startControlPlane(t, filepath.Join(t.TempDir(), "data2"), "", "", "--allow-private-egress")
	mustCtl(t, open, "server", "add", "meta", "--url", "http://169.254.169.254/mcp")
	dp2 := startDataPlane(t, open, "dp2")
	eventually(t, waitTimeout, "the data plane refuses to dial the metadata address", func() error {
		s, err := dp2.server("meta")
		if err != nil {
			return err
		}
		if !strings.Contains(s.LastError, "--allow-private-egress") {
			return fmt.Errorf("state %s, last error %q", s.State, s.LastError)
		}
		return nil
	})
}
