package front_test

import (
	"net/http/httptest"
	"testing"

	"github.com/mcpmesh/mcpmesh/dataplane/front"
)

func TestLoopbackOnly(t *testing.T) {
	for _, tt := range []struct {
		host, origin string
		ok           bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:8080", "http://localhost:3000", true},
		{"[::1]:8080", "http://[::1]", true},
		{"127.0.0.1:8080", "null", true},
		{"evil.example.com", "", false},
		{"127.0.0.1:8080", "http://evil.example.com", false},
		{"localhost.evil.example.com", "", false},
	} {
		r := httptest.NewRequest("POST", "http://x/mcp", nil)
		r.Host = tt.host
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if err := front.LoopbackOnly(r); (err == nil) != tt.ok {
			t.Errorf("LoopbackOnly(host %q, origin %q) = %v, want ok=%v", tt.host, tt.origin, err, tt.ok)
		}
	}
	r := httptest.NewRequest("POST", "http://gw.example.com/mcp", nil)
	r.Header.Set("Origin", "https://other.example.com")
	if front.SameOrigin(r) == nil {
		t.Error("SameOrigin accepted a foreign origin")
	}
	r.Header.Set("Origin", "http://gw.example.com")
	if err := front.SameOrigin(r); err != nil {
		t.Error(err)
	}
}
