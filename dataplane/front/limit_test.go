package front

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestInflightLimit(t *testing.T) {
	l := inflight{max: 2, n: map[string]int{}}
	req := func(session string, relayed bool) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.RemoteAddr = "192.0.2.7:5555"
		if session != "" {
			r.Header.Set(headerSession, session)
		}
		if relayed {
			r.Header.Set(HeaderRelayed, "1")
		}
		return r
	}
	var keys []string
	for i := 0; i < 2; i++ {
		k, ok := l.acquire(httptest.NewRecorder(), req("", false))
		if !ok || k != "192.0.2.7" {
			t.Fatalf("acquire %d = %q, %v", i, k, ok)
		}
		keys = append(keys, k)
	}
	w := httptest.NewRecorder()
	if _, ok := l.acquire(w, req("", false)); ok {
		t.Fatal("a third request in flight from one address was let in")
	}
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" ||
		!strings.Contains(w.Body.String(), "--max-concurrent-per-client") {
		t.Errorf("refusal = %d %v %s", w.Code, w.Header(), w.Body)
	}
	// Another session from the same address counts apart; the relayed
	// marker is no way around the limit.
	if k, ok := l.acquire(httptest.NewRecorder(), req("sess-1", false)); !ok || k != "sess-1" {
		t.Errorf("a session's request = %q, %v", k, ok)
	} else {
		l.release(k)
	}
	if _, ok := l.acquire(httptest.NewRecorder(), req("", true)); ok {
		t.Error("a request claiming to be relayed escaped the limit")
	}
	l.release(keys[0])
	if _, ok := l.acquire(httptest.NewRecorder(), req("", false)); !ok {
		t.Error("after a release the client is still refused")
	}
	l.release(keys[1])
	l.release(keys[0])
	if len(l.n) != 0 {
		t.Errorf("counters left: %v", l.n)
	}
}
