package egress_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/internal/egress"
)

func TestRefused(t *testing.T) {
	for _, tt := range []struct {
		addr    string
		refused bool
	}{
		{"169.254.169.254", true},
		{"169.254.0.1", true},
		{"169.254.255.255", true},
		{"fd00:ec2::254", true},
		{"fe80::1", true},
		{"febf::1", true},
		{"::ffff:169.254.169.254", true},
		{"64:ff9b::a9fe:a9fe", true},
		{"127.0.0.1", false},
		{"10.0.0.5", false},
		{"192.168.1.1", false},
		{"169.253.255.255", false},
		{"169.255.0.0", false},
		{"fd00:ec2::253", false},
		{"fd00::1", false},
		{"fec0::1", false},
		{"::1", false},
		{"2001:db8::1", false},
		{"8.8.8.8", false},
	} {
		if got := egress.Refused(netip.MustParseAddr(tt.addr)) != ""; got != tt.refused {
			t.Errorf("Refused(%s) = %v, want %v", tt.addr, got, tt.refused)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, tt := range []struct {
		host    string
		refused bool
	}{
		{"169.254.169.254", true},
		{"[fd00:ec2::254]", true},
		{"fe80::1%eth0", true},
		{"[fe80::1]", true},
		{"metadata.google.internal", true},
		{"Metadata.Google.Internal.", true},
		{"2852039166", true},
		{"0xa9fea9fe", true},
		{"0251.0376.0251.0376", true},
		{"169.254.43518", true},
		{"169.16689662", true},
		{"127.0.0.1", false},
		{"localhost", false},
		{"api.example.com", false},
		{"10.1", false},
		{"4294967296", false},
		{"1.2.3.4.5", false},
	} {
		err := egress.CheckHost(tt.host)
		if (err != nil) != tt.refused {
			t.Errorf("CheckHost(%q) = %v, want refused=%v", tt.host, err, tt.refused)
		}
		if err != nil && !strings.Contains(err.Error(), egress.Flag) {
			t.Errorf("CheckHost(%q) = %v: does not name %s", tt.host, err, egress.Flag)
		}
	}
}

// TestControl: the dialer refuses refused addresses before connecting, and
// dials others.
func TestControl(t *testing.T) {
	for _, addr := range []string{"169.254.169.254:80", "[fd00:ec2::254]:80", "[fe80::1]:443", "[::ffff:169.254.169.254]:80"} {
		err := egress.Control("tcp", addr, nil)
		if err == nil || !strings.Contains(err.Error(), egress.Flag) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("Control(%s) = %v, want a refusal naming %s", addr, err, egress.Flag)
		}
	}
	for _, addr := range []string{"127.0.0.1:80", "[::1]:80", "10.0.0.1:443", "not an address"} {
		if err := egress.Control("tcp", addr, nil); err != nil {
			t.Errorf("Control(%s) = %v", addr, err)
		}
	}
	// Through a real dialer: the refusal comes before any packet is sent
	// (nothing listens there, and a connect would hang).
	d := net.Dialer{Control: egress.Control}
	_, err := d.DialContext(context.Background(), "tcp", "169.254.169.254:80")
	if err == nil || !strings.Contains(err.Error(), egress.Flag) {
		t.Errorf("dial 169.254.169.254:80 = %v, want a refusal", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial a loopback listener: %v", err)
	}
	c.Close()
}

func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"169.254.169.254", "0xa9fea9fe", "1.2.3", "[::1]", "metadata.goog", "0x", "..", "1.0x100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		err := egress.CheckHost(host)
		if a, perr := netip.ParseAddr(host); perr == nil && (egress.Refused(a) != "") != (err != nil) {
			t.Fatalf("CheckHost(%q) = %v, Refused = %q", host, err, egress.Refused(a))
		}
	})
}
