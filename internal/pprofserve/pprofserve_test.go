package pprofserve_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mcpmesh/mcpmesh/internal/pprofserve"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDisabledByEmptyAddr(t *testing.T) {
	addr, err := pprofserve.Start(t.Context(), "", nil)
	if addr != nil || err != nil {
		t.Fatalf("Start(\"\") = %v, %v; want nil, nil", addr, err)
	}
}

func TestServesPprofUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addr, err := pprofserve.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	resp, err := c.Get(base + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "# HeapInuse") {
		t.Fatalf("heap profile: %d %.200s", resp.StatusCode, body)
	}

	resp, err = c.Post(base+pprofserve.FreeOSMemoryPath, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s: %d", pprofserve.FreeOSMemoryPath, resp.StatusCode)
	}
	resp, err = c.Get(base + pprofserve.FreeOSMemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s: %d, want 405", pprofserve.FreeOSMemoryPath, resp.StatusCode)
	}

	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(base + "/debug/pprof/")
		if err != nil {
			break // closed
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("pprof still served after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTakenAddressFails(t *testing.T) {
	addr, err := pprofserve.Start(t.Context(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pprofserve.Start(t.Context(), addr.String(), nil); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
		t.Fatalf("second Start on %s: %v, want an error naming --pprof-addr", addr, err)
	}
}
