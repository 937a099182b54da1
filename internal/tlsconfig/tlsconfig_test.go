package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig/tlstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serveTLS accepts TLS connections on a real TCP port, completes each
// handshake and closes it; it stops with the test.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			// Read until the client hangs up, so a client-side verification
			// failure in TLS 1.3 (reported after the server's Finished)
			// reaches the client as its own error, not as an EOF.
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Read(make([]byte, 1))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// dial handshakes with addr and returns the certificate the server showed
// and the negotiated ALPN protocol.
func dial(addr string, cfg *tls.Config) (*x509.Certificate, string, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	// A server that rejects the client's certificate says so after the
	// client's handshake is done (TLS 1.3): a read surfaces it.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return nil, "", err
	}
	st := c.ConnectionState()
	return st.PeerCertificates[0], st.NegotiatedProtocol, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func mustClient(t *testing.T, f tlsconfig.ClientFiles) *tls.Config {
	t.Helper()
	get, err := tlsconfig.Client(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := get()
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

func TestServerVerifiedByClient(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	srv := ca.Issue(t, dir, "server")
	cfg, err := tlsconfig.Server(tlsconfig.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile}, []string{"http/1.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)

	got, proto, err := dial(addr, mustClient(t, tlsconfig.ClientFiles{CA: ca.File}))
	if err != nil {
		t.Fatalf("dial with the right CA: %v", err)
	}
	if got.SerialNumber.Cmp(srv.Cert.SerialNumber) != 0 || proto != "http/1.1" {
		t.Fatalf("served %s with ALPN %q, want %s with http/1.1", got.Subject, proto, srv.Cert.Subject)
	}

	other := tlstest.NewCA(t, dir, "other")
	if _, _, err := dial(addr, mustClient(t, tlsconfig.ClientFiles{CA: other.File})); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("dial with another CA: got %v, want an unknown-authority error", err)
	}
	if _, _, err := dial(addr, mustClient(t, tlsconfig.ClientFiles{CA: ca.File, ServerName: "elsewhere.example"})); err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Fatalf("dial expecting another name: got %v, want a name mismatch", err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	clientCA := tlstest.NewCA(t, dir, "clients")
	srv := ca.Issue(t, dir, "server")
	good := clientCA.Issue(t, dir, "dataplane")
	foreign := ca.Issue(t, dir, "stranger") // right CA for servers, wrong for clients
	cfg, err := tlsconfig.Server(tlsconfig.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile, ClientCA: clientCA.File}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)

	for _, tc := range []struct {
		name    string
		files   tlsconfig.ClientFiles
		wantErr string
	}{
		{"client certificate from the client CA", tlsconfig.ClientFiles{CA: ca.File, Cert: good.CertFile, Key: good.KeyFile}, ""},
		{"no client certificate", tlsconfig.ClientFiles{CA: ca.File}, "certificate required"},
		{"client certificate from another CA", tlsconfig.ClientFiles{CA: ca.File, Cert: foreign.CertFile, Key: foreign.KeyFile}, "unknown certificate authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := dial(addr, mustClient(t, tc.files))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("dial: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("dial: got %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

// TestServerReload swaps the certificate files under a running listener:
// the next connection gets the new certificate, and a broken pair is
// ignored until it is fixed.
func TestServerReload(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	first := ca.Issue(t, dir, "server")
	cfg, err := tlsconfig.Server(tlsconfig.ServerFiles{Cert: first.CertFile, Key: first.KeyFile}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)
	client := mustClient(t, tlsconfig.ClientFiles{CA: ca.File})
	served := func() *x509.Certificate {
		t.Helper()
		c, _, err := dial(addr, client)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if s := served(); s.SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %s, want %s", s.SerialNumber, first.Cert.SerialNumber)
	}

	second := ca.Issue(t, t.TempDir(), "server")
	second.WriteTo(t, first.CertFile, first.KeyFile)
	if s := served(); s.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after the swap: served serial %s, want the new %s", s.SerialNumber, second.Cert.SerialNumber)
	}

	// Half a rotation: a new certificate whose key has not arrived yet.
	third := ca.Issue(t, t.TempDir(), "server")
	tlstest.WriteFile(t, first.CertFile, mustRead(t, third.CertFile))
	if s := served(); s.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("with a mismatched pair: served serial %s, want the last good %s", s.SerialNumber, second.Cert.SerialNumber)
	}
	tlstest.WriteFile(t, first.KeyFile, mustRead(t, third.KeyFile))
	if s := served(); s.SerialNumber.Cmp(third.Cert.SerialNumber) != 0 {
		t.Fatalf("after the key arrived: served serial %s, want %s", s.SerialNumber, third.Cert.SerialNumber)
	}
}

// TestClientCAReload moves the server to a certificate of a new CA: the
// client refuses it until its --ca file holds the new CA, with no restart.
func TestClientCAReload(t *testing.T) {
	dir := t.TempDir()
	oldCA := tlstest.NewCA(t, dir, "old")
	newCA := tlstest.NewCA(t, dir, "new")
	srv := newCA.Issue(t, dir, "server")
	caFile := filepath.Join(dir, "bundle.crt")
	oldCA.WriteCA(t, caFile)
	cfg, err := tlsconfig.Server(tlsconfig.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)
	get, err := tlsconfig.Client(tlsconfig.ClientFiles{CA: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(addr, get()); err == nil {
		t.Fatal("dial verified a certificate of a CA not in the bundle")
	}
	newCA.WriteCA(t, caFile)
	if _, _, err := dial(addr, get()); err != nil {
		t.Fatalf("dial after the CA file changed: %v", err)
	}
}

// TestGRPC runs a real gRPC call over the server config and the reloading
// client credentials, with mutual TLS (gRPC insists on h2 in ALPN).
func TestGRPC(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	srv := ca.Issue(t, dir, "server")
	cli := ca.Issue(t, dir, "client")
	scfg, err := tlsconfig.Server(tlsconfig.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile, ClientCA: ca.File}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(tlsconfig.GRPCServer(scfg)))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	call := func(f tlsconfig.ClientFiles) error {
		creds, err := tlsconfig.GRPCClient(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := call(tlsconfig.ClientFiles{CA: ca.File, Cert: cli.CertFile, Key: cli.KeyFile}); err != nil {
		t.Fatalf("call with mutual TLS: %v", err)
	}
	if err := call(tlsconfig.ClientFiles{CA: ca.File}); err == nil {
		t.Fatal("call without a client certificate succeeded")
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	p := ca.Issue(t, dir, "server")
	missing := filepath.Join(dir, "missing.crt")
	for _, tc := range []struct {
		name  string
		files tlsconfig.ServerFiles
		want  string
	}{
		{"cert without key", tlsconfig.ServerFiles{Cert: p.CertFile}, "--tls-cert and --tls-key go together"},
		{"client CA alone", tlsconfig.ServerFiles{ClientCA: ca.File}, "--client-ca needs --tls-cert and --tls-key"},
		{"missing cert", tlsconfig.ServerFiles{Cert: missing, Key: p.KeyFile}, "--tls-cert " + missing},
		{"key that is a certificate", tlsconfig.ServerFiles{Cert: p.CertFile, Key: p.CertFile}, "--tls-key"},
		{"client CA that is a key", tlsconfig.ServerFiles{Cert: p.CertFile, Key: p.KeyFile, ClientCA: p.KeyFile}, "--client-ca " + p.KeyFile + ": no PEM certificate"},
	} {
		t.Run("server/"+tc.name, func(t *testing.T) {
			_, err := tlsconfig.Server(tc.files, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		files tlsconfig.ClientFiles
		want  string
	}{
		{"cert without key", tlsconfig.ClientFiles{CA: ca.File, Cert: p.CertFile}, "--client-cert and --client-key go together"},
		{"missing CA", tlsconfig.ClientFiles{CA: missing}, "--ca: open " + missing},
		{"CA that is a key", tlsconfig.ClientFiles{CA: p.KeyFile}, "no PEM certificate"},
	} {
		t.Run("client/"+tc.name, func(t *testing.T) {
			_, err := tlsconfig.Client(tc.files, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestIsLoopbackTarget(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:7070": true, "127.9.9.9:7070": true, "[::1]:7070": true, "localhost:7070": true,
		"LOCALHOST.:7070": true, ":7070": true, "dns:///localhost:7070": true, "unix:///run/mcpmesh.sock": true,
		"10.0.0.5:7070": false, "0.0.0.0:7070": false, "controlplane:7070": false, "dns:///controlplane:7070": false,
		"[::]:7070": false, "example.com": false,
	} {
		if got := tlsconfig.IsLoopbackTarget(target); got != want {
			t.Errorf("IsLoopbackTarget(%q) = %v, want %v", target, got, want)
		}
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
