package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/internal/tlsconfig/tlstest"
)

// TestTLSFlags checks what mcpctl refuses before it dials: plaintext off
// loopback, contradicting flags, unreadable files (named by their flag).
func TestTLSFlags(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "t")
	if err := os.WriteFile(tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "absent.crt")
	closed := closedPort(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"plaintext off loopback", nil, []string{"--addr", "10.0.0.1:7070"},
			"refusing plaintext to control plane 10.0.0.1:7070 (not a loopback address): set --ca (env MCPMESH_CA) to the CA bundle of its TLS certificate, or --insecure to allow plaintext"},
		{"plaintext to a name", nil, []string{"--addr", "controlplane.example:7070"}, "set --ca"},
		{"--insecure with --ca", nil, []string{"--addr", closed, "--insecure", "--ca", missing}, "--insecure contradicts --ca"},
		{"--tls-server-name alone", nil, []string{"--addr", closed, "--tls-server-name", "cp"}, "--tls-server-name needs --ca"},
		{"missing --ca file", nil, []string{"--addr", closed, "--ca", missing}, "read CA bundle --ca: open " + missing},
		{"missing CA from the environment", map[string]string{EnvCA: missing}, []string{"--addr", closed}, "--ca: open " + missing},
		{"client cert without key", nil, []string{"--addr", closed, "--client-cert", missing}, "--client-cert and --client-key go together"},
		{"TLS to a closed port", map[string]string{EnvCA: ""}, []string{"--addr", closed, "--ca", tlstest.NewCA(t, t.TempDir(), "ca").File}, "cannot reach control plane at " + closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			_, errOut, code := runWith(t, getenv, append(append(tc.args, "--token-file", tokenFile), "server", "list")...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, %q; want exit 1 and %q", code, errOut, tc.want)
			}
		})
	}
}
