package ctlconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPath(t *testing.T) {
	all := map[string]string{ctlconfig.EnvConfig: "/env/c.yaml", "XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}
	cases := []struct {
		explicit string
		env      map[string]string
		want     string
	}{
		{"/flag.yaml", all, "/flag.yaml"},
		{"", all, "/env/c.yaml"},
		{"", map[string]string{"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/mcpmesh/config.yaml"},
		{"", map[string]string{"HOME": "/home/u"}, "/home/u/.config/mcpmesh/config.yaml"},
		{"", nil, ""},
	}
	for _, tc := range cases {
		if got := ctlconfig.Path(tc.explicit, env(tc.env)); got != tc.want {
			t.Errorf("Path(%q, %v) = %q, want %q", tc.explicit, tc.env, got, tc.want)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "config.yaml")
	c, err := ctlconfig.Load(path)
	if err != nil || len(c.Contexts) != 0 {
		t.Fatalf("Load of a missing file = %v, %v; want an empty config", c, err)
	}
	c.Put(ctlconfig.Context{Name: "prod", Addr: "cp:7070", CA: "ca.crt", TokenEnv: "PROD_TOKEN"})
	c.Put(ctlconfig.Context{Name: "dev", Addr: "127.0.0.1:7070", TokenFile: "/t"})
	c.CurrentContext = "prod"
	if err := ctlconfig.Save(path, c); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("saved file mode = %v (%v), want 0600", st.Mode(), err)
	}
	if d, _ := os.Stat(filepath.Dir(path)); d.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode = %v, want 0700", d.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after Save, want 1 (no temporary left)", len(entries))
	}
	back, err := ctlconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.CurrentContext != "prod" || strings.Join(back.Names(), ",") != "dev,prod" {
		t.Fatalf("loaded %+v", back)
	}
	prod, _ := back.Get("prod")
	if r := prod.Resolve("/cfg"); r.CA != "/cfg/ca.crt" || r.TokenEnv != "PROD_TOKEN" {
		t.Errorf("Resolve = %+v, want ca relative to the file's directory", r)
	}
	if !back.Delete("prod") || back.CurrentContext != "" || back.Delete("prod") {
		t.Errorf("Delete of the current context: %+v", back)
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	cases := map[string]string{
		"contexts: [{name: a, adress: x}]":                   `unknown field "adress"`,
		"contexts: [{name: a}, {name: a}]":                   `context "a" is listed twice`,
		"contexts: [{name: 'bad name'}]":                     `context name "bad name" is invalid`,
		"contexts: [{name: a, token-file: f, token-env: E}]": "both token-file and token-env",
		"contexts: [{name: a, token-env: 'not-a-var'}]":      "not an environment variable name",
		"contexts: [{name: a, insecure: true, ca: c}]":       "both insecure and TLS files",
		"contexts: [{name: a, client-cert: c}]":              "client-cert and client-key go together",
		"contexts: [{name: a, tls-server-name: n}]":          "tls-server-name needs ca",
		"contexts: {a: 1}":                                   "config ",
		"current-context: [":                                 "config ",
	}
	for in, want := range cases {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ctlconfig.Load(path)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%q) = %v, want an error naming %s and %q", in, err, path, want)
		}
	}
}
