//go:build linux

package backend

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A stdio child that spawns a grandchild and does not wait for it: closing
// the transport must end the grandchild too (its process group), not leave
// it running after the data plane.
func TestStdioCloseEndsGrandchildren(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	// The child (cat) exits on the EOF of its stdin; the grandchild (sleep) reads nothing and stays.
	script := "sleep 300 & echo $! > " + pidFile + "; exec cat"
	tr, err := newStdioTransport("group", "/bin/sh", []string{"-c", script}, []string{"PATH=" + os.Getenv("PATH")}, nil, dir, 1<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(pidFile)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never wrote its grandchild's pid")
		}
		time.Sleep(10 * time.Millisecond) // a file written by another process: nothing to wait on
	}
	if !processLives(pid) {
		t.Fatalf("grandchild %d is not running before Close", pid)
	}
	start := time.Now()
	_ = tr.Close() // cat's exit status after EOF is not the point here
	if processLives(pid) {
		t.Fatalf("grandchild %d outlived Close", pid)
	}
	if d := time.Since(start); d > stdioGrace+groupTermWait+time.Second {
		t.Errorf("Close took %v", d)
	}
}

// processLives reports whether pid runs (a zombie waiting for init to reap
// it has ended).
func processLives(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
