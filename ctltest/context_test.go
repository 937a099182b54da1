package ctltest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/mcpctl/cmd"
	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
)

func envMap(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestContexts: contexts are created, listed, switched and deleted in a
// 0600 file, and a command reaches the control plane its context names.
func TestContexts(t *testing.T) {
	cp := startControlPlane(t)
	cfg := filepath.Join(t.TempDir(), "conf", "config.yaml")
	env := map[string]string{ctlconfig.EnvConfig: cfg}
	run := func(args ...string) (string, string, int) { return runWith(t, envMap(env), args...) }
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(args...)
		if code != 0 {
			t.Fatalf("mcpctl %q: exit %d: %s", args, code, errOut)
		}
		return out
	}
	fail := func(want string, args ...string) {
		t.Helper()
		_, errOut, code := run(args...)
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("mcpctl %q: exit %d, %q; want %q", args, code, errOut, want)
		}
	}

	if out := must("context", "list"); !strings.Contains(out, "No contexts in "+cfg) {
		t.Errorf("empty list:\n%s", out)
	}
	out := must("context", "set", "local", "--addr", cp.addr, "--token-file", cp.tokenFile)
	if !strings.Contains(out, `context "local" created in `+cfg+"; it is the current context") {
		t.Errorf("first set:\n%s", out)
	}
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file %v (%v), want mode 0600", st, err)
	}
	// The context alone reaches the control plane (context > defaults).
	must("server", "add", "via-context", "--", "x")
	if out := must("server", "list"); !strings.Contains(out, "via-context") {
		t.Errorf("list through the context:\n%s", out)
	}

	// A second context pointing nowhere; switching makes it fail.
	must("context", "set", "dead", "--addr", "127.0.0.1:1", "--token-file", cp.tokenFile)
	must("context", "use", "dead")
	fail("cannot reach control plane at 127.0.0.1:1", "server", "list")
	// --context, and MCPMESH_CONTEXT, pick another for one command.
	must("--context", "local", "server", "list")
	env[ctlconfig.EnvContext] = "local"
	must("server", "list")
	delete(env, ctlconfig.EnvContext)
	// env > context, flag > env.
	env[cmd.EnvAddr] = cp.addr
	must("server", "list")
	env[cmd.EnvAddr] = "127.0.0.1:1"
	must("--addr", cp.addr, "server", "list")
	delete(env, cmd.EnvAddr)

	// Only the flags given change.
	must("context", "set", "dead", "--addr", cp.addr)
	var list struct {
		File           string `json:"file"`
		CurrentContext string `json:"current_context"`
		Contexts       []struct {
			Name, Addr string
			TokenFile  string `json:"token_file"`
			TokenEnv   string `json:"token_env"`
			Current    bool
		}
	}
	if err := json.Unmarshal([]byte(must("context", "list", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if list.CurrentContext != "dead" || len(list.Contexts) != 2 || list.Contexts[0].Name != "dead" || !list.Contexts[0].Current ||
		list.Contexts[0].Addr != cp.addr || list.Contexts[0].TokenFile != cp.tokenFile {
		t.Errorf("context list = %+v", list)
	}
	if out := must("context", "list"); !strings.Contains(out, "*        dead") {
		t.Errorf("table does not mark the current context:\n%s", out)
	}
	must("server", "list")

	// token-env: the token comes from the variable the context names.
	must("context", "set", "dead", "--token-env", "MY_MCPMESH_TOKEN")
	fail(`context "dead" takes the token from $MY_MCPMESH_TOKEN, which is empty or unset`, "server", "list")
	env["MY_MCPMESH_TOKEN"] = cp.token
	must("server", "list")
	env["MY_MCPMESH_TOKEN"] = "wrong"
	fail(`control plane rejected the token from $MY_MCPMESH_TOKEN (context "dead")`, "server", "list")
	// A token file from the environment replaces the context's token-env.
	env[authtoken.EnvTokenFile] = cp.tokenFile
	must("server", "list")
	delete(env, authtoken.EnvTokenFile)

	fail("give --token-file or --token-env, not both", "context", "set", "x", "--token-file", "f", "--token-env", "V")
	fail(`context name "bad name" is invalid`, "context", "set", "bad name")
	fail(`context "nope" is not in `+cfg, "context", "use", "nope")
	fail(`--context "nope" is not a context in `+cfg, "--context", "nope", "server", "list")
	if out := must("context", "delete", "dead"); !strings.Contains(out, `context "dead" deleted`) {
		t.Errorf("delete:\n%s", out)
	}
	fail(`context "dead" is not in`, "context", "delete", "dead")
	if err := json.Unmarshal([]byte(must("context", "list", "-o", "json")), &list); err != nil || list.CurrentContext != "" || len(list.Contexts) != 1 {
		t.Errorf("after deleting the current context: %+v (%v)", list, err)
	}

	// A broken file is named, never overwritten.
	if err := os.WriteFile(cfg, []byte("contexts: [{name: a, adress: x}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fail(`unknown field "adress"`, "server", "list")
	fail(`unknown field "adress"`, "context", "set", "b", "--addr", "h:1")
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "adress") {
		t.Error("a refused set rewrote the broken file")
	}
}

// TestContextFileLocation: --config > MCPMESH_CONFIG > XDG_CONFIG_HOME > HOME.
func TestContextFileLocation(t *testing.T) {
	dir := t.TempDir()
	xdg, home := filepath.Join(dir, "xdg"), filepath.Join(dir, "home")
	env := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": home}
	runWith(t, envMap(env), "context", "set", "a", "--addr", "h:1")
	if _, err := os.Stat(filepath.Join(xdg, "mcpmesh", "config.yaml")); err != nil {
		t.Errorf("with XDG_CONFIG_HOME: %v", err)
	}
	delete(env, "XDG_CONFIG_HOME")
	runWith(t, envMap(env), "context", "set", "b", "--addr", "h:1")
	if _, err := os.Stat(filepath.Join(home, ".config", "mcpmesh", "config.yaml")); err != nil {
		t.Errorf("with HOME only: %v", err)
	}
	explicit := filepath.Join(dir, "explicit.yaml")
	env[ctlconfig.EnvConfig] = filepath.Join(dir, "env.yaml")
	runWith(t, envMap(env), "--config", explicit, "context", "set", "c", "--addr", "h:1")
	runWith(t, envMap(env), "context", "set", "d", "--addr", "h:1")
	for _, p := range []string{explicit, env[ctlconfig.EnvConfig]} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, errOut, code := runWith(t, noEnv, "context", "list"); code != 1 || !strings.Contains(errOut, "no config file: set --config or MCPMESH_CONFIG") {
		t.Errorf("without any location: exit %d, %q", code, errOut)
	}
}
