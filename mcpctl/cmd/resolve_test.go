package cmd

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcpmesh/mcpmesh/internal/tlsconfig"
	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
)

// TestResolvePrecedence: flags > env > context > defaults per setting, and
// the transport settings as one group.
func TestResolvePrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	cfg := &ctlconfig.Config{CurrentContext: "tls", Contexts: []ctlconfig.Context{
		{Name: "tls", Addr: "ctx:7070", CA: "ca.crt", ClientCert: "/abs/me.crt", ClientKey: "me.key", TLSServerName: "cp", TokenFile: "tok"},
		{Name: "plain", Addr: "10.0.0.1:7070", Insecure: true, TokenEnv: "TOK"},
	}}
	if err := ctlconfig.Save(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	ctxTLS := tlsconfig.ClientFiles{CA: filepath.Join(dir, "ca.crt"), Cert: "/abs/me.crt", Key: filepath.Join(dir, "me.key"), ServerName: "cp"}
	cases := []struct {
		name      string
		env       map[string]string
		args      []string
		addr      string
		tokenFile string
		tokenEnv  string
		tls       tlsconfig.ClientFiles
		insecure  bool
	}{
		{"defaults without a file", map[string]string{}, nil, DefaultAddr, DefaultTokenFile, "", tlsconfig.ClientFiles{}, false},
		{"context", nil, nil, "ctx:7070", filepath.Join(dir, "tok"), "", ctxTLS, false},
		{"env over context", map[string]string{EnvAddr: "env:1", "MCPMESH_TOKEN_FILE": "/env.tok"}, nil, "env:1", "/env.tok", "", ctxTLS, false},
		{"flag over env", map[string]string{EnvAddr: "env:1"}, []string{"--addr", "flag:1", "--token-file", "/flag.tok"}, "flag:1", "/flag.tok", "", ctxTLS, false},
		{"env CA replaces the context's TLS group", map[string]string{EnvCA: "/env-ca.crt"}, nil, "ctx:7070", filepath.Join(dir, "tok"), "", tlsconfig.ClientFiles{CA: "/env-ca.crt"}, false},
		{"--insecure replaces the context's TLS group", nil, []string{"--insecure"}, "ctx:7070", filepath.Join(dir, "tok"), "", tlsconfig.ClientFiles{}, true},
		{"--context", nil, []string{"--context", "plain"}, "10.0.0.1:7070", "", "TOK", tlsconfig.ClientFiles{}, true},
		{"MCPMESH_CONTEXT", map[string]string{ctlconfig.EnvContext: "plain"}, nil, "10.0.0.1:7070", "", "TOK", tlsconfig.ClientFiles{}, true},
		{"token file env over token-env", map[string]string{ctlconfig.EnvContext: "plain", "MCPMESH_TOKEN_FILE": "/e"}, nil, "10.0.0.1:7070", "/e", "", tlsconfig.ClientFiles{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{ctlconfig.EnvConfig: cfgPath}
			if tc.env != nil && len(tc.env) == 0 {
				env = map[string]string{}
			}
			for k, v := range tc.env {
				env[k] = v
			}
			root, o := newRoot(&bytes.Buffer{}, func(k string) string { return env[k] })
			if err := root.PersistentFlags().Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := o.resolve(); err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if o.addr != tc.addr || o.tokenFile != tc.tokenFile || o.tokenEnv != tc.tokenEnv || o.tls != tc.tls || o.insecure != tc.insecure {
				t.Errorf("resolved addr %q token-file %q token-env %q tls %+v insecure %v;\nwant addr %q token-file %q token-env %q tls %+v insecure %v",
					o.addr, o.tokenFile, o.tokenEnv, o.tls, o.insecure, tc.addr, tc.tokenFile, tc.tokenEnv, tc.tls, tc.insecure)
			}
		})
	}
	if err := os.WriteFile(cfgPath, []byte("current-context: gone\ncontexts: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, o := newRoot(&bytes.Buffer{}, func(k string) string { return map[string]string{ctlconfig.EnvConfig: cfgPath}[k] })
	if err := o.resolve(); err == nil {
		t.Error("a current-context that is not in the file resolved")
	}
}
