package backend

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLineBound(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		tooLarge bool
	}{
		{"lines within", strings.Repeat(strings.Repeat("a", 16)+"\n", 10), false},
		{"one line past", "ok\n" + strings.Repeat("b", 17) + "\n", true},
		{"no newline at all", strings.Repeat("c", 40), true},
		{"exactly the bound", strings.Repeat("d", 16) + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := 0
			b := &lineBound{r: iotest.OneByteReader(strings.NewReader(tc.in)), max: 16, fail: func(max int64) error {
				failed++
				return io.ErrShortBuffer
			}}
			got, err := io.ReadAll(b)
			switch {
			case tc.tooLarge && (err != io.ErrShortBuffer || failed != 1):
				t.Fatalf("err = %v after %d bytes, fail called %d times; want the bound's error once", err, len(got), failed)
			case !tc.tooLarge && (err != nil || string(got) != tc.in):
				t.Fatalf("err = %v, got %q", err, got)
			}
		})
	}
}

// TestStdioHugeLine: a child printing an endless line fails its connection
// with an error naming the server and the limit, is killed, and the
// schedule retries it.
func TestStdioHugeLine(t *testing.T) {
	e := newEnv(t)
	srv := stdioServer("flood", t.TempDir())
	srv.Stdio.Env[envStdioServer] = "huge-line"
	e.apply(srv)
	b := e.backend("flood")
	e.waitState(b, stateRetrying)
	if got := e.waitTimer(); got <= 0 {
		t.Fatalf("no retry scheduled")
	}
	if h := b.Health(); !strings.Contains(h.GetLastError(), "stdio backend flood: a message exceeded 16777216 bytes") {
		t.Errorf("last error = %q, want one naming the server and the limit", h.GetLastError())
	}
}
