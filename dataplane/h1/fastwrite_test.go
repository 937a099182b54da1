package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// FuzzWriteRequest: writeRequest writes the bytes req.Write writes.
func FuzzWriteRequest(f *testing.F) {
	f.Add(uint8(0), "/mcp", "Mcp-Session-Id", "abc", "Content-Type", "application/json", `{"jsonrpc":"2.0"}`)
	f.Add(uint8(1), "/mcp?x=1", "Accept", "text/event-stream", "User-Agent", "", "")
	f.Add(uint8(2), "/a b", "X", " padded ", "x-lower", "v\r\nInjected: 1", "")
	f.Add(uint8(0), "/", "Bad Key", "v", "User-Agent", "ua", "body")
	f.Fuzz(func(t *testing.T, m uint8, path, k1, v1, k2, v2, body string) {
		method := []string{http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodPut}[m%4]
		mk := func() *http.Request {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, err := http.NewRequest(method, "http://127.0.0.1:9/", rd)
			if err != nil {
				t.Skip()
			}
			req.URL.Path = path
			req.Header[k1] = []string{v1}
			req.Header[k2] = append(req.Header[k2], v2)
			return req
		}
		var got, want bytes.Buffer
		gw := bufio.NewWriter(&got)
		gerr := writeRequest(gw, mk())
		gw.Flush()
		werr := mk().Write(&want)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("writeRequest: %q, %v\nreq.Write:    %q, %v", got.Bytes(), gerr, want.Bytes(), werr)
		}
	})
}

func TestWriteRequestTakesMCPRequests(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp", strings.NewReader("{}"))
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Mcp-Session-Id"] = []string{"s"}
	if !plainRequest(req) {
		t.Fatal("an MCP POST goes to req.Write")
	}
}

func BenchmarkWriteRequest(b *testing.B) {
	mk := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`))
		req.Header["Content-Type"] = []string{"application/json"}
		req.Header["Accept"] = []string{"application/json, text/event-stream"}
		req.Header["Mcp-Session-Id"] = []string{"0123456789abcdef"}
		req.Header["Mcp-Protocol-Version"] = []string{"2025-06-18"}
		return req
	}
	bw := bufio.NewWriter(io.Discard)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = writeRequest(bw, mk())
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = mk().Write(bw)
		}
	})
}
