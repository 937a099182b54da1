package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/internal/tlsconfig/tlstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// startRun runs the control plane with cfg until the test ends and returns
// its gRPC address.
func startRun(t *testing.T, cfg Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg.Ready = func(g, _ string) { ready <- g }
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-ready:
		return a
	case err := <-done:
		done <- nil
		t.Fatalf("Run failed: %v", err)
	}
	return ""
}

// TestRunMutualTLS serves the gRPC API with mutual TLS: a client with the
// CA and a client certificate gets in; one without the certificate, or in
// plaintext, does not; a certificate swapped on disk is served to the next
// connection.
func TestRunMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	srv := ca.Issue(t, dir, "controlplane")
	cli := ca.Issue(t, dir, "mcpctl")
	dataDir := filepath.Join(dir, "data")
	addr := startRun(t, Config{DataDir: dataDir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		TLS: tlsconfig.ServerFiles{Cert: srv.CertFile, Key: srv.KeyFile, ClientCA: ca.File}})
	tok, err := authtoken.Read(filepath.Join(dataDir, authtoken.FileName))
	if err != nil {
		t.Fatal(err)
	}
	list := func(opt grpc.DialOption) error {
		cc, err := grpc.NewClient(addr, opt, grpc.WithPerRPCCredentials(authtoken.Credentials(tok)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = mcpmeshv1.NewRegistryServiceClient(cc).ListServers(ctx, &mcpmeshv1.ListServersRequest{})
		return err
	}
	creds := func(f tlsconfig.ClientFiles) grpc.DialOption {
		c, err := tlsconfig.GRPCClient(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		return grpc.WithTransportCredentials(c)
	}
	if err := list(creds(tlsconfig.ClientFiles{CA: ca.File, Cert: cli.CertFile, Key: cli.KeyFile})); err != nil {
		t.Fatalf("ListServers over mutual TLS: %v", err)
	}
	if err := list(creds(tlsconfig.ClientFiles{CA: ca.File})); err == nil {
		t.Fatal("ListServers without a client certificate succeeded")
	}
	if err := list(grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		t.Fatal("ListServers in plaintext succeeded")
	}

	rotated := ca.Issue(t, t.TempDir(), "controlplane")
	rotated.WriteTo(t, srv.CertFile, srv.KeyFile)
	pair, err := tls.LoadX509KeyPair(cli.CertFile, cli.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if got := st.PeerCertificates[0].SerialNumber; got.Cmp(rotated.Cert.SerialNumber) != 0 || st.NegotiatedProtocol != "h2" {
		t.Fatalf("after the rotation: serial %s, ALPN %q; want %s and h2", got, st.NegotiatedProtocol, rotated.Cert.SerialNumber)
	}
	if err := list(creds(tlsconfig.ClientFiles{CA: ca.File, Cert: cli.CertFile, Key: cli.KeyFile})); err != nil {
		t.Fatalf("ListServers after the rotation: %v", err)
	}
}

// TestRunPlaintextOffLoopback: refused with the flags to set, unless
// Insecure, which logs a warning that says INSECURE.
func TestRunPlaintextOffLoopback(t *testing.T) {
	err := Run(context.Background(), Config{DataDir: t.TempDir(), GRPCAddr: "0.0.0.0:0", HTTPAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "refusing plaintext gRPC on --grpc-addr 0.0.0.0:0") ||
		!strings.Contains(err.Error(), "set --tls-cert and --tls-key") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("Run on 0.0.0.0 without TLS: %v; want a refusal naming --tls-cert, --tls-key and --insecure", err)
	}

	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	startRun(t, Config{DataDir: t.TempDir(), GRPCAddr: "0.0.0.0:0", HTTPAddr: "127.0.0.1:0", Insecure: true, Logger: log})
	if !strings.Contains(logs.String(), "level=WARN msg=\"INSECURE: gRPC serves plaintext") {
		t.Fatalf("no INSECURE warning in the log:\n%s", logs.String())
	}
}

func TestRunTLSFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.crt")
	err := Run(context.Background(), Config{DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		TLS: tlsconfig.ServerFiles{Cert: missing, Key: missing}})
	if err == nil || !strings.Contains(err.Error(), "--tls-cert "+missing) {
		t.Fatalf("Run with a missing certificate: %v; want an error naming --tls-cert", err)
	}
}
