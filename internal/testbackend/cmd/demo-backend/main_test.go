package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRun runs the command in-process and returns the URL it announced and a
// function that stops it (as SIGTERM would) and returns run's error.
func startRun(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, strings.NewReader(""), io.Discard, pw)
		pw.Close()
		done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			if l := sc.Text(); !found && strings.HasPrefix(l, "listening on ") {
				found = true
				lines <- strings.TrimPrefix(l, "listening on ")
			}
		}
		close(lines)
	}()
	var url string
	select {
	case url = <-lines:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("no 'listening on' line within 10s")
	}
	return url, func() error {
		cancel()
		select {
		case err := <-done:
			for range lines { // drain so the scanner goroutine ends
			}
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return within 10s of cancellation")
			return nil
		}
	}
}

func whoami(t *testing.T, c *client.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "demo-backend-test", Version: "0"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "whoami"
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("call whoami: %v", err)
	}
	tc, _ := mcp.AsTextContent(res.Content[0])
	return tc.Text
}

func TestServeStreamableHTTP(t *testing.T) {
	url, stop := startRun(t, "--name", "h1", "--http", "127.0.0.1:0")
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/mcp") || strings.Contains(url, ":0/") {
		t.Fatalf("announced URL %q, want http://127.0.0.1:<real port>/mcp", url)
	}
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	if got := whoami(t, c); !strings.HasPrefix(got, "h1 pid=") {
		t.Errorf("whoami = %q", got)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Errorf("run after shutdown: %v", err)
	}
}

// TestStatefulForgetsOnRestart: with --stateful, a session id this process
// did not issue (a restarted server's view of its old clients) gets 404.
func TestStatefulForgetsOnRestart(t *testing.T) {
	url, stop := startRun(t, "--name", "st", "--http", "127.0.0.1:0", "--stateful")
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run after shutdown: %v", err)
		}
	}()
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	defer c.Close()
	if got := whoami(t, c); !strings.HasPrefix(got, "st pid=") {
		t.Fatalf("whoami = %q", got)
	}
	body := strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", "mcp-session-00000000-0000-4000-8000-000000000000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown session: HTTP %d, want 404", resp.StatusCode)
	}
}

func TestServeSSE(t *testing.T) {
	url, stop := startRun(t, "--name", "s1", "--sse", "127.0.0.1:0")
	if !strings.HasSuffix(url, "/sse") {
		t.Fatalf("announced URL %q, want …/sse", url)
	}
	c, err := client.NewSSEMCPClient(url)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	if got := whoami(t, c); !strings.HasPrefix(got, "s1 pid=") {
		t.Errorf("whoami = %q", got)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Errorf("run after shutdown: %v", err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--http", "127.0.0.1:0", "--sse", "127.0.0.1:0"},
		{"--tools", "-1"},
		{"--page-size", "-3"},
		{"--tools", "many"},
		{"extra"},
		{"--http", "256.0.0.1:bad"},
		{"--stateful"},
		{"--stateful", "--sse", "127.0.0.1:0"},
		{"--oauth-as", "127.0.0.1:0"},
		{"--http", "127.0.0.1:0", "--oauth-as", "127.0.0.1:0", "--oauth-token-ttl", "0s"},
	} {
		err := run(t.Context(), args, strings.NewReader(""), io.Discard, io.Discard)
		if err == nil {
			t.Errorf("run %q succeeded, want an error", args)
		}
	}
}

// TestForward: --forward serves a plain reverse proxy to another backend,
// through which an MCP client reaches that backend.
func TestForward(t *testing.T) {
	backend, stopBackend := startRun(t, "--name", "fw", "--http", "127.0.0.1:0")
	url, stop := startRun(t, "--http", "127.0.0.1:0", "--forward", backend)
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	if got := whoami(t, c); !strings.HasPrefix(got, "fw pid=") {
		t.Errorf("whoami through the forwarder = %q", got)
	}
	c.Close()
	for _, stop := range []func() error{stop, stopBackend} {
		if err := stop(); err != nil {
			t.Errorf("run after shutdown: %v", err)
		}
	}
	for _, bad := range [][]string{{"--forward", backend}, {"--http", "127.0.0.1:0", "--forward", "ftp://x"}} {
		if err := run(t.Context(), bad, strings.NewReader(""), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "--forward") {
			t.Errorf("run %q = %v, want an error naming --forward", bad, err)
		}
	}
}

// TestOAuthMode: with --oauth-as, /mcp refuses a request without a token
// and names its resource metadata, which names the authorization server.
func TestOAuthMode(t *testing.T) {
	url, stop := startRun(t, "--http", "127.0.0.1:0", "--oauth-as", "127.0.0.1:0", "--oauth-token-ttl", "2s")
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("run after shutdown: %v", err)
		}
	}()
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post(url, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("unauthenticated POST: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = hc.Get(strings.Replace(url, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1))
	if err != nil {
		t.Fatal(err)
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if err != nil || prm.Resource != url || len(prm.AuthorizationServers) != 1 {
		t.Fatalf("PRM = %+v, %v", prm, err)
	}
	resp, err = hc.Get(prm.AuthorizationServers[0] + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("AS metadata: %s", resp.Status)
	}
}
