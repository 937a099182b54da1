package backend

import (
	"strings"
	"testing"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
)

// TestPrivateEgressRefusedAtDial: a URL backend at a metadata address
// (which a control plane run with --allow-private-egress accepts) never
// gets a connection from a data plane without the flag: the connect fails
// at once (a real dial to 169.254.169.254 here would hang), saying why and
// which flag allows it.
func TestPrivateEgressRefusedAtDial(t *testing.T) {
	e := newEnv(t)
	for _, u := range []string{"http://169.254.169.254/mcp", "https://[fd00:ec2::254]/mcp"} {
		e.apply(&mcpmeshv1.Server{Name: "meta", Transport: mcpmeshv1.Transport_TRANSPORT_STREAMABLE_HTTP, Http: &mcpmeshv1.HttpConfig{Url: u}})
		b := e.backend("meta")
		e.waitFor("the first connect attempt of "+u, func() bool { return b.Health().GetConsecutiveFailures() > 0 })
		if h := b.Health(); !strings.Contains(h.GetLastError(), "--allow-private-egress") || !strings.Contains(h.GetLastError(), "refused") {
			t.Errorf("%s: last error %q, want the egress refusal naming --allow-private-egress", u, h.GetLastError())
		}
	}
}

// TestPrivateEgressAllowed: with AllowPrivateEgress the manager's dialers
// have no egress check.
func TestPrivateEgressAllowed(t *testing.T) {
	if e := newEnv(t, func(o *ManagerOptions) { o.AllowPrivateEgress = true }); e.m.hooks.control != nil {
		t.Error("AllowPrivateEgress set, but dials are still checked")
	}
	if e := newEnv(t); e.m.hooks.control == nil {
		t.Error("dials are not checked by default")
	}
}
