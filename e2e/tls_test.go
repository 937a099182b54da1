//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpmesh/mcpmesh/internal/tlsconfig/tlstest"
)

var dpServingTLSRE = regexp.MustCompile(`"msg":"data plane serving".*?"mcp_url":"https://([^"/]+)/mcp"`)

// TestTLS runs the control plane with mutual TLS, and a data plane whose
// MCP listener serves TLS too: mcpctl and the data plane get in with --ca
// and a client certificate, are refused with an error that names the flag
// without them, and a certificate swapped on disk is served to the next
// connection with no restart.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "ca")
	srv := ca.Issue(t, dir, "controlplane")
	dpCert := ca.Issue(t, dir, "dataplane")
	admin := ca.Issue(t, dir, "admin")
	other := tlstest.NewCA(t, dir, "other")

	dataDir := filepath.Join(dir, "data")
	p, m := startListener(t, "controlplane", nil, cpStartedRE, bin("controlplane"),
		"--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-format", "json",
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--client-ca", ca.File)
	cp := &controlPlane{proc: p, dataDir: dataDir, grpcAddr: m[1], httpAddr: m[2]}
	if l := cp.waitLog(time.Time{}, "msg", "control plane started"); l.Attrs["grpc_tls"] != "mtls" {
		t.Fatalf("control plane started with grpc_tls=%v, want mtls", l.Attrs["grpc_tls"])
	}
	base := []string{"MCPMESH_ADDR=" + cp.grpcAddr, "MCPMESH_TOKEN_FILE=" + cp.tokenFile()}

	// mcpctl: refused without --ca, and without a client certificate.
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no --ca", base, nil, "if it serves TLS, set --ca"},
		{"no client certificate", base, []string{"--ca", ca.File}, "set --client-cert and --client-key"},
		{"another CA", base, []string{"--ca", other.File, "--client-cert", admin.CertFile, "--client-key", admin.KeyFile}, "certificate signed by unknown authority"},
		{"--insecure to a loopback TLS server", base, []string{"--insecure"}, "set --ca"},
	} {
		r := mcpctlEnv(t, tc.env, append(tc.args, "server", "list")...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("mcpctl server list with %s: exit %d, stderr %q; want exit 1 and one line with %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
	withTLS := append(base, "MCPMESH_CA="+ca.File, "MCPMESH_CLIENT_CERT="+admin.CertFile, "MCPMESH_CLIENT_KEY="+admin.KeyFile)
	// The harness issues the data planes' token with mcpctl: over mutual TLS.
	cp.ctlEnv = withTLS[len(base):]
	if r := mcpctlEnv(t, withTLS, "server", "add", "demo", "--", bin("demo-backend"), "--name", "demo"); r.code != 0 {
		t.Fatalf("mcpctl server add over mutual TLS: exit %d: %s", r.code, r.stderr)
	}

	// A data plane without --ca keeps retrying and says what to set.
	plain := startDataPlaneVia(t, cp, "plain", cp.grpcAddr)
	l := plain.waitLog(time.Time{}, "msg", "config stream ended")
	if hint, _ := l.Attrs["hint"].(string); !strings.Contains(hint, "set --ca") {
		t.Fatalf("data plane without --ca logged %v; want a hint naming --ca", l)
	}
	if h, err := plain.health(); err != nil || h.ControlPlane == "connected" {
		t.Fatalf("data plane without --ca: control_plane %q (%v), want not connected", h.ControlPlane, err)
	}
	plain.stop()

	// The data plane with --ca and a client certificate, serving MCP over TLS.
	_, m2 := startListener(t, "dataplane tls", []string{"MCPMESH_TOKEN_FILE=" + cp.dataplaneTokenFile(t)}, dpServingTLSRE, bin("dataplane"),
		"--control-plane", cp.grpcAddr, "--listen", "127.0.0.1:0", "--id", "tls", "--log-format", "json",
		"--ca", ca.File, "--client-cert", dpCert.CertFile, "--client-key", dpCert.KeyFile,
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile)
	listen := m2[1]
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	hc := &http.Client{Timeout: rpcTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	eventually(t, waitTimeout, "TLS data plane ready with the demo backend", func() error {
		resp, err := hc.Get("https://" + listen + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errStatus(resp.Status)
		}
		if resp.Proto != "HTTP/1.1" || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "http/1.1" {
			t.Fatalf("data plane answered %s with ALPN %q; want HTTP/1.1 and http/1.1 (h1 has no HTTP/2)", resp.Proto, resp.TLS.NegotiatedProtocol)
		}
		return nil
	})
	mc, err := client.NewStreamableHttpClient("https://"+listen+"/mcp", transport.WithHTTPBasicClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if err := mc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpmesh-e2e", Version: "1"}
	if _, err := mc.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize over TLS: %v", err)
	}
	eventually(t, waitTimeout, "demo tools over TLS", func() error { return toolsListed(mc, []string{"demo__echo"}) })
	if _, err := httpc.Get("http://" + listen + "/livez"); err == nil {
		t.Fatal("the TLS listener answered plaintext HTTP")
	}

	// Rotate the control plane's certificate: the next connection gets it.
	rotated := ca.Issue(t, t.TempDir(), "controlplane")
	rotated.WriteTo(t, srv.CertFile, srv.KeyFile)
	pair, err := tls.LoadX509KeyPair(admin.CertFile, admin.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", cp.grpcAddr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS dial after the rotation: %v", err)
	}
	got := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if got.SerialNumber.Cmp(rotated.Cert.SerialNumber) != 0 {
		t.Fatalf("control plane serves serial %s after the rotation, want the new %s", got.SerialNumber, rotated.Cert.SerialNumber)
	}
	if r := mcpctlEnv(t, withTLS, "status", "-o", "json"); r.code != 0 || !strings.Contains(r.stdout, `"tls"`) {
		t.Fatalf("mcpctl status after the rotation: exit %d, stdout %s, stderr %s", r.code, r.stdout, r.stderr)
	}
}

type errStatus string

func (e errStatus) Error() string { return "HTTP " + string(e) }
