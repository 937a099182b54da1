package backend

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
)

func TestBoundTransport(t *testing.T) {
	big := strings.Repeat("x", 65)
	fits := strings.Repeat("y", 64)
	manyEvents := strings.Repeat("data: "+strings.Repeat("z", 50)+"\n\n", 20) // 20 events of 58 bytes
	crlfEvents := strings.Repeat("data: "+strings.Repeat("z", 50)+"\r\n\r\n", 20)
	for _, tc := range []struct {
		name, kind, body string
		tooLarge         bool
	}{
		{"known within", "known", fits, false},
		{"known past", "known", big, true},
		{"chunked within", "chunked", fits, false},
		{"chunked past", "chunked", big, true},
		{"events within, stream past", "sse", manyEvents, false},
		{"CRLF events within", "sse", crlfEvents, false},
		{"one event past", "sse", "data: " + strings.Repeat("a", 40) + "\ndata: " + strings.Repeat("b", 40) + "\n\n", true},
		{"one line past", "sse", "data: " + big + "\n\n", true},
		{"no newline at all", "sse", big + big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body := tc.body
				if tc.kind == "sse" {
					w.Header().Set("Content-Type", "text/event-stream")
				} else {
					w.Header().Set("Content-Type", "application/json")
				}
				if tc.kind == "known" {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					io.WriteString(w, body)
					return
				}
				for len(body) > 0 {
					n := min(len(body), 7)
					io.WriteString(w, body[:n])
					w.(http.Flusher).Flush()
					body = body[n:]
				}
			}))
			defer ts.Close()
			hc := &http.Client{Transport: &boundTransport{base: &http.Transport{}, max: 64}}
			resp, err := hc.Get(ts.URL)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			var tl *errTooLarge
			switch {
			case tc.tooLarge && err == nil:
				t.Fatalf("read %d bytes, want an error past the limit", len(got))
			case tc.tooLarge && !errors.As(err, &tl) && !strings.Contains(err.Error(), "larger than 64 bytes"):
				t.Fatalf("err = %v, want one naming the limit", err)
			case !tc.tooLarge && err != nil:
				t.Fatalf("err = %v", err)
			case !tc.tooLarge && string(got) != tc.body:
				t.Fatalf("body = %q, want %q", got, tc.body)
			}
		})
	}
}

// TestEventBoundSplits: event boundaries are found whatever the read sizes.
func TestEventBoundSplits(t *testing.T) {
	stream := "data: 0123456789\r\n\r\n" + "data: 0123456789\n\n" + "id: 1\ndata: 012\n\n"
	for step := 1; step <= len(stream); step++ {
		b := &eventBound{max: 21}
		for i := 0; i < len(stream); i += step {
			if b.scan([]byte(stream[i:min(i+step, len(stream))])) {
				t.Fatalf("read in steps of %d: an event counted past 21 bytes", step)
			}
		}
		b = &eventBound{max: 15}
		over := false
		for i := 0; i < len(stream); i += step {
			over = over || b.scan([]byte(stream[i:min(i+step, len(stream))]))
		}
		if !over {
			t.Fatalf("read in steps of %d: no event counted past 15 bytes", step)
		}
	}
}

// TestLastErrorTruncated: a backend whose initialize fails with a huge error
// body is reported with a last_error of at most 1 KB.
func TestLastErrorTruncated(t *testing.T) {
	e := newEnv(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, strings.Repeat("boom ", 1<<20)) // 5 MB
	}))
	defer ts.Close()
	e.apply(&mcpmeshv1.Server{
		Name:      "big-error",
		Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP,
		Http:      &mcpmeshv1.HttpConfig{Url: ts.URL + "/mcp"},
	})
	b := e.backend("big-error")
	e.waitState(b, mcpmeshv1.BackendState_BACKEND_STATE_RETRYING)
	h := b.Health()
	t.Logf("last_error: %d bytes, ends %q", len(h.GetLastError()), h.GetLastError()[max(0, len(h.GetLastError())-40):])
	if n := len(h.GetLastError()); n == 0 || n > textlimit.ErrorText {
		t.Fatalf("last_error is %d bytes, want 1..%d: %.200s", n, textlimit.ErrorText, h.GetLastError())
	}
	for _, eh := range b.Endpoints() {
		if len(eh.LastError) > textlimit.ErrorText {
			t.Errorf("endpoint last error is %d bytes", len(eh.LastError))
		}
	}
}
