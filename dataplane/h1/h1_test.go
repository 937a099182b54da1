package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingServer is an HTTP/1.1 server that counts the connections it accepts.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newTestH1() *Transport {
	return New(&http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	})
}

func post(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestH1ReusesOneConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo":%q}`, b)
	})
	h1 := newTestH1()
	defer h1.CloseIdleConnections()
	c := &http.Client{Transport: h1}
	for i := range 20 {
		code, body := post(t, c, srv.URL, fmt.Sprint(i))
		if want := fmt.Sprintf(`{"echo":"%d"}`, i); code != 200 || body != want {
			t.Fatalf("call %d: %d %s, want 200 %s", i, code, body, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 20 serial calls, want 1", n)
	}
}

// A body the caller closes without reading (mcp-go does so for 202 answers
// to notifications) is drained, so the connection is kept.
func TestH1KeepsConnectionWhenUnreadBodyIsClosed(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "accepted")
	})
	h1 := newTestH1()
	defer h1.CloseIdleConnections()
	for range 5 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		resp, err := h1.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

// A server that closes its idle connections (keep-alive timeout, restart)
// costs no failed request: the next one goes out on a fresh connection.
func TestH1SkipsConnectionsTheServerClosed(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	h1 := newTestH1()
	defer h1.CloseIdleConnections()
	c := &http.Client{Transport: h1}
	post(t, c, srv.URL, "1")
	srv.CloseClientConnections()
	// The server's close reaches our socket asynchronously: wait until the
	// pooled connection reads as closed, as it would by the next call.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h1.mu.Lock()
		idle := append([]*conn(nil), h1.idle[srv.Listener.Addr().String()]...)
		h1.mu.Unlock()
		if len(idle) != 1 {
			t.Fatalf("%d idle connections, want 1", len(idle))
		}
		if !alive(idle[0].nc) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed connection still reads as open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := post(t, c, srv.URL, "2"); code != 200 || body != "ok" {
		t.Fatalf("after the server closed the connection: %d %q", code, body)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// Ending the context ends a request whose response does not come, and the
// connection is not reused.
func TestH1ContextEndsBlockedRequest(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); string(b) == "block" {
			<-r.Context().Done()
		}
		io.WriteString(w, "ok")
	})
	h1 := newTestH1()
	defer h1.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("block"))
	_, err := h1.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	c := &http.Client{Transport: h1}
	if code, _ := post(t, c, srv.URL, "{}"); code != 200 {
		t.Fatalf("next call: %d", code)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the abandoned one is not reused)", n)
	}
}

// A stream (an SSE GET) blocks in Read until the caller closes it, from
// another goroutine, or its context ends.
func TestH1StreamEndsOnCloseAndOnContext(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	h1 := newTestH1()
	defer h1.CloseIdleConnections()
	for _, how := range []string{"close", "context"} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := h1.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
			t.Fatalf("%s: first line %q %v", how, line, err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadAll(br)
			done <- err
		}()
		if how == "close" {
			resp.Body.Close()
		} else {
			cancel()
		}
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("%s: the stream read ended without an error", how)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the blocked read did not end", how)
		}
		resp.Body.Close()
		cancel()
	}
}

// https and requests through a proxy are the standard Transport's.
func TestH1LeavesHTTPSAndProxiesToNetHTTP(t *testing.T) {
	h1 := newTestH1()
	for _, c := range []struct {
		url   string
		proxy bool
		want  bool
	}{
		{"http://127.0.0.1:1/mcp", false, true},
		{"https://127.0.0.1:1/mcp", false, false},
		{"http://127.0.0.1:1/mcp", true, false},
	} {
		h1.next.Proxy = nil
		if c.proxy {
			h1.next.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("http://proxy:3128") }
		}
		req, _ := http.NewRequest(http.MethodPost, c.url, nil)
		if got := h1.handles(req); got != c.want {
			t.Errorf("%s proxy=%v: handles = %v, want %v", c.url, c.proxy, got, c.want)
		}
	}
}

// After Close, a response that ends gives its connection up instead of
// pooling it.
func TestH1KeepsNothingAfterClose(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	h1 := newTestH1()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	h1.Close()
	io.ReadAll(resp.Body)
	resp.Body.Close()
	h1.mu.Lock()
	n := len(h1.idle[srv.Listener.Addr().String()])
	h1.mu.Unlock()
	if n != 0 || conns.Load() != 1 {
		t.Fatalf("%d idle connections after Close, want 0", n)
	}
}

// A request whose connection fails after it was written is not sent again
// (the server may have acted on it): the caller gets the error.
func TestH1NeverSendsARequestTwice(t *testing.T) {
	var got atomic.Int32
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); string(b) == "warm" {
			io.WriteString(w, "ok")
			return
		}
		got.Add(1)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close() // acted on, then the connection dies before the answer
		}
	})
	h1 := newTestH1()
	defer h1.CloseIdleConnections()
	c := &http.Client{Transport: h1}
	post(t, c, srv.URL, "warm") // the next request reuses this connection
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("call"))
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request whose connection died before the answer succeeded")
	}
	if n := got.Load(); n != 1 {
		t.Fatalf("the server got the request %d times, want once", n)
	}
}

// A head and a body far larger than the connection's 4 KiB buffers, both
// ways, arrive whole, and the connection is reused after them.
func TestH1LargeHeadsAndBodies(t *testing.T) {
	big := strings.Repeat("v", 20<<10)
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Big", r.Header.Get("X-Big"))
		_, _ = w.Write(b)
		_, _ = w.Write(b)
	})
	tr := newTestH1()
	defer tr.Close()
	c := &http.Client{Transport: tr}
	body := strings.Repeat("0123456789", 50<<10)
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("X-Big", big)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != body+body || resp.Header.Get("X-Big") != big {
			t.Fatalf("got %d bytes (want %d), header %d bytes, err %v", len(got), 2*len(body), len(resp.Header.Get("X-Big")), err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for three requests, want 1", n)
	}
}
