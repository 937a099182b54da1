package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/server"
)

// hostileModes are the ways --hostile misbehaves, for the data plane's
// hostile-input tests; everything else is served by the real MCP handler.
var hostileModes = map[string]string{
	"huge-list":  "tools/list answers a 200 MB result (streamed, never held)",
	"error-body": "every POST answers 500 with a 5 MB body",
	"endless":    "tools/call answers an event stream whose one event never ends",
	"malformed":  "tools/list answers invalid JSON",
	"huge-line":  "stdio (no --http): prints one endless line on stdout, never a newline",
}

func hostileModeList() string {
	var names []string
	for m := range hostileModes {
		names = append(names, m)
	}
	return strings.Join(names, ", ")
}

// hostile wraps next, the real streamable HTTP handler, misbehaving as mode says.
func hostile(mode string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		switch {
		case mode == "error-body":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusInternalServerError)
			chunk := strings.Repeat("hostile error body ", 1<<10)
			for n := 0; n < 5<<20; n += len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		case mode == "huge-list" && msg.Method == "tools/list":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"huge","inputSchema":{"type":"object"},"description":"`, msg.ID)
			chunk := strings.Repeat("x", 64<<10)
			for n := 0; n < 200<<20; n += len(chunk) {
				if _, err := io.WriteString(w, chunk); err != nil {
					return // the reader gave up: what it should do
				}
			}
			io.WriteString(w, `"}]}}`)
		case mode == "malformed" && msg.Method == "tools/list":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"broken","inputSchema":{"type":`, msg.ID)
		case mode == "endless" && msg.Method == "tools/call":
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "event: message\ndata: ")
			chunk := strings.Repeat("y", 64<<10)
			for {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// hostileHandler is the hostile wrapper with the MCP handler it wraps (shut
// down with the server).
type hostileHandler struct {
	http.Handler
	mcp *server.StreamableHTTPServer
}

// hugeLine writes one endless line to w until writing fails (the reader
// killed us or closed the pipe).
func hugeLine(w io.Writer) error {
	chunk := []byte(strings.Repeat("z", 64<<10))
	for {
		if _, err := w.Write(chunk); err != nil {
			return nil
		}
	}
}
