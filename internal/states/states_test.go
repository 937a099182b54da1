package states

import (
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

func TestLabels(t *testing.T) {
	backend := map[mcpmeshv1.BackendState]string{
		mcpmeshv1.BackendState_BACKEND_STATE_UNSPECIFIED:         "unknown",
		mcpmeshv1.BackendState_BACKEND_STATE_CONNECTING:          "connecting",
		mcpmeshv1.BackendState_BACKEND_STATE_HEALTHY:             "healthy",
		mcpmeshv1.BackendState_BACKEND_STATE_RETRYING:            "retrying",
		mcpmeshv1.BackendState_BACKEND_STATE_UNAVAILABLE:         "unavailable",
		mcpmeshv1.BackendState_BACKEND_STATE_DISABLED:            "disabled",
		mcpmeshv1.BackendState_BACKEND_STATE_NEEDS_AUTHORIZATION: "needs-authorization",
		mcpmeshv1.BackendState(99):                               "unknown",
	}
	for s, want := range backend {
		if got := Backend(s); got != want {
			t.Errorf("Backend(%v) = %q, want %q", s, got, want)
		}
	}
	breaker := map[mcpmeshv1.BreakerState]string{
		mcpmeshv1.BreakerState_BREAKER_STATE_UNSPECIFIED: "closed",
		mcpmeshv1.BreakerState_BREAKER_STATE_CLOSED:      "closed",
		mcpmeshv1.BreakerState_BREAKER_STATE_OPEN:        "open",
		mcpmeshv1.BreakerState_BREAKER_STATE_HALF_OPEN:   "half_open",
	}
	for s, want := range breaker {
		if got := Breaker(s); got != want {
			t.Errorf("Breaker(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestSessionModes(t *testing.T) {
	for _, m := range []mcpmeshv1.SessionMode{mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT, mcpmeshv1.SessionMode_SESSION_MODE_SHARED} {
		got, err := ParseSession(Session(m))
		if err != nil || got != m {
			t.Errorf("ParseSession(Session(%v)) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseSession("sticky"); err == nil {
		t.Error("ParseSession accepted sticky")
	}
	stdio := &mcpmeshv1.Server{Transport: mcpmeshv1.Transport_TRANSPORT_STDIO}
	http := &mcpmeshv1.Server{Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP}
	if EffectiveSession(stdio) != mcpmeshv1.SessionMode_SESSION_MODE_SHARED || EffectiveSession(http) != mcpmeshv1.SessionMode_SESSION_MODE_PER_CLIENT {
		t.Error("defaults: stdio must be shared, HTTP per-client")
	}
	http.Session = mcpmeshv1.SessionMode_SESSION_MODE_SHARED
	if EffectiveSession(http) != mcpmeshv1.SessionMode_SESSION_MODE_SHARED {
		t.Error("an explicit mode must win")
	}
}
